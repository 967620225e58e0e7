using System.Buffers.Binary;

namespace Skywire.Protocol.Sessions;

/// <summary>End-to-end session packet types: the first byte of a routed payload (docs/protocol.md §6). Never renumber.</summary>
public enum SessionPacketType : byte
{
    /// <summary>Noise IK message 1 from the session initiator.</summary>
    HandshakeInit = 0x10,

    /// <summary>Noise IK message 2 from the responder.</summary>
    HandshakeResponse = 0x11,

    /// <summary>A sealed datagram: counter in the header, AEAD with the counter as nonce and no associated data.</summary>
    Data = 0x12,
}

/// <summary>Sizes of session packets (normative).</summary>
public static class SessionLimits
{
    /// <summary>Session protocol version (in the Noise prologue).</summary>
    public const byte Version = 1;

    /// <summary>Header of a Data packet: type, 3 reserved bytes, 8-byte counter.</summary>
    public const int DataHeaderLength = 12;

    /// <summary>AEAD tag.</summary>
    public const int TagLength = 16;

    /// <summary>Bytes a Data packet adds to a datagram.</summary>
    public const int DataOverhead = DataHeaderLength + TagLength;

    /// <summary>HandshakeInit: 4-byte header + IK message 1 (33 + 49 + 8 + 16).</summary>
    public const int HandshakeInitLength = 110;

    /// <summary>HandshakeResponse: 4-byte header + IK message 2 (33 + 16).</summary>
    public const int HandshakeResponseLength = 53;

    /// <summary>Largest datagram a session carries when links allow <paramref name="maxUdpPayload"/> bytes.</summary>
    public static int MaxDatagram(int maxUdpPayload) => Links.LinkLimits.MaxRoutedPayload(maxUdpPayload) - DataOverhead;

    /// <summary>Reads the counter of a Data packet; false when too short or the reserved bytes are not zero.</summary>
    public static bool TryReadDataCounter(ReadOnlySpan<byte> packet, out ulong counter)
    {
        counter = 0;
        if (packet.Length < DataOverhead || packet[0] != (byte)SessionPacketType.Data || packet[1] != 0 || packet[2] != 0 || packet[3] != 0)
        {
            return false;
        }

        counter = BinaryPrimitives.ReadUInt64BigEndian(packet[4..]);
        return true;
    }

    /// <summary>Writes a Data header.</summary>
    public static void WriteDataHeader(Span<byte> destination, ulong counter)
    {
        destination[0] = (byte)SessionPacketType.Data;
        destination[1] = 0;
        destination[2] = 0;
        destination[3] = 0;
        BinaryPrimitives.WriteUInt64BigEndian(destination[4..], counter);
    }
}
