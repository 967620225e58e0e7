using System.Net;
using System.Net.Sockets;
using System.Security.Cryptography;
using Skywire.Core.Links;
using Skywire.Core.Sessions;
using Skywire.Core.Sessions.Mux;
using Skywire.TestKit.Logging;
using Skywire.TestKit.Netns;

namespace Skywire.Tests.Links;

/// <summary>
/// UDP GSO on send and GRO on receive (Linux), and the one-datagram-per-call fallback: both must carry
/// the same datagrams, and a data plane with offloads must interoperate with one without.
/// </summary>
public sealed class UdpOffloadTests
{
    private static readonly TimeSpan Limit = TimeSpan.FromSeconds(30);

    private static (Socket Sender, Socket Receiver, SocketAddress To) Pair()
    {
        var receiver = new Socket(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp);
        receiver.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        var sender = new Socket(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp);
        sender.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        return (sender, receiver, receiver.LocalEndPoint!.Serialize());
    }

    // 10 datagrams of 1400 bytes and a shorter last one, laid out at a 1500-byte stride.
    private static (byte[] Slots, int[] Lengths) Batch()
    {
        var lengths = Enumerable.Repeat(1400, 10).Append(777).ToArray();
        var slots = new byte[1500 * lengths.Length];
        RandomNumberGenerator.Fill(slots);
        return (slots, lengths);
    }

    [Fact]
    public async Task GsoSend_GroReceive_SplitsIntoTheSameDatagrams()
    {
        var (sender, receiver, to) = Pair();
        using var s = sender;
        using var r = receiver;
        Assert.SkipUnless(UdpOffload.ProbeGso(sender) && UdpOffload.TryEnableGro(receiver), "no UDP GSO/GRO here");
        var (slots, lengths) = Batch();

        Assert.Equal(UdpOffload.SendResult.Sent, UdpOffload.SendSegments(sender, to, slots, 1500, lengths, 0, lengths.Length, 1400));

        var got = await Task.Run(() =>
        {
            var list = new List<byte[]>();
            var buffer = new byte[65536];
            var from = new SocketAddress(AddressFamily.InterNetwork);
            while (list.Count < lengths.Length)
            {
                var n = UdpOffload.Receive(receiver, buffer, from, out var segment);
                for (var off = 0; off < n; off += segment)
                {
                    list.Add(buffer.AsSpan(off, Math.Min(segment, n - off)).ToArray());
                }
            }

            return list;
        }, TestContext.Current.CancellationToken).WaitAsync(Limit, TestContext.Current.CancellationToken);

        Assert.Equal(lengths.Length, got.Count);
        for (var i = 0; i < lengths.Length; i++)
        {
            Assert.Equal(slots.AsSpan(i * 1500, lengths[i]).ToArray(), got[i]);
        }
    }

    [Fact]
    public async Task GsoSend_ReceiverWithoutGro_GetsEachDatagramAlone()
    {
        var (sender, receiver, to) = Pair();
        using var s = sender;
        using var r = receiver;
        Assert.SkipUnless(UdpOffload.ProbeGso(sender), "no UDP GSO here");
        var (slots, lengths) = Batch();

        Assert.Equal(UdpOffload.SendResult.Sent, UdpOffload.SendSegments(sender, to, slots, 1500, lengths, 0, lengths.Length, 1400));

        var buffer = new byte[65536];
        for (var i = 0; i < lengths.Length; i++)
        {
            var n = await receiver.ReceiveAsync(buffer, TestContext.Current.CancellationToken).AsTask().WaitAsync(Limit, TestContext.Current.CancellationToken);
            Assert.Equal(slots.AsSpan(i * 1500, lengths[i]).ToArray(), buffer.AsSpan(0, n).ToArray());
        }
    }

    [Fact]
    public async Task GroReceive_OfPlainDatagrams_ReportsEachWhole()
    {
        var (sender, receiver, to) = Pair();
        using var s = sender;
        using var r = receiver;
        Assert.SkipUnless(UdpOffload.TryEnableGro(receiver), "no UDP GRO here");
        var sizes = new[] { 1, 1400, 64 };
        foreach (var size in sizes)
        {
            sender.SendTo(new byte[size], SocketFlags.None, to);
        }

        var got = await Task.Run(() =>
        {
            var buffer = new byte[65536];
            var from = new SocketAddress(AddressFamily.InterNetwork);
            var list = new List<(int, int)>();
            while (list.Count < sizes.Length)
            {
                var n = UdpOffload.Receive(receiver, buffer, from, out var segment);
                list.Add((n, segment));
                Assert.Equal(sender.LocalEndPoint, new IPEndPoint(IPAddress.Any, 0).Create(from));
            }

            return list;
        }, TestContext.Current.CancellationToken).WaitAsync(Limit, TestContext.Current.CancellationToken);

        Assert.Equal(sizes.Select(x => (x, x)), got);
    }

    [Theory]
    [InlineData(true, true)]
    [InlineData(true, false)]
    [InlineData(false, true)]
    [InlineData(false, false)]
    public async Task Stream_BetweenNodesWithAndWithoutOffloads_ArrivesByteExact(bool offloadA, bool offloadB)
    {
        using var log = new TestLog(TestContext.Current.TestOutputHelper!.WriteLine);
        var ct = TestContext.Current.CancellationToken;
        await using var a = new TestNode(TestNode.Fast with { UdpOffload = offloadA }, log);
        await using var b = new TestNode(TestNode.Fast with { UdpOffload = offloadB }, log);
        Assert.True(offloadA || !a.Plane.UdpGsoActive);
        Assert.True(offloadB || !b.Plane.UdpGroActive);
        await a.Plane.OpenLinkAsync(b.Key.Public, b.EndPoint, ct);
        await Wait.UntilAsync(() => b.Plane.GetLink(a.Key.Public)?.State == LinkState.Up, what: "link up at b");
        var sb = b.Plane.BindSession(new SessionRoute(7, a.Key.Public, false, a.Key.Public, 101, a.Key.Public, 100));
        var sa = await a.Plane.OpenSessionAsync(new SessionRoute(7, b.Key.Public, true, b.Key.Public, 100, b.Key.Public, 101), ct);
        await using var muxA = new StreamMultiplexer(sa);
        await using var muxB = new StreamMultiplexer(sb);
        sa.Receiver = muxA.Receive;
        sb.Receiver = muxB.Receive;

        var data = new byte[6 * 1024 * 1024];
        RandomNumberGenerator.Fill(data);
        var accept = Task.Run(async () =>
        {
            var stream = await muxB.AcceptStreamAsync(ct);
            stream.Accept();
            using var received = new MemoryStream();
            await stream.CopyToAsync(received, ct);
            await stream.WriteAsync("done"u8.ToArray(), ct);
            await stream.CompleteWritesAsync(ct);
            return received.ToArray();
        }, ct);

        var sender = await muxA.OpenStreamAsync("x"u8.ToArray(), ct);
        await sender.WriteAsync(data, ct);
        await sender.CompleteWritesAsync(ct);
        using var reply = new MemoryStream();
        await sender.CopyToAsync(reply, ct).WaitAsync(TimeSpan.FromSeconds(60), ct);
        var got = await accept.WaitAsync(TimeSpan.FromSeconds(60), ct);

        Assert.Equal(SHA256.HashData(data), SHA256.HashData(got));
        Assert.Equal("done"u8.ToArray(), reply.ToArray());
        Assert.Equal(0, sb.Statistics.BadTag);
        Assert.Equal(0, b.Plane.Statistics.Malformed + b.Plane.Statistics.BadTag);
        if (!offloadA)
        {
            Assert.Equal(0, a.Plane.Statistics.GsoSends);
        }

        if (!offloadB)
        {
            Assert.Equal(0, b.Plane.Statistics.GroBatches);
        }

        if (offloadA && a.Plane.UdpGsoActive)
        {
            // The mux hands the data plane batches of full packets: some must have gone out in one call.
            Assert.True(a.Plane.Statistics.GsoSends > 0, "no GSO send although GSO is on");
            if (offloadB && b.Plane.UdpGroActive)
            {
                Assert.True(b.Plane.Statistics.GroBatches > 0, "no GRO batch although both ends have offloads");
            }
        }
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task Stream_ThroughRelay_WithAndWithoutOffloadsAtTheRelay_ArrivesByteExact(bool relayOffload)
    {
        using var log = new TestLog(TestContext.Current.TestOutputHelper!.WriteLine);
        var ct = TestContext.Current.CancellationToken;
        await using var a = new TestNode(log: log);
        await using var b = new TestNode(TestNode.Fast with { UdpOffload = relayOffload }, log);
        await using var c = new TestNode(log: log);
        await a.Plane.OpenLinkAsync(b.Key.Public, b.EndPoint, ct);
        await b.Plane.OpenLinkAsync(c.Key.Public, c.EndPoint, ct);
        await Wait.UntilAsync(() => b.Plane.GetLink(a.Key.Public)?.State == LinkState.Up
            && c.Plane.GetLink(b.Key.Public)?.State == LinkState.Up, what: "links up");
        var life = TimeSpan.FromMinutes(1);
        b.Plane.InstallRule(new Skywire.Core.Forwarding.RouteRule(a.Key.Public, 100, c.Key.Public, 200, life));
        b.Plane.InstallRule(new Skywire.Core.Forwarding.RouteRule(c.Key.Public, 201, a.Key.Public, 101, life));
        var sc = c.Plane.BindSession(new SessionRoute(9, a.Key.Public, false, b.Key.Public, 201, b.Key.Public, 200));
        var sa = await a.Plane.OpenSessionAsync(new SessionRoute(9, c.Key.Public, true, b.Key.Public, 100, b.Key.Public, 101), ct);
        await using var muxA = new StreamMultiplexer(sa);
        await using var muxC = new StreamMultiplexer(sc);
        sa.Receiver = muxA.Receive;
        sc.Receiver = muxC.Receive;

        var data = new byte[6 * 1024 * 1024];
        RandomNumberGenerator.Fill(data);
        var accept = Task.Run(async () =>
        {
            var stream = await muxC.AcceptStreamAsync(ct);
            stream.Accept();
            using var received = new MemoryStream();
            await stream.CopyToAsync(received, ct);
            await stream.CompleteWritesAsync(ct);
            return received.ToArray();
        }, ct);

        var sender = await muxA.OpenStreamAsync("x"u8.ToArray(), ct);
        await sender.WriteAsync(data, ct);
        await sender.CompleteWritesAsync(ct);
        var got = await accept.WaitAsync(TimeSpan.FromSeconds(60), ct);

        Assert.Equal(SHA256.HashData(data), SHA256.HashData(got));
        Assert.Equal(0, sc.Statistics.BadTag);
        Assert.Equal(0, c.Plane.Statistics.BadTag + c.Plane.Statistics.Replay + c.Plane.Statistics.Malformed);
        Assert.True(b.Plane.Statistics.Forwarded >= data.Length / sc.MaxDatagramSize, "the relay forwarded too few packets");
        if (relayOffload && b.Plane.UdpGroActive && b.Plane.UdpGsoActive)
        {
            // GSO from a arrives at b as GRO batches, which b forwards in batches.
            Assert.True(b.Plane.Statistics.GroBatches > 0, "no GRO batch at the relay");
            Assert.True(b.Plane.Statistics.GsoSends > 0, "the relay forwarded no batch");
        }
        else if (!relayOffload)
        {
            Assert.Equal(0, b.Plane.Statistics.GsoSends);
        }
    }
    [Fact]
    public async Task NarrowPath_ItsRunGoesOneByOne_GsoStaysOnForEveryOtherPeer()
    {
        // One socket, two destinations: 127.0.0.1 (MTU 65536) and 10.66.0.2 behind a link of MTU 1300 (a veth pair inside the namespace). A GSO
        // run of 1400-byte datagrams towards the narrow one is refused by the kernel (EINVAL, as when it cannot
        // segment at all); it must go out one by one (fragmented) without costing the wide peer its batching.
        if (NetworkNamespaces.Unsupported() is { } reason)
        {
            Assert.Skip(reason);
        }

        using var nets = new NetworkNamespaces();
        var ns = nets.AddEmpty("gso");
        NetworkNamespaces.Exec(ns, "ip", "link", "add", "narrow0", "type", "veth", "peer", "name", "narrow1");
        NetworkNamespaces.Exec(ns, "ip", "link", "set", "narrow0", "mtu", "1300", "up");
        NetworkNamespaces.Exec(ns, "ip", "link", "set", "narrow1", "up");
        NetworkNamespaces.Exec(ns, "ip", "addr", "add", "10.66.0.1/24", "dev", "narrow0");
        NetworkNamespaces.Exec(ns, "ip", "neigh", "add", "10.66.0.2", "lladdr", "02:00:00:00:66:02", "dev", "narrow0");
        var (bind, receiver) = NetworkNamespaces.InNamespace(ns, () =>
        {
            var b = new SocketUdpBind();
            b.Open(new IPEndPoint(IPAddress.Any, 0));
            var r = new Socket(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp);
            r.Bind(new IPEndPoint(IPAddress.Loopback, 0));
            return (b, r);
        });
        using var b = bind;
        using var r = receiver;
        Assert.SkipUnless(bind.GsoActive, "no UDP GSO here");
        var (slots, lengths) = Batch();
        var wide = receiver.LocalEndPoint!.Serialize();
        var narrow = new IPEndPoint(IPAddress.Parse("10.66.0.2"), 9).Serialize();

        Assert.Equal(1, bind.SendBatch(wide, slots, 1500, lengths).BatchedCalls);
        var cut = bind.SendBatch(narrow, slots, 1500, lengths);
        Assert.Equal((lengths.Length, 0, 0), (cut.Sent, cut.Failed, cut.BatchedCalls));
        Assert.True(bind.GsoActive, "one narrow path turned GSO off for every peer");
        Assert.Equal(1, bind.SendBatch(wide, slots, 1500, lengths).BatchedCalls);

        // The wide peer got both batches whole, in order.
        var buffer = new byte[2048];
        receiver.ReceiveTimeout = (int)Limit.TotalMilliseconds;
        for (var round = 0; round < 2; round++)
        {
            for (var i = 0; i < lengths.Length; i++)
            {
                var n = await receiver.ReceiveAsync(buffer, TestContext.Current.CancellationToken).AsTask().WaitAsync(Limit, TestContext.Current.CancellationToken);
                Assert.True(buffer.AsSpan(0, n).SequenceEqual(slots.AsSpan(i * 1500, lengths[i])), $"round {round}, datagram {i} differs");
            }
        }
    }
}
