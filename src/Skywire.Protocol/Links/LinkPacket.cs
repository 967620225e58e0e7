using System.Buffers.Binary;

namespace Skywire.Protocol.Links;

/// <summary>Link packet types: the first byte of every UDP datagram between two nodes (docs/protocol.md §3). Never renumber.</summary>
public enum LinkPacketType : byte
{
    /// <summary>Noise IK message 1 from the link initiator, with mac1.</summary>
    HandshakeInit = 1,

    /// <summary>Noise IK message 2 from the responder, with mac1.</summary>
    HandshakeResponse = 2,

    /// <summary>A responder under load asks the initiator to prove its address: an encrypted cookie for mac2.</summary>
    CookieReply = 3,

    /// <summary>A routed packet: clear label, opaque end-to-end payload, link tag over header + label + end-to-end tag.</summary>
    Routed = 4,

    /// <summary>A fully sealed link control message (keepalive, probe, probe reply, close).</summary>
    Control = 5,
}

/// <summary>Kinds of link control messages (first byte of the sealed body).</summary>
public enum LinkControlKind : byte
{
    /// <summary>Nothing; proves liveness and confirms keys.</summary>
    Keepalive = 1,

    /// <summary>RTT/loss probe: u32 id, u64 sender timestamp.</summary>
    Probe = 2,

    /// <summary>Echo of a probe: the same id and timestamp.</summary>
    ProbeReply = 3,

    /// <summary>The sender closes the link.</summary>
    Close = 4,
}

/// <summary>Sizes and limits of link packets (normative; docs/protocol.md §3).</summary>
public static class LinkLimits
{
    /// <summary>Link protocol version (handshake byte 1 and prologue).</summary>
    public const byte Version = 1;

    /// <summary>
    /// Default largest UDP payload: 1420 bytes. With an IPv6 header (40) and UDP (8) that is a
    /// 1468-byte IP packet, under a 1500-byte Ethernet MTU with 32 bytes to spare for PPPoE or
    /// another encapsulation; with IPv4 it is 1448. No packet of ours ever needs IP fragmentation
    /// on such paths.
    /// </summary>
    public const int DefaultMaxUdpPayload = 1420;

    /// <summary>Smallest configurable maximum: IPv6's minimum MTU 1280 minus 48 bytes of IPv6 + UDP headers.</summary>
    public const int MinMaxUdpPayload = 1232;

    /// <summary>Bytes of a MAC (mac1 on handshakes) and of an AEAD tag.</summary>
    public const int TagLength = 16;

    /// <summary>Header of Routed and Control packets: type, 3 reserved, receiver index, counter.</summary>
    public const int TransportHeaderLength = 16;

    /// <summary>Header of a Routed packet including the 4-byte route id.</summary>
    public const int RoutedHeaderLength = 20;

    /// <summary>Bytes a Routed packet adds around its payload (header + link tag).</summary>
    public const int RoutedOverhead = RoutedHeaderLength + TagLength;

    /// <summary>A routed payload must end with an end-to-end tag, so it has at least this many bytes.</summary>
    public const int MinRoutedPayload = TagLength;

    /// <summary>Bytes of a HandshakeInit with a secp256k1 IK message 1 (4 + 110 + mac1 16 + mac2 16).</summary>
    public const int HandshakeInitLength = 146;

    /// <summary>Offset of mac1 in a HandshakeInit (it covers the bytes before it).</summary>
    public const int HandshakeInitMac1Offset = 114;

    /// <summary>Offset of mac2 in a HandshakeInit (it covers the bytes before it, mac1 included).</summary>
    public const int HandshakeInitMac2Offset = 130;

    /// <summary>Bytes of a CookieReply: 4 header, 16 echoed mac1, 24 nonce (XChaCha20-Poly1305), 16 cookie + 16 tag.</summary>
    public const int CookieReplyLength = 76;

    /// <summary>Bytes of a HandshakeResponse (4 + 4 + 53 + 16).</summary>
    public const int HandshakeResponseLength = 77;

    /// <summary>Largest routed payload for a given maximum UDP payload.</summary>
    public static int MaxRoutedPayload(int maxUdpPayload) => maxUdpPayload - RoutedOverhead;
}

/// <summary>The 16-byte header of Routed and Control packets.</summary>
/// <param name="Type">Routed or Control.</param>
/// <param name="ReceiverIndex">The receiver's link session index (chosen by the receiver during the handshake).</param>
/// <param name="Counter">The sender's packet counter: the AEAD nonce and the replay-window position.</param>
public readonly record struct LinkTransportHeader(LinkPacketType Type, uint ReceiverIndex, ulong Counter)
{
    /// <summary>Writes the header (reserved bytes zero).</summary>
    public void WriteTo(Span<byte> destination)
    {
        destination[0] = (byte)Type;
        destination[1] = 0;
        destination[2] = 0;
        destination[3] = 0;
        BinaryPrimitives.WriteUInt32BigEndian(destination[4..], ReceiverIndex);
        BinaryPrimitives.WriteUInt64BigEndian(destination[8..], Counter);
    }

    /// <summary>Parses a Routed or Control header; false for a short packet, another type or non-zero reserved bytes.</summary>
    public static bool TryRead(ReadOnlySpan<byte> packet, out LinkTransportHeader header)
    {
        header = default;
        if (packet.Length < LinkLimits.TransportHeaderLength)
        {
            return false;
        }

        var type = (LinkPacketType)packet[0];
        if ((type != LinkPacketType.Routed && type != LinkPacketType.Control) || packet[1] != 0 || packet[2] != 0 || packet[3] != 0)
        {
            return false;
        }

        header = new LinkTransportHeader(type, BinaryPrimitives.ReadUInt32BigEndian(packet[4..]), BinaryPrimitives.ReadUInt64BigEndian(packet[8..]));
        return true;
    }
}
