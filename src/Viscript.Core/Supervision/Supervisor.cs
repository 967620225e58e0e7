using System.Collections.Concurrent;
using System.Globalization;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Viscript.Core.Config;
using Viscript.Core.Control;
using Viscript.Signal;

namespace Viscript.Core.Supervision;

/// <summary>
/// Launches apps from config.yaml, tracks each sequence id through <see cref="ProcessState"/>, applies the
/// restart policy, captures output and talks to signal clients. Thread-safe; every state change raises <see cref="Changed"/>.
/// This type holds the registry of ids and every state change (one <c>TransitionTo</c>); the work is done by
/// <see cref="ProcessLauncher"/> (spawn), <see cref="OutputPump"/> (output), <see cref="RestartPlanner"/> (restart rule),
/// <see cref="StopEscalation"/> (SHUTDOWN, SIGTERM, SIGKILL), <see cref="LeftoverStopper"/> and <see cref="OrphanReaper"/>
/// (what a run leaves behind), <see cref="SignalRequests"/> (signal calls) and <see cref="RunStateFile"/> (what a
/// successor needs after a SIGKILL). The public operations are in Supervisor.Operations.cs.
/// </summary>
public sealed partial class Supervisor : IAsyncDisposable
{
    /// <summary>Longest line kept; longer output is split.</summary>
    public const int MaxLineChars = OutputPump.MaxLineChars;

    /// <summary>How long an unfinished line (a prompt) waits for its newline before live followers are shown it.</summary>
    public static readonly TimeSpan PartialLineDelay = OutputPump.PartialLineDelay;

    private readonly ConcurrentDictionary<ulong, ManagedProcess> _processes = new();
    private readonly Lock _idGate = new();
    private readonly ISignalGateway _signal;
    private readonly SignalRequests _signalRequests;
    private readonly SupervisorOptions _options;
    private readonly TimeProvider _time;
    private readonly ILogger _logger;
    private readonly OrphanReaper _reaper;
    private readonly ProcessLauncher _launcher;
    private readonly StopEscalation _stops;
    private readonly LeftoverStopper _leftovers;
    private readonly RunStateFile? _runState;
    private readonly SupervisorMetrics _metrics;
    private ulong _nextId = 1;
    private volatile bool _shuttingDown;
    private int _disposed;

    /// <summary>Creates a supervisor over <paramref name="config"/>; signal registrations arrive through <paramref name="signal"/>.</summary>
    public Supervisor(ViscriptConfig config, ISignalGateway? signal = null, SupervisorOptions? options = null, ILogger<Supervisor>? logger = null)
    {
        Config = config;
        _signal = signal ?? NullSignalGateway.Instance;
        _signalRequests = new SignalRequests(_signal);
        _options = options ?? SupervisorOptions.Default;
        _time = _options.TimeProvider;
        _logger = logger ?? (ILogger)NullLogger.Instance;
        _reaper = new OrphanReaper(_options.ChildSubreaper, _logger);
        _launcher = new ProcessLauncher(_signal, _reaper, _options.NewSession, Config.BaseDirectory, _time);
        _stops = new StopEscalation(_signal, _time, _logger);
        _leftovers = new LeftoverStopper(_reaper, _logger);
        _runState = _options.RecordRunState ? new RunStateFile(RunStateDirectory, _logger) : null;
        _metrics = new SupervisorMetrics(List, _options.MeterName);
        _signal.ClientRegistered += OnClientRegistered;
        _signal.ClientDisconnected += OnClientDisconnected;
        Log.ReaperMode(_logger, _reaper.IsSubreaper, _launcher.NewSession);
    }

    /// <summary>The default name of the meter of the supervisor's instruments (docs/operations.md "Metrics").</summary>
    public const string MeterName = SupervisorMetrics.MeterName;

    /// <summary>The name of this supervisor's meter (<see cref="SupervisorOptions.MeterName"/>).</summary>
    public string InstrumentsMeterName => _options.MeterName;

    /// <summary>Raised on every state change and signal registration. Handlers run under internal locks: they must not block.</summary>
    public event EventHandler<ProcessEvent>? Changed;

    /// <summary>The config apps come from.</summary>
    public ViscriptConfig Config { get; }

    /// <summary>The signal gateway.</summary>
    public ISignalGateway Signal => _signal;

    /// <summary>Folder of the per-process log files.</summary>
    public string LogDirectory => _options.LogDirectory ?? Config.LogDirectory;

    /// <summary>The clock of this supervisor (state times, <c>EndedAt</c>).</summary>
    public TimeProvider Time => _time;

    /// <summary>Folder of the run-state files (<see cref="SupervisorOptions.RecordRunState"/>).</summary>
    public string RunStateDirectory => Path.Combine(LogDirectory, "run");

    /// <summary>Looks up an app by name (case-insensitive).</summary>
    /// <exception cref="ViscriptException">UnknownApp.</exception>
    public AppOptions GetApp(string name) =>
        Config.Apps.TryGetValue(name, out var app) ? app
        : throw new ViscriptException(ErrorCode.UnknownApp, $"App with name '{name}' doesn't exist. Try running 'apps'.");

    /// <summary>Arguments for a start: typed ones replace (or extend) default_args; signal flags appended when configured.</summary>
    public static IReadOnlyList<string> BuildArguments(AppOptions app, IReadOnlyList<string>? userArgs, ulong id)
    {
        var args = new List<string>();
        if (userArgs is null || userArgs.Count == 0 || app.ArgsMode == ArgsMode.Extend)
        {
            args.AddRange(app.DefaultArgs);
        }
        if (userArgs is not null)
        {
            args.AddRange(userArgs);
        }
        if (app.SignalFlags)
        {
            args.AddRange(["-signal-client-id", id.ToString(CultureInfo.InvariantCulture), "-signal-client"]);
        }
        return args;
    }

    /// <summary>Backoff before restart n (1-based): backoff * 2^(n-1), capped at backoff_max.</summary>
    public static TimeSpan BackoffDelay(AppOptions app, int failure) => RestartPlanner.BackoffDelay(app, failure);

    /// <summary>Quotes an argument for display when it contains spaces or quotes (the command parser reads it back).</summary>
    public static string QuoteForDisplay(string arg) =>
        arg.Length > 0 && !arg.Any(c => char.IsWhiteSpace(c) || c is '"' or '\'' or '\\') ? arg : "'" + arg.Replace("'", "'\\''", StringComparison.Ordinal) + "'";

    /// <inheritdoc/>
    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            return;
        }
        _signal.ClientRegistered -= OnClientRegistered;
        _signal.ClientDisconnected -= OnClientDisconnected;
        await StopAllAsync();
        _runState?.Delete();
        await _reaper.DisposeAsync();
        _metrics.Dispose();
    }

    // ---- launching and exits ----

    private ulong AllocateId()
    {
        lock (_idGate)
        {
            // A signal client that connected on its own may already hold the next number: skip it, so that our child can register.
            while (_processes.ContainsKey(_nextId) || _signal.TryGetClient(_nextId, out _))
            {
                _nextId++;
            }
            return _nextId++;
        }
    }

    /// <summary>Spawns a run; caller holds <c>p.Gate</c>. Returns an error text when the OS refused (state is then Fatal).</summary>
    private string? Launch(ManagedProcess p)
    {
        var app = p.App;
        p.StopRequested = false;
        TransitionTo(p, ProcessState.Starting, p.Restarts == 0 && p.Run is null && p.LastPid is null ? "start requested" : "starting again");
        if (_launcher.Launch(p, out var error) is not { } run)
        {
            return SpawnFailed(p, error!);
        }
        p.Run = run;
        p.LastPid = run.Pid;
        p.ExitCode = null;
        p.LogFile?.Write($"--- viscript: started pid {run.Pid} at {run.StartedAt:O}: {p.CommandLine}");
        Log.Spawned(_logger, p.Id, app.Name, run.Pid);
        _runState?.Record(p.Id, app.Name, run.Pid, run.NewSession, app.StopTimeout);
        ProcessLauncher.StartPumps(p, run);
        // Grace timer first, then the event, so that a fake clock advanced on "started" reaches the timer.
        var grace = Task.Delay(app.StartSecs, _time, run.Cts.Token);
        RaiseEvent(new ProcessEvent(run.StartedAt, "started", p.Id, app.Name, null, p.State.ToString(), run.Pid, null, $"pid {run.Pid}: {p.CommandLine}"));
        _ = StartGraceAsync(p, run, grace);
        _ = MonitorAsync(p, run);
        return null;
    }

    /// <summary>Records a failed spawn; caller holds the gate. A missing or non-executable file does not heal by retrying: Fatal at once.</summary>
    private string SpawnFailed(ManagedProcess p, string message)
    {
        p.Logs.Append(LogStream.System, $"viscript: start failed: {message}");
        p.LogFile?.Write($"--- viscript: start of '{p.CommandLine}' failed: {message}");
        p.Run = null;
        TransitionTo(p, ProcessState.Fatal, $"spawn failed: {message}");
        Log.SpawnFailed(_logger, p.Id, p.App.Name, message);
        return message;
    }

    private async Task MonitorAsync(ManagedProcess p, ProcessRun run)
    {
        try
        {
            await run.Process.WaitForExitAsync();
        }
        catch (InvalidOperationException)
        {
        }
        _reaper.Forget(run.Pid);
        // The process is gone; what it started (its session and group, and the tree seen when a stop began) goes with it.
        await _leftovers.StopAfterRunAsync(p.Id, run, p.App.StopTimeout);
        _runState?.Forget(p.Id, run.Pid);
        // Let the pumps drain what the process wrote before it ended; a grandchild that keeps the pipe open must not delay the exit.
        try
        {
            await run.Pumps.WaitAsync(TimeSpan.FromSeconds(2), TimeProvider.System);
        }
        catch (TimeoutException)
        {
        }
        int code;
        try
        {
            code = run.Process.ExitCode;
        }
        catch (InvalidOperationException)
        {
            code = -1;
        }
        OnExited(p, run, code);
    }

    private void OnExited(ManagedProcess p, ProcessRun run, int code)
    {
        lock (p.Gate)
        {
            if (!ReferenceEquals(p.Run, run))
            {
                return;
            }
            run.Cts.Cancel();
            p.ExitCode = code;
            var uptime = _time.GetUtcNow() - run.StartedAt;
            p.LogFile?.Write($"--- viscript: pid {run.Pid} exited with code {code} after {uptime.TotalSeconds:F1}s");
            p.LogFile?.Flush();
            Log.Exited(_logger, p.Id, p.App.Name, run.Pid, code);
            if (p.State == ProcessState.Stopping)
            {
                TransitionTo(p, ProcessState.Exited, $"pid {run.Pid} ended with code {code} after stop request");
            }
            else
            {
                var decision = RestartPlanner.Decide(p.App, code, uptime, p.Failures, _shuttingDown);
                p.Failures = decision.Failures;
                switch (decision.Action)
                {
                    case RestartAction.Exit:
                        TransitionTo(p, ProcessState.Exited, $"pid {run.Pid} {decision.Reason}");
                        break;
                    case RestartAction.Fatal:
                        RecordDecision(p, "Fatal", $"pid {run.Pid} {decision.Reason}");
                        Log.GaveUp(_logger, p.Id, p.App.Name, decision.Reason);
                        TransitionTo(p, ProcessState.Fatal, $"pid {run.Pid} {decision.Reason}");
                        break;
                    default:
                        var cts = new CancellationTokenSource();
                        p.BackoffCts = cts;
                        // The timer exists before the event is raised: whoever reacts to Backoff (a test's fake clock) can advance it.
                        var timer = Task.Delay(decision.Delay, _time, cts.Token);
                        RecordDecision(p, "Backoff", $"pid {run.Pid} {decision.Reason}");
                        TransitionTo(p, ProcessState.Backoff, $"pid {run.Pid} {decision.Reason}");
                        _ = BackoffAsync(p, timer, cts);
                        break;
                }
            }
        }
        run.Ended.TrySetResult(code);
        run.Cts.Dispose();
        try
        {
            run.Process.Dispose();
        }
        catch (InvalidOperationException)
        {
        }
    }

    /// <summary>
    /// Writes the restart policy's decision (Backoff with its delay, or Fatal and why) where the app's output is read: its
    /// log file and <c>logs ID</c>, so that a crash loop and its end are visible there, not only in the daemon's events.
    /// </summary>
    private static void RecordDecision(ManagedProcess p, string state, string reason)
    {
        p.Logs.Append(LogStream.System, $"{state}: {reason}");
        p.LogFile?.Write($"--- viscript: {state}: {reason}");
        p.LogFile?.Flush();
    }

    private async Task BackoffAsync(ManagedProcess p, Task timer, CancellationTokenSource cts)
    {
        try
        {
            await timer;
        }
        catch (OperationCanceledException)
        {
            return;
        }
        lock (p.Gate)
        {
            if (p.State != ProcessState.Backoff || !ReferenceEquals(p.BackoffCts, cts) || _shuttingDown)
            {
                return;
            }
            p.BackoffCts = null;
            p.Restarts++;
            if (Launch(p) is not null)
            {
                return;
            }
        }
        cts.Dispose();
    }

    private async Task StartGraceAsync(ManagedProcess p, ProcessRun run, Task grace)
    {
        try
        {
            await grace;
        }
        catch (OperationCanceledException)
        {
            return;
        }
        catch (ObjectDisposedException)
        {
            return;
        }
        lock (p.Gate)
        {
            if (ReferenceEquals(p.Run, run) && p.State == ProcessState.Starting)
            {
                TransitionTo(p, ProcessState.Running, $"up for start_secs ({p.App.StartSecs.TotalSeconds:0.###}s)");
            }
        }
    }

    /// <summary>Moves a process towards Stopping; caller holds the gate. Returns the run to stop, or null if nothing runs.</summary>
    private ProcessRun? BeginStop(ManagedProcess p, bool allowInactive = false)
    {
        switch (p.State)
        {
            case ProcessState.Backoff:
                p.BackoffCts?.Cancel();
                p.BackoffCts = null;
                p.StopRequested = true;
                TransitionTo(p, ProcessState.Exited, "stop requested during backoff");
                return null;
            case ProcessState.Starting or ProcessState.Running:
                p.StopRequested = true;
                TransitionTo(p, ProcessState.Stopping, "stop requested");
                return p.Run;
            case ProcessState.Stopping:
                return p.Run;
            default:
                return allowInactive ? null : throw NotRunning(p);
        }
    }

    private Task<int?> EscalateStopAsync(ManagedProcess p, ProcessRun run, bool graceful, CancellationToken cancellationToken) =>
        _stops.StopAsync(p.Id, run, p.App.StopTimeout, graceful, cancellationToken, p.App.ShutdownWait);

    // ---- signal events, state changes, descriptions ----

    private void OnClientRegistered(object? sender, SignalClientInfo client)
    {
        string? app = null;
        if (_processes.TryGetValue(client.Id, out var p))
        {
            app = p.App.Name;
            lock (p.Gate)
            {
                if (p.Run is not null && p.State == ProcessState.Starting)
                {
                    TransitionTo(p, ProcessState.Running, "signal client registered");
                }
            }
        }
        Log.Registered(_logger, client.Id, client.RemoteEndPoint);
        RaiseEvent(new ProcessEvent(_time.GetUtcNow(), "registered", client.Id, app, null, null, null, null,
            $"signal client {client.Id} registered from {client.RemoteEndPoint}{(p is null ? " (not launched by viscript)" : "")}"));
    }

    private void OnClientDisconnected(object? sender, SignalClientInfo client)
    {
        _processes.TryGetValue(client.Id, out var p);
        RaiseEvent(new ProcessEvent(_time.GetUtcNow(), "disconnected", client.Id, p?.App.Name, null, null, null, null,
            $"signal client {client.Id} disconnected"));
    }

    /// <summary>The one place a process's state changes; caller holds <c>p.Gate</c>. Enforces the table drawn on <see cref="ProcessState"/>.</summary>
    private void TransitionTo(ManagedProcess p, ProcessState to, string reason)
    {
        var from = p.State;
        if (!ProcessStates.IsAllowed(from, to))
        {
            throw new InvalidOperationException($"Process {p.Id}: transition {from} -> {to} is not allowed ({reason}).");
        }
        p.State = to;
        p.EndedAt = to is ProcessState.Exited or ProcessState.Fatal ? _time.GetUtcNow() : null;
        if (to == ProcessState.Starting)
        {
            _metrics.Started(p.App.Name);
            if (from != ProcessState.Created)
            {
                _metrics.Restarted(p.App.Name);
            }
        }
        else if (to is ProcessState.Exited or ProcessState.Backoff or ProcessState.Fatal && from is ProcessState.Starting or ProcessState.Running or ProcessState.Stopping)
        {
            _metrics.Ended(p.App.Name, to.ToString().ToLowerInvariant());
        }
        var display = ProcessStates.Display(to, p.ExitCode);
        Log.StateChanged(_logger, p.Id, p.App.Name, from, to, reason);
        RaiseEvent(new ProcessEvent(_time.GetUtcNow(), "state", p.Id, p.App.Name, from.ToString(), display, p.Run?.Pid ?? p.LastPid,
            to is ProcessState.Exited or ProcessState.Backoff or ProcessState.Fatal ? p.ExitCode : null, reason, p.StopRequested));
    }

    private void RaiseEvent(ProcessEvent e)
    {
        try
        {
            Changed?.Invoke(this, e);
        }
        catch (Exception ex)
        {
            Log.EventHandlerFailed(_logger, ex);
        }
    }

    private ProcessInfo Describe(ManagedProcess p)
    {
        lock (p.Gate)
        {
            var registered = _signal.TryGetClient(p.Id, out var client);
            var run = p.Run;
            var active = run is not null && p.State.IsActive();
            return new ProcessInfo(
                p.Id,
                p.App.Name,
                run?.Pid ?? p.LastPid,
                p.State.ToString(),
                (int)p.State,
                ProcessStates.Display(p.State, p.ExitCode),
                p.ExitCode,
                registered,
                false,
                client?.RemoteEndPoint.ToString(),
                run?.StartedAt,
                active ? Math.Max(0, (_time.GetUtcNow() - run!.StartedAt).TotalSeconds) : null,
                p.CommandLine,
                p.Restarts,
                p.App.Daemon,
                p.StopRequested,
                EndedAt: p.EndedAt);
        }
    }

    private ProcessInfo DescribeRemote(SignalClientInfo c) => new(
        c.Id, null, c.Pid, ProcessState.Unknown.ToString(), (int)ProcessState.Unknown, ProcessStates.Display(ProcessState.Unknown, null), null, true, true,
        c.RemoteEndPoint.ToString(), c.RegisteredAt, Math.Max(0, (_time.GetUtcNow() - c.RegisteredAt).TotalSeconds),
        $"(signal client from {c.RemoteEndPoint})", 0, false, false);

    private void RequireSignalClient(ulong id)
    {
        if (_signalRequests.IsRegistered(id))
        {
            return;
        }
        if (!_processes.TryGetValue(id, out var p))
        {
            throw NoSuch(id);
        }
        lock (p.Gate)
        {
            if (!p.State.IsActive())
            {
                throw NotRunning(p);
            }
        }
        throw new ViscriptException(ErrorCode.NotSignalClient, $"Process {id} ({p.App.Name}) is not a signal client: it has not registered with the signal server.");
    }

    private static ViscriptException NoSuch(ulong id) => new(ErrorCode.NoSuchProcess, $"No process with id {id}. Try 'la'.");

    private static ViscriptException NotRunning(ManagedProcess p) =>
        new(ErrorCode.NotRunning, $"Process {p.Id} ({p.App.Name}) is not running ({ProcessStates.Display(p.State, p.ExitCode)}).");

    private static string SafeFileName(string name) => string.Concat(name.Select(c => char.IsLetterOrDigit(c) || c is '-' or '_' or '.' ? c : '_'));
}
