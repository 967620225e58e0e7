using System.Net;
using Skywire.Core.Links;
using Skywire.Protocol.Links;
using Skywire.TestKit.Logging;

namespace Skywire.Tests.Links;

public class LinkTests
{
    [Fact]
    public async Task OpenLink_BothSidesUp_EventsRaised_RttMeasured()
    {
        using var log = new TestLog(TestContext.Current.TestOutputHelper!.WriteLine);
        await using var a = new TestNode(log: log);
        await using var b = new TestNode(log: log);
        var bUp = new TaskCompletionSource<LinkEventArgs>(TaskCreationOptions.RunContinuationsAsynchronously);
        var aUp = new TaskCompletionSource<LinkEventArgs>(TaskCreationOptions.RunContinuationsAsynchronously);
        b.Plane.LinkUp += (_, e) => bUp.TrySetResult(e);
        a.Plane.LinkUp += (_, e) => aUp.TrySetResult(e);

        await a.Plane.OpenLinkAsync(b.Key.Public, b.EndPoint, TestContext.Current.CancellationToken);
        var ea = await aUp.Task.WaitAsync(TimeSpan.FromSeconds(20), TestContext.Current.CancellationToken);
        var eb = await bUp.Task.WaitAsync(TimeSpan.FromSeconds(20), TestContext.Current.CancellationToken);
        Assert.Equal(b.Key.Public, ea.Peer);
        Assert.Equal(a.Key.Public, eb.Peer);
        Assert.Equal(a.EndPoint, eb.Link.RemoteEndPoint);

        var link = a.Plane.GetLink(b.Key.Public)!;
        Assert.Equal(LinkState.Up, link.State);
        Assert.True(link.Initiator);
        Assert.NotNull(link.Aead);
        Assert.False(b.Plane.GetLink(a.Key.Public)!.Initiator);

        await Wait.UntilAsync(() => a.Plane.GetLink(b.Key.Public)!.Rtt is not null && b.Plane.GetLink(a.Key.Public)!.Rtt is not null, what: "probe replies");
        link = a.Plane.GetLink(b.Key.Public)!;
        Assert.InRange(link.Rtt!.Value, TimeSpan.Zero, TimeSpan.FromSeconds(2));
        Assert.Equal(0, link.Loss);
        Assert.True(link.PacketsReceived > 0 && link.PacketsSent > 0);

        // Addresses compare equal packet after packet: no spurious roaming (which would allocate).
        Assert.Equal(0, a.Plane.RoamsOf(b.Key.Public));
        Assert.Equal(0, b.Plane.RoamsOf(a.Key.Public));

        // Opening again is a no-op while up.
        await a.Plane.OpenLinkAsync(b.Key.Public, b.EndPoint, TestContext.Current.CancellationToken);
        Assert.Single(a.Plane.GetLinks());
    }

    [Fact]
    public async Task OpenLink_WrongPeerKey_DroppedByMac1_TimesOut()
    {
        using var log = new TestLog(TestContext.Current.TestOutputHelper!.WriteLine);
        var options = TestNode.Fast with { HandshakeTimeout = TimeSpan.FromMilliseconds(800) };
        await using var a = new TestNode(options, log);
        await using var b = new TestNode(log: log);
        using var other = Skywire.Core.Crypto.KeyPair.Generate();
        await Assert.ThrowsAsync<TimeoutException>(() => a.Plane.OpenLinkAsync(other.Public, b.EndPoint, TestContext.Current.CancellationToken));
        Assert.True(b.Plane.Statistics.BadMac >= 1);
        Assert.Empty(b.Plane.GetLinks());
        Assert.Equal(LinkState.Down, a.Plane.GetLink(other.Public)!.State);
    }

    [Fact]
    public async Task OpenLink_NobodyListening_TimesOut()
    {
        using var log = new TestLog(TestContext.Current.TestOutputHelper!.WriteLine);
        var options = TestNode.Fast with { HandshakeTimeout = TimeSpan.FromMilliseconds(600) };
        await using var a = new TestNode(options, log);
        var down = new TaskCompletionSource<LinkEventArgs>(TaskCreationOptions.RunContinuationsAsynchronously);
        a.Plane.LinkDown += (_, e) => down.TrySetResult(e);
        using var ghost = Skywire.Core.Crypto.KeyPair.Generate();
        using var unused = new System.Net.Sockets.Socket(System.Net.Sockets.AddressFamily.InterNetwork, System.Net.Sockets.SocketType.Dgram, System.Net.Sockets.ProtocolType.Udp);
        unused.Bind(new IPEndPoint(IPAddress.Loopback, 0)); // bound and never read: datagrams vanish
        await Assert.ThrowsAsync<TimeoutException>(() => a.Plane.OpenLinkAsync(ghost.Public, (IPEndPoint)unused.LocalEndPoint!, TestContext.Current.CancellationToken));
        var e = await down.Task.WaitAsync(TimeSpan.FromSeconds(20), TestContext.Current.CancellationToken);
        Assert.Contains("timed out", e.Reason, StringComparison.Ordinal);
    }

    [Fact]
    public async Task PeerStops_LinkDown()
    {
        using var log = new TestLog(TestContext.Current.TestOutputHelper!.WriteLine);
        var options = TestNode.Fast with { DeadAfter = TimeSpan.FromMilliseconds(1500) };
        await using var a = new TestNode(options, log);
        var b = new TestNode(options, log);
        var down = new TaskCompletionSource<LinkEventArgs>(TaskCreationOptions.RunContinuationsAsynchronously);
        a.Plane.LinkDown += (_, e) => down.TrySetResult(e); // attached first: a stall must not hide the event
        await a.Plane.OpenLinkAsync(b.Key.Public, b.EndPoint, TestContext.Current.CancellationToken);

        var bKey = b.Key.Public;
        await b.Plane.DisposeAsync();
        var e = await down.Task.WaitAsync(TimeSpan.FromSeconds(20), TestContext.Current.CancellationToken);
        Assert.Equal(bKey, e.Peer);
        Assert.Equal(LinkState.Down, a.Plane.GetLink(bKey)!.State);
        b.Key.Dispose();
    }

    [Fact]
    public async Task SilentPeer_LinkDown_ByTimeout()
    {
        using var log = new TestLog(TestContext.Current.TestOutputHelper!.WriteLine);
        var options = TestNode.Fast with { DeadAfter = TimeSpan.FromMilliseconds(1500) };
        await using var a = new TestNode(options, log);
        await using var b = new TestNode(options, log);
        using var proxy = new RecordingProxy(b.EndPoint);
        var down = new TaskCompletionSource<LinkEventArgs>(TaskCreationOptions.RunContinuationsAsynchronously);
        a.Plane.LinkDown += (_, e) => down.TrySetResult(e); // attached first: a stall must not hide the event
        await a.Plane.OpenLinkAsync(b.Key.Public, proxy.EndPoint, TestContext.Current.CancellationToken);
        proxy.Tamper = _ => null; // a's packets no longer reach b; b stops answering probes
        var e = await down.Task.WaitAsync(TimeSpan.FromSeconds(20), TestContext.Current.CancellationToken);
        Assert.Contains("no packet", e.Reason, StringComparison.Ordinal);
    }

    [Fact]
    public async Task CloseLink_PeerSeesClosedByPeer()
    {
        using var log = new TestLog(TestContext.Current.TestOutputHelper!.WriteLine);
        await using var a = new TestNode(log: log);
        await using var b = new TestNode(log: log);
        await a.Plane.OpenLinkAsync(b.Key.Public, b.EndPoint, TestContext.Current.CancellationToken);
        await Wait.UntilAsync(() => b.Plane.GetLink(a.Key.Public)?.State == LinkState.Up, what: "b up");
        var down = new TaskCompletionSource<LinkEventArgs>(TaskCreationOptions.RunContinuationsAsynchronously);
        b.Plane.LinkDown += (_, e) => down.TrySetResult(e);
        Assert.True(a.Plane.CloseLink(b.Key.Public));
        var e = await down.Task.WaitAsync(TimeSpan.FromSeconds(20), TestContext.Current.CancellationToken);
        Assert.Equal("closed by peer", e.Reason);
        Assert.Equal(LinkState.Closed, a.Plane.GetLink(b.Key.Public)!.State);
    }

    [Fact]
    public async Task InboundPolicy_RefusesUnknownPeer()
    {
        using var log = new TestLog(TestContext.Current.TestOutputHelper!.WriteLine);
        await using var a = new TestNode(log: log);
        await using var b = new TestNode(TestNode.Fast with { AcceptInboundLink = _ => false }, log);
        var options = TestNode.Fast with { HandshakeTimeout = TimeSpan.FromMilliseconds(600) };
        await using var c = new TestNode(options, log);
        await Assert.ThrowsAsync<TimeoutException>(() => c.Plane.OpenLinkAsync(b.Key.Public, b.EndPoint, TestContext.Current.CancellationToken));
        Assert.True(b.Plane.Statistics.Refused >= 1);
        Assert.Empty(b.Plane.GetLinks());
    }

    [Fact]
    public async Task ReplayedHandshakeInit_Refused_AndGarbage_Counted()
    {
        using var log = new TestLog(TestContext.Current.TestOutputHelper!.WriteLine);
        await using var a = new TestNode(log: log);
        await using var b = new TestNode(log: log);
        using var proxy = new RecordingProxy(b.EndPoint);
        await a.Plane.OpenLinkAsync(b.Key.Public, proxy.EndPoint, TestContext.Current.CancellationToken);
        var init = proxy.Seen.First(p => p[0] == (byte)LinkPacketType.HandshakeInit);
        proxy.Inject(init);
        await Wait.UntilAsync(() => b.Plane.Statistics.StaleHandshake == 1, what: "stale init counted");

        // A replayed transport packet is refused by the window.
        var transport = proxy.Seen.First(p => p[0] == (byte)LinkPacketType.Control);
        proxy.Inject(transport);
        await Wait.UntilAsync(() => b.Plane.Statistics.Replay >= 1, what: "replay counted");

        // Garbage of every kind is dropped and counted; the link survives.
        proxy.Inject([]);
        proxy.Inject([1, 2, 3]);
        proxy.Inject(new byte[LinkLimits.HandshakeInitLength]);
        var flipped = transport.ToArray();
        flipped[^1] ^= 1;
        flipped[8] ^= 0x7f; // new counter so the window does not catch it first
        proxy.Inject(flipped);
        await Wait.UntilAsync(() => b.Plane.Statistics.BadTag >= 1 && b.Plane.Statistics.Malformed >= 2, what: "garbage counted");
        Assert.Equal(LinkState.Up, b.Plane.GetLink(a.Key.Public)!.State);
        Assert.Equal(0, b.Plane.Statistics.InternalError);
    }

    [Fact]
    public async Task Rekey_FreshHandshakes_LinkStaysUp_SessionKeepsDelivering()
    {
        using var log = new TestLog(TestContext.Current.TestOutputHelper!.WriteLine);
        var options = TestNode.Fast with { RekeyAfter = TimeSpan.FromMilliseconds(300) };
        await using var a = new TestNode(options, log);
        await using var b = new TestNode(options, log);
        var ct = TestContext.Current.CancellationToken;
        var downs = 0;
        a.Plane.LinkDown += (_, _) => Interlocked.Increment(ref downs);
        b.Plane.LinkDown += (_, _) => Interlocked.Increment(ref downs);
        await a.Plane.OpenLinkAsync(b.Key.Public, b.EndPoint, ct);
        var sb = b.Plane.BindSession(new Skywire.Core.Sessions.SessionRoute(3, a.Key.Public, false, a.Key.Public, 2, a.Key.Public, 1));
        var sa = await a.Plane.OpenSessionAsync(new Skywire.Core.Sessions.SessionRoute(3, b.Key.Public, true, b.Key.Public, 1, b.Key.Public, 2), ct);
        var got = 0;
        sb.Receiver = _ => Interlocked.Increment(ref got);

        await Wait.UntilAsync(() => a.Plane.HandshakesOf(b.Key.Public) >= 4 && b.Plane.HandshakesOf(a.Key.Public) >= 4, what: "three rekeys");
        Assert.Equal(LinkState.Up, a.Plane.GetLink(b.Key.Public)!.State);
        Assert.Equal(LinkState.Up, b.Plane.GetLink(a.Key.Public)!.State);
        Assert.Equal(0, Volatile.Read(ref downs));
        for (var i = 0; i < 100 && Volatile.Read(ref got) == 0; i++)
        {
            sa.Send([1, 2, 3]);
            await Task.Delay(20, ct);
        }

        Assert.True(Volatile.Read(ref got) > 0);
    }

    [Fact]
    public async Task UnderLoad_InitsGetCookies_LinkStillComesUpWithMac2()
    {
        using var log = new TestLog(TestContext.Current.TestOutputHelper!.WriteLine);
        // Threshold 0: the responder always demands proof of address before any DH.
        await using var a = new TestNode(log: log);
        await using var b = new TestNode(TestNode.Fast with { HandshakesPerSecondBeforeCookies = 0 }, log);
        using var proxy = new RecordingProxy(b.EndPoint);
        await a.Plane.OpenLinkAsync(b.Key.Public, proxy.EndPoint, TestContext.Current.CancellationToken);
        Assert.True(b.Plane.Statistics.CookieReplies >= 1);
        var inits = proxy.Seen.Where(p => p[0] == (byte)LinkPacketType.HandshakeInit).ToList();
        Assert.True(inits.Count >= 2);
        Assert.All(inits[0].AsSpan(LinkLimits.HandshakeInitMac2Offset).ToArray(), x => Assert.Equal(0, x));
        Assert.Contains(proxy.Seen, p => p[0] == (byte)LinkPacketType.CookieReply && p.Length == LinkLimits.CookieReplyLength);

        // The first init (no mac2), replayed from another address, gets only a cookie: no state, no DH.
        var failed = b.Plane.Statistics.HandshakeFailed + b.Plane.Statistics.StaleHandshake;
        var cookies = b.Plane.Statistics.CookieReplies;
        using var other = new RecordingProxy(b.EndPoint);
        other.Inject(inits[0]);
        await Wait.UntilAsync(() => b.Plane.Statistics.CookieReplies > cookies, what: "cookie for the replay");
        Assert.Equal(failed, b.Plane.Statistics.HandshakeFailed + b.Plane.Statistics.StaleHandshake);
        Assert.Equal(LinkState.Up, b.Plane.GetLink(a.Key.Public)!.State);
    }
}
