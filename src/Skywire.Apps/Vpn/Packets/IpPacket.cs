using System.Buffers.Binary;
using System.Net;

namespace Skywire.Apps.Vpn.Packets;

/// <summary>IP protocol numbers the VPN looks at.</summary>
public static class IpProtocol
{
    /// <summary>ICMP.</summary>
    public const byte Icmp = 1;

    /// <summary>TCP.</summary>
    public const byte Tcp = 6;

    /// <summary>UDP.</summary>
    public const byte Udp = 17;

    /// <summary>ICMPv6.</summary>
    public const byte IcmpV6 = 58;
}

/// <summary>
/// Reads the fields of an IPv4 or IPv6 packet the VPN needs (version, addresses, lengths, transport), checking every
/// length before use: a packet that is not a well-formed IP packet is reported as such, never read past its end.
/// </summary>
public static class IpPacket
{
    /// <summary>Smallest IPv4 header.</summary>
    public const int IPv4HeaderLength = 20;

    /// <summary>The IPv6 header.</summary>
    public const int IPv6HeaderLength = 40;

    /// <summary>IP version (4 or 6), or 0 for anything else (including an empty packet).</summary>
    public static int Version(ReadOnlySpan<byte> packet) => packet.IsEmpty ? 0 : (packet[0] >> 4) switch { 4 => 4, 6 => 6, _ => 0 };

    /// <summary>
    /// Checks that <paramref name="packet"/> is one whole IP packet: version 4 or 6, a header that fits, and a total
    /// length equal to the packet's size. Returns the header length (IPv4 IHL, or 40 for IPv6), or 0 when malformed.
    /// </summary>
    public static int Validate(ReadOnlySpan<byte> packet)
    {
        switch (Version(packet))
        {
            case 4:
                if (packet.Length < IPv4HeaderLength)
                {
                    return 0;
                }

                var ihl = (packet[0] & 0x0F) * 4;
                var total = BinaryPrimitives.ReadUInt16BigEndian(packet[2..]);
                return ihl >= IPv4HeaderLength && ihl <= packet.Length && total == packet.Length ? ihl : 0;
            case 6:
                if (packet.Length < IPv6HeaderLength)
                {
                    return 0;
                }

                var payload = BinaryPrimitives.ReadUInt16BigEndian(packet[4..]);
                return IPv6HeaderLength + payload == packet.Length ? IPv6HeaderLength : 0;
            default:
                return 0;
        }
    }

    /// <summary>The source address bytes (4 or 16; the packet must be valid).</summary>
    public static ReadOnlySpan<byte> Source(ReadOnlySpan<byte> packet) => Version(packet) == 4 ? packet.Slice(12, 4) : packet.Slice(8, 16);

    /// <summary>The destination address bytes (4 or 16; the packet must be valid).</summary>
    public static ReadOnlySpan<byte> Destination(ReadOnlySpan<byte> packet) => Version(packet) == 4 ? packet.Slice(16, 4) : packet.Slice(24, 16);

    /// <summary>The transport protocol (IPv4 protocol, IPv6 next header).</summary>
    public static byte Protocol(ReadOnlySpan<byte> packet) => Version(packet) == 4 ? packet[9] : packet[6];

    /// <summary>True for an IPv4 fragment (more fragments, or a non-zero offset).</summary>
    public static bool IsIPv4Fragment(ReadOnlySpan<byte> packet) => (BinaryPrimitives.ReadUInt16BigEndian(packet[6..]) & 0x3FFF) != 0;

    /// <summary>An IPv4 address as a big-endian u32 (for table lookups).</summary>
    public static uint IPv4Key(ReadOnlySpan<byte> address) => BinaryPrimitives.ReadUInt32BigEndian(address);

    /// <summary>An IPv6 address as a big-endian u128 (for table lookups).</summary>
    public static UInt128 IPv6Key(ReadOnlySpan<byte> address) => BinaryPrimitives.ReadUInt128BigEndian(address);

    /// <summary>
    /// The table key of an address's bytes (4 or 16): IPv6 as a big-endian u128, IPv4 as its IPv4-mapped IPv6 address
    /// (::ffff:a.b.c.d), so one table holds both families without collisions between them.
    /// </summary>
    public static UInt128 Key(ReadOnlySpan<byte> address) =>
        address.Length == 4 ? (UInt128)0xFFFF_0000_0000UL | IPv4Key(address) : IPv6Key(address);

    /// <summary>The table key of an <see cref="IPAddress"/> (as <see cref="Key(ReadOnlySpan{byte})"/>).</summary>
    public static UInt128 Key(IPAddress address)
    {
        ArgumentNullException.ThrowIfNull(address);
        Span<byte> bytes = stackalloc byte[16];
        address.TryWriteBytes(bytes, out var written);
        return Key(bytes[..written]);
    }
}
