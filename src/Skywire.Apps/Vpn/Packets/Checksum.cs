using System.Buffers.Binary;
using System.Runtime.InteropServices;

namespace Skywire.Apps.Vpn.Packets;

/// <summary>
/// The Internet checksum (RFC 1071): a ones' complement sum of 16-bit big-endian words. Sums are kept unfolded in a
/// 64-bit accumulator (eight bytes at a time) and folded once at the end.
/// </summary>
public static class Checksum
{
    /// <summary>Adds the bytes of <paramref name="data"/> (an odd last byte is padded with zero) to <paramref name="sum"/>.</summary>
    public static ulong Add(ReadOnlySpan<byte> data, ulong sum = 0)
    {
        // Sum 32-bit big-endian words into 64 bits: no carry is lost for any packet size that exists (< 2^32 words).
        var words = MemoryMarshal.Cast<byte, uint>(data);
        foreach (var w in words)
        {
            sum += BitConverter.IsLittleEndian ? BinaryPrimitives.ReverseEndianness(w) : w;
        }

        var rest = data[(words.Length * 4)..];
        if (rest.Length >= 2)
        {
            sum += BinaryPrimitives.ReadUInt16BigEndian(rest);
            rest = rest[2..];
        }

        if (rest.Length == 1)
        {
            sum += (ulong)rest[0] << 8;
        }

        return sum;
    }

    /// <summary>Folds an accumulated sum to 16 bits (not complemented).</summary>
    public static ushort Fold(ulong sum)
    {
        sum = (sum & 0xFFFF_FFFF) + (sum >> 32);
        sum = (sum & 0xFFFF_FFFF) + (sum >> 32);
        sum = (sum & 0xFFFF) + (sum >> 16);
        sum = (sum & 0xFFFF) + (sum >> 16);
        sum = (sum & 0xFFFF) + (sum >> 16);
        return (ushort)sum;
    }

    /// <summary>The checksum field value for data whose sum (with the field zero) is <paramref name="sum"/>.</summary>
    public static ushort Finish(ulong sum) => (ushort)~Fold(sum);

    /// <summary>
    /// The pseudo-header sum of TCP or UDP (RFC 793/768 for IPv4, RFC 8200 §8.1 for IPv6): source and destination
    /// addresses, protocol and the transport length.
    /// </summary>
    public static ulong PseudoHeader(ReadOnlySpan<byte> source, ReadOnlySpan<byte> destination, byte protocol, int transportLength)
    {
        var sum = Add(source);
        sum = Add(destination, sum);
        sum += protocol;
        sum += (uint)transportLength;
        return sum;
    }

    /// <summary>Computes and stores the IPv4 header checksum of <paramref name="header"/> (its IHL bytes).</summary>
    public static void SetIPv4Header(Span<byte> header)
    {
        var length = (header[0] & 0x0F) * 4;
        header[10] = 0;
        header[11] = 0;
        BinaryPrimitives.WriteUInt16BigEndian(header[10..], Finish(Add(header[..length])));
    }
}
