using System.Buffers.Binary;

namespace Skywire.Core.Sessions.Mux;

/// <summary>Variable-length unsigned integers (QUIC encoding, RFC 9000 §16): 1, 2, 4 or 8 bytes, up to 2^62-1.</summary>
internal static class VarInt
{
    public const long MaxValue = (1L << 62) - 1;

    public static int Size(long value) => value switch
    {
        < 64 => 1,
        < 16384 => 2,
        < 1L << 30 => 4,
        _ => 8,
    };

    /// <summary>Writes <paramref name="value"/> at <paramref name="pos"/>; the caller guarantees the space.</summary>
    public static void Write(Span<byte> buffer, ref int pos, long value)
    {
        switch (value)
        {
            case < 64:
                buffer[pos++] = (byte)value;
                break;
            case < 16384:
                BinaryPrimitives.WriteUInt16BigEndian(buffer[pos..], (ushort)(0x4000 | value));
                pos += 2;
                break;
            case < 1L << 30:
                BinaryPrimitives.WriteUInt32BigEndian(buffer[pos..], (uint)(0x8000_0000 | value));
                pos += 4;
                break;
            default:
                BinaryPrimitives.WriteUInt64BigEndian(buffer[pos..], 0xC000_0000_0000_0000UL | (ulong)value);
                pos += 8;
                break;
        }
    }

    public static bool TryRead(ReadOnlySpan<byte> buffer, ref int pos, out long value)
    {
        if ((uint)pos >= (uint)buffer.Length)
        {
            value = 0;
            return false;
        }
        var first = buffer[pos];
        var len = 1 << (first >> 6);
        if (buffer.Length - pos < len)
        {
            value = 0;
            return false;
        }
        value = len switch
        {
            1 => first & 0x3F,
            2 => BinaryPrimitives.ReadUInt16BigEndian(buffer[pos..]) & 0x3FFF,
            4 => BinaryPrimitives.ReadUInt32BigEndian(buffer[pos..]) & 0x3FFF_FFFF,
            _ => (long)(BinaryPrimitives.ReadUInt64BigEndian(buffer[pos..]) & 0x3FFF_FFFF_FFFF_FFFFUL),
        };
        pos += len;
        return true;
    }
}
