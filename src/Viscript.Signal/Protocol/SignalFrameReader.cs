using System.Buffers;
using System.Buffers.Binary;
using System.Diagnostics.CodeAnalysis;

namespace Viscript.Signal.Protocol;

/// <summary>Pure parser of the skycoin/net TCP framing. No I/O, no allocation.</summary>
public static class SignalFrameReader
{
    /// <summary>
    /// Reads one frame from the start of <paramref name="buffer"/>. Returns false when more bytes are needed
    /// (buffer untouched); on success slices the frame off <paramref name="buffer"/>.
    /// </summary>
    /// <param name="buffer">Received bytes.</param>
    /// <param name="maxBodySize">Largest NORMAL body accepted; checked before anything is sliced.</param>
    /// <param name="frame">The decoded frame.</param>
    /// <exception cref="SignalProtocolException">Unknown type byte or a body larger than <paramref name="maxBodySize"/>.</exception>
    public static bool TryReadFrame(ref ReadOnlySequence<byte> buffer, int maxBodySize, out SignalFrame frame)
    {
        frame = default;
        if (buffer.IsEmpty)
        {
            return false;
        }

        Span<byte> header = stackalloc byte[SignalOps.NormalHeaderSize];
        var type = buffer.FirstSpan[0];
        switch (type)
        {
            case (byte)SignalFrameType.Normal:
            {
                if (!TryPeek(buffer, header))
                {
                    return false;
                }

                var seq = BinaryPrimitives.ReadUInt32BigEndian(header[1..]);
                var length = BinaryPrimitives.ReadUInt32BigEndian(header[5..]);
                if (length > (uint)maxBodySize)
                {
                    ThrowTooLarge(length, maxBodySize);
                }

                var total = SignalOps.NormalHeaderSize + (long)length;
                if (buffer.Length < total)
                {
                    return false;
                }

                frame = SignalFrame.Normal(seq, buffer.Slice(SignalOps.NormalHeaderSize, length));
                buffer = buffer.Slice(total);
                return true;
            }

            case (byte)SignalFrameType.Ack:
            {
                if (!TryPeek(buffer, header[..SignalOps.AckSize]))
                {
                    return false;
                }

                frame = SignalFrame.Ack(BinaryPrimitives.ReadUInt32BigEndian(header[1..]));
                buffer = buffer.Slice(SignalOps.AckSize);
                return true;
            }

            case (byte)SignalFrameType.Ping:
            case (byte)SignalFrameType.Pong:
            {
                if (!TryPeek(buffer, header[..SignalOps.PingSize]))
                {
                    return false;
                }

                var stamp = BinaryPrimitives.ReadUInt64BigEndian(header[1..]);
                frame = type == (byte)SignalFrameType.Ping ? SignalFrame.Ping(stamp) : SignalFrame.Pong(stamp);
                buffer = buffer.Slice(SignalOps.PingSize);
                return true;
            }

            default:
                ThrowUnknownType(type);
                return false;
        }
    }

    private static bool TryPeek(in ReadOnlySequence<byte> buffer, Span<byte> destination)
    {
        if (buffer.Length < destination.Length)
        {
            return false;
        }

        if (buffer.FirstSpan.Length >= destination.Length)
        {
            buffer.FirstSpan[..destination.Length].CopyTo(destination);
        }
        else
        {
            buffer.Slice(0, destination.Length).CopyTo(destination);
        }

        return true;
    }

    [DoesNotReturn]
    private static void ThrowTooLarge(uint length, int max) =>
        throw new SignalProtocolException($"frame body of {length} bytes exceeds the limit of {max}");

    [DoesNotReturn]
    private static void ThrowUnknownType(byte type) =>
        throw new SignalProtocolException($"unknown frame type 0x{type:x2}");
}
