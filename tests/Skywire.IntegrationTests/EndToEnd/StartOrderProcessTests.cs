using System.Net;
using System.Net.Sockets;
using Skywire.Core.Crypto;

namespace Skywire.IntegrationTests.EndToEnd;

/// <summary>
/// Issue 13.3 through the built executables: an app started before its node, a node started before its manager, and a
/// manager restart all heal without anyone typing a command. Before issue 13 the node exited at once ("cannot register
/// with the manager: Connection refused") and the app exited ("cannot reach the node's app API").
/// </summary>
[Trait("Category", "E2E")]
public sealed class StartOrderProcessTests() : ExecutableTestBase("skywire-order-")
{
    private static readonly TimeSpan Limit = TimeSpan.FromSeconds(90);
    private static readonly Dictionary<string, string> Info = new() { ["SKYWIRE_LOG"] = "Information" };

    [Fact]
    public async Task AppBeforeNode_NodeBeforeManager_ThenManagerRestart_AllHealByThemselves()
    {
        string managerKey;
        using (var key = KeyFile.LoadOrCreate(FilePath("manager.json")))
        {
            managerKey = key.Public.ToString();
        }

        var managerPort = FreePort();
        var managerAt = $"{managerKey}@127.0.0.1:{managerPort}";
        var appsPort = FreePort();
        var processes = new List<SkywireProcess>();
        try
        {
            // 1. The app first: it waits for its node.
            var listener = Start(processes, ["app", "nc", "--node-apps", $"127.0.0.1:{appsPort}", "--token-file", FilePath("d.token"), "--name", "sink", "--listen"]);
            await listener.WaitForLineAsync("waiting for the node", Limit);

            // 2. The node next: it waits for its manager, and serves its app meanwhile.
            var d = Start(processes, ["node", "--manager", managerAt, "--key", FilePath("d.json"), "--app-token-file", FilePath("d.token"), "--apps", $"127.0.0.1:{appsPort}"], Info);
            await d.WaitForLineAsync("cannot be reached yet", Limit);
            await listener.WaitForLineAsync("listening as", Limit);
            Assert.False(d.HasExited);

            // 3. The manager last; then a second node and a link.
            var manager = Start(processes, ["manager", "--listen", $"127.0.0.1:{managerPort}", "--key", FilePath("manager.json")], Info);
            await d.WaitForLineAsync("Registered with the manager", Limit);
            var a = Start(processes, ["node", "--manager", managerAt, "--key", FilePath("a.json"), "--app-token-file", FilePath("a.token")], Info);
            var aLine = NodeLine().Match(await a.WaitForLineAsync(" apps 127.0.0.1", Limit));
            var dKey = NodeLine().Match(await d.WaitForLineAsync(" apps 127.0.0.1", Limit)).Groups[1].Value;
            await LinkAsync(["cli", "--manager", managerAt, "--key", FilePath("manager.json"), "link", aLine.Groups[1].Value, dKey], Limit);

            // 4. The manager restarts: both nodes register again and the link stands (learned from their reports).
            await manager.DisposeAsync();
            processes.Remove(manager);
            Start(processes, ["manager", "--listen", $"127.0.0.1:{managerPort}", "--key", FilePath("manager.json")], Info);
            await WaitForCountAsync(d, "Registered with the manager", 2);
            await WaitForCountAsync(a, "Registered with the manager", 2);

            // 5. A transfer over the mesh the new manager routes.
            var payload = new byte[256 * 1024];
            new Random(13).NextBytes(payload);
            // The new manager learns the links from the nodes' reports: until then a dial can find no path and fail
            // (nothing reached the listener); the user's answer, dialing again, is what the test does, up to the limit.
            var deadline = DateTime.UtcNow + Limit;
            while (true)
            {
                var dialer = Start(processes, ["app", "nc", "--node-apps", "127.0.0.1:" + aLine.Groups[2].Value, "--token-file", FilePath("a.token"), "--name", "src", "--to", $"{dKey}/sink"],
                    stdin: new MemoryStream(payload));
                if (await dialer.WaitForExitAsync(Limit) == 0)
                {
                    break;
                }

                Assert.True(DateTime.UtcNow < deadline, "the dial kept failing after the manager restart:\n" + dialer.Stderr);
                await Task.Delay(500);
            }

            Assert.Equal(0, await listener.WaitForExitAsync(Limit));
            Assert.Equal(payload, listener.Stdout);
            Assert.False(d.HasExited);
            Assert.False(a.HasExited);
        }
        finally
        {
            foreach (var p in processes)
            {
                await p.DisposeAsync();
            }
        }
    }

    private static SkywireProcess Start(List<SkywireProcess> processes, IEnumerable<string> args, IReadOnlyDictionary<string, string>? environment = null, Stream? stdin = null)
    {
        var process = SkywireProcess.Start(null, args, stdin, environment);
        processes.Add(process);
        return process;
    }

    private static async Task WaitForCountAsync(SkywireProcess process, string marker, int count)
    {
        var deadline = DateTime.UtcNow + Limit;
        while (process.Stderr.Split('\n').Count(l => l.Contains(marker, StringComparison.Ordinal)) < count)
        {
            Assert.False(process.HasExited, "the process exited:\n" + process.Stderr);
            Assert.True(DateTime.UtcNow < deadline, $"'{marker}' not seen {count} times:\n{process.Stderr}");
            await Task.Delay(100);
        }
    }

    private static int FreePort()
    {
        using var s = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        s.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        return ((IPEndPoint)s.LocalEndPoint!).Port;
    }
}
