using System.Buffers;
using System.Buffers.Binary;
using System.Diagnostics.CodeAnalysis;

namespace Skywire.Protocol.Framing;

/// <summary>
/// One frame of a Skywire stream protocol (control channel and app API share the shape, docs/protocol.md §4.1):
/// <c>u32 payload length | u8 opcode | u32 request id | payload</c>, all big-endian.
/// Responses carry the request's opcode with the high bit set and echo its request id; id 0 means "no reply wanted".
/// </summary>
/// <param name="Opcode">Operation; <see cref="FrameCodec.ResponseBit"/> set on responses.</param>
/// <param name="RequestId">Correlates a response with its request; 0 for notifications.</param>
/// <param name="Payload">The payload bytes (a slice of the receive buffer: copy before advancing the reader).</param>
public readonly record struct Frame(byte Opcode, uint RequestId, ReadOnlySequence<byte> Payload)
{
    /// <summary>Whether this frame answers a request.</summary>
    public bool IsResponse => (Opcode & FrameCodec.ResponseBit) != 0;
}

/// <summary>Pure frame codec: no I/O, no logging, no allocation on the happy path.</summary>
public static class FrameCodec
{
    /// <summary>Header size: length (4) + opcode (1) + request id (4).</summary>
    public const int HeaderSize = 9;

    /// <summary>Bit set in the opcode of every response.</summary>
    public const byte ResponseBit = 0x80;

    /// <summary>Default upper bound of a payload (1 MiB). Larger frames are a protocol violation.</summary>
    public const int DefaultMaxFrameSize = 1 << 20;

    /// <summary>
    /// Reads one frame from the front of <paramref name="buffer"/>. Returns false when more bytes are needed
    /// (buffer untouched); on success advances <paramref name="buffer"/> past the frame.
    /// Throws <see cref="ProtocolViolationException"/> when the declared length exceeds <paramref name="maxFrameSize"/>,
    /// before anything is sliced or allocated.
    /// </summary>
    public static bool TryReadFrame(ref ReadOnlySequence<byte> buffer, int maxFrameSize, out Frame frame)
    {
        if (buffer.Length < HeaderSize)
        {
            frame = default;
            return false;
        }

        Span<byte> header = stackalloc byte[HeaderSize];
        if (buffer.FirstSpan.Length >= HeaderSize)
        {
            buffer.FirstSpan[..HeaderSize].CopyTo(header);
        }
        else
        {
            buffer.Slice(0, HeaderSize).CopyTo(header);
        }

        var length = BinaryPrimitives.ReadUInt32BigEndian(header);
        if (length > (uint)maxFrameSize)
        {
            ThrowTooLarge(length, maxFrameSize);
        }

        if (buffer.Length < HeaderSize + (long)length)
        {
            frame = default;
            return false;
        }

        var opcode = header[4];
        var requestId = BinaryPrimitives.ReadUInt32BigEndian(header[5..]);
        frame = new Frame(opcode, requestId, buffer.Slice(HeaderSize, length));
        buffer = buffer.Slice(HeaderSize + (long)length);
        return true;
    }

    /// <summary>Writes one frame into <paramref name="writer"/>.</summary>
    public static void Write(IBufferWriter<byte> writer, byte opcode, uint requestId, ReadOnlySpan<byte> payload)
    {
        ArgumentNullException.ThrowIfNull(writer);
        var span = writer.GetSpan(HeaderSize + payload.Length);
        WriteHeader(span, opcode, requestId, payload.Length);
        payload.CopyTo(span[HeaderSize..]);
        writer.Advance(HeaderSize + payload.Length);
    }

    /// <summary>Writes a frame header for a payload of <paramref name="payloadLength"/> bytes.</summary>
    public static void WriteHeader(Span<byte> destination, byte opcode, uint requestId, int payloadLength)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(payloadLength);
        BinaryPrimitives.WriteUInt32BigEndian(destination, (uint)payloadLength);
        destination[4] = opcode;
        BinaryPrimitives.WriteUInt32BigEndian(destination[5..], requestId);
    }

    /// <summary>Encodes one frame into a new array.</summary>
    public static byte[] Encode(byte opcode, uint requestId, ReadOnlySpan<byte> payload)
    {
        var bytes = new byte[HeaderSize + payload.Length];
        WriteHeader(bytes, opcode, requestId, payload.Length);
        payload.CopyTo(bytes.AsSpan(HeaderSize));
        return bytes;
    }

    [DoesNotReturn]
    private static void ThrowTooLarge(uint length, int max) =>
        throw new ProtocolViolationException($"frame payload of {length} bytes exceeds the limit of {max} bytes");
}

/// <summary>The peer broke the wire protocol; the connection that carried it must be closed.</summary>
public sealed class ProtocolViolationException : Exception
{
    public ProtocolViolationException() : base("protocol violation") { }
    public ProtocolViolationException(string message) : base(message) { }
    public ProtocolViolationException(string message, Exception inner) : base(message, inner) { }
}
