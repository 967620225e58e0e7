using System.Diagnostics;
using System.Text.Json;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Viscript.Core.Control;

namespace Viscript.Core.Topology;

/// <summary>Where the GUI's topology view comes from.</summary>
public interface ITopologySource
{
    /// <summary>The latest report (never blocks; <see cref="TopologyView.NotConfigured"/> when there is no source).</summary>
    TopologyView Current { get; }
}

/// <summary>No topology source is configured.</summary>
public sealed class NoTopologySource : ITopologySource
{
    /// <summary>The one instance.</summary>
    public static NoTopologySource Instance { get; } = new();

    /// <inheritdoc/>
    public TopologyView Current => TopologyView.NotConfigured;
}

/// <summary>Settings of <see cref="CommandTopologySource"/>.</summary>
public sealed record TopologyCommandOptions
{
    /// <summary>The command and its arguments (argv; no shell), e.g. <c>skywire cli ... topology --json --watch</c>.</summary>
    public required IReadOnlyList<string> Command { get; init; }

    /// <summary>What to call the source when it has not said (shown as the manager in the GUI).</summary>
    public string? Label { get; init; }

    /// <summary>First restart delay after the command ended; doubled per consecutive failure up to <see cref="MaxBackoff"/>, with ±20 % jitter.</summary>
    public TimeSpan InitialBackoff { get; init; } = TimeSpan.FromSeconds(1);

    /// <summary>Longest restart delay.</summary>
    public TimeSpan MaxBackoff { get; init; } = TimeSpan.FromSeconds(30);

    /// <summary>Longest output line accepted (a larger one is an error and restarts the command).</summary>
    public int MaxLineChars { get; init; } = 8 << 20;

    /// <summary>Clock for the backoff.</summary>
    public TimeProvider TimeProvider { get; init; } = TimeProvider.System;

    /// <summary>Logging.</summary>
    public ILoggerFactory LoggerFactory { get; init; } = NullLoggerFactory.Instance;
}

/// <summary>
/// Runs a topology command as one long-lived child that prints one <see cref="TopologyDocument"/> per line (the
/// contract of <c>skywire cli topology --json --watch</c>, docs/gui.md) and keeps the latest. One connection to the
/// manager for the life of the child, no polling from here; when the child exits it is restarted with backoff.
/// <code>
///   Created ──Start──► Running ──child exits──► Backoff ──delay──► Running
///                        │                        │
///                        └───────DisposeAsync─────┴──► Stopped
/// </code>
/// </summary>
public sealed partial class CommandTopologySource : ITopologySource, IAsyncDisposable
{
    private enum State
    {
        Created = 0,
        Running = 10,
        Backoff = 20,
        Stopped = 100,
    }

    private readonly TopologyCommandOptions _options;
    private readonly ILogger _logger;
    private readonly CancellationTokenSource _stopping = new();
    private readonly Lock _gate = new();
    private volatile TopologyView _current;
    private State _state;
    private Process? _child;
    private Task _loop = Task.CompletedTask;
    private int _disposed;

    /// <summary>Creates the source; <see cref="Start"/> runs the command.</summary>
    public CommandTopologySource(TopologyCommandOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        if (options.Command.Count == 0 || string.IsNullOrWhiteSpace(options.Command[0]))
        {
            throw new ArgumentException("The topology command is empty.", nameof(options));
        }
        _options = options;
        _logger = options.LoggerFactory.CreateLogger<CommandTopologySource>();
        _current = new TopologyView(true, options.Label, "waiting for the topology command's first report", null, [], [], []);
    }

    /// <inheritdoc/>
    public TopologyView Current => _current;

    /// <summary>Restarts so far (for tests and diagnostics).</summary>
    public int Restarts { get; private set; }

    /// <summary>Starts the command.</summary>
    public void Start()
    {
        TransitionTo(State.Running);
        _loop = Task.Run(() => RunAsync(_stopping.Token));
    }

    private void TransitionTo(State next)
    {
        lock (_gate)
        {
            var allowed = (_state, next) switch
            {
                (State.Created, State.Running) => true,
                (State.Running, State.Backoff) => true,
                (State.Backoff, State.Running) => true,
                (_, State.Stopped) => true,
                _ => false,
            };
            if (!allowed)
            {
                throw new InvalidOperationException($"topology source: {_state} -> {next} is not a valid transition");
            }
            _state = next;
        }
    }

    private async Task RunAsync(CancellationToken cancellationToken)
    {
        var failures = 0;
        while (!cancellationToken.IsCancellationRequested)
        {
            var reported = await RunOnceAsync(cancellationToken);
            if (cancellationToken.IsCancellationRequested)
            {
                return;
            }
            failures = reported ? 1 : failures + 1;
            var delay = Backoff(failures);
            Restarts++;
            Log.Restarting(_logger, delay.TotalSeconds, _current.Error ?? "exited");
            TransitionTo(State.Backoff);
            try
            {
                await Task.Delay(delay, _options.TimeProvider, cancellationToken);
            }
            catch (OperationCanceledException)
            {
                return;
            }
            TransitionTo(State.Running);
        }
    }

    private TimeSpan Backoff(int failures)
    {
        var baseDelay = _options.InitialBackoff.TotalMilliseconds * Math.Pow(2, Math.Min(failures - 1, 16));
        var capped = Math.Min(baseDelay, _options.MaxBackoff.TotalMilliseconds);
        // Jitter: several viscripts watching one manager do not reconnect in step.
        return TimeSpan.FromMilliseconds(capped * (0.8 + (0.4 * Random.Shared.NextDouble())));
    }

    /// <summary>Runs the command once; true when it delivered at least one report.</summary>
    private async Task<bool> RunOnceAsync(CancellationToken cancellationToken)
    {
        var info = new ProcessStartInfo
        {
            FileName = _options.Command[0],
            RedirectStandardInput = true,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (var a in _options.Command.Skip(1))
        {
            info.ArgumentList.Add(a);
        }
        Process process;
        try
        {
            process = Process.Start(info) ?? throw new InvalidOperationException("no process");
        }
        catch (Exception ex) when (ex is System.ComponentModel.Win32Exception or InvalidOperationException)
        {
            Fail($"cannot start the topology command {_options.Command[0]}: {ex.Message}");
            return false;
        }
        _child = process;
        using (process)
        {
            process.StandardInput.Close();
            string? lastStderr = null;
            var stderr = Task.Run(async () =>
            {
                while (await process.StandardError.ReadLineAsync(CancellationToken.None) is { } line)
                {
                    if (line.Length > 0)
                    {
                        lastStderr = line.Length > 500 ? line[..500] : line;
                    }
                }
            }, CancellationToken.None);
            var reported = false;
            var errorLine = false;
            try
            {
                while (await process.StandardOutput.ReadLineAsync(cancellationToken) is { } line)
                {
                    if (line.Length > _options.MaxLineChars)
                    {
                        Fail($"the topology command printed a line of {line.Length} characters (limit {_options.MaxLineChars})");
                        break;
                    }
                    if (line.Length == 0)
                    {
                        continue;
                    }
                    var accepted = Accept(line);
                    reported |= accepted == true;
                    errorLine = accepted == false;
                }
            }
            catch (OperationCanceledException)
            {
            }
            catch (IOException ex)
            {
                Fail("lost the topology command's output: " + ex.Message);
            }
            Kill(process);
            await process.WaitForExitAsync(CancellationToken.None);
            await stderr;
            if (!cancellationToken.IsCancellationRequested && !errorLine)
            {
                Fail($"the topology command exited with code {process.ExitCode}" + (lastStderr is null ? "" : ": " + lastStderr));
            }
            _child = null;
            return reported;
        }
    }

    /// <summary>Takes one output line: true = a snapshot, false = an error report, null = not a document.</summary>
    private bool? Accept(string line)
    {
        TopologyDocument? doc;
        try
        {
            doc = JsonSerializer.Deserialize(line, ControlJsonContext.Default.TopologyDocument);
        }
        catch (JsonException ex)
        {
            Fail("the topology command printed something that is not a topology document: " + ex.Message);
            return null;
        }
        if (doc is null)
        {
            return null;
        }
        var now = _options.TimeProvider.GetUtcNow();
        if (doc.Error is { Length: > 0 } error)
        {
            _current = new TopologyView(true, doc.Manager ?? _options.Label, error, now, [], [], []);
            return false;
        }
        _current = new TopologyView(true, doc.Manager ?? _options.Label, null, now, doc.Nodes ?? [], doc.Links ?? [], doc.Routes ?? []);
        return true;
    }

    private void Fail(string error)
    {
        _current = new TopologyView(true, _current.Manager ?? _options.Label, error, _options.TimeProvider.GetUtcNow(), [], [], []);
        Log.CommandFailed(_logger, error);
    }

    private static void Kill(Process process)
    {
        try
        {
            if (!process.HasExited)
            {
                process.Kill(entireProcessTree: true);
            }
        }
        catch (InvalidOperationException)
        {
            // Exited meanwhile.
        }
    }

    /// <summary>Stops the command and the restart loop.</summary>
    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            return;
        }
        await _stopping.CancelAsync();
        if (_child is { } child)
        {
            Kill(child);
        }
        await _loop;
        TransitionTo(State.Stopped);
        _stopping.Dispose();
    }

    // Event ids 4200-4219: topology source.
    private static partial class Log
    {
        [LoggerMessage(EventId = 4200, Level = LogLevel.Warning, Message = "topology command: {Error}")]
        public static partial void CommandFailed(ILogger logger, string error);

        [LoggerMessage(EventId = 4201, Level = LogLevel.Information, Message = "topology command restarts in {Seconds:0.0} s ({Reason})")]
        public static partial void Restarting(ILogger logger, double seconds, string reason);
    }
}
