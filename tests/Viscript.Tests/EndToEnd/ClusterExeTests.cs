using Viscript.Tests.Support;

namespace Viscript.Tests.EndToEnd;

/// <summary>
/// Two built viscript executables on loopback, joined as docs/operations.md "One console for several hosts" shows:
/// the primary's <c>viscript cli</c> starts, pings, follows and stops an app on the agent; the agent's death shows as
/// unreachable, and a new agent process is current again.
/// </summary>
[Trait("Category", "E2E")]
public sealed class ClusterExeTests : ExeTestBase
{
    [Fact]
    public async Task TwoDaemons_OneCli_ManagesAppsOnBoth()
    {
        var primaryDir = Directory.CreateDirectory(Path.Combine(Dir.Path, "primary")).FullName;
        var agentDir = Directory.CreateDirectory(Path.Combine(Dir.Path, "agent")).FullName;
        var config = TestConfigs.Build(TestConfigs.App("t", "sleep"));
        var primaryConfig = Dir.Write("primary/config.yaml", config);
        // The agent also has an app that never writes (it would not notice its daemon's death on its own).
        var agentConfig = Dir.Write("agent/config.yaml", TestConfigs.Build(TestConfigs.App("t", "sleep"),
            "  keeper:\n    path: /bin/sleep\n    default_args: [\"1000\"]\n    stop_timeout: 2s\n"));
        var primaryKeyFile = Path.Combine(primaryDir, "cluster.key");
        var agentKeyFile = Path.Combine(agentDir, "cluster.key");

        // viscript key: prints the public key (making the key file on first use).
        var primaryKey = (await DaemonProcess.RunAsync(["key", "--cluster-key", primaryKeyFile])).Stdout.Trim();
        var agentKeyRun = await DaemonProcess.RunAsync(["key", "--cluster-key", agentKeyFile]);
        Assert.True(agentKeyRun.ExitCode == 0, agentKeyRun.ToString());
        var agentKey = agentKeyRun.Stdout.Trim();
        Assert.Matches("^[0-9a-f]{64}$", agentKey);
        Assert.Equal(agentKey, (await DaemonProcess.RunAsync(["key", "--cluster-key", agentKeyFile])).Stdout.Trim());
        var allow = Dir.Write("primary/agents.allow", $"b {agentKey}\n");

        await using var primary = await DaemonProcess.StartAsync(primaryConfig, "--name", "main", "--cluster-key", primaryKeyFile,
            "--agents", "127.0.0.1:0", "--agents-allow", allow);
        var clusterLine = await primary.WaitForLineAsync("viscript: cluster primary");
        Assert.EndsWith($"key {primaryKey}", clusterLine, StringComparison.Ordinal);
        var agentsAddress = clusterLine.Split(' ')[5];

        string[] agentArgs = ["--cluster-key", agentKeyFile, "--join", agentsAddress, "--primary-key", primaryKey];
        var agent = await DaemonProcess.StartAsync(agentConfig, agentArgs);
        try
        {
            await primary.WaitForLineAsync(l => l.Contains("host b: connected", StringComparison.Ordinal), 60);
            var start = await primary.CliAsync("s", "b:t");
            Assert.True(start.ExitCode == 0, start.ToString());
            Assert.StartsWith("Added external app (ID: b:1, Command: ", start.Stdout, StringComparison.Ordinal);
            await primary.WaitForLineAsync("[event] b: signal client 1 registered", 60);
            Assert.Equal(0, (await primary.CliAsync("s", "t")).ExitCode);

            var la = await primary.CliAsync("la");
            Assert.Equal(0, la.ExitCode);
            Assert.Matches(@"^HOST\s+ID\s+APP", la.Lines[0]);
            Assert.Contains(la.Lines, l => System.Text.RegularExpressions.Regex.IsMatch(l, @"^b\s+1\s+t\s+\d+\s+Running\s+yes"));
            Assert.Contains(la.Lines, l => System.Text.RegularExpressions.Regex.IsMatch(l, @"^main\s+1\s+t\s+\d+\s+"));
            var ping = await primary.CliAsync("ping", "b:1");
            Assert.True(ping.ExitCode == 0, ping.ToString());
            var hosts = await primary.CliAsync("hosts");
            Assert.Contains(hosts.Lines, l => l.StartsWith("b ", StringComparison.Ordinal) && l.Contains(" connected ", StringComparison.Ordinal));
            Assert.Equal(70, (await primary.CliAsync("ping", "nohost:1")).ExitCode);

            var sd = await primary.CliAsync("sd", "b:1");
            Assert.True(sd.ExitCode == 0, sd.ToString());
            Assert.EndsWith("[ b:1 ] t Exited(0)", sd.Stdout.TrimEnd(), StringComparison.Ordinal);

            // The agent dies (SIGKILL) while it has an app: unreachable, commands fail fast with 71.
            var keep = await primary.CliAsync("s", "b:keeper");
            Assert.True(keep.ExitCode == 0, keep.ToString());
            var keeperRow = (await primary.CliAsync("la")).Lines.Single(l => System.Text.RegularExpressions.Regex.IsMatch(l, @"^b\s+\d+\s+keeper\s"));
            var keeper = ProcStat.Read(int.Parse(keeperRow.Split(' ', StringSplitOptions.RemoveEmptyEntries)[3], System.Globalization.CultureInfo.InvariantCulture))!.Value;
            agent.Signal(9);
            await agent.WaitForExitAsync();
            await primary.WaitForLineAsync(l => l.Contains("host b: unreachable", StringComparison.Ordinal), 60);
            var unreachable = await primary.CliAsync("ping", "b:1");
            Assert.Equal(71, unreachable.ExitCode);
            Assert.Contains("unreachable", unreachable.Stderr, StringComparison.Ordinal);

            // A new agent process with the same key: connected again, its table (empty, a new daemon) current.
            await agent.DisposeAsync();
            agent = await DaemonProcess.StartAsync(agentConfig, agentArgs);
            await primary.WaitForLineAsync(l => l.Contains("host b: connected", StringComparison.Ordinal) && primary.Lines.Count(x => x.Contains("host b: connected", StringComparison.Ordinal)) >= 2, 60);
            Assert.Equal(0, (await primary.CliAsync("s", "b:t")).ExitCode);
            // The app the killed agent left was stopped by the new agent (issue 12.6), and no row of it is listed twice.
            Assert.True(await Pids.WaitGoneAsync(keeper.Pid, TimeSpan.FromSeconds(60)) || !keeper.StillInProc, $"keeper pid {keeper.Pid} left by the killed agent still runs");
            var after = await primary.CliAsync("la");
            Assert.DoesNotContain(after.Lines, l => l.Contains(" keeper ", StringComparison.Ordinal) || l.Contains("Unreachable", StringComparison.Ordinal));
        }
        finally
        {
            await agent.DisposeAsync();
        }
    }
}
