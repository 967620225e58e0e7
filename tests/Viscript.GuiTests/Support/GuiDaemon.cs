using System.Diagnostics;
using System.Net;
using System.Net.Http.Headers;
using Viscript.Core.Control;
using System.Text.RegularExpressions;

namespace Viscript.GuiTests.Support;

/// <summary>Paths of the built executables (same configuration as this test assembly).</summary>
public static class Paths
{
    public static string RepoRoot { get; } = FindRoot();

    public static string Configuration { get; } = new DirectoryInfo(AppContext.BaseDirectory.TrimEnd(Path.DirectorySeparatorChar)).Parent!.Name;

    public static string ViscriptDll => Path.Combine(RepoRoot, "src", "Viscript", "bin", Configuration, "net10.0", "viscript.dll");

    public static string TestApp => Path.Combine(RepoRoot, "tests", "apps", "Viscript.TestApp", "bin", Configuration, "net10.0", "viscript-testapp");

    /// <summary>Where screenshots go: TestResults/gui under the test's output folder.</summary>
    public static string Artifacts { get; } = Directory.CreateDirectory(Path.Combine(AppContext.BaseDirectory, "TestResults", "gui")).FullName;

    private static string FindRoot()
    {
        var dir = new DirectoryInfo(AppContext.BaseDirectory);
        while (dir is not null && !File.Exists(Path.Combine(dir.FullName, "Skywire.slnx")))
        {
            dir = dir.Parent;
        }
        return dir?.FullName ?? throw new InvalidOperationException("Skywire.slnx not found above " + AppContext.BaseDirectory);
    }
}

/// <summary>
/// The built viscript in GUI mode (control and signal on loopback port 0) with a config of test-app entries, in a
/// temporary folder. Reads the GUI URL from stdout and the generated token from the daemon's token file (its
/// XDG_RUNTIME_DIR is the test's folder); dispose shuts it down through the API and asserts it exited 0.
/// </summary>
public sealed partial class GuiDaemon : IAsyncDisposable
{
    private readonly Process _process;
    private readonly string _dir;
    private readonly TaskCompletionSource<string> _url = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly System.Text.StringBuilder _output = new();

    private GuiDaemon(Process process, string dir)
    {
        _process = process;
        _dir = dir;
    }

    /// <summary>GUI URL as printed (http://127.0.0.1:port/).</summary>
    public string Url { get; private set; } = "";

    /// <summary>The GUI's sign-in link (<c>viscript cli --gui-url</c>): the token in the #fragment.</summary>
    public string SignInUrl => Url + "#token=" + Uri.EscapeDataString(Token);

    /// <summary>The token the daemon requires (its generated one, read from its token file, unless one was given).</summary>
    public string Token { get; private set; } = "";

    /// <summary>The bound control port.</summary>
    public int Port => new Uri(Url).Port;

    /// <summary>XDG_RUNTIME_DIR of the daemon: the folder of its token file.</summary>
    public string RuntimeDirectory => Path.Combine(_dir, "run");

    /// <summary>The typed control API client (with the token).</summary>
    public ViscriptClient Client { get; private set; } = null!;

    /// <summary>Raw HTTP with the bearer token, for checks of the wire itself (headers, guard).</summary>
    public HttpClient Http { get; private set; } = null!;

    /// <summary>The session cookie a signed-in browser holds (for a context that runs no script).</summary>
    public Microsoft.Playwright.Cookie SessionCookie => new() { Name = $"viscript-session-{Port}", Value = ControlToken.SessionValue(Token), Url = Url };

    /// <summary>Everything the daemon printed (for failure messages).</summary>
    public string Output
    {
        get
        {
            lock (_output)
            {
                return _output.ToString();
            }
        }
    }

    /// <summary>A config with the test app in "sleep" mode (<c>testapp</c>) and in "echo" mode (<c>echo</c>).</summary>
    public static string DefaultConfig() => $"""
        apps:
          testapp:
            path: {Paths.TestApp}
            default_args: ["sleep"]
            desc: test app that sleeps
            help: |
              Usage: start testapp [mode]
              Sleeps until shut down; a signal client.
          echo:
            path: {Paths.TestApp}
            default_args: ["echo"]
            desc: echoes its input
            help: start -a echo, then type lines
        settings:
          runHeadless: false
        """;

    public static async Task<GuiDaemon> StartAsync(string? config = null, string? token = null, params string[] extraArgs)
    {
        var dir = Path.Combine(Path.GetTempPath(), "viscript-gui-" + Guid.NewGuid().ToString("N")[..12]);
        Directory.CreateDirectory(dir);
        var configPath = Path.Combine(dir, "config.yaml");
        await File.WriteAllTextAsync(configPath, config ?? DefaultConfig());
        var psi = new ProcessStartInfo("dotnet")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = true,
            UseShellExecute = false,
            WorkingDirectory = dir,
        };
        foreach (var a in new[] { Paths.ViscriptDll, "--config", configPath, "--control", "127.0.0.1:0", "--signal", "127.0.0.1:0", "--no-repl", "--logs", Path.Combine(dir, "logs") })
        {
            psi.ArgumentList.Add(a);
        }
        foreach (var a in extraArgs)
        {
            psi.ArgumentList.Add(a);
        }
        psi.Environment.Remove("VISCRIPT_TOKEN");
        psi.Environment.Remove("VISCRIPT_TOKEN_FILE");
        psi.Environment.Remove("VISCRIPT_CONTROL");
        if (token is not null)
        {
            // From the environment, never the command line (ps).
            psi.Environment["VISCRIPT_TOKEN"] = token;
        }
        psi.Environment["XDG_RUNTIME_DIR"] = Path.Combine(dir, "run");
        var process = Process.Start(psi) ?? throw new InvalidOperationException("dotnet did not start");
        var daemon = new GuiDaemon(process, dir);
        process.OutputDataReceived += (_, e) => daemon.OnLine(e.Data);
        process.ErrorDataReceived += (_, e) => daemon.OnLine(e.Data);
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        _ = process.WaitForExitAsync().ContinueWith(_ => daemon._url.TrySetException(new InvalidOperationException("viscript exited early:\n" + daemon.Output)), TaskScheduler.Default);
        try
        {
            daemon.Url = await daemon._url.Task.WaitAsync(TimeSpan.FromSeconds(60));
        }
        catch
        {
            daemon.Kill();
            throw;
        }
        daemon.Token = token ?? ControlToken.Read(ControlToken.DefaultPath(new IPEndPoint(IPAddress.Loopback, daemon.Port), daemon.RuntimeDirectory));
        daemon.Http = new HttpClient { BaseAddress = new Uri(daemon.Url), Timeout = TimeSpan.FromSeconds(30) };
        daemon.Http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", daemon.Token);
        daemon.Client = ViscriptClient.Create(new Uri(daemon.Url), daemon.Token, TimeSpan.FromSeconds(30));
        daemon._started = true;
        return daemon;
    }

    private readonly List<(Func<string, bool> Match, TaskCompletionSource<string> Found)> _waiters = [];

    /// <summary>The first line the daemon printed (or prints) that matches, within <paramref name="seconds"/>.</summary>
    public async Task<string> WaitForLineAsync(Func<string, bool> match, int seconds = 60)
    {
        var found = new TaskCompletionSource<string>(TaskCreationOptions.RunContinuationsAsynchronously);
        lock (_output)
        {
            var hit = _output.ToString().Split('\n').Select(l => l.TrimEnd('\r')).FirstOrDefault(match);
            if (hit is not null)
            {
                return hit;
            }
            _waiters.Add((match, found));
        }
        try
        {
            return await found.Task.WaitAsync(TimeSpan.FromSeconds(seconds));
        }
        catch (TimeoutException)
        {
            throw new TimeoutException($"No matching line within {seconds} s:\n{Output}");
        }
    }

    /// <summary>Runs the built viscript once (e.g. <c>key --cluster-key FILE</c>) and returns its stdout; fails on a non-zero exit.</summary>
    public static async Task<string> RunOnceAsync(params string[] args)
    {
        var psi = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        psi.ArgumentList.Add(Paths.ViscriptDll);
        foreach (var a in args)
        {
            psi.ArgumentList.Add(a);
        }
        using var process = Process.Start(psi) ?? throw new InvalidOperationException("dotnet did not start");
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        try
        {
            await process.WaitForExitAsync(cts.Token);
        }
        catch (OperationCanceledException)
        {
            process.Kill(entireProcessTree: true);
            throw;
        }
        Assert.True(process.ExitCode == 0, $"viscript {string.Join(' ', args)} exited {process.ExitCode}: {await stderr}");
        return await stdout;
    }

    private void OnLine(string? line)
    {
        if (line is null)
        {
            return;
        }
        lock (_output)
        {
            _output.AppendLine(line);
            foreach (var w in _waiters.Where(w => w.Match(line)).ToList())
            {
                _waiters.Remove(w);
                w.Found.TrySetResult(line);
            }
        }
        if (GuiLine().Match(line) is { Success: true } m)
        {
            _url.TrySetResult(m.Groups[1].Value);
        }
    }

    private bool _started;

    private void Kill()
    {
        if (!_process.HasExited)
        {
            _process.Kill(entireProcessTree: true);
            _process.WaitForExit();
        }
        _process.Dispose();
        Directory.Delete(_dir, recursive: true);
    }

    /// <summary>
    /// Shuts the daemon down through the API and asserts it ended as asked: it was still running, it accepted the
    /// shutdown and it exited 0 within 30 s (else it is killed and the test fails with its output).
    /// </summary>
    public async ValueTask DisposeAsync()
    {
        if (!_started)
        {
            Kill();
            return;
        }
        try
        {
            Assert.False(_process.HasExited, $"viscript exited before the test ended (code {(_process.HasExited ? _process.ExitCode : 0)}):\n{Output}");
            await Client.ShutdownDaemonAsync();
            using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(30));
            try
            {
                await _process.WaitForExitAsync(cts.Token);
            }
            catch (OperationCanceledException)
            {
                Assert.Fail($"viscript did not exit within 30 s of POST /api/shutdown:\n{Output}");
            }
            Assert.Equal(0, _process.ExitCode);
        }
        finally
        {
            Client.Dispose();
            Http.Dispose();
            Kill();
        }
    }

    [GeneratedRegex(@"^viscript: GUI (http://\S+/)")]
    private static partial Regex GuiLine();
}
