using Skywire.TestKit.Netns;

namespace Skywire.IntegrationTests.EndToEnd;

/// <summary>
/// Issue 17 item 2, "one name that resolves to several managers", through the built executables: two managers of one
/// mesh (one key) in their own network namespaces, on the same port, and a node and the cli in a third namespace whose
/// resolver (an /etc/hosts that `ip netns exec` mounts from /etc/netns/NS) gives one name both managers' addresses.
/// The node is started with that one name; the manager it registered with is killed (SIGKILL) and the node registers
/// with the other by the same name; the cli reaches the survivor by the same name.
/// </summary>
[Trait("Category", "E2E")]
public sealed class ManagerNameProcessTests() : ExecutableTestBase("skywire-manager-name-")
{
    private static readonly TimeSpan Limit = TimeSpan.FromSeconds(60);
    private const string Name = "managers.skywire.test";

    [Fact]
    public async Task OneNameResolvingToTwoManagers_NodeFailsOverByThatName()
    {
        if (NetworkNamespaces.Unsupported() is { } reason)
        {
            Assert.Skip(reason);
        }

        using var net = new NetworkNamespaces();
        var managerHosts = new[] { net.AddHost("m1"), net.AddHost("m2") };
        var (nodeNs, nodeAddress) = net.AddHost("n");
        var etc = Directory.CreateDirectory(Path.Combine("/etc/netns", nodeNs)).FullName;
        var processes = new List<SkywireProcess>();
        try
        {
            // The name's two addresses, as a DNS name with two A records would give them.
            await File.WriteAllTextAsync(Path.Combine(etc, "hosts"),
                $"127.0.0.1 localhost\n{managerHosts[0].Address} {Name}\n{managerHosts[1].Address} {Name}\n", TestContext.Current.CancellationToken);

            string managerKey;
            await using (var keygen = SkywireProcess.Start(null, ["keygen", "--out", FilePath("manager.json")]))
            {
                Assert.Equal(0, await keygen.WaitForExitAsync(Limit));
                managerKey = keygen.StdoutText.Split('\n')[0].Trim();
            }

            var first = Start(processes, managerHosts[0].Namespace, ["manager", "--listen", managerHosts[0].Address + ":0", "--key", FilePath("manager.json")]);
            var port = ManagerLine().Match(await first.WaitForLineAsync("listening on", Limit)).Groups[1].Value;
            var second = Start(processes, managerHosts[1].Namespace, ["manager", "--listen", $"{managerHosts[1].Address}:{port}", "--key", FilePath("manager.json")]);
            await second.WaitForLineAsync("listening on", Limit);
            var managers = new[] { first, second };

            var managerAt = $"{managerKey}@{Name}:{port}";
            var node = Start(processes, nodeNs, ["node", "--manager", managerAt, "--listen", nodeAddress + ":0", "--apps", "127.0.0.1:0",
                "--app-token-file", FilePath("n.token"), "--key", FilePath("n.json")]);
            var nodeKey = NodeLine().Match(await node.WaitForLineAsync("apps 127.0.0.1", Limit)).Groups[1].Value;
            // Whichever address came first took the node; then it is killed and the node goes to the other.
            var home = await OnlineAtAsync(nodeNs, managerKey, [.. managerHosts.Select(h => $"{h.Address}:{port}")], nodeKey, null);
            await managers[home].DisposeAsync();
            var survivor = await OnlineAtAsync(nodeNs, managerKey, [$"{managerHosts[1 - home].Address}:{port}"], nodeKey, node);
            Assert.Equal(0, survivor);

            // The cli by the same name reaches the survivor and sees the node online there.
            var deadline = DateTime.UtcNow + Limit;
            while (true)
            {
                await using var cli = SkywireProcess.Start(nodeNs, ["cli", "--manager", managerAt, "--key", FilePath("manager.json"), "nodes"]);
                var code = await cli.WaitForExitAsync(Limit);
                if (code == 0 && cli.StdoutText.Split('\n').Any(l => l.StartsWith(nodeKey, StringComparison.Ordinal) && l.Contains(" online", StringComparison.Ordinal)))
                {
                    break;
                }

                Assert.True(DateTime.UtcNow < deadline, $"cli by name: exit {code}\n{cli.StdoutText}\n{cli.Stderr}");
                await Task.Delay(200, TestContext.Current.CancellationToken);
            }
        }
        finally
        {
            foreach (var p in processes)
            {
                await p.DisposeAsync();
            }

            Directory.Delete(etc, recursive: true);
        }
    }

    /// <summary>Asks each manager (`skywire cli nodes`, from the node's namespace) until one lists the node online; its index.</summary>
    private async Task<int> OnlineAtAsync(string ns, string managerKey, string[] managers, string nodeKey, SkywireProcess? node)
    {
        var deadline = DateTime.UtcNow + Limit;
        while (true)
        {
            for (var i = 0; i < managers.Length; i++)
            {
                await using var cli = SkywireProcess.Start(ns, ["cli", "--manager", $"{managerKey}@{managers[i]}", "--key", FilePath("manager.json"), "nodes"]);
                if (await cli.WaitForExitAsync(Limit) == 0
                    && cli.StdoutText.Split('\n').Any(l => l.StartsWith(nodeKey, StringComparison.Ordinal) && l.Contains(" online", StringComparison.Ordinal)))
                {
                    return i;
                }
            }

            Assert.True(DateTime.UtcNow < deadline, $"node {nodeKey} not online at {string.Join(" or ", managers)}\nnode:\n{node?.Stderr}");
            await Task.Delay(200, TestContext.Current.CancellationToken);
        }
    }

    private static SkywireProcess Start(List<SkywireProcess> processes, string ns, IEnumerable<string> args)
    {
        var process = SkywireProcess.Start(ns, args);
        processes.Add(process);
        return process;
    }
}
