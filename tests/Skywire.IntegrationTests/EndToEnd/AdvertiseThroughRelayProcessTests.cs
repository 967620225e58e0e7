using System.Net;
using System.Text.RegularExpressions;
using Skywire.TestKit;

namespace Skywire.IntegrationTests.EndToEnd;

/// <summary>
/// Issue 13.2: `skywire node --advertise HOST:PORT` puts an impairment relay (the TestKit's UdpFaultRelay: 40 ms each
/// way, 2 % loss) in front of a real node process: the manager tells peers the relay's address, the link comes up
/// through it, and a stream crosses it byte-exact.
/// </summary>
public sealed partial class AdvertiseThroughRelayProcessTests() : ExecutableTestBase("skywire-advertise-e2e-")
{
    private static readonly TimeSpan Limit = TimeSpan.FromSeconds(90);

    [GeneratedRegex(@"manager ([0-9a-f]{66}) listening")]
    private static partial Regex ManagerKey();

    [GeneratedRegex(@"node ([0-9a-f]{66}) links (\S+) apps 127\.0\.0\.1:(\d+)")]
    private static partial Regex NodeStartLine();

    [Fact]
    public async Task NodeBehindRelay_LinkAndStreamGoThroughTheAdvertisedAddress()
    {
        var faults = new FaultOptions { Delay = TimeSpan.FromMilliseconds(40), DropRate = 0.02, Seed = 13 };
        // The node's port is known only once it runs: the relay starts first and learns its target then.
        using var relay = new UdpFaultRelay(new IPEndPoint(IPAddress.Loopback, 9), faults, faults with { Seed = 14 });
        var processes = new List<SkywireProcess>();
        try
        {
            var manager = Start(processes, ["manager", "--listen", "127.0.0.1:0", "--key", FilePath("manager.json")]);
            var managerLine = await manager.WaitForLineAsync("listening on", Limit);
            var managerAt = $"{ManagerKey().Match(managerLine).Groups[1].Value}@127.0.0.1:{ManagerLine().Match(managerLine).Groups[1].Value}";

            var a = Start(processes, ["node", "--manager", managerAt, "--key", FilePath("a.json"), "--app-token-file", FilePath("a.token")]);
            var aLine = NodeStartLine().Match(await a.WaitForLineAsync(" apps 127.0.0.1", Limit));
            var b = Start(processes, ["node", "--manager", managerAt, "--key", FilePath("b.json"), "--app-token-file", FilePath("b.token"),
                "--advertise", relay.ListenEndPoint.ToString()]);
            var bLine = NodeStartLine().Match(await b.WaitForLineAsync(" apps 127.0.0.1", Limit));
            relay.Target = IPEndPoint.Parse(bLine.Groups[2].Value);

            string[] Cli(params string[] args) => ["cli", "--manager", managerAt, "--key", FilePath("manager.json"), .. args];
            await using (var nodes = Start(null, Cli("nodes")))
            {
                Assert.Equal(0, await nodes.WaitForExitAsync(Limit));
                Assert.Contains(relay.ListenEndPoint.ToString(), nodes.StdoutText, StringComparison.Ordinal);
                Assert.DoesNotContain(bLine.Groups[2].Value, nodes.StdoutText, StringComparison.Ordinal);
            }

            await LinkAsync(Cli("link", aLine.Groups[1].Value, bLine.Groups[1].Value), Limit);

            var payload = new byte[1024 * 1024];
            new Random(5).NextBytes(payload);
            var listener = Start(processes, ["app", "nc", "--node-apps", "127.0.0.1:" + bLine.Groups[3].Value, "--token-file", FilePath("b.token"), "--name", "sink", "--listen"]);
            await listener.WaitForLineAsync("listening as", Limit);
            var dialer = Start(processes, ["app", "nc", "--node-apps", "127.0.0.1:" + aLine.Groups[3].Value, "--token-file", FilePath("a.token"), "--name", "src",
                "--to", $"{bLine.Groups[1].Value}/sink"], new MemoryStream(payload));

            Assert.Equal(0, await dialer.WaitForExitAsync(Limit));
            Assert.Equal(0, await listener.WaitForExitAsync(Limit));
            Assert.True(listener.Stdout.AsSpan().SequenceEqual(payload), $"received {listener.Stdout.Length} of {payload.Length} bytes, or wrong ones");
            // Everything between a and b crossed the relay, in both directions, with its losses.
            Assert.True(relay.ToTarget.Delivered > payload.Length / 1400, $"{relay.ToTarget.Delivered} datagrams toward b");
            var counters = $"toward b {relay.ToTarget.Posted}/{relay.ToTarget.Delivered}/{relay.ToTarget.Dropped}, toward a {relay.FromTarget.Posted}/{relay.FromTarget.Delivered}/{relay.FromTarget.Dropped} (posted/delivered/dropped)";
            Assert.True(relay.FromTarget.Delivered > 10, counters);
            Assert.True(relay.ToTarget.Dropped > 0, counters);
        }
        finally
        {
            foreach (var p in processes)
            {
                await p.DisposeAsync();
            }
        }
    }

    private static SkywireProcess Start(List<SkywireProcess>? processes, IEnumerable<string> args, Stream? stdin = null)
    {
        var process = SkywireProcess.Start(null, args, stdin);
        processes?.Add(process);
        return process;
    }
}
