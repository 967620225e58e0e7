using System.Diagnostics;
using System.Text.RegularExpressions;
using Viscript.Core.Control;
using Viscript.Core.Hosting;

namespace Skywire.Demo;

/// <summary>
/// A headless viscript daemon started as a child process, and a small client of its control API
/// (docs/viscript.md "Control API"): start an app by name, read its captured output, stop the daemon.
/// </summary>
internal sealed partial class ViscriptChild : IAsyncDisposable
{
    private static readonly string[] SetsidPaths = ["/usr/bin/setsid", "/bin/setsid"];

    private readonly Process _process;
    private readonly ViscriptClient _client;
    private readonly StreamWriter _log;
    private readonly Task _stdoutPump;
    private readonly Task _stderrPump;
    private int _disposed;

    private ViscriptChild(Process process, Uri control, string token, StreamWriter log, Task stdoutPump, Task stderrPump)
    {
        _process = process;
        _log = log;
        _stdoutPump = stdoutPump;
        _stderrPump = stderrPump;
        ControlUrl = control;
        _client = ViscriptClient.Create(control, token, requestTimeout: TimeSpan.FromSeconds(60));
    }

    /// <summary>The control API base address (<c>http://127.0.0.1:PORT</c>).</summary>
    public Uri ControlUrl { get; }

    /// <summary>The daemon's pid.</summary>
    public int Pid => _process.Id;

    /// <summary>Completes when the daemon process has exited.</summary>
    public Task ExitedAsync() => _process.WaitForExitAsync();

    /// <summary>The GUI's sign-in link (the token rides in the fragment, as <c>viscript cli --gui-url</c> prints it).</summary>
    public required Uri GuiSignInUrl { get; init; }

    /// <summary>Where the daemon's own output goes.</summary>
    public required string LogFile { get; init; }

    /// <summary>
    /// Finds viscript (docs/operations.md "How the demo finds viscript"): <paramref name="explicitPath"/>, else
    /// <c>SKYWIRE_VISCRIPT</c>, else <c>viscript.dll</c> beside skywire.dll (a shared publish folder), else
    /// <c>src/Viscript/bin/&lt;config&gt;/net10.0/viscript.dll</c> in the repository around this executable (where
    /// building skywire builds it), else <c>viscript</c> on PATH.
    /// </summary>
    /// <returns>The file to run (a .dll runs through the dotnet host), or null with the places tried.</returns>
    public static string? Locate(string? explicitPath, out IReadOnlyList<string> tried) =>
        SiblingExecutable.Locate("viscript", "Viscript", explicitPath, "SKYWIRE_VISCRIPT", out tried);

    /// <summary>
    /// Starts <c>viscript --no-repl</c> on loopback port 0 with <paramref name="config"/> and <paramref name="mode"/>
    /// (<c>--headless</c>, or <c>--gui</c> and a topology command) and waits for its start line. Its stdout and stderr go
    /// to <paramref name="logFile"/>.
    /// </summary>
    /// <exception cref="DemoStepException">It did not start or printed no start line in time.</exception>
    public static async Task<ViscriptChild> StartAsync(string viscript, IReadOnlyList<string> mode, string config, string logDir, string logFile, TimeSpan timeout, CancellationToken cancellationToken)
    {
        var info = new ProcessStartInfo
        {
            RedirectStandardInput = true,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        // setsid: viscript and its apps leave the terminal's process group, so Ctrl+C reaches only the demo, which
        // asks viscript to stop its apps gracefully (signal SHUTDOWN, then SIGTERM) instead of every process dying of
        // SIGINT at once. The child is not a group leader, so setsid execs in place: the pid stays viscript's.
        var setsid = SetsidPaths.FirstOrDefault(File.Exists);
        var command = SiblingExecutable.CommandFor(viscript);
        info.FileName = setsid ?? command[0];
        foreach (var a in setsid is null ? command.Skip(1) : command)
        {
            info.ArgumentList.Add(a);
        }

        foreach (var a in (IEnumerable<string>)[.. mode, "--no-repl", "--config", config, "--logs", logDir, "--signal", "127.0.0.1:0", "--control", "127.0.0.1:0"])
        {
            info.ArgumentList.Add(a);
        }

        // viscript generates the control token and writes it (0600) to its default token file for the bound address,
        // where the demo and `viscript cli` read it; no token of the caller's environment must leak in.
        info.Environment.Remove(ControlToken.EnvironmentVariable);
        info.Environment.Remove(ControlToken.FileEnvironmentVariable);
        info.Environment["DOTNET_NOLOGO"] = "1";

        var log = new StreamWriter(new FileStream(logFile, FileMode.Create, FileAccess.Write, FileShare.ReadWrite)) { AutoFlush = true };
        Process process;
        try
        {
            process = Process.Start(info) ?? throw new DemoStepException("could not start viscript");
        }
        catch (System.ComponentModel.Win32Exception ex)
        {
            await log.DisposeAsync();
            throw new DemoStepException($"could not start {info.FileName}: {ex.Message}");
        }

        var startLine = new TaskCompletionSource<string>(TaskCreationOptions.RunContinuationsAsynchronously);
        var stdoutPump = PumpAsync(process.StandardOutput, log, "", startLine);
        var stderrPump = PumpAsync(process.StandardError, log, "[stderr] ", null);
        try
        {
            using var deadline = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
            deadline.CancelAfter(timeout);
            var exited = process.WaitForExitAsync(deadline.Token);
            if (await Task.WhenAny(startLine.Task, exited) != startLine.Task)
            {
                await exited;   // throws when the deadline passed; else the daemon exited
                throw new TimeoutException();
            }

            var line = await startLine.Task;
            var match = StartLine().Match(line);
            var control = new Uri(match.Groups["control"].Value);
            // Written before the start line was printed.
            var token = ControlToken.Read(ControlToken.DefaultPath(new System.Net.IPEndPoint(System.Net.IPAddress.Parse(control.Host), control.Port)));
            return new ViscriptChild(process, control, token, log, stdoutPump, stderrPump) { LogFile = logFile, GuiSignInUrl = new Uri(control, "/#token=" + token) };
        }
        catch (Exception ex) when (ex is OperationCanceledException or TimeoutException or Viscript.Core.ViscriptException)
        {
            var exited = process.HasExited;
            KillTree(process);
            await log.DisposeAsync();
            throw new DemoStepException(cancellationToken.IsCancellationRequested
                ? "interrupted"
                : ex is Viscript.Core.ViscriptException v
                    ? v.Message
                    : exited
                    ? $"viscript exited with code {process.ExitCode} before it was ready"
                    : $"viscript printed no start line within {timeout.TotalSeconds:0} s");
        }
    }

    private static async Task PumpAsync(StreamReader reader, StreamWriter log, string prefix, TaskCompletionSource<string>? startLine)
    {
        try
        {
            while (await reader.ReadLineAsync() is { } line)
            {
                lock (log)
                {
                    log.WriteLine(prefix + line);
                }

                if (startLine is not null && StartLine().IsMatch(line))
                {
                    startLine.TrySetResult(line);
                }
            }
        }
        catch (Exception ex) when (ex is IOException or ObjectDisposedException)
        {
            // The daemon went away; its exit is observed elsewhere.
        }
    }

    /// <summary>Starts the configured app <paramref name="app"/> with <paramref name="args"/>; returns its sequence id.</summary>
    public async Task<ProcessInfo> StartAppAsync(string app, IReadOnlyList<string> args, CancellationToken cancellationToken)
    {
        try
        {
            return await _client.StartAsync(app, args, cancellationToken);
        }
        catch (ViscriptApiException ex)
        {
            throw new DemoStepException($"viscript refused to start {app}: {ex.Message} (code {(int)ex.Code})");
        }
    }

    /// <summary>Stops the process <paramref name="id"/> (SIGTERM, then SIGKILL after its stop timeout) and waits for its end.</summary>
    public Task<StopReport> StopProcessAsync(ulong id, CancellationToken cancellationToken) => _client.StopAsync(id, cancellationToken);

    /// <summary>The process <paramref name="id"/>.</summary>
    public Task<ProcessInfo> GetAsync(ulong id, CancellationToken cancellationToken) => _client.ProcessAsync(id, cancellationToken);

    /// <summary>Every process viscript knows.</summary>
    public Task<IReadOnlyList<ProcessInfo>> ListAsync(CancellationToken cancellationToken) => _client.ProcessesAsync(cancellationToken);

    /// <summary>The last <paramref name="count"/> captured output lines of <paramref name="id"/>.</summary>
    public Task<IReadOnlyList<LogLineInfo>> LogsAsync(ulong id, int count, CancellationToken cancellationToken) => _client.LogsAsync(id, count, cancellationToken);

    /// <summary>
    /// Waits until a captured line of <paramref name="id"/> matches <paramref name="pattern"/>; fails when the process
    /// stops running first. Polls the log tail (a start-up wait, not a hot path).
    /// </summary>
    public async Task<Match> WaitForLineAsync(ulong id, Regex pattern, CancellationToken cancellationToken)
    {
        while (true)
        {
            foreach (var line in await LogsAsync(id, 500, cancellationToken))
            {
                var match = pattern.Match(line.Text);
                if (match.Success)
                {
                    return match;
                }
            }

            var info = await GetAsync(id, cancellationToken);
            if (info.State is "Exited" or "Fatal" or "Stopped")
            {
                var tail = await LogsAsync(id, 5, cancellationToken);
                throw new DemoStepException($"{info.App} (id {id}) ended: {info.Display}"
                    + (tail.Count > 0 ? "; last output:\n      " + string.Join("\n      ", tail.Select(l => l.Text)) : ""));
            }

            await Task.Delay(150, cancellationToken);
        }
    }

    /// <summary>
    /// Asks the daemon to stop (it stops every app, then exits) and waits up to <paramref name="timeout"/>;
    /// then kills what is left of its process tree. Returns the daemon's exit code (null if it had to be killed).
    /// </summary>
    public async Task<int?> StopAsync(TimeSpan timeout)
    {
        if (!_process.HasExited)
        {
            try
            {
                using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(10));
                await _client.ShutdownDaemonAsync(cts.Token);
            }
            catch (Exception ex) when (ex is ViscriptApiException or OperationCanceledException)
            {
                // Already stopping (Ctrl+C reached it too) or hung: the wait below escalates to a kill.
            }
        }

        try
        {
            using var cts = new CancellationTokenSource(timeout);
            await _process.WaitForExitAsync(cts.Token);
            await Task.WhenAll(_stdoutPump, _stderrPump);
            return _process.ExitCode;
        }
        catch (OperationCanceledException)
        {
            KillTree(_process);
            return null;
        }
    }

    private static void KillTree(Process process)
    {
        try
        {
            process.Kill(entireProcessTree: true);
        }
        catch (InvalidOperationException)
        {
            // Already gone.
        }
    }

    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            return;
        }

        if (!_process.HasExited)
        {
            await StopAsync(TimeSpan.FromSeconds(45));
        }

        _client.Dispose();
        _process.Dispose();
        lock (_log)
        {
            _log.Dispose();
        }
    }

    [GeneratedRegex(@"^viscript: signal (?<signal>\S+) control (?<control>http://\S+) pid (?<pid>\d+)")]
    private static partial Regex StartLine();
}
