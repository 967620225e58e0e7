using System.Buffers.Binary;
using System.Text.Json;
using System.Text.Json.Serialization.Metadata;
using Skywire.Protocol.Framing;

namespace Skywire.Core.AppApi;

/// <summary>
/// Reads and writes single frames on a stream without reading ahead: the app API turns a connection into a raw
/// byte stream right after a frame, so not one byte past that frame may be consumed.
/// </summary>
public static class FrameIo
{
    /// <summary>Reads exactly one frame; null at a clean end of stream before any header byte.</summary>
    /// <exception cref="ProtocolViolationException">Oversized frame or a stream ending inside a frame.</exception>
    public static async Task<(byte Opcode, uint RequestId, byte[] Payload)?> ReadFrameAsync(Stream stream, int maxFrameSize, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(stream);
        var header = new byte[FrameCodec.HeaderSize];
        var got = await ReadAtLeastAsync(stream, header, cancellationToken);
        if (got == 0)
        {
            return null;
        }

        if (got < header.Length)
        {
            throw new ProtocolViolationException("stream ended inside a frame header");
        }

        var length = BinaryPrimitives.ReadUInt32BigEndian(header);
        if (length > (uint)maxFrameSize)
        {
            throw new ProtocolViolationException($"frame payload of {length} bytes exceeds the limit of {maxFrameSize} bytes");
        }

        var payload = new byte[length];
        if (await ReadAtLeastAsync(stream, payload, cancellationToken) < payload.Length)
        {
            throw new ProtocolViolationException("stream ended inside a frame payload");
        }

        return (header[4], BinaryPrimitives.ReadUInt32BigEndian(header.AsSpan(5)), payload);
    }

    private static async Task<int> ReadAtLeastAsync(Stream stream, byte[] buffer, CancellationToken cancellationToken)
    {
        var total = 0;
        while (total < buffer.Length)
        {
            var n = await stream.ReadAsync(buffer.AsMemory(total), cancellationToken);
            if (n == 0)
            {
                break;
            }

            total += n;
        }

        return total;
    }

    /// <summary>Writes one frame with a JSON payload.</summary>
    public static async Task WriteFrameAsync<T>(Stream stream, byte opcode, uint requestId, T message, JsonTypeInfo<T> type, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(stream);
        var bytes = FrameCodec.Encode(opcode, requestId, JsonSerializer.SerializeToUtf8Bytes(message, type));
        await stream.WriteAsync(bytes, cancellationToken);
        await stream.FlushAsync(cancellationToken);
    }

    /// <summary>Deserializes a payload; malformed JSON is a protocol violation.</summary>
    public static T Parse<T>(byte[] payload, JsonTypeInfo<T> type)
    {
        try
        {
            return JsonSerializer.Deserialize(payload, type) ?? throw new ProtocolViolationException("null payload");
        }
        catch (JsonException ex)
        {
            throw new ProtocolViolationException("malformed JSON payload: " + ex.Message, ex);
        }
    }
}
