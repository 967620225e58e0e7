
namespace Skywire.Core.Sessions.Mux;

/// <summary>Frame types inside a mux packet (docs/protocol.md §6 "Streams"). Values are on the wire: never renumber.</summary>
internal enum MuxFrameType : byte
{
    Ping = 0x01,
    Ack = 0x02,
    MaxData = 0x03,
    Datagram = 0x04,
    Close = 0x05,
    Stream = 0x08,
    StreamFin = 0x09,
    Open = 0x10,
    Accept = 0x11,
    Refuse = 0x12,
    Reset = 0x13,
    MaxStreamData = 0x14,
}

/// <summary>One decoded frame; <see cref="Data"/> points into the datagram.</summary>
internal ref struct MuxFrame
{
    public MuxFrameType Type;

    /// <summary>Stream reference: (stream id &lt;&lt; 1) | 1 when the sender of the frame opened the stream.</summary>
    public long StreamRef;

    /// <summary>Offset (Stream), window (Open/Accept), code (Refuse/Reset/Close), limit (Max*), largest (Ack).</summary>
    public long A;

    /// <summary>Ack delay in microseconds (Ack); final size (Reset).</summary>
    public long B;

    /// <summary>Payload (Stream, Open, Datagram) or the encoded range list (Ack).</summary>
    public ReadOnlySpan<byte> Data;
}

/// <summary>Codec for mux packets: a 1-byte header, a packet number, then frames back to back.</summary>
internal static class MuxCodec
{
    /// <summary>First byte of every packet: version 1 in the high nibble, low nibble reserved (0).</summary>
    public const byte PacketHeader = 0x10;

    /// <summary>Most ranges one ACK frame may carry.</summary>
    public const int MaxAckRanges = 64;

    /// <summary>Largest open data (the "what do you want" blob of an Open frame).</summary>
    public const int MaxOpenData = 1024;

    /// <summary>Worst-case bytes of a Stream frame header (type + three 8-byte varints).</summary>
    public const int MaxStreamFrameHeader = 1 + 8 + 8 + 8;

    public static int WritePacketHeader(Span<byte> buffer, long packetNumber)
    {
        buffer[0] = PacketHeader;
        var pos = 1;
        VarInt.Write(buffer, ref pos, packetNumber);
        return pos;
    }

    /// <summary>Reads the packet header; false when it is malformed.</summary>
    public static bool TryReadPacketHeader(ReadOnlySpan<byte> datagram, out long packetNumber, out int framesStart)
    {
        framesStart = 1;
        packetNumber = 0;
        return datagram.Length >= 2 && datagram[0] == PacketHeader && VarInt.TryRead(datagram, ref framesStart, out packetNumber);
    }

    public static void WriteSimple(Span<byte> buffer, ref int pos, MuxFrameType type) => buffer[pos++] = (byte)type;

    public static int StreamValueSize(long streamRef, long value) => 1 + VarInt.Size(streamRef) + VarInt.Size(value);

    /// <summary>Open, Accept... frames of the form type, stream ref, value.</summary>
    public static void WriteStreamValue(Span<byte> buffer, ref int pos, MuxFrameType type, long streamRef, long value)
    {
        buffer[pos++] = (byte)type;
        VarInt.Write(buffer, ref pos, streamRef);
        VarInt.Write(buffer, ref pos, value);
    }

    public static int ResetSize(long streamRef, long code, long finalSize) => StreamValueSize(streamRef, code) + VarInt.Size(finalSize);

    /// <summary>Reset: type, stream ref, code, final size (the sender's highest sent offset, for connection credit).</summary>
    public static void WriteReset(Span<byte> buffer, ref int pos, long streamRef, long code, long finalSize)
    {
        WriteStreamValue(buffer, ref pos, MuxFrameType.Reset, streamRef, code);
        VarInt.Write(buffer, ref pos, finalSize);
    }

    public static int ValueSize(long value) => 1 + VarInt.Size(value);

    /// <summary>MaxData and Close frames: type, value.</summary>
    public static void WriteValue(Span<byte> buffer, ref int pos, MuxFrameType type, long value)
    {
        buffer[pos++] = (byte)type;
        VarInt.Write(buffer, ref pos, value);
    }

    public static int OpenSize(long streamRef, long window, int dataLength) =>
        1 + VarInt.Size(streamRef) + VarInt.Size(window) + VarInt.Size(dataLength) + dataLength;

    public static void WriteOpen(Span<byte> buffer, ref int pos, long streamRef, long window, ReadOnlySpan<byte> openData)
    {
        buffer[pos++] = (byte)MuxFrameType.Open;
        VarInt.Write(buffer, ref pos, streamRef);
        VarInt.Write(buffer, ref pos, window);
        VarInt.Write(buffer, ref pos, openData.Length);
        openData.CopyTo(buffer[pos..]);
        pos += openData.Length;
    }

    public static int StreamHeaderSize(long streamRef, long offset, int length) =>
        1 + VarInt.Size(streamRef) + VarInt.Size(offset) + VarInt.Size(length);

    /// <summary>Writes a Stream frame header; the caller copies <paramref name="length"/> bytes after it.</summary>
    public static void WriteStreamHeader(Span<byte> buffer, ref int pos, long streamRef, long offset, int length, bool fin)
    {
        buffer[pos++] = (byte)(fin ? MuxFrameType.StreamFin : MuxFrameType.Stream);
        VarInt.Write(buffer, ref pos, streamRef);
        VarInt.Write(buffer, ref pos, offset);
        VarInt.Write(buffer, ref pos, length);
    }

    public static int DatagramSize(int length) => 1 + VarInt.Size(length) + length;

    public static void WriteDatagram(Span<byte> buffer, ref int pos, ReadOnlySpan<byte> payload)
    {
        buffer[pos++] = (byte)MuxFrameType.Datagram;
        VarInt.Write(buffer, ref pos, payload.Length);
        payload.CopyTo(buffer[pos..]);
        pos += payload.Length;
    }

    /// <summary>
    /// Writes an Ack frame for the highest ranges of <paramref name="received"/> that fit in <paramref name="space"/>
    /// bytes. Returns false (writing nothing) when not even one range fits or the set is empty.
    /// </summary>
    public static bool TryWriteAck(Span<byte> buffer, ref int pos, int space, RangeSet received, long ackDelayMicros)
    {
        if (received.IsEmpty)
        {
            return false;
        }
        var top = received[received.Count - 1];
        var largest = top.End - 1;
        var delay = Math.Clamp(ackDelayMicros, 0, VarInt.MaxValue);
        var first = top.End - 1 - top.Start;
        // Fixed part: type, largest, delay, count (<= 64: 1 byte), first range.
        var size = 1 + VarInt.Size(largest) + VarInt.Size(delay) + 1 + VarInt.Size(first);
        if (size > space)
        {
            return false;
        }
        var count = 0;
        var smallest = top.Start;
        for (var i = received.Count - 2; i >= 0 && count < MaxAckRanges; i--)
        {
            var r = received[i];
            var gap = smallest - r.End - 1;
            var len = r.End - 1 - r.Start;
            var extra = VarInt.Size(gap) + VarInt.Size(len);
            if (size + extra > space)
            {
                break;
            }
            size += extra;
            smallest = r.Start;
            count++;
        }
        buffer[pos++] = (byte)MuxFrameType.Ack;
        VarInt.Write(buffer, ref pos, largest);
        VarInt.Write(buffer, ref pos, delay);
        VarInt.Write(buffer, ref pos, count);
        VarInt.Write(buffer, ref pos, first);
        smallest = top.Start;
        for (var i = received.Count - 2; count > 0; i--, count--)
        {
            var r = received[i];
            VarInt.Write(buffer, ref pos, smallest - r.End - 1);
            VarInt.Write(buffer, ref pos, r.End - 1 - r.Start);
            smallest = r.Start;
        }
        return true;
    }
}

/// <summary>Reads frames one by one from the frame area of a packet. Never throws on bad input.</summary>
internal ref struct MuxFrameReader
{
    private readonly ReadOnlySpan<byte> _buffer;
    private int _pos;

    public MuxFrameReader(ReadOnlySpan<byte> frames)
    {
        _buffer = frames;
        _pos = 0;
    }

    /// <summary>True with a frame; false at the end (<paramref name="invalid"/> false) or on malformed input (true).</summary>
    public bool TryRead(out MuxFrame frame, out bool invalid)
    {
        frame = default;
        invalid = false;
        if (_pos >= _buffer.Length)
        {
            return false;
        }
        invalid = true;
        var type = (MuxFrameType)_buffer[_pos++];
        frame.Type = type;
        switch (type)
        {
            case MuxFrameType.Ping:
                break;
            case MuxFrameType.MaxData:
            case MuxFrameType.Close:
                if (!VarInt.TryRead(_buffer, ref _pos, out frame.A))
                {
                    return false;
                }
                break;
            case MuxFrameType.Datagram:
                if (!TryReadBlob(out frame.Data))
                {
                    return false;
                }
                break;
            case MuxFrameType.Stream:
            case MuxFrameType.StreamFin:
                if (!VarInt.TryRead(_buffer, ref _pos, out frame.StreamRef) || !VarInt.TryRead(_buffer, ref _pos, out frame.A)
                    || !TryReadBlob(out frame.Data) || frame.A + frame.Data.Length > VarInt.MaxValue)
                {
                    return false;
                }
                break;
            case MuxFrameType.Open:
                if (!VarInt.TryRead(_buffer, ref _pos, out frame.StreamRef) || !VarInt.TryRead(_buffer, ref _pos, out frame.A)
                    || !TryReadBlob(out frame.Data) || frame.Data.Length > MuxCodec.MaxOpenData)
                {
                    return false;
                }
                break;
            case MuxFrameType.Reset:
                if (!VarInt.TryRead(_buffer, ref _pos, out frame.StreamRef) || !VarInt.TryRead(_buffer, ref _pos, out frame.A)
                    || !VarInt.TryRead(_buffer, ref _pos, out frame.B))
                {
                    return false;
                }
                break;
            case MuxFrameType.Accept:
            case MuxFrameType.Refuse:
            case MuxFrameType.MaxStreamData:
                if (!VarInt.TryRead(_buffer, ref _pos, out frame.StreamRef) || !VarInt.TryRead(_buffer, ref _pos, out frame.A))
                {
                    return false;
                }
                break;
            case MuxFrameType.Ack:
                if (!TryReadAck(out frame.A, out frame.B, out var ranges))
                {
                    return false;
                }
                frame.Data = ranges;
                break;
            default:
                return false;
        }
        invalid = false;
        return true;
    }

    private bool TryReadBlob(out ReadOnlySpan<byte> data)
    {
        data = default;
        if (!VarInt.TryRead(_buffer, ref _pos, out var len) || len > _buffer.Length - _pos)
        {
            return false;
        }
        data = _buffer.Slice(_pos, (int)len);
        _pos += (int)len;
        return true;
    }

    private bool TryReadAck(out long largestAcked, out long delay, out ReadOnlySpan<byte> ranges)
    {
        ranges = default;
        delay = 0;
        if (!VarInt.TryRead(_buffer, ref _pos, out largestAcked) || !VarInt.TryRead(_buffer, ref _pos, out delay))
        {
            return false;
        }
        var rangesStart = _pos;
        if (!VarInt.TryRead(_buffer, ref _pos, out var count) || count > MuxCodec.MaxAckRanges
            || !VarInt.TryRead(_buffer, ref _pos, out var first) || first > largestAcked)
        {
            return false;
        }
        var smallest = largestAcked - first;
        for (var i = 0; i < count; i++)
        {
            if (!VarInt.TryRead(_buffer, ref _pos, out var gap) || !VarInt.TryRead(_buffer, ref _pos, out var len))
            {
                return false;
            }
            var largest = smallest - gap - 2;
            if (largest < 0 || len > largest)
            {
                return false;
            }
            smallest = largest - len;
        }
        ranges = _buffer[rangesStart.._pos];
        return true;
    }
}

/// <summary>Walks the ranges of a validated Ack frame, highest first, as inclusive [Low, High] packet numbers.</summary>
internal ref struct AckRangeReader
{
    private readonly ReadOnlySpan<byte> _data;
    private int _pos;
    private long _remaining;
    private long _smallest;
    private bool _first;
    private readonly long _largest;

    public AckRangeReader(long largest, ReadOnlySpan<byte> data)
    {
        _data = data;
        _largest = largest;
        _pos = 0;
        VarInt.TryRead(_data, ref _pos, out _remaining);
        _first = true;
        _smallest = 0;
    }

    public bool TryNext(out long low, out long high)
    {
        if (_first)
        {
            _first = false;
            VarInt.TryRead(_data, ref _pos, out var len);
            high = _largest;
            low = _largest - len;
            _smallest = low;
            return true;
        }
        if (_remaining-- <= 0)
        {
            low = high = 0;
            return false;
        }
        VarInt.TryRead(_data, ref _pos, out var gap);
        VarInt.TryRead(_data, ref _pos, out var rangeLen);
        high = _smallest - gap - 2;
        low = high - rangeLen;
        _smallest = low;
        return true;
    }
}
