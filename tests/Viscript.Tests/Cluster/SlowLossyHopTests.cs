using Skywire.TestKit;
using Viscript.Tests.Support;

namespace Viscript.Tests.Cluster;

/// <summary>
/// Issue 16's leftover: an agent behind a slow, lossy TCP hop (the TestKit relay in front of the primary's agent port:
/// 150 ms each way, and its connections cut again and again, which is what loss means to a TCP hop). The agent joins
/// through it, the primary drives its apps, every cut shows the host unreachable, and each reconnection brings the
/// primary's view up to date again.
/// </summary>
public sealed class SlowLossyHopTests
{
    [Fact]
    public async Task AgentBehindASlowHopWhoseConnectionsDie_ReconnectsEachTime_AndStaysCurrent()
    {
        TcpFaultRelay? relay = null;
        try
        {
            await using var c = await ClusterFixture.StartAsync(target =>
            {
                relay = new TcpFaultRelay(target, TimeSpan.FromMilliseconds(150));
                return relay.ListenEndPoint;
            });
            using var sub = c.Primary.Host.Events.Subscribe();
            Assert.Equal(0, (await c.CommandAsync("s", "b:t")).Ok!.Code);
            await InProcessDaemon.WaitAsync(sub, e => e is { Kind: "registered", Host: "b", Id: 1 });

            // A round trip to the agent's app crosses the slow hop twice.
            var started = DateTime.UtcNow;
            Assert.StartsWith("ping time ", Assert.Single((await c.CommandAsync("ping", "b:1")).Ok!.Lines), StringComparison.Ordinal);
            Assert.True(DateTime.UtcNow - started >= TimeSpan.FromMilliseconds(300), "the relay's delay was not on the path");

            for (var cut = 1; cut <= 3; cut++)
            {
                Assert.True(relay!.KillAll() >= 1, $"cut {cut}: no agent connection crossed the relay");
                await InProcessDaemon.WaitAsync(sub, e => e is { Kind: "host", Host: "b", To: "unreachable" });
                // While cut off, the agent's table changes; the agent's own app keeps running.
                c.Agent.Host.Supervisor.Start("t", null);
                await InProcessDaemon.WaitAsync(sub, e => e is { Kind: "host", Host: "b", To: "connected" });
                var ids = c.Primary.Host.Hosts.Resolve("b").List().Select(r => r.Id).ToList();
                Assert.Equal(Enumerable.Range(1, cut + 1).Select(i => (ulong)i), ids);
            }

            Assert.Equal("Running", c.Agent.Host.Supervisor.Get(1).State);
            var la = (await c.CommandAsync("la", "b")).Ok!.Lines;
            Assert.Equal(5, la.Count); // header + 4 processes
            Assert.StartsWith("ping time ", Assert.Single((await c.CommandAsync("ping", "b:1")).Ok!.Lines), StringComparison.Ordinal);
            Assert.True(relay!.Accepted >= 4, $"the agent reconnected through the relay ({relay.Accepted} connections)");
        }
        finally
        {
            relay?.Dispose();
        }
    }
}
