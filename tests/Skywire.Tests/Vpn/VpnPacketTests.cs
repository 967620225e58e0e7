using System.Buffers.Binary;
using System.Net;
using Skywire.Apps.Vpn;
using Skywire.Apps.Vpn.Packets;
using Skywire.TestKit.Streams;

namespace Skywire.Tests.Vpn;

/// <summary>The VPN's packet parsers and small parts: fuzzed IP validation, checksums, the address pool, control framing.</summary>
public sealed class VpnPacketTests
{
    /// <summary>An IPv4/UDP packet from <paramref name="source"/> to <paramref name="destination"/> with a valid header checksum.</summary>
    public static byte[] Udp4(string source, string destination, int payload)
    {
        var packet = new byte[20 + 8 + payload];
        packet[0] = 0x45;
        BinaryPrimitives.WriteUInt16BigEndian(packet.AsSpan(2), (ushort)packet.Length);
        packet[8] = 64;
        packet[9] = IpProtocol.Udp;
        IPAddress.Parse(source).TryWriteBytes(packet.AsSpan(12), out _);
        IPAddress.Parse(destination).TryWriteBytes(packet.AsSpan(16), out _);
        BinaryPrimitives.WriteUInt16BigEndian(packet.AsSpan(24), (ushort)(8 + payload));
        for (var i = 28; i < packet.Length; i++)
        {
            packet[i] = (byte)i;
        }

        Checksum.SetIPv4Header(packet.AsSpan(0, 20));
        return packet;
    }

    [Fact]
    public void Validate_WellFormed_IPv4AndIPv6()
    {
        var v4 = Udp4("10.66.0.2", "10.78.0.2", 100);
        Assert.Equal(20, IpPacket.Validate(v4));
        Assert.Equal(4, IpPacket.Version(v4));
        Assert.Equal(IPAddress.Parse("10.66.0.2"), new IPAddress(IpPacket.Source(v4)));
        Assert.Equal(IPAddress.Parse("10.78.0.2"), new IPAddress(IpPacket.Destination(v4)));
        Assert.Equal(IpProtocol.Udp, IpPacket.Protocol(v4));
        Assert.False(IpPacket.IsIPv4Fragment(v4));

        var v6 = new byte[40 + 12];
        v6[0] = 0x60;
        BinaryPrimitives.WriteUInt16BigEndian(v6.AsSpan(4), 12);
        v6[6] = IpProtocol.Udp;
        IPAddress.Parse("fd00::2").TryWriteBytes(v6.AsSpan(8), out _);
        IPAddress.Parse("fd00::1").TryWriteBytes(v6.AsSpan(24), out _);
        Assert.Equal(40, IpPacket.Validate(v6));
        Assert.Equal(IPAddress.Parse("fd00::1"), new IPAddress(IpPacket.Destination(v6)));
    }

    [Fact]
    public void Validate_Malformed_IsZero()
    {
        var v4 = Udp4("10.66.0.2", "10.78.0.2", 100);
        Assert.Equal(0, IpPacket.Validate([]));
        Assert.Equal(0, IpPacket.Validate(v4.AsSpan(0, 19)));               // shorter than a header
        Assert.Equal(0, IpPacket.Validate(v4.AsSpan(0, v4.Length - 1)));    // total length says more
        var extra = new byte[v4.Length + 1];
        v4.CopyTo(extra, 0);
        Assert.Equal(0, IpPacket.Validate(extra));                          // trailing bytes
        var badIhl = (byte[])v4.Clone();
        badIhl[0] = 0x44;                                                    // IHL 16 < 20
        Assert.Equal(0, IpPacket.Validate(badIhl));
        badIhl[0] = 0x4F;                                                    // IHL 60: options, still inside the packet
        Assert.Equal(60, IpPacket.Validate(badIhl));
        var v5 = (byte[])v4.Clone();
        v5[0] = 0x55;
        Assert.Equal(0, IpPacket.Validate(v5));
    }

    [Fact]
    public void Validate_Fuzz_NeverThrows_NeverReadsPast()
    {
        var rng = new Random(14);
        var accepted = 0;
        for (var i = 0; i < 200_000; i++)
        {
            var packet = new byte[rng.Next(0, 80)];
            rng.NextBytes(packet);
            if (packet.Length > 0 && rng.Next(2) == 0)
            {
                packet[0] = (byte)((rng.Next(2) == 0 ? 0x40 : 0x60) | (packet[0] & 0x0F));
            }

            if (packet.Length >= 4 && rng.Next(3) == 0)
            {
                // Make the length field agree with the buffer, so the deeper checks run too.
                BinaryPrimitives.WriteUInt16BigEndian(packet.AsSpan(2), (ushort)packet.Length);
                if (packet.Length >= 6)
                {
                    BinaryPrimitives.WriteUInt16BigEndian(packet.AsSpan(4), (ushort)(packet.Length - 40));
                }
            }

            var header = IpPacket.Validate(packet);
            Assert.InRange(header, 0, packet.Length);
            if (header > 0)
            {
                accepted++;
                // A valid packet's fields are all inside it.
                _ = IpPacket.Source(packet);
                _ = IpPacket.Destination(packet);
                _ = IpPacket.Protocol(packet);
            }
        }

        Assert.True(accepted > 0, "the fuzzer never produced a valid packet: it tests nothing");
    }

    [Fact]
    public void Checksum_KnownHeader()
    {
        // A textbook IPv4 header whose checksum is 0xB861.
        var header = Convert.FromHexString("450000730000400040110000c0a80001c0a800c7");
        Checksum.SetIPv4Header(header);
        Assert.Equal(0xB861, BinaryPrimitives.ReadUInt16BigEndian(header.AsSpan(10)));
        Assert.Equal(0, Checksum.Finish(Checksum.Add(header)));
        Assert.Equal(0x0100, Checksum.Fold(Checksum.Add([0x01])));          // odd byte padded with zero
    }

    [Fact]
    public void AddressPool_OneAddressPerKey_HeldAndExhausted()
    {
        var pool = new AddressPool(IPNetwork.Parse("10.66.0.0/29"));       // .1 gateway, .2-.6 clients
        Assert.Equal(IPAddress.Parse("10.66.0.1"), pool.Gateway);
        var a = pool.Lease("aa");
        Assert.Equal(IPAddress.Parse("10.66.0.2"), a);
        Assert.Equal(a, pool.Lease("AA"));                                   // keys are hex: case does not matter
        var others = new[] { "b", "c", "d", "e" }.Select(pool.Lease).ToList();
        Assert.Equal(5, others.Append(a).Distinct().Count());
        Assert.DoesNotContain(others, x => x!.Equals(IPAddress.Parse("10.66.0.7")));  // broadcast
        Assert.Null(pool.Lease("f"));
        Assert.Equal(a, pool.Lease("aa"));
        Assert.Throws<ArgumentException>(() => new AddressPool(IPNetwork.Parse("10.0.0.0/31")));
        Assert.Throws<ArgumentException>(() => new AddressPool(IPNetwork.Parse("fd00::/127")));
        Assert.Throws<ArgumentException>(() => new AddressPool(IPNetwork.Parse("fd00::/40")));
    }

    [Fact]
    public void AddressPool_IPv6_OneAddressPerKey_HeldAndExhausted()
    {
        var big = new AddressPool(IPNetwork.Parse("fd66:736b:7977::/64"));
        Assert.Equal(IPAddress.Parse("fd66:736b:7977::1"), big.Gateway);
        Assert.Equal(IPAddress.Parse("fd66:736b:7977::2"), big.Lease("aa"));
        Assert.Equal(IPAddress.Parse("fd66:736b:7977::3"), big.Lease("bb"));
        Assert.Equal(IPAddress.Parse("fd66:736b:7977::2"), big.Lease("AA"));

        // /126: the subnet-router anycast (::0) and the gateway (::1) are not leased; ::2 and ::3 are.
        var small = new AddressPool(IPNetwork.Parse("fd00:1::/126"));
        var leased = new[] { small.Lease("a"), small.Lease("b") };
        Assert.Equal([IPAddress.Parse("fd00:1::2"), IPAddress.Parse("fd00:1::3")], leased);
        Assert.Null(small.Lease("c"));
        Assert.Equal(leased[1], small.Lease("b"));
    }

    [Fact]
    public void PathMtu_LoweredByTheNarrowestLink_PerFamilyHeaders()
    {
        var info = new Protocol.AppApi.NodeInfoMessage { MaxDatagram = 1347, Underlay = ["10.0.0.2", "127.0.0.1", "fd00::2", "not an address"] };
        var wire = 1347 + PathMtu.Overhead;   // the UDP payload of a full-size tunnel packet

        Assert.Equal(1347, PathMtu.Derive(info, 1500, _ => 1500, out var why));
        Assert.Null(why);
        Assert.Equal(1200, PathMtu.Derive(info, 1200, _ => 1500, out _));
        Assert.Equal(1347, PathMtu.Derive(info, 1500, _ => null, out _));

        // An IPv4 link that carries exactly the full-size packet leaves the MTU alone; one byte less lowers it by one.
        Assert.Equal(1347, PathMtu.Derive(info, 1500, a => a.ToString() == "10.0.0.2" ? wire + 28 : 1500, out _));
        Assert.Equal(1346, PathMtu.Derive(info, 1500, a => a.ToString() == "10.0.0.2" ? wire + 27 : 1500, out why));
        Assert.Contains("10.0.0.2", why, StringComparison.Ordinal);

        // IPv6 takes 20 bytes more header; the narrowest link wins; loopback is never asked.
        Assert.Equal(1347 - (wire + 48 - 1400), PathMtu.Derive(info, 1500, a => a.ToString() == "fd00::2" ? 1400 : 1500, out why));
        Assert.Contains("fd00::2", why, StringComparison.Ordinal);
        Assert.Equal(1347 - (wire + 28 - 1300), PathMtu.Derive(info, 1500, a => IPAddress.IsLoopback(a) ? 9 : a.ToString() == "fd00::2" ? 1400 : 1300, out _));
    }

    [Theory]
    [InlineData("10.77.1.2 dev eth0 src 10.77.1.1 uid 0 \n    cache ", "eth0", null)]
    [InlineData("203.0.113.9 via 10.0.0.1 dev wan0 src 10.0.0.2 uid 0", "wan0", "10.0.0.1")]
    [InlineData("fd77::2 from :: dev veth1 proto kernel src fd77::1 metric 256 pref medium", "veth1", null)]
    [InlineData("2001:db8::9 from :: via fe80::1 dev eth0 proto ra src 2001:db8::5 metric 100 pref medium", "eth0", "fe80::1")]
    public void RouteGet_Parsed_IPv4AndIPv6(string output, string device, string? via)
    {
        var parsed = HostNetwork.ParseRouteGet(output.Replace("\\n", "\n", StringComparison.Ordinal));
        Assert.NotNull(parsed);
        Assert.Equal(device, parsed.Value.Device);
        Assert.Equal(via is null ? null : IPAddress.Parse(via), parsed.Value.Via);
        Assert.Null(HostNetwork.ParseRouteGet("RTNETLINK answers: Network is unreachable"));
    }

    [Fact]
    public async Task ControlMessages_RoundTrip_AndMalformedRefused()
    {
        var ct = TestContext.Current.CancellationToken;
        var pair = new DuplexStreamPair();
        await VpnProtocol.WriteAsync(pair.A, new VpnHello { Passcode = "secret" }, VpnJsonContext.Default.VpnHello, ct);
        var hello = await VpnProtocol.ReadAsync(pair.B, VpnJsonContext.Default.VpnHello, ct);
        Assert.Equal("secret", hello.Passcode);
        Assert.DoesNotContain("secret", hello.ToString(), StringComparison.Ordinal);

        foreach (var bad in new[] { new byte[] { 0, 0 }, [0xFF, 0xFF], [0, 3, (byte)'{', (byte)'x', (byte)'}'], [0, 10, 1, 2] })
        {
            var p = new DuplexStreamPair();
            await p.A.WriteAsync(bad, ct);
            await p.A.CompleteWritesAsync(ct);
            await Assert.ThrowsAsync<InvalidDataException>(() => VpnProtocol.ReadAsync(p.B, VpnJsonContext.Default.VpnWelcome, ct));
        }
    }
}
