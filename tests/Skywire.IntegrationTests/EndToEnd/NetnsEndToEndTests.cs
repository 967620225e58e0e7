using System.Security.Cryptography;
using Skywire.TestKit.Netns;

namespace Skywire.IntegrationTests.EndToEnd;

/// <summary>
/// The built `skywire` executables, each node in its own network namespace (bridge + veth pairs, 10.77.x.0/24):
/// keygen, manager, three nodes, cli link/route/tables, nc across two hops, and a node refusing a manager whose
/// key is not the pinned one.
/// </summary>
[Trait("Category", "E2E")]
public sealed partial class NetnsEndToEndTests() : ExecutableTestBase("skywire-e2e-")
{
    private static readonly TimeSpan Limit = TimeSpan.FromSeconds(60);

    private static async Task<(int Code, string Out, string Err)> RunAsync(string? ns, params string[] args)
    {
        await using var p = SkywireProcess.Start(ns, args);
        var code = await p.WaitForExitAsync(Limit);
        return (code, p.StdoutText, p.Stderr);
    }

    [Fact]
    public async Task Executables_InNamespaces_NcAcrossTwoHops()
    {
        if (!OperatingSystem.IsLinux())
        {
            Assert.Skip("network namespaces need Linux");
        }

        if (NetworkNamespaces.Unsupported() is { } reason)
        {
            Assert.Skip(reason);
        }

        using var net = new NetworkNamespaces();
        var (mns, maddr) = net.AddHost("m");
        var hosts = new[] { net.AddHost("a"), net.AddHost("b"), net.AddHost("c") };

        var keygen = await RunAsync(null, "keygen", "--out", FilePath("manager.json"));
        Assert.Equal(0, keygen.Code);
        var managerKey = keygen.Out.Split('\n')[0].Trim();
        Assert.Matches("^0[23][0-9a-f]{64}$", managerKey);

        var processes = new List<SkywireProcess>();
        try
        {
            var manager = SkywireProcess.Start(mns, ["manager", "--listen", maddr + ":0", "--key", FilePath("manager.json")]);
            processes.Add(manager);
            var port = ManagerLine().Match(await manager.WaitForLineAsync("listening on", Limit)).Groups[1].Value;
            var managerAt = $"{managerKey}@{maddr}:{port}";

            var nodes = new List<(string Ns, string Key, string AppsPort, string Token)>();
            foreach (var (ns, addr) in hosts)
            {
                var name = ns[^1..];
                var node = SkywireProcess.Start(ns, ["node", "--manager", managerAt, "--listen", addr + ":0", "--apps", "127.0.0.1:0",
                    "--app-token-file", FilePath(name + ".token"), "--key", FilePath(name + ".json")]);
                processes.Add(node);
                var m = NodeLine().Match(await node.WaitForLineAsync("apps 127.0.0.1", Limit));
                nodes.Add((ns, m.Groups[1].Value, m.Groups[2].Value, FilePath(name + ".token")));
                if (OperatingSystem.IsLinux())
                {
                    if (OperatingSystem.IsLinux())
                {
                    Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(FilePath(name + ".token")));
                }
                }
            }

            string[] Cli(params string[] args) => ["cli", "--manager", managerAt, "--key", FilePath("manager.json"), .. args];
            Assert.Equal(0, (await RunAsync(mns, Cli("link", nodes[0].Key[..10], nodes[1].Key[..10]))).Code);
            Assert.Equal(0, (await RunAsync(mns, Cli("link", nodes[1].Key, nodes[2].Key))).Code);

            // Both ends of both links report them up.
            var deadline = DateTime.UtcNow + Limit;
            while (true)
            {
                var links = await RunAsync(mns, Cli("links"));
                Assert.Equal(0, links.Code);
                if (links.Out.Split('\n').Count(l => l.Contains(" up ", StringComparison.Ordinal)) >= 4)
                {
                    break;
                }

                Assert.True(DateTime.UtcNow < deadline, "links not up:\n" + links.Out);
                await Task.Delay(200);
            }

            var nodesTable = await RunAsync(mns, Cli("nodes"));
            Assert.Equal(0, nodesTable.Code);
            Assert.All(nodes, n => Assert.Contains(n.Key, nodesTable.Out, StringComparison.Ordinal));

            var listener = SkywireProcess.Start(nodes[2].Ns, ["app", "nc", "--node-apps", "127.0.0.1:" + nodes[2].AppsPort, "--token-file", nodes[2].Token, "--name", "sink", "--listen"]);
            processes.Add(listener);
            await listener.WaitForLineAsync("listening as", Limit);
            var apps = await RunAsync(mns, Cli("apps", "--by", "type", "--value", "nc"));
            Assert.Contains("sink", apps.Out, StringComparison.Ordinal);

            var payload = RandomNumberGenerator.GetBytes(3 * 1024 * 1024 + 17);
            var dialer = SkywireProcess.Start(nodes[0].Ns, ["app", "nc", "--node-apps", "127.0.0.1:" + nodes[0].AppsPort, "--token-file", nodes[0].Token, "--name", "src",
                "--to", $"{nodes[2].Key}/sink"], new MemoryStream(payload));
            processes.Add(dialer);
            Assert.True(await dialer.WaitForExitAsync(Limit) == 0, "dialer failed:\n" + dialer.Stderr);
            Assert.True(await listener.WaitForExitAsync(Limit) == 0, "listener failed:\n" + listener.Stderr);
            Assert.Equal(SHA256.HashData(payload), SHA256.HashData(listener.Stdout));

            var routes = await RunAsync(mns, Cli("routes"));
            Assert.Contains($"{nodes[0].Key[..12]} > {nodes[1].Key[..12]} > {nodes[2].Key[..12]}", routes.Out, StringComparison.Ordinal);

            // A node pinning another key refuses this manager and exits non-zero with the reason.
            var other = await RunAsync(null, "keygen", "--out", FilePath("other.json"));
            var refused = await RunAsync(hosts[0].Namespace, "node", "--manager", $"{maddr}:{port}", "--manager-key", other.Out.Split('\n')[0].Trim(),
                "--listen", hosts[0].Address + ":0", "--app-token-file", FilePath("x.token"), "--key", FilePath("x.json"));
            Assert.NotEqual(0, refused.Code);
            Assert.Contains("pinned", refused.Err, StringComparison.Ordinal);
        }
        finally
        {
            foreach (var p in processes)
            {
                await p.DisposeAsync();
            }
        }
    }
}
