using System.Buffers.Binary;

namespace Skywire.Apps.Vpn.Packets;

/// <summary>
/// The tunnel's answer to a packet larger than its path carries (docs/vpn.md "MTU"): ICMP "fragmentation needed"
/// (type 3 code 4, RFC 1191) for an IPv4 packet with don't-fragment set, ICMPv6 "packet too big" (type 2, RFC 8201)
/// for IPv6, each with the MTU and the start of the packet, so the sender's stack lowers its path MTU. The answer
/// comes from the packet's destination (it is routed through the tunnel, so the host's reverse-path filter takes it).
/// No answer to an ICMP error, to a fragment that is not the first, or to an IPv4 packet that may be fragmented.
/// </summary>
public static class IcmpTooBig
{
    /// <summary>Room an answer needs at most.</summary>
    public const int MaxLength = 1280;

    private const int IPv4Quote = 576 - 28; // RFC 1812: as much as fits in 576 bytes
    private const int IPv6Quote = 1280 - 48; // RFC 4443: as much as fits in the minimum MTU

    /// <summary>
    /// Writes the answer to <paramref name="packet"/> (valid, longer than <paramref name="mtu"/>) into
    /// <paramref name="destination"/> (at least <see cref="MaxLength"/> bytes); returns its length, or 0 when none is due.
    /// </summary>
    public static int Write(ReadOnlySpan<byte> packet, int mtu, Span<byte> destination)
    {
        var header = IpPacket.Validate(packet);
        if (header == 0 || destination.Length < MaxLength)
        {
            return 0;
        }

        return IpPacket.Version(packet) == 4 ? Write4(packet, header, mtu, destination) : Write6(packet, mtu, destination);
    }

    private static int Write4(ReadOnlySpan<byte> packet, int header, int mtu, Span<byte> destination)
    {
        var fragment = BinaryPrimitives.ReadUInt16BigEndian(packet[6..]);
        if ((fragment & 0x4000) == 0 || (fragment & 0x1FFF) != 0)
        {
            return 0; // may be fragmented (then it is dropped, counted), or not the first fragment
        }

        if (packet[9] == IpProtocol.Icmp && (packet.Length <= header || packet[header] is not (0 or 8 or 13 or 14)))
        {
            return 0; // an ICMP error (or something shorter than an ICMP type): never answered
        }

        var quote = Math.Min(packet.Length, IPv4Quote);
        var length = 20 + 8 + quote;
        var answer = destination[..length];
        answer.Clear();
        answer[0] = 0x45;
        answer[1] = 0xC0;
        BinaryPrimitives.WriteUInt16BigEndian(answer[2..], (ushort)length);
        answer[8] = 64;
        answer[9] = IpProtocol.Icmp;
        packet.Slice(16, 4).CopyTo(answer[12..]);
        packet.Slice(12, 4).CopyTo(answer[16..]);
        Checksum.SetIPv4Header(answer);
        var icmp = answer[20..];
        icmp[0] = 3;
        icmp[1] = 4;
        BinaryPrimitives.WriteUInt16BigEndian(icmp[6..], (ushort)Math.Min(mtu, ushort.MaxValue));
        packet[..quote].CopyTo(icmp[8..]);
        BinaryPrimitives.WriteUInt16BigEndian(icmp[2..], Checksum.Finish(Checksum.Add(icmp)));
        return length;
    }

    private static int Write6(ReadOnlySpan<byte> packet, int mtu, Span<byte> destination)
    {
        var source = packet.Slice(8, 16);
        if (source[0] == 0xFF || source.IndexOfAnyExcept((byte)0) < 0)
        {
            return 0; // multicast or unspecified source: nobody to tell
        }

        if (packet[6] == IpProtocol.IcmpV6 && (packet.Length <= IpPacket.IPv6HeaderLength || packet[IpPacket.IPv6HeaderLength] < 128))
        {
            return 0; // an ICMPv6 error
        }

        var quote = Math.Min(packet.Length, IPv6Quote);
        var payload = 8 + quote;
        var length = IpPacket.IPv6HeaderLength + payload;
        var answer = destination[..length];
        answer.Clear();
        answer[0] = 0x60;
        BinaryPrimitives.WriteUInt16BigEndian(answer[4..], (ushort)payload);
        answer[6] = IpProtocol.IcmpV6;
        answer[7] = 64;
        packet.Slice(24, 16).CopyTo(answer[8..]);
        source.CopyTo(answer[24..]);
        var icmp = answer[IpPacket.IPv6HeaderLength..];
        icmp[0] = 2;
        BinaryPrimitives.WriteUInt32BigEndian(icmp[4..], (uint)Math.Max(mtu, 1280));
        packet[..quote].CopyTo(icmp[8..]);
        var sum = Checksum.PseudoHeader(answer.Slice(8, 16), answer.Slice(24, 16), IpProtocol.IcmpV6, payload);
        BinaryPrimitives.WriteUInt16BigEndian(icmp[2..], Checksum.Finish(Checksum.Add(icmp, sum)));
        return length;
    }
}
