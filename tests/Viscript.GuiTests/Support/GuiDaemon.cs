using System.Diagnostics;
using System.Net.Http.Headers;
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
/// temporary folder. Reads the GUI URL from stdout; dispose shuts it down through the API and kills it if it lingers.
/// </summary>
public sealed partial class GuiDaemon : IAsyncDisposable
{
    private readonly Process _process;
    private readonly string _dir;
    private readonly TaskCompletionSource<string> _url = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly System.Text.StringBuilder _output = new();

    private GuiDaemon(Process process, string dir, string? token)
    {
        _process = process;
        _dir = dir;
        Token = token;
    }

    /// <summary>GUI URL as printed (http://127.0.0.1:port/).</summary>
    public string Url { get; private set; } = "";

    /// <summary>Token the daemon requires, if any.</summary>
    public string? Token { get; }

    /// <summary>An HTTP client for the control API (with the bearer token).</summary>
    public HttpClient Http { get; private set; } = null!;

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
        if (token is not null)
        {
            psi.ArgumentList.Add("--token");
            psi.ArgumentList.Add(token);
        }
        psi.Environment.Remove("VISCRIPT_TOKEN");
        psi.Environment.Remove("VISCRIPT_CONTROL");
        var process = Process.Start(psi) ?? throw new InvalidOperationException("dotnet did not start");
        var daemon = new GuiDaemon(process, dir, token);
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
            await daemon.DisposeAsync();
            throw;
        }
        daemon.Http = new HttpClient { BaseAddress = new Uri(daemon.Url), Timeout = TimeSpan.FromSeconds(30) };
        if (token is not null)
        {
            daemon.Http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", token);
        }
        return daemon;
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
        }
        if (GuiLine().Match(line) is { Success: true } m)
        {
            _url.TrySetResult(m.Groups[1].Value);
        }
    }

    public async ValueTask DisposeAsync()
    {
        if (!_process.HasExited)
        {
            try
            {
                using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(5) };
                using var request = new HttpRequestMessage(HttpMethod.Post, new Uri(new Uri(Url), "api/shutdown"));
                if (Token is not null)
                {
                    request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", Token);
                }
                if (Url.Length > 0)
                {
                    (await http.SendAsync(request)).Dispose();
                }
                await _process.WaitForExitAsync().WaitAsync(TimeSpan.FromSeconds(30));
            }
            catch (Exception ex) when (ex is HttpRequestException or TimeoutException or TaskCanceledException or UriFormatException)
            {
            }
            if (!_process.HasExited)
            {
                _process.Kill(entireProcessTree: true);
                await _process.WaitForExitAsync();
            }
        }
        _process.Dispose();
        Http?.Dispose();
        try
        {
            Directory.Delete(_dir, recursive: true);
        }
        catch (IOException)
        {
        }
    }

    [GeneratedRegex(@"^viscript: GUI (http://\S+/)")]
    private static partial Regex GuiLine();
}
