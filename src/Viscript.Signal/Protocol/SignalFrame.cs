using System.Buffers;

namespace Viscript.Signal.Protocol;

/// <summary>Frame type byte of the skycoin/net TCP framing (reference §4.2).</summary>
public enum SignalFrameType : byte
{
    /// <summary>Sequenced data frame: type, seq u32, length u32, body.</summary>
    Normal = 0x01,
    /// <summary>Acknowledges a NORMAL frame: type, seq u32.</summary>
    Ack = 0x80,
    /// <summary>Keepalive from the connecting side: type, unix time in ms u64.</summary>
    Ping = 0x81,
    /// <summary>Answer to PING echoing its 8 bytes.</summary>
    Pong = 0x82,
}

/// <summary>
/// One decoded frame. For <see cref="SignalFrameType.Normal"/> the <see cref="Body"/> slices the buffer it was read
/// from and is valid only until that buffer is advanced past it.
/// </summary>
public readonly struct SignalFrame
{
    private SignalFrame(SignalFrameType type, uint seq, ulong timestamp, ReadOnlySequence<byte> body)
    {
        Type = type;
        Seq = seq;
        Timestamp = timestamp;
        Body = body;
    }

    /// <summary>Frame type.</summary>
    public SignalFrameType Type { get; }

    /// <summary>Sequence number (NORMAL and ACK frames).</summary>
    public uint Seq { get; }

    /// <summary>The 8 payload bytes of PING and PONG frames (sender's unix time in ms).</summary>
    public ulong Timestamp { get; }

    /// <summary>Body of a NORMAL frame: op byte then UTF-8 JSON. Empty for other types.</summary>
    public ReadOnlySequence<byte> Body { get; }

    /// <summary>A NORMAL frame.</summary>
    public static SignalFrame Normal(uint seq, ReadOnlySequence<byte> body) => new(SignalFrameType.Normal, seq, 0, body);

    /// <summary>An ACK frame.</summary>
    public static SignalFrame Ack(uint seq) => new(SignalFrameType.Ack, seq, 0, default);

    /// <summary>A PING frame.</summary>
    public static SignalFrame Ping(ulong timestamp) => new(SignalFrameType.Ping, 0, timestamp, default);

    /// <summary>A PONG frame.</summary>
    public static SignalFrame Pong(ulong timestamp) => new(SignalFrameType.Pong, 0, timestamp, default);

    /// <summary>Whether this is a NORMAL frame carrying at least an op byte.</summary>
    public bool HasOp => Type == SignalFrameType.Normal && !Body.IsEmpty;

    /// <summary>Op byte of a non-empty NORMAL frame.</summary>
    public byte Op => Body.FirstSpan[0];

    /// <summary>The JSON part of a NORMAL body (after the op byte).</summary>
    public ReadOnlySequence<byte> Json => Body.Slice(1);
}
