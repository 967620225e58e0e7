using System.Buffers;
using System.Buffers.Binary;

namespace Viscript.Signal.Protocol;

/// <summary>Writes frames of the skycoin/net TCP framing into an <see cref="IBufferWriter{T}"/>.</summary>
public static class SignalFrameWriter
{
    /// <summary>Writes a NORMAL frame whose body is <paramref name="op"/> followed by <paramref name="json"/>.</summary>
    public static void WriteNormal(IBufferWriter<byte> writer, uint seq, byte op, ReadOnlySpan<byte> json)
    {
        ArgumentNullException.ThrowIfNull(writer);
        var size = SignalOps.NormalHeaderSize + 1 + json.Length;
        var span = writer.GetSpan(size);
        span[0] = (byte)SignalFrameType.Normal;
        BinaryPrimitives.WriteUInt32BigEndian(span[1..], seq);
        BinaryPrimitives.WriteUInt32BigEndian(span[5..], (uint)(1 + json.Length));
        span[9] = op;
        json.CopyTo(span[10..]);
        writer.Advance(size);
    }

    /// <summary>Writes a NORMAL frame with an arbitrary body (may be empty).</summary>
    public static void WriteNormalRaw(IBufferWriter<byte> writer, uint seq, ReadOnlySpan<byte> body)
    {
        ArgumentNullException.ThrowIfNull(writer);
        var size = SignalOps.NormalHeaderSize + body.Length;
        var span = writer.GetSpan(size);
        span[0] = (byte)SignalFrameType.Normal;
        BinaryPrimitives.WriteUInt32BigEndian(span[1..], seq);
        BinaryPrimitives.WriteUInt32BigEndian(span[5..], (uint)body.Length);
        body.CopyTo(span[9..]);
        writer.Advance(size);
    }

    /// <summary>Writes an ACK of <paramref name="seq"/>.</summary>
    public static void WriteAck(IBufferWriter<byte> writer, uint seq)
    {
        ArgumentNullException.ThrowIfNull(writer);
        var span = writer.GetSpan(SignalOps.AckSize);
        span[0] = (byte)SignalFrameType.Ack;
        BinaryPrimitives.WriteUInt32BigEndian(span[1..], seq);
        writer.Advance(SignalOps.AckSize);
    }

    /// <summary>Writes a PING carrying <paramref name="timestamp"/> (unix ms).</summary>
    public static void WritePing(IBufferWriter<byte> writer, ulong timestamp) => WriteStamp(writer, SignalFrameType.Ping, timestamp);

    /// <summary>Writes a PONG echoing <paramref name="timestamp"/>.</summary>
    public static void WritePong(IBufferWriter<byte> writer, ulong timestamp) => WriteStamp(writer, SignalFrameType.Pong, timestamp);

    private static void WriteStamp(IBufferWriter<byte> writer, SignalFrameType type, ulong timestamp)
    {
        ArgumentNullException.ThrowIfNull(writer);
        var span = writer.GetSpan(SignalOps.PingSize);
        span[0] = (byte)type;
        BinaryPrimitives.WriteUInt64BigEndian(span[1..], timestamp);
        writer.Advance(SignalOps.PingSize);
    }
}
