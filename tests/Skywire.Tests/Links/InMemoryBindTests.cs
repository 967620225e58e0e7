using System.Net;
using System.Net.Sockets;
using Skywire.Core.Forwarding;
using Skywire.Core.Links;
using Skywire.Core.Sessions;
using Skywire.Protocol.Links;
using Skywire.TestKit;
using Skywire.TestKit.Logging;

namespace Skywire.Tests.Links;

/// <summary>
/// Handshakes and forwarding without a socket: data planes on the TestKit's in-memory binds
/// (wireguard-go's conn/bindtest idea), and the <see cref="IUdpBind"/> contract both binds keep.
/// </summary>
public sealed class InMemoryBindTests
{
    private static readonly TimeSpan Limit = TimeSpan.FromSeconds(20);

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task Bind_OpenPortZero_ReturnsThePort_AndDisposeEndsABlockedReceive(bool socket)
    {
        IUdpBind bind = socket ? new SocketUdpBind(udpOffload: false) : new InMemoryUdpNetwork().CreateBind();
        var local = bind.Open(new IPEndPoint(IPAddress.Loopback, 0));
        Assert.NotEqual(0, local.Port);
        Assert.Equal(local, bind.LocalEndPoint);
        Assert.Throws<InvalidOperationException>(() => bind.Open(new IPEndPoint(IPAddress.Loopback, 0)));

        var started = new ManualResetEventSlim();
        var receiver = Task.Factory.StartNew(() =>
        {
            var buffer = new byte[2048];
            var from = new SocketAddress(AddressFamily.InterNetwork);
            started.Set();
            return bind.TryReceive(buffer, from, out _, out _);
        }, TestContext.Current.CancellationToken, TaskCreationOptions.LongRunning, TaskScheduler.Default);
        started.Wait(TestContext.Current.CancellationToken);

        bind.Dispose();
        Assert.False(await receiver.WaitAsync(Limit, TestContext.Current.CancellationToken), "the receive reported a datagram after the close");
        Assert.False(bind.Send([1, 2, 3], local.Serialize()));
    }

    [Fact]
    public async Task Pair_LinkUp_SessionBothWays_NoSocket()
    {
        var ct = TestContext.Current.CancellationToken;
        using var log = new TestLog(TestContext.Current.TestOutputHelper!.WriteLine);
        var (bindA, bindB) = InMemoryUdpNetwork.CreatePair();
        await using var a = new TestNode(log: log, bind: bindA);
        await using var b = new TestNode(log: log, bind: bindB);
        var bUp = new TaskCompletionSource<LinkEventArgs>(TaskCreationOptions.RunContinuationsAsynchronously);
        b.Plane.LinkUp += (_, e) => bUp.TrySetResult(e);

        await a.Plane.OpenLinkAsync(b.Key.Public, b.EndPoint, ct);
        var up = await bUp.Task.WaitAsync(Limit, ct);
        Assert.Equal(a.Key.Public, up.Peer);
        Assert.Equal(a.EndPoint, up.Link.RemoteEndPoint);
        Assert.True(a.Plane.GetLink(b.Key.Public)!.Initiator);
        Assert.False(b.Plane.GetLink(a.Key.Public)!.Initiator);

        var sb = b.Plane.BindSession(new SessionRoute(5, a.Key.Public, false, a.Key.Public, 2, a.Key.Public, 1));
        var sa = await a.Plane.OpenSessionAsync(new SessionRoute(5, b.Key.Public, true, b.Key.Public, 1, b.Key.Public, 2), ct);
        var atB = new TaskCompletionSource<byte[]>(TaskCreationOptions.RunContinuationsAsynchronously);
        var atA = new TaskCompletionSource<byte[]>(TaskCreationOptions.RunContinuationsAsynchronously);
        sb.Receiver = d => atB.TrySetResult(d.ToArray());
        sa.Receiver = d => atA.TrySetResult(d.ToArray());
        sa.Send("ping"u8);
        Assert.Equal("ping"u8.ToArray(), await atB.Task.WaitAsync(Limit, ct));
        sb.Send("pong"u8);
        Assert.Equal("pong"u8.ToArray(), await atA.Task.WaitAsync(Limit, ct));
        Assert.True(b.Plane.Statistics.Delivered >= 1);
        Assert.Equal(0, a.Plane.Statistics.InternalError + b.Plane.Statistics.InternalError);
    }

    [Fact]
    public async Task UnderLoad_CookieThenMac2_NoSocket()
    {
        var ct = TestContext.Current.CancellationToken;
        using var log = new TestLog(TestContext.Current.TestOutputHelper!.WriteLine);
        var network = new InMemoryUdpNetwork();
        var replies = 0;
        network.Filter = d =>
        {
            if (d.Data[0] == (byte)LinkPacketType.CookieReply)
            {
                Interlocked.Increment(ref replies);
            }

            return true;
        };
        await using var a = new TestNode(log: log, bind: network.CreateBind());
        await using var b = new TestNode(TestNode.Fast with { HandshakesPerSecondBeforeCookies = 0 }, log, network.CreateBind());
        await a.Plane.OpenLinkAsync(b.Key.Public, b.EndPoint, ct);
        Assert.True(Volatile.Read(ref replies) >= 1);
        Assert.True(b.Plane.Statistics.CookieReplies >= 1);
        await Wait.UntilAsync(() => b.Plane.GetLink(a.Key.Public)?.State == LinkState.Up, Limit, "b's side up");
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task Relay_ForwardsAReceivedBatch_AsOneBatch_AndEveryPacketArrives(bool offloads)
    {
        var ct = TestContext.Current.CancellationToken;
        using var log = new TestLog(TestContext.Current.TestOutputHelper!.WriteLine);
        var network = new InMemoryUdpNetwork();
        var relayBind = network.CreateBind(offloads);
        await using var a = new TestNode(log: log, bind: network.CreateBind(offloads));
        await using var b = new TestNode(log: log, bind: relayBind);
        await using var c = new TestNode(log: log, bind: network.CreateBind(offloads));
        await a.Plane.OpenLinkAsync(b.Key.Public, b.EndPoint, ct);
        await b.Plane.OpenLinkAsync(c.Key.Public, c.EndPoint, ct);
        await Wait.UntilAsync(() => b.Plane.GetLink(a.Key.Public)?.State == LinkState.Up && c.Plane.GetLink(b.Key.Public)?.State == LinkState.Up, Limit, "links up");
        var life = TimeSpan.FromMinutes(1);
        b.Plane.InstallRule(new RouteRule(a.Key.Public, 100, c.Key.Public, 200, life));
        b.Plane.InstallRule(new RouteRule(c.Key.Public, 201, a.Key.Public, 101, life));
        var sc = c.Plane.BindSession(new SessionRoute(9, a.Key.Public, false, b.Key.Public, 201, b.Key.Public, 200));
        var sa = await a.Plane.OpenSessionAsync(new SessionRoute(9, c.Key.Public, true, b.Key.Public, 100, b.Key.Public, 101), ct);
        var got = new List<byte>();
        var all = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        const int count = 30;
        sc.Receiver = d =>
        {
            lock (got)
            {
                got.Add(d[0]);
                if (got.Count == count)
                {
                    all.TrySetResult();
                }
            }
        };

        // One batch of equal-size datagrams: A sends it in one call, B receives it in one and forwards it in one.
        var buffers = Enumerable.Range(0, count).Select(i => Enumerable.Repeat((byte)i, 1000).ToArray()).ToArray();
        var lengths = Enumerable.Repeat(1000, count).ToArray();
        var forwardedBefore = b.Plane.Statistics.Forwarded;
        sa.SendBatch(buffers, lengths, count);
        await all.Task.WaitAsync(Limit, ct);

        lock (got)
        {
            Assert.Equal(Enumerable.Range(0, count).Select(i => (byte)i), got);
        }

        Assert.True(b.Plane.Statistics.Forwarded - forwardedBefore >= count);
        Assert.Equal(0, c.Plane.Statistics.BadTag + c.Plane.Statistics.Replay + sc.Statistics.BadTag);
        if (offloads)
        {
            Assert.True(b.Plane.Statistics.GroBatches >= 1, "the relay received no batch");
            Assert.True(relayBind.BatchedCalls >= 1, "the relay forwarded the batch one datagram at a time");
            Assert.True(b.Plane.Statistics.GsoSends >= 1);
        }
        else
        {
            Assert.Equal(0, b.Plane.Statistics.GroBatches);
            Assert.Equal(0, b.Plane.Statistics.GsoSends);
        }
    }

    [Fact]
    public async Task RelayOnThePath_AltersLabelOrPayload_DroppedAtTheNextHop_NeverDelivered()
    {
        var ct = TestContext.Current.CancellationToken;
        using var log = new TestLog(TestContext.Current.TestOutputHelper!.WriteLine);
        var network = new InMemoryUdpNetwork();
        await using var a = new TestNode(log: log, bind: network.CreateBind());
        await using var b = new TestNode(log: log, bind: network.CreateBind());
        await a.Plane.OpenLinkAsync(b.Key.Public, b.EndPoint, ct);
        await Wait.UntilAsync(() => b.Plane.GetLink(a.Key.Public)?.State == LinkState.Up, Limit, "b's side up");
        var sb = b.Plane.BindSession(new SessionRoute(3, a.Key.Public, false, a.Key.Public, 2, a.Key.Public, 1));
        var sa = await a.Plane.OpenSessionAsync(new SessionRoute(3, b.Key.Public, true, b.Key.Public, 1, b.Key.Public, 2), ct);
        var delivered = 0;
        sb.Receiver = _ => Interlocked.Increment(ref delivered);

        // The wire flips one bit of every routed packet A sends: in the label, then in the payload body.
        var flipAt = LinkLimits.TransportHeaderLength + 1;
        network.Filter = d =>
        {
            if (d.From.Equals(a.EndPoint) && d.Data[0] == (byte)LinkPacketType.Routed)
            {
                d.Data[Volatile.Read(ref flipAt)] ^= 0x10;
            }

            return true;
        };
        sa.Send(new byte[200]);
        await Wait.UntilAsync(() => b.Plane.Statistics.BadTag >= 1, Limit, "label change refused by the link tag");

        Volatile.Write(ref flipAt, LinkLimits.RoutedHeaderLength + 40);
        sa.Send(new byte[200]);
        await Wait.UntilAsync(() => sb.Statistics.BadTag >= 1, Limit, "payload change refused end to end");
        Assert.Equal(0, Volatile.Read(ref delivered));
        Assert.Equal(LinkState.Up, b.Plane.GetLink(a.Key.Public)!.State);
    }
}
