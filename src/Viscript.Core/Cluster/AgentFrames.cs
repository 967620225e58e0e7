using System.Buffers;
using System.Buffers.Binary;
using System.Diagnostics.CodeAnalysis;

namespace Viscript.Core.Cluster;

/// <summary>
/// Message kinds of the agent protocol (docs/viscript.md "Cluster", "Agent protocol"). A frame is a 4-byte big-endian
/// length (of what follows it), then one of these bytes, then a UTF-8 JSON body. Values never change once shipped.
/// </summary>
public enum AgentOp : byte
{
    /// <summary>Agent → primary, first frame: <see cref="AgentHello"/>.</summary>
    Hello = 0x01,
    /// <summary>Primary → agent, answer to the hello: <see cref="AgentWelcome"/>.</summary>
    Welcome = 0x02,
    /// <summary>Primary → agent, instead of the welcome, then close: <see cref="AgentRefusal"/>.</summary>
    Refused = 0x03,
    /// <summary>Primary → agent: <see cref="AgentRequest"/>.</summary>
    Request = 0x10,
    /// <summary>Agent → primary: <see cref="ProcessUpdate"/> (full snapshot or changed rows).</summary>
    Processes = 0x11,
    /// <summary>Agent → primary: a <see cref="Control.ProcessEvent"/> of the agent's supervisor.</summary>
    Event = 0x12,
    /// <summary>Agent → primary: <see cref="Control.HostStats"/>, every stats interval.</summary>
    Stats = 0x13,
    /// <summary>Agent → primary: an item of a followed log (<see cref="StreamItem"/>).</summary>
    Stream = 0x14,
    /// <summary>Agent → primary: the apps of the agent's config.yaml (<see cref="AgentApps"/>).</summary>
    Apps = 0x15,
    /// <summary>Both ways: nothing to say; keeps the silence timeout from firing. Empty body.</summary>
    Keepalive = 0x20,
    /// <summary>Agent → primary: the answer to a request (<see cref="AgentReply"/>); request op with the high bit.</summary>
    Reply = 0x90,
}

/// <summary>A complete frame; <see cref="Body"/> points into the reader's buffer and is valid until the reader advances.</summary>
/// <param name="Op">Kind.</param>
/// <param name="Body">JSON body (may be empty).</param>
public readonly record struct AgentFrame(AgentOp Op, ReadOnlySequence<byte> Body);

/// <summary>The peer broke the agent protocol; the connection is closed.</summary>
public sealed class AgentProtocolException : Exception
{
    /// <summary>Creates the exception.</summary>
    public AgentProtocolException(string message) : base(message) { }

    /// <summary>Creates the exception.</summary>
    public AgentProtocolException() : this("agent protocol violation") { }

    /// <summary>Creates the exception.</summary>
    public AgentProtocolException(string message, Exception inner) : base(message, inner) { }

    [DoesNotReturn]
    internal static void Throw(string message) => throw new AgentProtocolException(message);
}

/// <summary>Frame codec of the agent protocol: a pure function over buffers.</summary>
public static class AgentFrameCodec
{
    /// <summary>Bytes before the body: length (4) and op (1).</summary>
    public const int HeaderSize = 5;

    /// <summary>Largest frame (op + body) accepted by default: 1 MiB. A full snapshot is sent in pieces below it.</summary>
    public const int DefaultMaxFrameSize = 1024 * 1024;

    /// <summary>
    /// Reads one frame from the start of <paramref name="buffer"/> and slices it off. Returns false when more bytes are
    /// needed (buffer untouched). Throws <see cref="AgentProtocolException"/> for a zero or oversized length (decided from
    /// the header alone, nothing allocated) or an unknown op.
    /// </summary>
    public static bool TryReadFrame(ref ReadOnlySequence<byte> buffer, int maxFrameSize, out AgentFrame frame)
    {
        frame = default;
        if (buffer.Length < 4)
        {
            return false;
        }
        Span<byte> header = stackalloc byte[HeaderSize];
        var available = (int)Math.Min(buffer.Length, HeaderSize);
        buffer.Slice(0, available).CopyTo(header);
        var length = BinaryPrimitives.ReadUInt32BigEndian(header);
        if (length == 0)
        {
            AgentProtocolException.Throw("frame of length 0 (no op)");
        }
        if (length > (uint)maxFrameSize)
        {
            AgentProtocolException.Throw($"frame of {length} bytes is over the limit of {maxFrameSize}");
        }
        if (buffer.Length < 4 + length)
        {
            return false;
        }
        var op = (AgentOp)header[4];
        if (!Enum.IsDefined(op))
        {
            AgentProtocolException.Throw($"unknown op 0x{header[4]:x2}");
        }
        frame = new AgentFrame(op, buffer.Slice(HeaderSize, length - 1));
        buffer = buffer.Slice(4 + length);
        return true;
    }

    /// <summary>Writes one frame.</summary>
    public static void Write(IBufferWriter<byte> writer, AgentOp op, ReadOnlySpan<byte> body)
    {
        ArgumentNullException.ThrowIfNull(writer);
        var span = writer.GetSpan(HeaderSize + body.Length);
        BinaryPrimitives.WriteUInt32BigEndian(span, (uint)(body.Length + 1));
        span[4] = (byte)op;
        body.CopyTo(span[HeaderSize..]);
        writer.Advance(HeaderSize + body.Length);
    }
}
