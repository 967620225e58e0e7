using System.Net;
using System.Net.Sockets;
using Viscript.Tests.Support;

namespace Viscript.Tests.EndToEnd;

/// <summary>Shared helpers; the tests are split over a few classes so that xUnit runs them in parallel.</summary>
public abstract class ExeTestBase : IDisposable
{
    protected TempDir Dir { get; } = new();

    public void Dispose()
    {
        Dir.Dispose();
        GC.SuppressFinalize(this);
    }

    protected string WriteConfig(params string[] apps) => Dir.Write("config.yaml", TestConfigs.Build(apps));

    protected static int PidOf(CliResult la, ulong id)
    {
        var row = la.Lines.Single(l => l.StartsWith(id + " ", StringComparison.Ordinal));
        return int.Parse(row.Split(' ', StringSplitOptions.RemoveEmptyEntries)[2], System.Globalization.CultureInfo.InvariantCulture);
    }
}

/// <summary>The built viscript executable: daemon on port 0, driven through <c>viscript cli</c>.</summary>
[Trait("Category", "E2E")]
public sealed class ExeCommandTests : ExeTestBase
{

    [Fact]
    public async Task Cli_StartListPingRuShutdown_ProcessIsGone()
    {
        await using var d = await DaemonProcess.StartAsync(WriteConfig(TestConfigs.App("t", "sleep")));
        var start = await d.CliAsync("s", "t");
        Assert.True(start.ExitCode == 0, start.ToString());
        Assert.StartsWith("Added external app (ID: 1, Command: ", start.Stdout, StringComparison.Ordinal);
        await d.WaitForLineAsync("signal client 1 registered");

        var la = await d.CliAsync("la");
        Assert.Equal(0, la.ExitCode);
        Assert.Matches(@"^1\s+t\s+\d+\s+Running\s+yes\s+", la.Lines[1]);
        var pid = PidOf(la, 1);

        var ping = await d.CliAsync("ping", "1");
        Assert.Equal(0, ping.ExitCode);
        Assert.StartsWith("ping time ", ping.Stdout, StringComparison.Ordinal);

        var ru = await d.CliAsync("ru", "1");
        Assert.Equal(0, ru.ExitCode);
        Assert.Contains($"pid {pid} cpu", ru.Stdout, StringComparison.Ordinal);
        Assert.Contains("MemStats HeapAlloc:", ru.Stdout, StringComparison.Ordinal);

        var sd = await d.CliAsync("sd", "1");
        Assert.Equal(0, sd.ExitCode);
        Assert.Equal([$"shutdown pid {pid}", "[ 1 ] t Exited(0)"], sd.Lines);
        Assert.False(Pids.IsAlive(pid));
        Assert.Matches(@"^1\s+t\s+\d+\s+Exited\(0\)\s+no\s+-$", (await d.CliAsync("la")).Lines[1]);
    }

    [Fact]
    public async Task NonSignalApp_PingFailsClearly_RuUsesProc()
    {
        await using var d = await DaemonProcess.StartAsync(Dir.Write("config.yaml", "apps:\n  sleeper:\n    path: sleep\n    default_args: [\"1000\"]\n"));
        Assert.Equal(0, (await d.CliAsync("start", "sleeper")).ExitCode);
        var ping = await d.CliAsync("ping", "1");
        Assert.Equal(14, ping.ExitCode);
        Assert.Contains("not a signal client", ping.Stderr, StringComparison.Ordinal);
        var ru = await d.CliAsync("ru", "1");
        Assert.Equal(0, ru.ExitCode);
        Assert.Matches(@"rss [\d.]+[KM]iB threads 1 files \d+", ru.Stdout);
        var pid = PidOf(await d.CliAsync("la"), 1);
        var sd = await d.CliAsync("sd", "1");
        Assert.Equal(0, sd.ExitCode);
        Assert.Contains("Exited(143)", sd.Stdout, StringComparison.Ordinal);
        Assert.False(Pids.IsAlive(pid));
    }

    [Fact]
    public async Task CrashingApp_BacksOff_ThenFatal()
    {
        await using var d = await DaemonProcess.StartAsync(WriteConfig(TestConfigs.App("crasher", "crash 7 50", "restart: on-failure", "max_retries: 2", "backoff: 100ms")));
        Assert.Equal(0, (await d.CliAsync("s", "crasher")).ExitCode);
        await d.WaitForLineAsync("restart 1/2 in 0.1s");
        await d.WaitForLineAsync("restart 2/2 in 0.2s");
        var fatal = await d.WaitForLineAsync("-> Fatal");
        Assert.Contains("exited with code 7", fatal, StringComparison.Ordinal);
        var la = await d.CliAsync("la");
        Assert.Matches(@"^1\s+crasher\s+\d+\s+Fatal\s+no\s+-$", la.Lines[1]);
        var ping = await d.CliAsync("ping", "1");
        Assert.Equal(13, ping.ExitCode);
        Assert.Equal(0, (await d.CliAsync("restart", "1")).ExitCode);
        await d.WaitForLineAsync(l => l.Contains("Fatal -> Starting", StringComparison.Ordinal));
    }

    [Fact]
    public async Task FloodingApp_DaemonStaysResponsive_LogsBounded()
    {
        var config = Dir.Write("config.yaml", TestConfigs.Build(TestConfigs.App("flood", "flood")) + "  log_buffer_lines: 500\n  log_file_max_bytes: 2000000\n");
        await using var d = await DaemonProcess.StartAsync(config);
        Assert.Equal(0, (await d.CliAsync("s", "flood")).ExitCode);
        for (var i = 0; i < 3; i++)
        {
            var la = await d.CliAsync("la");
            Assert.Equal(0, la.ExitCode);
        }
        var logs = await d.CliAsync("logs", "1", "-n", "5");
        Assert.Equal(0, logs.ExitCode);
        Assert.Equal(5, logs.Lines.Length);
        Assert.All(logs.Lines, l => Assert.StartsWith("flood line ", l, StringComparison.Ordinal));
        var all = await d.CliAsync("logs", "1", "-n", "100000");
        Assert.Equal(500, all.Lines.Length);
        Assert.Equal(0, (await d.CliAsync("kill", "1")).ExitCode);
        var file = Path.Combine(Dir.Path, "logs", "flood-1.log");
        Assert.InRange(new FileInfo(file).Length, 1, 2_000_000 + 64 * 1024);
    }

}

/// <summary>Bad input to the executable: config, arguments, tokens.</summary>
[Trait("Category", "E2E")]
public sealed class ExeErrorTests : ExeTestBase
{
    [Fact]
    public async Task BadConfig_ExitsNonZero_NamingFileLineAndKey()
    {
        var config = Dir.Write("config.yaml", "apps:\n  ok:\n    path: /bin/true\n  bad:\n    path: /bin/false\n    restart: sometimes\n");
        var r = await DaemonProcess.RunAsync(["--headless", "--config", config, "--signal", "127.0.0.1:0", "--control", "127.0.0.1:0"]);
        Assert.Equal(60, r.ExitCode);
        Assert.Contains($"{config}:6:", r.Stderr, StringComparison.Ordinal);
        Assert.Contains("apps.bad.restart", r.Stderr, StringComparison.Ordinal);
        Assert.DoesNotContain("viscript: signal", r.Stdout, StringComparison.Ordinal);

        var missing = await DaemonProcess.RunAsync(["--headless", "--config", Path.Combine(Dir.Path, "nope.yaml")]);
        Assert.Equal(60, missing.ExitCode);
        Assert.Contains("nope.yaml: file not found", missing.Stderr, StringComparison.Ordinal);
    }

    [Fact]
    public async Task BadArguments_ClearErrors_DocumentedExitCodes()
    {
        var config = WriteConfig(TestConfigs.App("t", "sleep"));
        var badSignal = await DaemonProcess.RunAsync(["--headless", "--config", config, "--signal", "nonsense"]);
        Assert.Equal(2, badSignal.ExitCode);
        Assert.Contains("bad --signal address 'nonsense'", badSignal.Stderr, StringComparison.Ordinal);
        var noToken = await DaemonProcess.RunAsync(["--headless", "--config", config, "--signal", "0.0.0.0:0", "--control", "127.0.0.1:0"]);
        Assert.Equal(2, noToken.ExitCode);
        Assert.Contains("token", noToken.Stderr, StringComparison.Ordinal);
        var help = await DaemonProcess.RunAsync(["--help"]);
        Assert.Equal(0, help.ExitCode);
        Assert.Contains("--headless", help.Stdout, StringComparison.Ordinal);
        var cliHelp = await DaemonProcess.RunAsync(["cli", "--help"]);
        Assert.Equal(0, cliHelp.ExitCode);
        Assert.Contains("Exit codes:", cliHelp.Stdout, StringComparison.Ordinal);
        var cliBadOption = await DaemonProcess.RunAsync(["cli", "--bogus", "la"]);
        Assert.Equal(2, cliBadOption.ExitCode);

        // A port nobody listens on: bind one, read it back, close it.
        var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        var port = ((IPEndPoint)listener.LocalEndpoint).Port;
        listener.Stop();
        var unreachable = await DaemonProcess.RunAsync(["cli", "--control", $"127.0.0.1:{port}", "la"]);
        Assert.Equal(50, unreachable.ExitCode);
        Assert.Contains("no viscript daemon answers at", unreachable.Stderr, StringComparison.Ordinal);

        await using var d = await DaemonProcess.StartAsync(config);
        // A few codes through the executable (each run is a process start); the full table is covered in-process (ControlApiTests).
        (string[] Args, int Code, string Text)[] cases =
        [
            (["frobnicate"], 3, "\"frobnicate\" is an unknown command"),
            (["s", "NoSuchApp"], 10, "App with name 'NoSuchApp' doesn't exist"),
            (["ping", "abc"], 11, "Id must be a positive integer, got 'abc'"),
            (["sd", "42"], 12, "No process with id 42"),
        ];
        foreach (var (args, code, text) in cases)
        {
            var r = await d.CliAsync(args);
            Assert.True(code == r.ExitCode, $"{string.Join(' ', args)}: {r}");
            Assert.Contains(text, r.Stderr, StringComparison.Ordinal);
            Assert.Contains($"error {code} (", r.Stderr, StringComparison.Ordinal);
        }
    }

    [Fact]
    public async Task Token_CliSendsBearer()
    {
        var config = WriteConfig(TestConfigs.App("t", "sleep"));
        await using var d = await DaemonProcess.StartAsync(config, "--token", "tok-123");
        var denied = await d.CliAsync("la");
        Assert.Equal(40, denied.ExitCode);
        var allowed = await DaemonProcess.RunAsync(["cli", "--control", d.ControlUrl, "--token", "tok-123", "la"]);
        Assert.Equal(0, allowed.ExitCode);
    }
}

/// <summary>Daemon life cycle: signals, REPL, quit, interactive cli shell.</summary>
[Trait("Category", "E2E")]
public sealed class ExeLifecycleTests : ExeTestBase
{
    [Fact]
    public async Task Sigterm_StopsDaemon_LeavingNoChildBehind()
    {
        var config = WriteConfig(
            TestConfigs.App("t", "sleep"),
            TestConfigs.App("stubborn", "ignore-term", "stop_timeout: 1s"),
            TestConfigs.App("spawner", "spawn"),
            "  plain:\n    path: sleep\n    default_args: [\"1000\"]\n");
        var d = await DaemonProcess.StartAsync(config);
        await using (d)
        {
            foreach (var app in new[] { "t", "stubborn", "spawner", "plain" })
            {
                Assert.Equal(0, (await d.CliAsync("s", app)).ExitCode);
            }
            await d.WaitForLineAsync("signal client 1 registered");
            await d.WaitForLineAsync("signal client 2 registered");
            await d.WaitForLineAsync("signal client 3 registered");
            var la = await d.CliAsync("la");
            var pids = Enumerable.Range(1, 4).Select(i => PidOf(la, (ulong)i)).ToList();
            var grandchildren = System.Diagnostics.Process.GetProcessesByName("sleep").Select(p => p.Id).Where(p => ParentOf(p) == pids[2]).ToList();
            Assert.Single(grandchildren);

            d.Signal(15);
            Assert.Equal(0, await d.WaitForExitAsync());
            foreach (var pid in pids.Concat(grandchildren))
            {
                Assert.True(await Pids.WaitGoneAsync(pid, TimeSpan.FromSeconds(10)), $"pid {pid} survived the daemon");
            }
            Assert.Contains(d.Lines, l => l == "viscript: stopped.");
        }
    }

    private static int ParentOf(int pid)
    {
        try
        {
            var stat = File.ReadAllText($"/proc/{pid}/stat");
            return int.Parse(stat[(stat.LastIndexOf(')') + 2)..].Split(' ')[1], System.Globalization.CultureInfo.InvariantCulture);
        }
        catch (IOException)
        {
            return -1;
        }
    }

    [Fact]
    public async Task Repl_RunsCommands_Attaches_AndEofDoesNotStopTheDaemon()
    {
        await using var d = await DaemonProcess.StartAsync(WriteConfig(TestConfigs.App("echo", "echo")));
        await d.Stdin.WriteLineAsync("apps");
        await d.WaitForLineAsync(l => l.StartsWith("echo", StringComparison.Ordinal) && l.Contains("- test app in echo mode", StringComparison.Ordinal));
        await d.Stdin.WriteLineAsync("start -a echo");
        await d.WaitForLineAsync("Attached to 1;");
        // Typed lines go to the app verbatim (no parsing, case kept); the pipe buffers them until it reads.
        await d.Stdin.WriteLineAsync("help MixedCase 'quoted arg'");
        await d.WaitForLineAsync("echo: help MixedCase 'quoted arg'");
        await d.Stdin.WriteLineAsync("^Z");
        await d.WaitForLineAsync("Detaching external app");
        await d.Stdin.WriteLineAsync("la -f");
        await d.WaitForLineAsync(l => l.StartsWith("1 ", StringComparison.Ordinal) && l.Contains("viscript-testapp echo", StringComparison.Ordinal));
        await d.Stdin.WriteLineAsync("bogus");
        await d.WaitForLineAsync("**** ERROR! ****    \"bogus\" is an unknown command.");

        d.Stdin.Close();
        await d.WaitForLineAsync("end of input; the daemon keeps running");
        var la = await d.CliAsync("la");
        Assert.Equal(0, la.ExitCode);
        Assert.Matches(@"^1\s+echo\s+\d+\s+Running", la.Lines[1]);
    }

    [Fact]
    public async Task Repl_Quit_StopsDaemonAndApps()
    {
        var d = await DaemonProcess.StartAsync(Dir.Write("config.yaml", "apps:\n  s:\n    path: sleep\n    default_args: [\"1000\"]\n    autostart: true\n"));
        await using (d)
        {
            await d.WaitForLineAsync("Added external app (ID: 1, Command: sleep 1000)");
            var pid = PidOf(await d.CliAsync("la"), 1);
            await d.Stdin.WriteLineAsync("quit");
            Assert.Equal(0, await d.WaitForExitAsync());
            Assert.True(await Pids.WaitGoneAsync(pid, TimeSpan.FromSeconds(10)));
        }
    }

    [Fact]
    public async Task CliShell_RunsSeveralCommands()
    {
        await using var d = await DaemonProcess.StartAsync(WriteConfig(TestConfigs.App("t", "sleep")));
        var r = await d.CliShellAsync("apps\ns t\nping zz\nla\nquit\n");
        Assert.Equal(0, r.ExitCode);
        Assert.Contains("Added external app (ID: 1", r.Stdout, StringComparison.Ordinal);
        Assert.Contains("error 11 (BadId)", r.Stderr, StringComparison.Ordinal);
        Assert.Contains("viscript> ", r.Stdout, StringComparison.Ordinal);
    }
}
