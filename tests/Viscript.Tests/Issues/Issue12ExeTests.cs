using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using Viscript.Core.Control;
using Viscript.Tests.EndToEnd;
using Viscript.Tests.Support;

namespace Viscript.Tests.Issues;

/// <summary>
/// Issue 12.4 and 12.3 through the built executable: a real unprivileged local user (nobody, through setpriv) against
/// a daemon running as root, and a connection flood with the descriptor limit lowered (prlimit).
/// </summary>
[Trait("Category", "E2E")]
public sealed class Issue12ExeTests : ExeTestBase
{
    private const int Nobody = 65534;

    private static int GetUid()
    {
        foreach (var line in File.ReadLines("/proc/self/status"))
        {
            if (line.StartsWith("Uid:", StringComparison.Ordinal))
            {
                return int.Parse(line.Split('\t', StringSplitOptions.RemoveEmptyEntries)[1], System.Globalization.CultureInfo.InvariantCulture);
            }
        }
        return -1;
    }

    private static async Task<(int Code, string Stdout, string Stderr)> RunAsync(string file, params string[] args)
    {
        var psi = new ProcessStartInfo(file) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var a in args)
        {
            psi.ArgumentList.Add(a);
        }
        using var p = Process.Start(psi)!;
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(90));
        try
        {
            await p.WaitForExitAsync(cts.Token);
        }
        catch (OperationCanceledException)
        {
            p.Kill(entireProcessTree: true);
            throw new TimeoutException($"{file} {string.Join(' ', args)} did not finish");
        }
        return (p.ExitCode, await stdout, await stderr);
    }

    private static string[] AsNobody(params string[] command) =>
        ["--reuid=" + Nobody, "--regid=" + Nobody, "--clear-groups", .. command];

    [Fact]
    public async Task LocalUnprivilegedUser_CannotStartAnything_NorReadTheToken()
    {
        Assert.SkipUnless(GetUid() == 0, "needs root to act as the unprivileged user nobody (setpriv)");
        Assert.SkipUnless(File.Exists("/usr/bin/setpriv"), "setpriv (util-linux) is not installed");
        Assert.SkipUnless(File.Exists("/usr/bin/curl"), "curl is not installed");
        var config = Dir.Write("config.yaml", "apps:\n  sh:\n    path: /bin/sh\n    default_args: [\"-c\", \"true\"]\n");
        await using var d = await DaemonProcess.StartAsync(config);
        var marker = Path.Combine(Dir.Path, "pwned-by-nobody");
        var body = $$"""{"line": "s sh -c \"id > {{marker}}\""}""";

        // curl as nobody, straight at the loopback control port (the attack of issue 12.4).
        var curl = await RunAsync("/usr/bin/setpriv", AsNobody("/usr/bin/curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "-X", "POST",
            "-H", "Content-Type: application/json", "--data", body, $"{d.ControlUrl}/api/command"));
        Assert.Equal("401", curl.Stdout);
        var start = await RunAsync("/usr/bin/setpriv", AsNobody("/usr/bin/curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "-X", "POST",
            "-H", "Content-Type: application/json", "--data", """{"app": "sh", "args": ["-c", "id"]}""", $"{d.ControlUrl}/api/processes"));
        Assert.Equal("401", start.Stdout);

        // viscript cli as nobody, with the daemon's token folder in its environment: it cannot read the token.
        var cliInfo = d.CliStartInfo("s", "sh", "-c", $"id > {marker}");
        var cli = await RunAsync("/usr/bin/setpriv", AsNobody([cliInfo.FileName, .. cliInfo.ArgumentList]));
        Assert.Equal(40, cli.Code);
        var tokenFile = ControlToken.DefaultPath(d.ControlEndPoint, d.RuntimeDirectory);
        var cat = await RunAsync("/usr/bin/setpriv", AsNobody("/bin/cat", tokenFile));
        Assert.NotEqual(0, cat.Code);
        Assert.DoesNotContain(d.Token, cat.Stdout, StringComparison.Ordinal);

        // Nothing was started, nothing was written; the owner (root, with the token file) is served as before.
        Assert.False(File.Exists(marker), "a command of nobody ran as root");
        using var owner = d.Client();
        Assert.Empty(await owner.ProcessesAsync());
        // The token is on no command line (ps shows every command line to every user).
        Assert.DoesNotContain(d.Token, File.ReadAllText($"/proc/{d.Pid}/cmdline"), StringComparison.Ordinal);
    }

    [Fact]
    public async Task ConnectionFlood_BeyondTheDescriptorLimit_DaemonStaysUpAndServesItsOwner()
    {
        Assert.SkipUnless(File.Exists("/usr/bin/prlimit"), "prlimit (util-linux) is not installed");
        var config = WriteConfig(TestConfigs.App("t", "sleep"));
        await using var d = await DaemonProcess.StartWrappedAsync(config, ["/usr/bin/prlimit", "--nofile=256:256"]);
        var server = new IPEndPoint(IPAddress.Loopback, d.ControlEndPoint.Port);
        var flood = new List<Socket>();
        try
        {
            // More idle connections than the process has descriptors, from another loopback source.
            for (var i = 0; i < 600; i++)
            {
                var s = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
                flood.Add(s);
                s.Bind(new IPEndPoint(IPAddress.Parse("127.0.0.2"), 0));
                using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(5));
                try
                {
                    await s.ConnectAsync(server, cts.Token);
                }
                catch (Exception ex) when (ex is SocketException or OperationCanceledException)
                {
                    // The backlog is full: the flood has done its part.
                }
            }

            // While the flood holds: the owner's cli works.
            var la = await d.CliAsync("la");
            Assert.True(la.ExitCode == 0, $"{la}\nviscript alive: {Pids.IsAlive(d.Pid)}\nviscript stderr:\n{d.Stderr}");
            Assert.Equal(0, (await d.CliAsync("s", "t")).ExitCode);
        }
        finally
        {
            flood.ForEach(s => s.Dispose());
        }

        // And afterwards.
        var after = await d.CliAsync("la");
        Assert.True(after.ExitCode == 0, after.ToString());
        Assert.Matches(@"^1\s+t\s+\d+\s+(Starting|Running)", after.Lines[1]);
        Assert.DoesNotContain("Out of memory", d.Stderr, StringComparison.Ordinal);
        Assert.True(Pids.IsAlive(d.Pid), "viscript died under the flood");
    }

    /// <summary>
    /// A cluster primary's agent port flooded from many loopback sources under a descriptor limit of 256: before, the
    /// port held up to 256 connections whatever the limit, took the last descriptors (the owner's cli got no answer)
    /// and the runtime aborted the daemon ("Out of memory."). Now it keeps to the descriptor budget.
    /// </summary>
    [Fact]
    public async Task AgentPortFlood_BeyondTheDescriptorLimit_DaemonStaysUpAndServesItsOwner()
    {
        Assert.SkipUnless(File.Exists("/usr/bin/prlimit"), "prlimit (util-linux) is not installed");
        var config = WriteConfig(TestConfigs.App("t", "sleep"));
        var allow = Dir.Write("agents.allow", "# nobody yet\n");
        await using var d = await DaemonProcess.StartWrappedAsync(config, ["/usr/bin/prlimit", "--nofile=256:256"],
            "--agents", "127.0.0.1:0", "--agents-allow", allow, "--cluster-key", Path.Combine(Dir.Path, "cluster.key"));
        var line = await d.WaitForLineAsync("agents 127.0.0.1:");
        var port = int.Parse(System.Text.RegularExpressions.Regex.Match(line, @"agents 127\.0\.0\.1:(\d+)").Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture);
        var server = new IPEndPoint(IPAddress.Loopback, port);
        var flood = new List<Socket>();
        try
        {
            // More idle connections than the process has descriptors, from 32 loopback sources (16 each are admitted).
            for (var i = 0; i < 600; i++)
            {
                var s = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
                flood.Add(s);
                s.Bind(new IPEndPoint(IPAddress.Parse($"127.0.1.{1 + (i % 32)}"), 0));
                using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(5));
                try
                {
                    await s.ConnectAsync(server, cts.Token);
                }
                catch (Exception ex) when (ex is SocketException or OperationCanceledException)
                {
                    // The backlog is full: the flood has done its part.
                }
            }

            // While the flood holds: the owner's cli works.
            var la = await d.CliAsync("la");
            Assert.True(la.ExitCode == 0, $"{la}\nviscript alive: {Pids.IsAlive(d.Pid)}\nviscript stderr:\n{d.Stderr}");
        }
        finally
        {
            flood.ForEach(s => s.Dispose());
        }

        var after = await d.CliAsync("la");
        Assert.True(after.ExitCode == 0, after.ToString());
        Assert.DoesNotContain("Out of memory", d.Stderr, StringComparison.Ordinal);
        Assert.True(Pids.IsAlive(d.Pid), "viscript died under the flood");
    }
}
