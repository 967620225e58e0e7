using System.Net;
using Microsoft.Extensions.Time.Testing;
using Skywire.Core.Links;
using Skywire.Protocol.Links;
using Skywire.TestKit;
using Skywire.TestKit.Logging;

namespace Skywire.Tests.Links;

/// <summary>Under load, a source that proved its address gets a few handshakes a second, not the receive thread.</summary>
public sealed class HandshakeRateLimiterTests
{
    [Fact]
    public void Bucket_PerIpAddress_BurstThenRate_RefillsWithTime()
    {
        var time = new FakeTimeProvider();
        var limiter = new HandshakeRateLimiter(time);
        var host = new IPEndPoint(IPAddress.Parse("192.0.2.7"), 1000).Serialize();
        var samHostOtherPort = new IPEndPoint(IPAddress.Parse("192.0.2.7"), 2000).Serialize();
        var other = new IPEndPoint(IPAddress.Parse("192.0.2.8"), 1000).Serialize();

        for (var i = 0; i < HandshakeRateLimiter.Burst; i++)
        {
            Assert.True(limiter.Allow(i % 2 == 0 ? host : samHostOtherPort), $"init {i} of the burst");
        }

        Assert.False(limiter.Allow(host));
        Assert.False(limiter.Allow(samHostOtherPort)); // the port does not buy another bucket
        Assert.True(limiter.Allow(other));             // another host has its own

        time.Advance(TimeSpan.FromSeconds(1.0 / HandshakeRateLimiter.PerSecond));
        Assert.True(limiter.Allow(host));
        Assert.False(limiter.Allow(host));

        // Idle addresses are forgotten after a second: the table does not grow with history.
        time.Advance(TimeSpan.FromSeconds(2));
        Assert.True(limiter.Allow(new IPEndPoint(IPAddress.Parse("2001:db8::1"), 5).Serialize()));
        Assert.Equal(1, limiter.Count);
    }

    [Fact]
    public void Table_IsBounded_NewAddressesRefusedWhileFull()
    {
        var time = new FakeTimeProvider();
        var limiter = new HandshakeRateLimiter(time);
        for (var i = 0; i < HandshakeRateLimiter.MaxEntries; i++)
        {
            Assert.True(limiter.Allow(new IPEndPoint(new IPAddress(BitConverter.GetBytes(0x0a000000 + i)), 1).Serialize()));
        }

        Assert.False(limiter.Allow(new IPEndPoint(IPAddress.Parse("198.51.100.1"), 1).Serialize()));
        Assert.Equal(HandshakeRateLimiter.MaxEntries, limiter.Count);
        time.Advance(TimeSpan.FromSeconds(1));
        Assert.True(limiter.Allow(new IPEndPoint(IPAddress.Parse("198.51.100.1"), 1).Serialize()));
    }

    [Fact]
    public async Task UnderLoad_OneInitReplayedAThousandTimes_CostsAFewHandshakes_LinkComesUpAnyway()
    {
        var ct = TestContext.Current.CancellationToken;
        using var log = new TestLog(TestContext.Current.TestOutputHelper!.WriteLine);
        var network = new InMemoryUdpNetwork();
        var inits = new System.Collections.Concurrent.ConcurrentQueue<byte[]>();
        network.Filter = d =>
        {
            if (d.Data[0] == (byte)LinkPacketType.HandshakeInit && d.Data.AsSpan(LinkLimits.HandshakeInitMac2Offset).IndexOfAnyExcept((byte)0) >= 0)
            {
                inits.Enqueue(d.Data.ToArray()); // an init with mac2: one that passes the cookie check from its address
            }

            return true;
        };
        await using var a = new TestNode(log: log, bind: network.CreateBind());
        await using var b = new TestNode(TestNode.Fast with { HandshakesPerSecondBeforeCookies = 0 }, log, network.CreateBind());
        await a.Plane.OpenLinkAsync(b.Key.Public, b.EndPoint, ct);
        Assert.True(inits.TryPeek(out var init));

        // The attacker is a's own address replaying a's init (it could be any host that got a cookie).
        var started = DateTime.UtcNow;
        var before = b.Plane.Statistics.StaleHandshake + b.Plane.Statistics.HandshakeFailed;
        const int replays = 1000;
        for (var i = 0; i < replays; i++)
        {
            network.Inject(a.EndPoint, b.EndPoint, init);
        }

        await Wait.UntilAsync(() => b.Plane.Statistics.RateLimited + b.Plane.Statistics.StaleHandshake + b.Plane.Statistics.HandshakeFailed - before >= replays, what: "every replay judged");
        var elapsed = DateTime.UtcNow - started;
        var worked = b.Plane.Statistics.StaleHandshake + b.Plane.Statistics.HandshakeFailed - before;
        Assert.InRange(worked, 0, HandshakeRateLimiter.Burst + (long)Math.Ceiling(elapsed.TotalSeconds * HandshakeRateLimiter.PerSecond) + 1);
        Assert.True(b.Plane.Statistics.RateLimited >= replays - worked);
        Assert.Equal(LinkState.Up, b.Plane.GetLink(a.Key.Public)!.State);
    }
}
