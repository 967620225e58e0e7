using System.Buffers.Binary;

namespace Skywire.Protocol.Sessions;

/// <summary>
/// A flow datagram (docs/protocol.md §6.3): an unreliable datagram of one app, carried in its own session datagram
/// beside the stream multiplexer's packets and tied to one mux stream (the flow's reference). The first byte of a
/// session datagram tells the two apart: <see cref="Type"/> here, <c>0x10</c> for a mux packet (§6.2).
/// </summary>
/// <remarks>
/// Layout: <c>type (1) = 0x01 | flow reference u32 (big-endian) | payload</c>. The flow reference is the stream
/// reference of §6.2 as its sender writes it: <c>stream id &lt;&lt; 1 | o</c>, where <c>o</c> is 1 when the sender of
/// the datagram opened the stream.
/// </remarks>
public static class FlowDatagram
{
    /// <summary>First byte of a flow datagram. Never renumber.</summary>
    public const byte Type = 0x01;

    /// <summary>Bytes before the payload: the type and the flow reference.</summary>
    public const int HeaderLength = 5;

    /// <summary>The flow reference of a stream as the side that sends a datagram writes it.</summary>
    /// <returns>False when the stream id does not fit (a flow needs id &lt; 2^31).</returns>
    public static bool TryGetReference(long streamId, bool senderOpened, out uint reference)
    {
        reference = 0;
        if (streamId < 0 || streamId >= 1L << 31)
        {
            return false;
        }

        reference = (uint)((streamId << 1) | (senderOpened ? 1L : 0L));
        return true;
    }

    /// <summary>Writes the header (type and <paramref name="reference"/>) into the first <see cref="HeaderLength"/> bytes.</summary>
    public static void WriteHeader(Span<byte> destination, uint reference)
    {
        destination[0] = Type;
        BinaryPrimitives.WriteUInt32BigEndian(destination[1..], reference);
    }

    /// <summary>Reads the flow reference; false when the datagram is not a flow datagram or is too short.</summary>
    public static bool TryReadHeader(ReadOnlySpan<byte> datagram, out uint reference)
    {
        reference = 0;
        if (datagram.Length < HeaderLength || datagram[0] != Type)
        {
            return false;
        }

        reference = BinaryPrimitives.ReadUInt32BigEndian(datagram[1..]);
        return true;
    }
}
