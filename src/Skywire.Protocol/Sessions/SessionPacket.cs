using System.Buffers.Binary;

namespace Skywire.Protocol.Sessions;

/// <summary>End-to-end session packet types: the first byte of a routed payload (docs/protocol.md §6). Never renumber.</summary>
public enum SessionPacketType : byte
{
    /// <summary>Noise IK message 1 from the session initiator, with the initiator's index.</summary>
    HandshakeInit = 0x10,

    /// <summary>Noise IK message 2 from the responder, with both indexes.</summary>
    HandshakeResponse = 0x11,

    /// <summary>A sealed datagram: receiver index and counter in the header, AEAD with the counter as nonce and no associated data.</summary>
    Data = 0x12,
}

/// <summary>Sizes and layouts of session packets (normative, docs/protocol.md §6.1).</summary>
public static class SessionLimits
{
    /// <summary>
    /// Session protocol version: in the Noise prologue and in byte 2 of both handshake messages. Version 1 (no
    /// indexes, byte 2 zero) and version 2 (indexes, issue 13) do not interoperate: a node drops the other version's
    /// packets as malformed.
    /// </summary>
    public const byte Version = 2;

    /// <summary>Handshake header: type, aead, version, one reserved zero byte.</summary>
    public const int HandshakeHeaderLength = 4;

    /// <summary>A session index: a random non-zero 32-bit number one end picks per handshake (big-endian on the wire).</summary>
    public const int IndexLength = 4;

    /// <summary>Header of a Data packet: type, 3 reserved zero bytes, receiver index, 8-byte counter.</summary>
    public const int DataHeaderLength = 16;

    /// <summary>AEAD tag.</summary>
    public const int TagLength = 16;

    /// <summary>Bytes a Data packet adds to a datagram.</summary>
    public const int DataOverhead = DataHeaderLength + TagLength;

    /// <summary>Plaintext of the init's Noise payload: timestamp u64 and the sender index again (authenticated).</summary>
    public const int InitPayloadLength = 8 + IndexLength;

    /// <summary>Plaintext of the response's Noise payload: the sender index again (authenticated).</summary>
    public const int ResponsePayloadLength = IndexLength;

    /// <summary>HandshakeInit: header, sender index, IK message 1 (e 33, s 33+16, payload 12+16).</summary>
    public const int HandshakeInitLength = HandshakeHeaderLength + IndexLength + 33 + 49 + InitPayloadLength + TagLength;

    /// <summary>HandshakeResponse: header, sender index, receiver index, IK message 2 (e 33, payload 4+16).</summary>
    public const int HandshakeResponseLength = HandshakeHeaderLength + (2 * IndexLength) + 33 + ResponsePayloadLength + TagLength;

    /// <summary>Largest datagram a session carries when links allow <paramref name="maxUdpPayload"/> bytes.</summary>
    public static int MaxDatagram(int maxUdpPayload) => Links.LinkLimits.MaxRoutedPayload(maxUdpPayload) - DataOverhead;

    /// <summary>Reads the receiver index and counter of a Data packet; false when too short or the reserved bytes are not zero.</summary>
    public static bool TryReadDataHeader(ReadOnlySpan<byte> packet, out uint receiver, out ulong counter)
    {
        receiver = 0;
        counter = 0;
        if (packet.Length < DataOverhead || packet[0] != (byte)SessionPacketType.Data || packet[1] != 0 || packet[2] != 0 || packet[3] != 0)
        {
            return false;
        }

        receiver = BinaryPrimitives.ReadUInt32BigEndian(packet[4..]);
        counter = BinaryPrimitives.ReadUInt64BigEndian(packet[8..]);
        return true;
    }

    /// <summary>Writes a Data header.</summary>
    public static void WriteDataHeader(Span<byte> destination, uint receiver, ulong counter)
    {
        destination[0] = (byte)SessionPacketType.Data;
        destination[1] = 0;
        destination[2] = 0;
        destination[3] = 0;
        BinaryPrimitives.WriteUInt32BigEndian(destination[4..], receiver);
        BinaryPrimitives.WriteUInt64BigEndian(destination[8..], counter);
    }

    /// <summary>
    /// Checks a handshake message's header (<paramref name="type"/>, supported version, reserved zero) and length;
    /// returns its aead byte, or 0 when it is not well formed.
    /// </summary>
    public static byte ReadHandshakeHeader(ReadOnlySpan<byte> packet, SessionPacketType type)
    {
        var length = type == SessionPacketType.HandshakeInit ? HandshakeInitLength : HandshakeResponseLength;
        if (packet.Length != length || packet[0] != (byte)type || packet[2] != Version || packet[3] != 0)
        {
            return 0;
        }

        return packet[1];
    }

    /// <summary>Writes a handshake header.</summary>
    public static void WriteHandshakeHeader(Span<byte> destination, SessionPacketType type, byte aead)
    {
        destination[0] = (byte)type;
        destination[1] = aead;
        destination[2] = Version;
        destination[3] = 0;
    }
}
