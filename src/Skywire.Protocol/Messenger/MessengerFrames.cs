using System.Buffers.Binary;
using System.Diagnostics.CodeAnalysis;
using Skywire.Protocol.Framing;

namespace Skywire.Protocol.Messenger;

/// <summary>Constants of the messenger protocol (docs/protocol.md §8).</summary>
public static class MessengerProtocol
{
    /// <summary>
    /// Current protocol version (in the hello). 2: clients send session envelopes (§8.4, <see cref="SessionEnvelopeVersion"/>);
    /// a messenger refuses a hello of another version with UnsupportedVersion, so an old client learns it must upgrade.
    /// </summary>
    public const int Version = 2;

    /// <summary>Noise prologue of the client-messenger channel: a messenger channel can never be mistaken for a control channel.</summary>
    public const string Prologue = "skywire-messenger/1";

    /// <summary>Domain separation prefix of the hello signature.</summary>
    public const string HelloSignatureContext = "skywire-messenger-hello";

    /// <summary>Noise prologue of an end-to-end sealed message (followed by the envelope header bytes).</summary>
    public const string EnvelopePrologue = "skywire-messenger-e2e/1";

    /// <summary>Noise prologue of an end-to-end relayed stream (followed by the AEAD id byte).</summary>
    public const string StreamPrologue = "skywire-messenger-stream/1";

    /// <summary>Largest frame payload either side accepts (256 KiB); larger is a protocol violation.</summary>
    public const int MaxFrameSize = 256 * 1024;

    /// <summary>Envelope header: version byte and AEAD id byte.</summary>
    public const int EnvelopeHeaderSize = 2;

    /// <summary>Version byte of the per-message envelope (one Noise KK message 1 per message; still opened, no longer sent).</summary>
    public const byte EnvelopeVersion = 1;

    /// <summary>Version byte of the session envelope (§8.4): public-key work once per session, one AEAD per message.</summary>
    public const byte SessionEnvelopeVersion = 2;

    /// <summary>Noise prologue of a session envelope's handshake (followed by the version and AEAD id bytes).</summary>
    public const string SessionEnvelopePrologue = "skywire-messenger-e2e/2";

    /// <summary>Session envelope header: version, aead, ephemeral key (33), handshake tag (16), counter (8).</summary>
    public const int SessionEnvelopeHeaderSize = EnvelopeHeaderSize + PubKey.Length + 16 + 8;

    /// <summary>Largest plaintext of one message: a Noise message is at most 65535 bytes (33-byte ephemeral key, 16-byte tag).</summary>
    public const int MaxMessageSize = 65535 - PubKey.Length - 16;

    /// <summary>Largest sealed envelope in a Send.</summary>
    public const int MaxEnvelopeSize = SessionEnvelopeHeaderSize + MaxMessageSize + 16;

    /// <summary>Largest plaintext in one stream record; a record is this plus a 16-byte tag. An empty record ends the stream.</summary>
    public const int MaxStreamRecordPlaintext = 16 * 1024;

    /// <summary>Largest stream handshake message (in StreamOpen / StreamIncoming); bounds the open data.</summary>
    public const int MaxStreamHandshake = 8 * 1024;

    /// <summary>Flag in a Deliver frame: the message waited in the store-and-forward queue.</summary>
    public const byte DeliverFlagQueued = 0x01;

    /// <summary>Size of a circuit id.</summary>
    public const int CircuitSize = 4;

    /// <summary>Directory limits.</summary>
    public const int MaxServicesPerKey = 16;
    public const int MaxNameLength = 64;
    public const int MaxAttributes = 16;
    public const int MaxAttributeKeyLength = 64;
    public const int MaxAttributeValueLength = 256;
    public const int MaxAllowKeys = 64;
    public const int DefaultQueryLimit = 20;
    public const int MaxQueryLimit = 100;
}

/// <summary>
/// Binary payload layouts of the hot-path messenger frames. Parsers throw <see cref="ProtocolViolationException"/>
/// on a payload too short or with an invalid key; they never allocate.
/// </summary>
public static class MessengerFrames
{
    /// <summary>Send payload: <c>to (33) | envelope</c>.</summary>
    public static void ReadSend(ReadOnlySpan<byte> payload, out PubKey to, out ReadOnlySpan<byte> envelope)
    {
        to = ReadKey(payload, "Send");
        envelope = payload[PubKey.Length..];
    }

    /// <summary>Deliver payload: <c>from (33) | flags (1) | envelope</c>.</summary>
    public static void ReadDeliver(ReadOnlySpan<byte> payload, out PubKey from, out byte flags, out ReadOnlySpan<byte> envelope)
    {
        if (payload.Length < PubKey.Length + 1)
        {
            ThrowShort("Deliver");
        }

        from = ReadKey(payload, "Deliver");
        flags = payload[PubKey.Length];
        envelope = payload[(PubKey.Length + 1)..];
    }

    /// <summary>Writes a Deliver payload; returns its length.</summary>
    public static int WriteDeliver(Span<byte> destination, PubKey from, byte flags, ReadOnlySpan<byte> envelope)
    {
        from.WriteTo(destination);
        destination[PubKey.Length] = flags;
        envelope.CopyTo(destination[(PubKey.Length + 1)..]);
        return PubKey.Length + 1 + envelope.Length;
    }

    /// <summary>Payload that starts with a key: Send (<c>to | envelope</c>) and StreamOpen (<c>to | handshake</c>).</summary>
    public static byte[] KeyAndBody(PubKey key, ReadOnlySpan<byte> body)
    {
        var bytes = new byte[PubKey.Length + body.Length];
        key.WriteTo(bytes);
        body.CopyTo(bytes.AsSpan(PubKey.Length));
        return bytes;
    }

    /// <summary>PeerSend payload: <c>from (33) | to (33) | envelope</c>.</summary>
    public static void ReadPeerSend(ReadOnlySpan<byte> payload, out PubKey from, out PubKey to, out ReadOnlySpan<byte> envelope)
    {
        from = ReadKey(payload, "PeerSend");
        to = ReadKey(payload[PubKey.Length..], "PeerSend");
        envelope = payload[(2 * PubKey.Length)..];
    }

    /// <summary>The prefix of a PeerSend payload: <c>from (33) | to (33)</c> (the envelope follows).</summary>
    public static byte[] PeerSendPrefix(PubKey from, PubKey to)
    {
        var bytes = new byte[2 * PubKey.Length];
        from.WriteTo(bytes);
        to.WriteTo(bytes.AsSpan(PubKey.Length));
        return bytes;
    }

    /// <summary>PeerDropped payload: <c>sender (33) | DropNotice JSON</c>.</summary>
    public static void ReadPeerDropped(ReadOnlySpan<byte> payload, out PubKey sender, out ReadOnlySpan<byte> notice)
    {
        sender = ReadKey(payload, "PeerDropped");
        notice = payload[PubKey.Length..];
    }

    /// <summary>StreamOpen request payload: <c>to (33) | handshake</c>.</summary>
    public static void ReadStreamOpen(ReadOnlySpan<byte> payload, out PubKey to, out ReadOnlySpan<byte> handshake)
    {
        to = ReadKey(payload, "StreamOpen");
        handshake = payload[PubKey.Length..];
    }

    /// <summary>StreamIncoming payload: <c>circuit (4) | from (33) | handshake</c>.</summary>
    public static void ReadStreamIncoming(ReadOnlySpan<byte> payload, out uint circuit, out PubKey from, out ReadOnlySpan<byte> handshake)
    {
        circuit = ReadCircuit(payload, "StreamIncoming");
        from = ReadKey(payload[MessengerProtocol.CircuitSize..], "StreamIncoming");
        handshake = payload[(MessengerProtocol.CircuitSize + PubKey.Length)..];
    }

    /// <summary>Encodes a StreamIncoming payload.</summary>
    public static byte[] StreamIncoming(uint circuit, PubKey from, ReadOnlySpan<byte> handshake)
    {
        var bytes = new byte[MessengerProtocol.CircuitSize + PubKey.Length + handshake.Length];
        BinaryPrimitives.WriteUInt32BigEndian(bytes, circuit);
        from.WriteTo(bytes.AsSpan(MessengerProtocol.CircuitSize));
        handshake.CopyTo(bytes.AsSpan(MessengerProtocol.CircuitSize + PubKey.Length));
        return bytes;
    }

    /// <summary>Payload that starts with a circuit id: StreamOpen response, StreamData, StreamCredit, StreamClose.</summary>
    public static byte[] CircuitAndBody(uint circuit, ReadOnlySpan<byte> body)
    {
        var bytes = new byte[MessengerProtocol.CircuitSize + body.Length];
        BinaryPrimitives.WriteUInt32BigEndian(bytes, circuit);
        body.CopyTo(bytes.AsSpan(MessengerProtocol.CircuitSize));
        return bytes;
    }

    /// <summary>Reads the circuit id at the start of a payload and returns the rest.</summary>
    public static uint ReadCircuit(ReadOnlySpan<byte> payload, out ReadOnlySpan<byte> body)
    {
        var circuit = ReadCircuit(payload, "stream");
        body = payload[MessengerProtocol.CircuitSize..];
        return circuit;
    }

    /// <summary>StreamCredit payload: <c>circuit (4) | bytes (4)</c>.</summary>
    public static uint ReadStreamCredit(ReadOnlySpan<byte> payload, out uint bytes)
    {
        if (payload.Length != MessengerProtocol.CircuitSize + 4)
        {
            ThrowShort("StreamCredit");
        }

        bytes = BinaryPrimitives.ReadUInt32BigEndian(payload[MessengerProtocol.CircuitSize..]);
        return BinaryPrimitives.ReadUInt32BigEndian(payload);
    }

    /// <summary>Encodes a StreamCredit payload.</summary>
    public static byte[] StreamCredit(uint circuit, uint bytes)
    {
        var payload = new byte[MessengerProtocol.CircuitSize + 4];
        BinaryPrimitives.WriteUInt32BigEndian(payload, circuit);
        BinaryPrimitives.WriteUInt32BigEndian(payload.AsSpan(MessengerProtocol.CircuitSize), bytes);
        return payload;
    }

    /// <summary>StreamClose payload: <c>circuit (4) | reason (1)</c>.</summary>
    public static uint ReadStreamClose(ReadOnlySpan<byte> payload, out StreamCloseReason reason)
    {
        if (payload.Length != MessengerProtocol.CircuitSize + 1)
        {
            ThrowShort("StreamClose");
        }

        reason = (StreamCloseReason)payload[MessengerProtocol.CircuitSize];
        return BinaryPrimitives.ReadUInt32BigEndian(payload);
    }

    /// <summary>Encodes a StreamClose payload.</summary>
    public static byte[] StreamClose(uint circuit, StreamCloseReason reason)
    {
        var payload = new byte[MessengerProtocol.CircuitSize + 1];
        BinaryPrimitives.WriteUInt32BigEndian(payload, circuit);
        payload[MessengerProtocol.CircuitSize] = (byte)reason;
        return payload;
    }

    private static PubKey ReadKey(ReadOnlySpan<byte> payload, string frame)
    {
        if (payload.Length < PubKey.Length)
        {
            ThrowShort(frame);
        }

        if (!PubKey.TryRead(payload[..PubKey.Length], out var key))
        {
            throw new ProtocolViolationException($"{frame} frame carries an invalid public key");
        }

        return key;
    }

    private static uint ReadCircuit(ReadOnlySpan<byte> payload, string frame)
    {
        if (payload.Length < MessengerProtocol.CircuitSize)
        {
            ThrowShort(frame);
        }

        return BinaryPrimitives.ReadUInt32BigEndian(payload);
    }

    [DoesNotReturn]
    private static void ThrowShort(string frame) =>
        throw new ProtocolViolationException($"{frame} frame payload is too short or has the wrong size");
}
