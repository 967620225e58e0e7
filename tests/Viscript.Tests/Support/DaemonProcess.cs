using System.Diagnostics;
using System.Text.RegularExpressions;
using Viscript.Core.Supervision;

namespace Viscript.Tests.Support;

/// <summary>The built viscript executable run as a child process, with its stdout lines awaitable.</summary>
public sealed partial class DaemonProcess : IAsyncDisposable
{
    private readonly Process _process;
    private readonly List<string> _lines = [];
    private readonly List<(Func<string, bool> Match, TaskCompletionSource<string> Tcs)> _waiters = [];
    private readonly TaskCompletionSource<Match> _started = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly System.Text.StringBuilder _stderr = new();

    private DaemonProcess(Process process)
    {
        _process = process;
        process.OutputDataReceived += (_, e) =>
        {
            if (e.Data is null)
            {
                _started.TrySetException(new InvalidOperationException("viscript exited before printing its addresses; stderr: " + Stderr));
                return;
            }
            OnLine(e.Data);
        };
        process.ErrorDataReceived += (_, e) =>
        {
            if (e.Data is not null)
            {
                lock (_stderr)
                {
                    _stderr.AppendLine(e.Data);
                }
            }
        };
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
    }

    public int Pid => _process.Id;

    public string ControlUrl { get; private set; } = "";

    public string SignalAddress { get; private set; } = "";

    public StreamWriter Stdin => _process.StandardInput;

    public string Stderr
    {
        get
        {
            lock (_stderr)
            {
                return _stderr.ToString();
            }
        }
    }

    public IReadOnlyList<string> Lines
    {
        get
        {
            lock (_lines)
            {
                return _lines.ToList();
            }
        }
    }

    [GeneratedRegex(@"^viscript: signal (\S+) control (\S+) pid (\d+)$")]
    private static partial Regex StartLine();

    /// <summary>XDG_RUNTIME_DIR of this daemon and its cli runs: where the daemon writes its token file (0700 folder).</summary>
    public string RuntimeDirectory { get; private set; } = "";

    /// <summary>The control token the daemon generated (read from its token file, as viscript cli does).</summary>
    public string Token => Viscript.Core.Control.ControlToken.Read(Viscript.Core.Control.ControlToken.DefaultPath(ControlEndPoint, RuntimeDirectory));

    /// <summary>The bound control address.</summary>
    public System.Net.IPEndPoint ControlEndPoint => Viscript.Core.Endpoints.TryParse(ControlUrl, out var ep) ? ep : throw new InvalidOperationException(ControlUrl);

    /// <summary><c>viscript cli --control URL args...</c> against this daemon (its token folder).</summary>
    public ProcessStartInfo CliStartInfo(params string[] args) => StartInfo(["cli", "--control", ControlUrl, .. args], RuntimeDirectory, null);

    /// <summary>The typed control client with the daemon's token.</summary>
    public Viscript.Core.Control.ViscriptClient Client(TimeSpan? requestTimeout = null) =>
        Viscript.Core.Control.ViscriptClient.Create(new Uri(ControlUrl + "/"), Token, requestTimeout ?? TimeSpan.FromSeconds(60));

    public static ProcessStartInfo StartInfo(params string[] args) => StartInfo(args, null, null);

    /// <summary>The built viscript with <paramref name="args"/>; <paramref name="prefix"/> wraps it (e.g. prlimit, setpriv).</summary>
    public static ProcessStartInfo StartInfo(string[] args, string? runtimeDirectory, string[]? prefix)
    {
        var psi = new ProcessStartInfo(prefix is { Length: > 0 } ? prefix[0] : "dotnet")
        {
            RedirectStandardInput = true,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (var a in prefix is { Length: > 0 } ? [.. prefix[1..], "dotnet"] : Array.Empty<string>())
        {
            psi.ArgumentList.Add(a);
        }
        psi.ArgumentList.Add(Paths.ViscriptDll);
        foreach (var a in args)
        {
            psi.ArgumentList.Add(a);
        }
        psi.Environment.Remove("VISCRIPT_CONTROL");
        psi.Environment.Remove("VISCRIPT_TOKEN");
        psi.Environment.Remove("VISCRIPT_TOKEN_FILE");
        if (runtimeDirectory is not null)
        {
            psi.Environment["XDG_RUNTIME_DIR"] = runtimeDirectory;
        }
        return psi;
    }

    /// <summary>Starts <c>viscript --headless --config CONFIG --signal 127.0.0.1:0 --control 127.0.0.1:0</c> and reads back the bound addresses.</summary>
    public static Task<DaemonProcess> StartAsync(string configPath, params string[] extraArgs) => StartWrappedAsync(configPath, null, extraArgs);

    /// <summary>As <see cref="StartAsync(string, string[])"/>, run through <paramref name="prefix"/> (e.g. <c>prlimit --nofile=256:256</c>).</summary>
    public static async Task<DaemonProcess> StartWrappedAsync(string configPath, string[]? prefix, params string[] extraArgs)
    {
        // The token folder of this daemon (and of the cli runs against it): next to its config, so each test has its own.
        var runtime = Path.Combine(Path.GetDirectoryName(Path.GetFullPath(configPath))!, "run");
        // --headless unless the test asks for the GUI (--gui and --headless together are a usage error).
        string[] mode = extraArgs.Contains("--gui") ? [] : ["--headless"];
        var psi = StartInfo([.. mode, "--config", configPath, "--signal", "127.0.0.1:0", "--control", "127.0.0.1:0", .. extraArgs], runtime, prefix);
        var d = new DaemonProcess(Process.Start(psi)!) { RuntimeDirectory = runtime };
        var m = await d._started.Task.WaitAsync(TimeSpan.FromSeconds(60));
        d.SignalAddress = m.Groups[1].Value;
        d.ControlUrl = m.Groups[2].Value;
        Assert.Equal(d.Pid, int.Parse(m.Groups[3].Value, System.Globalization.CultureInfo.InvariantCulture));
        return d;
    }

    private void OnLine(string line)
    {
        if (StartLine().Match(line) is { Success: true } m)
        {
            _started.TrySetResult(m);
        }
        lock (_lines)
        {
            _lines.Add(line);
            foreach (var w in _waiters.ToList())
            {
                if (w.Match(line))
                {
                    w.Tcs.TrySetResult(line);
                    _waiters.Remove(w);
                }
            }
        }
    }

    /// <summary>Waits for a stdout line (already printed or future) matching <paramref name="match"/>.</summary>
    public Task<string> WaitForLineAsync(Func<string, bool> match, int seconds = 30)
    {
        var tcs = new TaskCompletionSource<string>(TaskCreationOptions.RunContinuationsAsynchronously);
        lock (_lines)
        {
            if (_lines.FirstOrDefault(match) is { } hit)
            {
                return Task.FromResult(hit);
            }
            _waiters.Add((match, tcs));
        }
        return tcs.Task.WaitAsync(TimeSpan.FromSeconds(seconds));
    }

    public Task<string> WaitForLineAsync(string contains, int seconds = 30) =>
        WaitForLineAsync(l => l.Contains(contains, StringComparison.Ordinal), seconds);

    /// <summary>Runs <c>viscript cli --control URL args...</c> (it finds the token in the daemon's token file).</summary>
    public Task<CliResult> CliAsync(params string[] args) => RunAsync(["cli", "--control", ControlUrl, .. args], null, RuntimeDirectory, Prefix);

    /// <summary>What the daemon's cli runs through: <c>ip netns exec NS</c> for a daemon in a network namespace.</summary>
    public string[]? Prefix { get; private set; }

    /// <summary>As <see cref="StartAsync(string, string[])"/>, in network namespace <paramref name="ns"/> (its cli runs there too).</summary>
    public static async Task<DaemonProcess> StartInNamespaceAsync(string ns, string configPath, params string[] extraArgs)
    {
        string[] prefix = ["ip", "netns", "exec", ns];
        var d = await StartWrappedAsync(configPath, prefix, extraArgs);
        d.Prefix = prefix;
        return d;
    }

    /// <summary>Runs <c>viscript cli --control URL</c> with <paramref name="stdin"/> (the interactive shell).</summary>
    public Task<CliResult> CliShellAsync(string stdin) => RunAsync(["cli", "--control", ControlUrl], stdin, RuntimeDirectory);

    public static async Task<CliResult> RunAsync(string[] args, string? stdin = null, string? runtimeDirectory = null, string[]? prefix = null)
    {
        using var p = Process.Start(StartInfo(args, runtimeDirectory, prefix))!;
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        if (stdin is not null)
        {
            await p.StandardInput.WriteAsync(stdin);
        }
        p.StandardInput.Close();
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        try
        {
            await p.WaitForExitAsync(cts.Token);
        }
        catch (OperationCanceledException)
        {
            p.Kill(entireProcessTree: true);
            throw new TimeoutException("viscript " + string.Join(' ', args) + " did not finish");
        }
        return new CliResult(p.ExitCode, await stdout, await stderr);
    }

    public void Signal(int signal) => Native.TrySignal(_process.Id, signal);

    public async Task<int> WaitForExitAsync(int seconds = 60)
    {
        await _process.WaitForExitAsync().WaitAsync(TimeSpan.FromSeconds(seconds));
        return _process.ExitCode;
    }

    /// <summary>
    /// SIGTERM, then asserts the daemon stopped within 30 s (a daemon that hangs on SIGTERM is killed with its tree and
    /// fails the test: a teardown does not hide how the process ended).
    /// </summary>
    public async ValueTask DisposeAsync()
    {
        try
        {
            if (!_process.HasExited)
            {
                Signal(15);
                try
                {
                    await _process.WaitForExitAsync().WaitAsync(TimeSpan.FromSeconds(30));
                }
                catch (TimeoutException)
                {
                    _process.Kill(entireProcessTree: true);
                    Assert.Fail($"viscript (pid {_process.Id}) did not stop within 30 s of SIGTERM; stderr:\n{Stderr}");
                }
            }
        }
        finally
        {
            _process.Dispose();
        }
    }
}

public sealed record CliResult(int ExitCode, string Stdout, string Stderr)
{
    public string[] Lines => Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries);

    public override string ToString() => $"exit {ExitCode}\nstdout:\n{Stdout}\nstderr:\n{Stderr}";
}
