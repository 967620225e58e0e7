using System.Net;
using System.Net.Sockets;
using Skywire.Core.Crypto;
using Skywire.Core.DataPlane;
using Skywire.Core.Forwarding;
using Skywire.Protocol.Links;
using Skywire.Protocol.Sessions;
using Skywire.TestKit.Logging;

namespace Skywire.Tests.Links;

public class LinkPacketTests
{
    [Fact]
    public void TransportHeader_RoundTrip()
    {
        var bytes = new byte[16];
        new LinkTransportHeader(LinkPacketType.Routed, 0xdeadbeef, 0x0102030405060708).WriteTo(bytes);
        Assert.Equal("04000000deadbeef0102030405060708", Convert.ToHexStringLower(bytes));
        Assert.True(LinkTransportHeader.TryRead(bytes, out var h));
        Assert.Equal(new LinkTransportHeader(LinkPacketType.Routed, 0xdeadbeef, 0x0102030405060708), h);
    }

    [Fact]
    public void TransportHeader_BadInput_False_AtEveryLength()
    {
        var bytes = new byte[16];
        new LinkTransportHeader(LinkPacketType.Control, 7, 9).WriteTo(bytes);
        for (var n = 0; n < 16; n++)
        {
            Assert.False(LinkTransportHeader.TryRead(bytes.AsSpan(0, n), out _));
        }

        for (var i = 1; i < 4; i++)
        {
            var copy = (byte[])bytes.Clone();
            copy[i] = 1;
            Assert.False(LinkTransportHeader.TryRead(copy, out _));
        }

        bytes[0] = (byte)LinkPacketType.HandshakeInit;
        Assert.False(LinkTransportHeader.TryRead(bytes, out _));
    }

    [Fact]
    public void Limits_FitTheDefaultMtu()
    {
        Assert.Equal(1384, LinkLimits.MaxRoutedPayload(LinkLimits.DefaultMaxUdpPayload));
        Assert.Equal(1352, SessionLimits.MaxDatagram(LinkLimits.DefaultMaxUdpPayload));
        // 1420 + 40 (IPv6) + 8 (UDP) stays under a 1500-byte MTU.
        Assert.True(LinkLimits.DefaultMaxUdpPayload + 48 <= 1500);
    }

    [Fact]
    public void RoutedTag_BindsHeaderLabelAndEndToEndTag_NotTheBody()
    {
        using var key = AeadKey.Create(AeadAlgorithmId.ChaCha20Poly1305, new byte[32]);
        var packet = new byte[20 + 100 + 16];
        Random.Shared.NextBytes(packet);
        new LinkTransportHeader(LinkPacketType.Routed, 1, 5).WriteTo(packet);
        RoutedPacket.SealTag(key, 5, packet, 100);
        Assert.True(RoutedPacket.VerifyTag(key, 5, packet, 100));
        Assert.False(RoutedPacket.VerifyTag(key, 6, packet, 100));
        for (var i = 0; i < packet.Length; i++)
        {
            packet[i] ^= 0x20;
            var bound = i < 20 || (i >= 20 + 100 - 16);
            Assert.Equal(!bound, RoutedPacket.VerifyTag(key, 5, packet, 100));
            packet[i] ^= 0x20;
        }

        // A truncated packet moves the end-to-end tag: rejected.
        Assert.False(RoutedPacket.VerifyTag(key, 5, packet.AsSpan(0, packet.Length - 1), 99));
    }

    [Fact]
    public async Task HandlePacket_Fuzz_NeverThrows_AllCounted()
    {
        using var identity = KeyPair.Generate();
        await using var plane = new NodeDataPlane(identity);
        var from = new IPEndPoint(IPAddress.Loopback, 9).Serialize();
        var rng = new Random(7);
        const int count = 20_000;
        for (var i = 0; i < count; i++)
        {
            var packet = new byte[rng.Next(0, 200)];
            rng.NextBytes(packet);
            if (packet.Length > 0)
            {
                packet[0] = (byte)rng.Next(0, 7);
            }

            if (packet.Length > 3 && rng.Next(2) == 0)
            {
                packet[1] = packet[2] = packet[3] = 0;
            }

            plane.HandlePacket(packet, from);
        }

        var s = plane.Statistics;
        Assert.Equal(0, s.InternalError);
        Assert.Equal(count, s.Malformed + s.BadMac + s.UnknownIndex);
        Assert.Empty(plane.GetLinks());
    }

    [Fact]
    public void Mac1_WrongKey_DroppedBeforeAnyState()
    {
        // A well-sized init whose mac1 is not keyed to this node: dropped as BadMac, no link created.
        using var identity = KeyPair.Generate();
        var plane = new NodeDataPlane(identity);
        var packet = new byte[LinkLimits.HandshakeInitLength];
        Random.Shared.NextBytes(packet);
        packet[0] = (byte)LinkPacketType.HandshakeInit;
        packet[1] = LinkLimits.Version;
        packet[3] = 0;
        plane.HandlePacket(packet, new SocketAddress(AddressFamily.InterNetwork));
        Assert.Equal(1, plane.Statistics.BadMac);
        Assert.Empty(plane.GetLinks());
    }
}

public class LinkHandshakeTruncationTests
{
    [Fact]
    public async Task CapturedInit_TruncatedOrExtended_AtEveryLength_DroppedAsMalformed()
    {
        using var log = new TestLog(TestContext.Current.TestOutputHelper!.WriteLine);
        await using var a = new TestNode(log: log);
        await using var b = new TestNode(log: log);
        using var proxy = new RecordingProxy(b.EndPoint);
        await a.Plane.OpenLinkAsync(b.Key.Public, proxy.EndPoint, TestContext.Current.CancellationToken);
        var init = proxy.Seen.First(p => p[0] == (byte)LinkPacketType.HandshakeInit);
        var response = proxy.Seen.First(p => p[0] == (byte)LinkPacketType.HandshakeResponse);
        var from = new System.Net.IPEndPoint(System.Net.IPAddress.Loopback, 1).Serialize();
        var malformed = b.Plane.Statistics.Malformed;
        for (var n = 4; n < init.Length; n++)
        {
            b.Plane.HandlePacket(init.AsSpan(0, n).ToArray(), from);
        }

        b.Plane.HandlePacket([.. init, 0], from);
        Assert.Equal(malformed + init.Length - 4 + 1, b.Plane.Statistics.Malformed);

        malformed = a.Plane.Statistics.Malformed;
        for (var n = 4; n < response.Length; n++)
        {
            a.Plane.HandlePacket(response.AsSpan(0, n).ToArray(), from);
        }

        Assert.Equal(malformed + response.Length - 4, a.Plane.Statistics.Malformed);

        // A replayed response (index no longer pending) is refused without any crypto.
        a.Plane.HandlePacket(response.ToArray(), from);
        Assert.True(a.Plane.Statistics.UnknownIndex >= 1);
        Assert.Equal(0, a.Plane.Statistics.InternalError + b.Plane.Statistics.InternalError);
    }
}
