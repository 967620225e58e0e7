using System.Text.RegularExpressions;
using Skywire.TestKit.Netns;
using Viscript.Tests.Support;

namespace Viscript.Tests.EndToEnd;

/// <summary>
/// The cluster across network namespaces made by the test (issue 16): two "hosts", each running its own built
/// viscript, the primary's cli managing both; the network between them cut and restored.
/// </summary>
[Trait("Category", "E2E")]
public sealed class ClusterNetnsTests : ExeTestBase
{
    [Fact]
    public async Task TwoHosts_CutNetwork_AgentUnreachable_AppsKeepRunning_ThenCurrentAgain()
    {
        Assert.SkipUnless(NetworkNamespaces.Unsupported() is null, NetworkNamespaces.Unsupported() ?? "");
        using var net = new NetworkNamespaces("vs");
        var (mainNs, mainAddress) = net.AddHost("main");
        var (agentNs, agentAddress) = net.AddHost("b");
        Directory.CreateDirectory(Path.Combine(Dir.Path, "main"));
        Directory.CreateDirectory(Path.Combine(Dir.Path, "b"));
        var config = TestConfigs.Build(TestConfigs.App("t", "sleep"));
        var mainConfig = Dir.Write("main/config.yaml", config);
        var agentConfig = Dir.Write("b/config.yaml", config);
        var mainKey = Path.Combine(Dir.Path, "main", "cluster.key");
        var agentKey = Path.Combine(Dir.Path, "b", "cluster.key");
        var primaryKey = (await DaemonProcess.RunAsync(["key", "--cluster-key", mainKey])).Stdout.Trim();
        var allow = Dir.Write("main/agents.allow", $"b {(await DaemonProcess.RunAsync(["key", "--cluster-key", agentKey])).Stdout.Trim()}\n");

        await using var primary = await DaemonProcess.StartInNamespaceAsync(mainNs, mainConfig, "--name", "main", "--cluster-key", mainKey,
            "--agents", $"{mainAddress}:0", "--agents-allow", allow);
        var agentsAddress = (await primary.WaitForLineAsync("viscript: cluster primary")).Split(' ')[5];
        Assert.StartsWith(mainAddress + ":", agentsAddress, StringComparison.Ordinal);
        await using var agent = await DaemonProcess.StartInNamespaceAsync(agentNs, agentConfig, "--cluster-key", agentKey, "--join", agentsAddress, "--primary-key", primaryKey);
        await primary.WaitForLineAsync(l => l.Contains("host b: connected", StringComparison.Ordinal), 60);

        var start = await primary.CliAsync("s", "b:t");
        Assert.True(start.ExitCode == 0, start.ToString());
        await primary.WaitForLineAsync("[event] b: signal client 1 registered", 60);
        var hosts = await primary.CliAsync("hosts");
        Assert.Contains(hosts.Lines, l => Regex.IsMatch(l, $@"^b\s+connected\s.*\s{Regex.Escape(agentAddress)}:\d+$"));
        Assert.Equal(0, (await primary.CliAsync("ping", "b:1")).ExitCode);
        var logs = await primary.CliAsync("logs", "b:1");
        Assert.Contains("testapp sleeping", logs.Stdout, StringComparison.Ordinal);

        // Cut the network: no FIN, no RST; the silence timeout finds it.
        net.SetLink(agentNs, 2, up: false);
        await primary.WaitForLineAsync(l => l.Contains("host b: unreachable", StringComparison.Ordinal), 90);
        var ping = await primary.CliAsync("ping", "b:1");
        Assert.Equal(71, ping.ExitCode);
        Assert.Contains(primary.Lines, l => l.Contains("host b: unreachable", StringComparison.Ordinal));
        var la = await primary.CliAsync("la");
        Assert.Contains(la.Lines, l => Regex.IsMatch(l, @"^b\s+1\s+t\s+\d+\s+Unreachable\s"));
        // Its app keeps running under the agent (asked on the agent's own control API).
        Assert.Contains((await agent.CliAsync("la")).Lines, l => Regex.IsMatch(l, @"^1\s+t\s+\d+\s+Running\s"));

        // Restore it: the agent reconnects by itself and the primary's view is current again.
        net.SetLink(agentNs, 2, up: true);
        await primary.WaitForLineAsync(l => l.Contains("host b: connected", StringComparison.Ordinal)
            && primary.Lines.Count(x => x.Contains("host b: connected", StringComparison.Ordinal)) >= 2, 90);
        Assert.Contains((await primary.CliAsync("la")).Lines, l => Regex.IsMatch(l, @"^b\s+1\s+t\s+\d+\s+Running\s"));
        var sd = await primary.CliAsync("sd", "b:1");
        Assert.True(sd.ExitCode == 0, sd.ToString());
        Assert.EndsWith("[ b:1 ] t Exited(0)", sd.Stdout.TrimEnd(), StringComparison.Ordinal);
    }
}
