using System.Buffers;
using System.Collections.Concurrent;
using System.ComponentModel;
using System.Diagnostics;
using System.Globalization;
using System.Text;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Viscript.Core.Config;
using Viscript.Core.Control;
using Viscript.Signal;

namespace Viscript.Core.Supervision;

/// <summary>Options of a <see cref="Supervisor"/>.</summary>
public sealed record SupervisorOptions
{
    /// <summary>Clock for start grace, backoff and stop timeouts.</summary>
    public TimeProvider TimeProvider { get; init; } = TimeProvider.System;

    /// <summary>Write each process's output to a file in the log folder.</summary>
    public bool WriteLogFiles { get; init; } = true;

    /// <summary>Log folder; overrides the config's (default: <c>logs</c> next to the config).</summary>
    public string? LogDirectory { get; init; }

    /// <summary>Upper bound of a daemon shutdown: after it every remaining process tree is killed.</summary>
    public TimeSpan ShutdownTimeout { get; init; } = TimeSpan.FromSeconds(30);

    /// <summary>
    /// Start every app as the leader of a new session and process group (through <c>setsid</c>, Linux), so that stop signals
    /// reach every process it started and its leftovers are found when it ends. Default on; without setsid apps share viscript's group.
    /// </summary>
    public bool NewSession { get; init; } = true;

    /// <summary>
    /// Make this process a child subreaper (Linux prctl): orphans of the apps are re-parented to it and reaped here, and on
    /// daemon exit whatever is left below it is killed. Changes the whole process: only for the viscript executable, not for a host that also runs other children.
    /// </summary>
    public bool ChildSubreaper { get; init; }

    /// <summary>Default options.</summary>
    public static SupervisorOptions Default { get; } = new();
}

/// <summary>
/// Launches apps from config.yaml, tracks each sequence id through <see cref="ProcessState"/>, applies the
/// restart policy, captures output and talks to signal clients. Thread-safe; every state change raises <see cref="Changed"/>.
/// </summary>
public sealed partial class Supervisor : IAsyncDisposable
{
    /// <summary>Longest line kept; longer output is split.</summary>
    public const int MaxLineChars = 16 * 1024;

    /// <summary>How long an unfinished line (a prompt) waits for its newline before live followers are shown it.</summary>
    public static readonly TimeSpan PartialLineDelay = TimeSpan.FromMilliseconds(50);

    private readonly ConcurrentDictionary<ulong, ManagedProcess> _processes = new();
    private readonly Lock _idGate = new();
    private readonly ISignalGateway _signal;
    private readonly SupervisorOptions _options;
    private readonly TimeProvider _time;
    private readonly ILogger _logger;
    private readonly Lock _spawnGate = new();
    private readonly HashSet<int> _ownPids = [];
    private readonly CancellationTokenSource _reaperCts = new();
    private readonly bool _subreaper;
    private ulong _nextId = 1;
    private volatile bool _shuttingDown;
    private int _disposed;

    /// <summary>Creates a supervisor over <paramref name="config"/>; signal registrations arrive through <paramref name="signal"/>.</summary>
    public Supervisor(ViscriptConfig config, ISignalGateway? signal = null, SupervisorOptions? options = null, ILogger<Supervisor>? logger = null)
    {
        Config = config;
        _signal = signal ?? NullSignalGateway.Instance;
        _options = options ?? SupervisorOptions.Default;
        _time = _options.TimeProvider;
        _logger = logger ?? (ILogger)NullLogger.Instance;
        _signal.ClientRegistered += OnClientRegistered;
        _signal.ClientDisconnected += OnClientDisconnected;
        if (_options.ChildSubreaper && Native.TrySetChildSubreaper())
        {
            _subreaper = true;
            _ = ReaperLoopAsync(_reaperCts.Token);
        }
        Log.ReaperMode(_logger, _subreaper, _options.NewSession && SetsidPath is not null);
    }

    /// <summary>setsid(1) from util-linux, which starts a program as a session leader (null when missing or not Linux).</summary>
    internal static string? SetsidPath { get; } = OperatingSystem.IsLinux()
        ? new[] { "/usr/bin/setsid", "/bin/setsid" }.FirstOrDefault(IsExecutableFile)
        : null;

    /// <summary>Raised on every state change and signal registration. Handlers run under internal locks: they must not block.</summary>
    public event EventHandler<ProcessEvent>? Changed;

    /// <summary>The config apps come from.</summary>
    public ViscriptConfig Config { get; }

    /// <summary>The signal gateway.</summary>
    public ISignalGateway Signal => _signal;

    /// <summary>Folder of the per-process log files.</summary>
    public string LogDirectory => _options.LogDirectory ?? Config.LogDirectory;

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

    /// <summary>Starts an app under a new sequence id. The id is consumed even if the start fails.</summary>
    /// <exception cref="ViscriptException">UnknownApp, or StartFailed (the id then shows as Fatal).</exception>
    public ProcessInfo Start(string appName, IReadOnlyList<string>? args = null)
    {
        if (_shuttingDown)
        {
            throw new ViscriptException(ErrorCode.NotRunning, "viscript is shutting down");
        }
        var app = GetApp(appName);
        var id = AllocateId();
        var arguments = BuildArguments(app, args, id);
        var commandLine = string.Join(' ', new[] { app.Path }.Concat(arguments).Select(QuoteForDisplay));
        var p = new ManagedProcess(id, app, arguments, commandLine, new LogBuffer(Config.Settings.LogBufferLines, _time));
        if (_options.WriteLogFiles)
        {
            p.LogFile = new LogFile(Path.Combine(LogDirectory, $"{SafeFileName(app.Name)}-{id}.log"), Config.Settings.LogFileMaxBytes);
        }
        string? error;
        lock (p.Gate)
        {
            // Published under the gate: a concurrent list waits for the launch and never sees the Created state.
            _processes[id] = p;
            error = Launch(p);
        }
        if (error is not null)
        {
            throw new ViscriptException(ErrorCode.StartFailed, $"Could not start {app.Name} (ID: {id}, Command: {commandLine}): {error}");
        }
        return Describe(p);
    }

    /// <summary>Starts every app marked <c>autostart</c>, in name order. Failures are reported, not thrown.</summary>
    public IReadOnlyList<string> StartAutostartApps()
    {
        var lines = new List<string>();
        foreach (var app in Config.Apps.Values.Where(a => a.Autostart).OrderBy(a => a.Name, StringComparer.Ordinal))
        {
            try
            {
                var info = Start(app.Name);
                lines.Add($"Added external app (ID: {info.Id}, Command: {info.CommandLine})");
            }
            catch (ViscriptException ex)
            {
                lines.Add(ex.Message);
            }
        }
        return lines;
    }

    /// <summary>All processes by id, then signal clients viscript did not launch.</summary>
    public IReadOnlyList<ProcessInfo> List()
    {
        var list = _processes.Values.OrderBy(p => p.Id).Select(Describe).ToList();
        foreach (var client in _signal.Clients.Where(c => !_processes.ContainsKey(c.Id)).OrderBy(c => c.Id))
        {
            list.Add(DescribeRemote(client));
        }
        return list;
    }

    /// <summary>One process or remote signal client.</summary>
    /// <exception cref="ViscriptException">NoSuchProcess.</exception>
    public ProcessInfo Get(ulong id)
    {
        if (_processes.TryGetValue(id, out var p))
        {
            return Describe(p);
        }
        if (_signal.TryGetClient(id, out var client) && client is not null)
        {
            return DescribeRemote(client);
        }
        throw NoSuch(id);
    }

    /// <summary>The captured output of a process.</summary>
    /// <exception cref="ViscriptException">NoSuchProcess.</exception>
    public LogBuffer GetLogs(ulong id) => _processes.TryGetValue(id, out var p) ? p.Logs
        : throw new ViscriptException(ErrorCode.NoSuchProcess, _signal.TryGetClient(id, out _)
            ? $"Signal client {id} was not launched by viscript: no output captured."
            : $"No process with id {id}.");

    /// <summary>Whether a process is attachable (viscript launched it and it runs).</summary>
    public ProcessInfo GetAttachable(ulong id)
    {
        if (!_processes.TryGetValue(id, out var p))
        {
            throw _signal.TryGetClient(id, out _)
                ? new ViscriptException(ErrorCode.NotRunning, $"Signal client {id} was not launched by viscript: cannot attach.")
                : NoSuch(id);
        }
        lock (p.Gate)
        {
            if (p.Run is null || !p.State.IsActive())
            {
                throw NotRunning(p);
            }
        }
        return Describe(p);
    }

    /// <summary>Writes a line to the process's standard input.</summary>
    public async Task WriteInputAsync(ulong id, string line, CancellationToken cancellationToken = default)
    {
        if (!_processes.TryGetValue(id, out var p))
        {
            throw NoSuch(id);
        }
        ProcessRun run;
        lock (p.Gate)
        {
            run = p.Run is { } r && p.State.IsActive() ? r : throw NotRunning(p);
        }
        await run.StdinGate.WaitAsync(cancellationToken);
        try
        {
            await run.Process.StandardInput.WriteLineAsync(line.AsMemory(), cancellationToken);
            await run.Process.StandardInput.FlushAsync(cancellationToken);
        }
        catch (IOException ex)
        {
            throw new ViscriptException(ErrorCode.NotRunning, $"Process {id} does not read its input any more: {ex.Message}");
        }
        catch (ObjectDisposedException)
        {
            throw new ViscriptException(ErrorCode.NotRunning, $"Process {id} has ended.");
        }
        finally
        {
            run.StdinGate.Release();
        }
    }

    /// <summary>Signal PING round trip.</summary>
    public async Task<TimeSpan> PingAsync(ulong id, CancellationToken cancellationToken = default)
    {
        RequireSignalClient(id);
        try
        {
            return await _signal.PingAsync(id, cancellationToken);
        }
        catch (SignalException ex)
        {
            throw MapSignal(id, ex);
        }
    }

    /// <summary>OS figures from /proc for a process viscript launched, plus heap figures through TOP for signal clients.</summary>
    public async Task<ResourceReport> ResourceUsageAsync(ulong id, CancellationToken cancellationToken = default)
    {
        HeapReport? heap = null;
        ResourceUsage? remoteUsage = null;
        string? signalError = null;
        var registered = _signal.TryGetClient(id, out _);
        _processes.TryGetValue(id, out var p);
        if (p is null && !registered)
        {
            throw NoSuch(id);
        }
        int? pid = null;
        double? cpuPercent = null;
        ProcSample? sample = null;
        if (p is not null)
        {
            ProcessRun run;
            lock (p.Gate)
            {
                run = p.Run is { } r && p.State.IsActive() ? r : throw NotRunning(p);
            }
            pid = run.Pid;
            sample = ProcStats.TryRead(run.Pid);
            var now = _time.GetUtcNow();
            lock (p.Gate)
            {
                if (sample is not null)
                {
                    // CPU since the previous ru of this run, or since the run started.
                    var (baseCpu, baseTime) = p.LastSample is { } last && p.LastSampleAt >= run.StartedAt
                        ? (last.CpuTime, p.LastSampleAt)
                        : (TimeSpan.Zero, run.StartedAt);
                    var wall = (now - baseTime).TotalSeconds;
                    cpuPercent = wall > 0 ? Math.Round(100 * (sample.CpuTime - baseCpu).TotalSeconds / wall, 1) : 0;
                    p.LastSample = sample;
                    p.LastSampleAt = now;
                }
            }
        }
        if (registered)
        {
            try
            {
                var top = await _signal.TopAsync(id, cancellationToken);
                remoteUsage = top;
                heap = new HeapReport(top.HeapAlloc, top.HeapSys, top.HeapIdle, top.HeapInuse, top.StackSys, top.StackInuse, top.Rss, top.CpuTime?.TotalSeconds, top.Threads);
            }
            catch (SignalException ex)
            {
                if (p is null)
                {
                    throw MapSignal(id, ex);
                }
                signalError = ex.Message;
            }
        }
        return new ResourceReport(id, pid ?? remoteUsage?.Pid, cpuPercent, sample?.CpuTime.TotalSeconds ?? heap?.CpuTimeSeconds, sample?.RssBytes ?? (long?)heap?.Rss,
            sample?.Threads ?? heap?.Threads, sample?.OpenFiles ?? remoteUsage?.OpenFiles, heap, signalError);
    }

    /// <summary>
    /// Graceful stop: signal SHUTDOWN when the process is a signal client, then SIGTERM, then SIGKILL of the
    /// process tree, each step after the app's stop_timeout. For a signal client viscript did not launch, only SHUTDOWN is sent.
    /// </summary>
    public async Task<StopReport> StopAsync(ulong id, CancellationToken cancellationToken = default)
    {
        if (!_processes.TryGetValue(id, out var p))
        {
            if (_signal.TryGetClient(id, out var client) && client is not null)
            {
                try
                {
                    var reported = await _signal.ShutdownAsync(id, cancellationToken);
                    return new StopReport(id, null, reported, DescribeRemote(client));
                }
                catch (SignalException ex)
                {
                    throw MapSignal(id, ex);
                }
            }
            throw NoSuch(id);
        }
        ProcessRun? run;
        lock (p.Gate)
        {
            run = BeginStop(p);
        }
        if (run is null)
        {
            return new StopReport(id, p.LastPid, null, Describe(p));
        }
        var reportedPid = await EscalateStopAsync(p, run, graceful: true, cancellationToken);
        return new StopReport(id, run.Pid, reportedPid, Describe(p));
    }

    /// <summary>Kills the process tree at once (SIGKILL).</summary>
    public async Task<StopReport> KillAsync(ulong id, CancellationToken cancellationToken = default)
    {
        if (!_processes.TryGetValue(id, out var p))
        {
            throw _signal.TryGetClient(id, out _)
                ? new ViscriptException(ErrorCode.NotRunning, $"Signal client {id} was not launched by viscript: use shutdown.")
                : NoSuch(id);
        }
        ProcessRun? run;
        lock (p.Gate)
        {
            run = BeginStop(p);
        }
        if (run is null)
        {
            return new StopReport(id, p.LastPid, null, Describe(p));
        }
        await EscalateStopAsync(p, run, graceful: false, cancellationToken);
        return new StopReport(id, run.Pid, null, Describe(p));
    }

    /// <summary>Stops the process if it runs, then starts it again under the same id (retry count reset).</summary>
    public async Task<StopReport> RestartAsync(ulong id, CancellationToken cancellationToken = default)
    {
        if (_shuttingDown)
        {
            throw new ViscriptException(ErrorCode.NotRunning, "viscript is shutting down");
        }
        if (!_processes.TryGetValue(id, out var p))
        {
            throw _signal.TryGetClient(id, out _)
                ? new ViscriptException(ErrorCode.NotRunning, $"Signal client {id} was not launched by viscript: cannot restart it.")
                : NoSuch(id);
        }
        int? oldPid = null;
        ProcessRun? run;
        lock (p.Gate)
        {
            run = BeginStop(p, allowInactive: true);
        }
        if (run is not null)
        {
            oldPid = run.Pid;
            await EscalateStopAsync(p, run, graceful: true, cancellationToken);
        }
        string? error;
        lock (p.Gate)
        {
            if (p.State.IsActive())
            {
                // Someone else restarted it meanwhile.
                return new StopReport(id, oldPid, null, Describe(p));
            }
            p.Failures = 0;
            p.Restarts++;
            error = Launch(p);
        }
        if (error is not null)
        {
            throw new ViscriptException(ErrorCode.StartFailed, $"Could not restart {p.App.Name} (ID: {id}): {error}");
        }
        return new StopReport(id, oldPid, null, Describe(p));
    }

    /// <summary>Stops every process (graceful, per app policy), killing what remains after <see cref="SupervisorOptions.ShutdownTimeout"/>. No new start is accepted afterwards.</summary>
    public async Task StopAllAsync(CancellationToken cancellationToken = default)
    {
        _shuttingDown = true;
        var stops = new List<Task>();
        foreach (var p in _processes.Values)
        {
            ProcessRun? run;
            lock (p.Gate)
            {
                run = BeginStop(p, allowInactive: true);
            }
            if (run is not null)
            {
                stops.Add(EscalateStopAsync(p, run, graceful: true, cancellationToken));
            }
        }
        Log.StoppingAll(_logger, stops.Count);
        try
        {
            await Task.WhenAll(stops).WaitAsync(_options.ShutdownTimeout, _time, cancellationToken);
        }
        catch (TimeoutException)
        {
            Log.ShutdownTimedOut(_logger, _options.ShutdownTimeout);
        }
        catch (OperationCanceledException)
        {
        }
        // Whatever is still alive (stuck, or cancelled) is killed with its children: no orphan survives the daemon.
        foreach (var p in _processes.Values)
        {
            ProcessRun? run;
            lock (p.Gate)
            {
                run = p.Run;
            }
            if (run is not null && !run.Ended.Task.IsCompleted)
            {
                KillTree(run);
                try
                {
                    await run.Ended.Task.WaitAsync(TimeSpan.FromSeconds(10), TimeProvider.System, CancellationToken.None);
                }
                catch (TimeoutException)
                {
                    Log.KillTimedOut(_logger, p.Id, run.Pid);
                }
            }
            p.LogFile?.Dispose();
        }
        if (_subreaper)
        {
            await KillStragglersAsync();
        }
    }

    /// <summary>Subreaper only: after every app stopped, kills and reaps whatever is still below viscript (a process that left its app's session and tree).</summary>
    private async Task KillStragglersAsync()
    {
        var rest = ProcessTree.Descendants(Environment.ProcessId);
        lock (_spawnGate)
        {
            rest.RemoveAll(r => _ownPids.Contains(r.Pid));
        }
        if (rest.Count == 0)
        {
            ReapOrphans();
            return;
        }
        var killed = ProcessTree.KillSurvivors(rest);
        Log.StragglersKilled(_logger, killed);
        await WaitGoneAsync(rest, TimeSpan.FromSeconds(5));
    }

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
        await _reaperCts.CancelAsync();
        _reaperCts.Dispose();
    }

    // ---- internals ----

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
        var setsid = _options.NewSession ? SetsidPath : null;
        string? executable = app.Path;
        if (setsid is not null && (executable = ResolveExecutable(app.Path)) is null)
        {
            // setsid would only report a missing program through its exit code: check first, so that the start fails at once.
            return SpawnFailed(p, $"An error occurred trying to start process '{app.Path}': No such executable file (looked in PATH for a bare name).");
        }
        var psi = new ProcessStartInfo(setsid ?? app.Path)
        {
            UseShellExecute = false,
            RedirectStandardInput = true,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            WorkingDirectory = app.WorkingDirectory ?? Config.BaseDirectory,
        };
        if (setsid is not null)
        {
            // setsid execs the program in place (the child is not a group leader, so it does not fork): the pid stays the app's.
            psi.ArgumentList.Add("--");
            psi.ArgumentList.Add(executable!);
        }
        foreach (var arg in p.Arguments)
        {
            psi.ArgumentList.Add(arg);
        }
        foreach (var (k, v) in app.Environment)
        {
            psi.Environment[k] = v;
        }
        if (_signal.ClientAddress is { } address)
        {
            psi.Environment["SIGNAL_CLIENT"] = "true";
            psi.Environment["SIGNAL_CLIENT_ID"] = p.Id.ToString(CultureInfo.InvariantCulture);
            psi.Environment["SIGNAL_SERVER_ADDRESS"] = address;
            if (_signal.ClientToken is { } token)
            {
                psi.Environment["SIGNAL_TOKEN"] = token;
            }
        }
        var process = new Process { StartInfo = psi, EnableRaisingEvents = true };
        try
        {
            // Under the spawn gate: the orphan reaper never sees a child of ours before its pid is recorded.
            lock (_spawnGate)
            {
                process.Start();
                _ownPids.Add(process.Id);
            }
        }
        catch (Exception ex) when (ex is Win32Exception or InvalidOperationException or IOException or UnauthorizedAccessException)
        {
            process.Dispose();
            return SpawnFailed(p, ex.Message);
        }
        var run = new ProcessRun(process, _time.GetUtcNow()) { NewSession = setsid is not null };
        p.Run = run;
        p.LastPid = run.Pid;
        p.ExitCode = null;
        p.LogFile?.Write($"--- viscript: started pid {run.Pid} at {run.StartedAt:O}: {p.CommandLine}");
        Log.Spawned(_logger, p.Id, app.Name, run.Pid);
        run.Pumps = Task.WhenAll(
            Task.Run(() => PumpAsync(p, process.StandardOutput.BaseStream, LogStream.Stdout)),
            Task.Run(() => PumpAsync(p, process.StandardError.BaseStream, LogStream.Stderr)));
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

    /// <summary>The file a start would execute: a path with a slash as is, a bare name through PATH; null if it is not an executable file.</summary>
    internal static string? ResolveExecutable(string path)
    {
        if (path.Contains('/', StringComparison.Ordinal))
        {
            var full = Path.GetFullPath(path);
            return IsExecutableFile(full) ? full : null;
        }
        foreach (var dir in (Environment.GetEnvironmentVariable("PATH") ?? "/usr/local/bin:/usr/bin:/bin").Split(':', StringSplitOptions.RemoveEmptyEntries))
        {
            var candidate = Path.Combine(Path.GetFullPath(dir), path);
            if (IsExecutableFile(candidate))
            {
                return candidate;
            }
        }
        return null;
    }

    private static bool IsExecutableFile(string path)
    {
        try
        {
            const UnixFileMode anyExecute = UnixFileMode.UserExecute | UnixFileMode.GroupExecute | UnixFileMode.OtherExecute;
            return File.Exists(path) && (OperatingSystem.IsWindows() || (File.GetUnixFileMode(path) & anyExecute) != 0);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException or ArgumentException)
        {
            return false;
        }
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
        lock (_spawnGate)
        {
            // The runtime has reaped it: from now on the pid is not ours.
            _ownPids.Remove(run.Pid);
        }
        // The process is gone; what it started (its session and group, and the tree seen when a stop began) goes with it.
        await StopLeftoversAsync(p, run);
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
                var policy = p.App.Restart;
                var restart = !_shuttingDown && (policy == RestartPolicy.Always || (policy == RestartPolicy.OnFailure && code != 0));
                if (!restart)
                {
                    TransitionTo(p, ProcessState.Exited, $"pid {run.Pid} exited with code {code}");
                }
                else
                {
                    // Only quick failures count towards max_retries; a run that lasted start_secs resets the count.
                    if (uptime >= p.App.StartSecs)
                    {
                        p.Failures = 0;
                    }
                    p.Failures++;
                    if (p.Failures > p.App.MaxRetries)
                    {
                        TransitionTo(p, ProcessState.Fatal, $"pid {run.Pid} exited with code {code}; gave up after {p.Failures} quick failures in a row (max_retries {p.App.MaxRetries})");
                    }
                    else
                    {
                        var delay = BackoffDelay(p.App, p.Failures);
                        var cts = new CancellationTokenSource();
                        p.BackoffCts = cts;
                        // The timer exists before the event is raised: whoever reacts to Backoff (a test's fake clock) can advance it.
                        var timer = Task.Delay(delay, _time, cts.Token);
                        TransitionTo(p, ProcessState.Backoff, $"pid {run.Pid} exited with code {code}; restart {p.Failures}/{p.App.MaxRetries} in {delay.TotalSeconds:0.###}s");
                        _ = BackoffAsync(p, timer, cts);
                    }
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

    /// <summary>Backoff before restart n (1-based): backoff * 2^(n-1), capped at backoff_max.</summary>
    public static TimeSpan BackoffDelay(AppOptions app, int failure)
    {
        var factor = Math.Pow(2, Math.Clamp(failure - 1, 0, 30));
        var ticks = Math.Min(app.Backoff.Ticks * factor, app.BackoffMax.Ticks);
        return TimeSpan.FromTicks((long)ticks);
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

    private async Task<int?> EscalateStopAsync(ManagedProcess p, ProcessRun run, bool graceful, CancellationToken cancellationToken)
    {
        int? reportedPid = null;
        var timeout = p.App.StopTimeout;
        // Children the process started: whatever of them outlives it is stopped with its session, so that no orphan survives a stop.
        var tree = ProcessTree.Descendants(run.Pid);
        run.StopSnapshot = tree;
        try
        {
            reportedPid = await StopRunAsync(p, run, graceful, timeout, cancellationToken);
        }
        finally
        {
            var killed = ProcessTree.KillSurvivors(tree);
            if (killed > 0)
            {
                Log.OrphansKilled(_logger, p.Id, killed);
            }
        }
        return reportedPid;
    }

    private async Task<int?> StopRunAsync(ManagedProcess p, ProcessRun run, bool graceful, TimeSpan timeout, CancellationToken cancellationToken)
    {
        int? reportedPid = null;
        if (graceful)
        {
            if (_signal.TryGetClient(p.Id, out _))
            {
                var acknowledged = false;
                try
                {
                    reportedPid = await _signal.ShutdownAsync(p.Id, cancellationToken);
                    acknowledged = true;
                    Log.StopStep(_logger, p.Id, run.Pid, "signal SHUTDOWN acknowledged");
                }
                catch (SignalException ex)
                {
                    Log.StopStepFailed(_logger, p.Id, run.Pid, ex.Message);
                }
                // Only a client that acknowledged gets stop_timeout to wind down; one that did not answer goes straight to SIGTERM.
                if (acknowledged && await WaitEndedAsync(run, timeout, cancellationToken))
                {
                    return reportedPid;
                }
            }
            if (run.Ended.Task.IsCompleted)
            {
                return reportedPid;
            }
            SignalRun(run, Native.SigTerm);
            Log.StopStep(_logger, p.Id, run.Pid, run.NewSession ? "SIGTERM sent to its process group" : "SIGTERM sent");
            if (await WaitEndedAsync(run, timeout, cancellationToken))
            {
                return reportedPid;
            }
        }
        Log.StopStep(_logger, p.Id, run.Pid, "killing process tree");
        KillTree(run);
        // SIGKILL cannot be ignored; the bound only guards against a process stuck in the kernel.
        await WaitEndedAsync(run, TimeSpan.FromSeconds(10), cancellationToken, TimeProvider.System);
        return reportedPid;
    }

    private async Task<bool> WaitEndedAsync(ProcessRun run, TimeSpan timeout, CancellationToken cancellationToken, TimeProvider? time = null)
    {
        try
        {
            await run.Ended.Task.WaitAsync(timeout, time ?? _time, cancellationToken);
            return true;
        }
        catch (TimeoutException)
        {
            return false;
        }
    }

    /// <summary>Signals the whole process group of a run started as a group leader, else the process alone.</summary>
    private static void SignalRun(ProcessRun run, int signal)
    {
        if (!run.NewSession || !Native.TrySignalGroup(run.Pid, signal))
        {
            Native.TrySignal(run.Pid, signal);
        }
    }

    /// <summary>
    /// After a run's process ended: SIGTERM what is left of its session/group and of the tree seen when a stop began, wait up
    /// to stop_timeout (real time), then SIGKILL; in subreaper mode the re-parented orphans are reaped here, so none stays a zombie.
    /// </summary>
    private async Task StopLeftoversAsync(ManagedProcess p, ProcessRun run)
    {
        var leftovers = run.NewSession ? ProcessTree.GroupMembers(run.Pid) : [];
        if (run.StopSnapshot is { } snapshot)
        {
            leftovers.AddRange(snapshot.Where(s => !leftovers.Contains(s) && ProcessTree.IsAlive(s.Pid, s.StartTime)));
        }
        if (leftovers.Count == 0)
        {
            ReapOrphans();
            return;
        }
        Log.LeftoversStopping(_logger, p.Id, run.Pid, leftovers.Count);
        if (run.NewSession)
        {
            Native.TrySignalGroup(run.Pid, Native.SigTerm);
        }
        ProcessTree.SignalSurvivors(leftovers, Native.SigTerm);
        if (await WaitGoneAsync(leftovers, p.App.StopTimeout))
        {
            return;
        }
        if (run.NewSession)
        {
            Native.TrySignalGroup(run.Pid, Native.SigKill);
        }
        var killed = ProcessTree.KillSurvivors(leftovers);
        Log.OrphansKilled(_logger, p.Id, killed);
        if (!await WaitGoneAsync(leftovers, TimeSpan.FromSeconds(5)))
        {
            Log.LeftoversSurvived(_logger, p.Id, run.Pid, leftovers.Count(l => ProcessTree.IsAlive(l.Pid, l.StartTime)));
        }
    }

    /// <summary>Waits (real time, bounded) until none of <paramref name="processes"/> runs, reaping orphans meanwhile. /proc offers no wait for non-children.</summary>
    private async Task<bool> WaitGoneAsync(List<(int Pid, long StartTime)> processes, TimeSpan timeout)
    {
        var deadline = TimeProvider.System.GetTimestamp() + (long)(timeout.TotalSeconds * TimeProvider.System.TimestampFrequency);
        while (true)
        {
            ReapOrphans();
            // In subreaper mode a dead orphan counts as gone once reaped (no zombie left); otherwise once it stopped running.
            if (processes.All(x => _subreaper ? !ProcessTree.Exists(x.Pid, x.StartTime) || !IsOurChild(x.Pid) && !ProcessTree.IsAlive(x.Pid, x.StartTime) : !ProcessTree.IsAlive(x.Pid, x.StartTime)))
            {
                return true;
            }
            if (TimeProvider.System.GetTimestamp() >= deadline)
            {
                return false;
            }
            await Task.Delay(20, CancellationToken.None);
        }
    }

    private static bool IsOurChild(int pid) => ProcessTree.ReadStat(pid) is { } e && e.Ppid == Environment.ProcessId;

    /// <summary>Subreaper only: reaps zombie children that are not runs of ours (the runtime reaps those). Returns how many.</summary>
    private int ReapOrphans()
    {
        if (!_subreaper)
        {
            return 0;
        }
        var reaped = 0;
        lock (_spawnGate)
        {
            if (!Native.HasZombieChild())
            {
                return 0;
            }
            foreach (var child in ProcessTree.ChildrenOf(Environment.ProcessId))
            {
                if (child.IsDead && !_ownPids.Contains(child.Pid) && Native.TryReap(child.Pid))
                {
                    Log.OrphanReaped(_logger, child.Pid);
                    reaped++;
                }
            }
        }
        return reaped;
    }

    /// <summary>Subreaper only: reaps orphans that died on their own (a daemonized grandchild that exited), once a second.</summary>
    private async Task ReaperLoopAsync(CancellationToken cancellationToken)
    {
        using var timer = new PeriodicTimer(TimeSpan.FromSeconds(1), TimeProvider.System);
        try
        {
            while (await timer.WaitForNextTickAsync(cancellationToken))
            {
                ReapOrphans();
            }
        }
        catch (OperationCanceledException)
        {
        }
    }

    private static void KillTree(ProcessRun run)
    {
        if (run.NewSession)
        {
            Native.TrySignalGroup(run.Pid, Native.SigKill);
        }
        try
        {
            run.Process.Kill(entireProcessTree: true);
        }
        catch (Exception ex) when (ex is InvalidOperationException or Win32Exception or ObjectDisposedException or NotSupportedException)
        {
            // Already exited (and possibly disposed by the exit handler).
        }
    }

    private async Task PumpAsync(ManagedProcess p, Stream stream, LogStream kind)
    {
        var buffer = ArrayPool<byte>.Shared.Rent(16 * 1024);
        var chars = ArrayPool<char>.Shared.Rent(Encoding.UTF8.GetMaxCharCount(16 * 1024));
        var decoder = Encoding.UTF8.GetDecoder();
        var pending = new StringBuilder();
        try
        {
            while (true)
            {
                int n;
                try
                {
                    var read = stream.ReadAsync(buffer.AsMemory(0, 16 * 1024));
                    if (pending.Length > 0 && !read.IsCompleted)
                    {
                        // An unfinished line and nothing more for a moment (a prompt): show it to live followers now.
                        // The ring buffer and the log file keep whole lines only.
                        var readTask = read.AsTask();
                        using var idleCts = new CancellationTokenSource();
                        var idle = Task.Delay(PartialLineDelay, TimeProvider.System, idleCts.Token);
                        if (await Task.WhenAny(readTask, idle) == idle)
                        {
                            p.Logs.PublishPartial(kind, pending.ToString());
                        }
                        await idleCts.CancelAsync();
                        n = await readTask;
                    }
                    else
                    {
                        n = await read;
                    }
                }
                catch (IOException)
                {
                    break;
                }
                catch (ObjectDisposedException)
                {
                    break;
                }
                if (n == 0)
                {
                    break;
                }
                var count = decoder.GetChars(buffer, 0, n, chars, 0, flush: false);
                var span = chars.AsSpan(0, count);
                while (span.Length > 0)
                {
                    var nl = span.IndexOf('\n');
                    var piece = nl < 0 ? span : span[..nl];
                    var room = MaxLineChars - pending.Length;
                    if (piece.Length >= room)
                    {
                        pending.Append(piece[..room]);
                        Emit(p, kind, pending);
                        span = span[room..];
                        continue;
                    }
                    pending.Append(piece);
                    if (nl < 0)
                    {
                        break;
                    }
                    Emit(p, kind, pending);
                    span = span[(nl + 1)..];
                }
                p.LogFile?.Flush();
            }
            if (pending.Length > 0)
            {
                Emit(p, kind, pending);
                p.LogFile?.Flush();
            }
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
            ArrayPool<char>.Shared.Return(chars);
        }
    }

    private static void Emit(ManagedProcess p, LogStream kind, StringBuilder pending)
    {
        if (pending.Length > 0 && pending[^1] == '\r')
        {
            pending.Length--;
        }
        var text = pending.ToString();
        pending.Clear();
        p.Logs.Append(kind, text);
        p.LogFile?.Write(kind == LogStream.Stderr ? "[stderr] " + text : text);
    }

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

    private void TransitionTo(ManagedProcess p, ProcessState to, string reason)
    {
        var from = p.State;
        if (!ProcessStates.IsAllowed(from, to))
        {
            throw new InvalidOperationException($"Process {p.Id}: transition {from} -> {to} is not allowed ({reason}).");
        }
        p.State = to;
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
                p.StopRequested);
        }
    }

    private ProcessInfo DescribeRemote(SignalClientInfo c) => new(
        c.Id, null, c.Pid, ProcessState.Unknown.ToString(), (int)ProcessState.Unknown, ProcessStates.Display(ProcessState.Unknown, null), null, true, true,
        c.RemoteEndPoint.ToString(), c.RegisteredAt, Math.Max(0, (_time.GetUtcNow() - c.RegisteredAt).TotalSeconds),
        $"(signal client from {c.RemoteEndPoint})", 0, false, false);

    private void RequireSignalClient(ulong id)
    {
        if (_signal.TryGetClient(id, out _))
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

    private static ViscriptException MapSignal(ulong id, SignalException ex) => ex.Kind switch
    {
        SignalErrorKind.NotRegistered => new ViscriptException(ErrorCode.NotSignalClient, $"Process {id} is not a signal client: {ex.Message}", ex),
        SignalErrorKind.Timeout => new ViscriptException(ErrorCode.SignalTimeout, $"Signal client {id} did not answer in time: {ex.Message}", ex),
        _ => new ViscriptException(ErrorCode.SignalFailed, $"Signal call to {id} failed: {ex.Message}", ex),
    };

    private static ViscriptException NoSuch(ulong id) => new(ErrorCode.NoSuchProcess, $"No process with id {id}. Try 'la'.");

    private static ViscriptException NotRunning(ManagedProcess p) =>
        new(ErrorCode.NotRunning, $"Process {p.Id} ({p.App.Name}) is not running ({ProcessStates.Display(p.State, p.ExitCode)}).");

    private static string SafeFileName(string name) => string.Concat(name.Select(c => char.IsLetterOrDigit(c) || c is '-' or '_' or '.' ? c : '_'));

    /// <summary>Quotes an argument for display when it contains spaces or quotes (the command parser reads it back).</summary>
    public static string QuoteForDisplay(string arg) =>
        arg.Length > 0 && !arg.Any(c => char.IsWhiteSpace(c) || c is '"' or '\'' or '\\') ? arg : "'" + arg.Replace("'", "'\\''", StringComparison.Ordinal) + "'";
}
