using System.Buffers.Binary;
using Skywire.Apps.Vpn.Packets;

namespace Skywire.Apps.Vpn.Tun;

/// <summary>
/// The <c>virtio_net_hdr</c> a TUN device opened with IFF_VNET_HDR puts before every packet it reads and expects before
/// every packet it is given (10 bytes, host byte order): flags, GSO type, header length, segment size, checksum start
/// and offset. With TSO on, a read can return one TCP "super-packet" of up to 64 KiB that the kernel did not cut
/// (<see cref="TcpOffload.Segment"/> cuts it), and a write can hand the kernel one (<see cref="TunWriter"/> builds it).
/// </summary>
public readonly record struct VirtioNetHeader(byte Flags, byte GsoType, ushort HeaderLength, ushort GsoSize, ushort ChecksumStart, ushort ChecksumOffset)
{
    /// <summary>Bytes on the wire.</summary>
    public const int Length = 10;

    /// <summary>VIRTIO_NET_HDR_F_NEEDS_CSUM: the transport checksum is partial (the pseudo-header sum only).</summary>
    public const byte NeedsChecksum = 1;

    /// <summary>VIRTIO_NET_HDR_GSO_NONE.</summary>
    public const byte GsoNone = 0;

    /// <summary>VIRTIO_NET_HDR_GSO_TCPV4.</summary>
    public const byte GsoTcpV4 = 1;

    /// <summary>VIRTIO_NET_HDR_GSO_TCPV6.</summary>
    public const byte GsoTcpV6 = 4;

    /// <summary>VIRTIO_NET_HDR_GSO_ECN (a bit beside the type).</summary>
    public const byte GsoEcn = 0x80;

    /// <summary>Reads a header (little-endian: the host's order on every platform .NET runs Linux on).</summary>
    public static VirtioNetHeader Read(ReadOnlySpan<byte> source) => new(
        source[0],
        source[1],
        BinaryPrimitives.ReadUInt16LittleEndian(source[2..]),
        BinaryPrimitives.ReadUInt16LittleEndian(source[4..]),
        BinaryPrimitives.ReadUInt16LittleEndian(source[6..]),
        BinaryPrimitives.ReadUInt16LittleEndian(source[8..]));

    /// <summary>Writes the header.</summary>
    public void Write(Span<byte> destination)
    {
        destination[0] = Flags;
        destination[1] = GsoType;
        BinaryPrimitives.WriteUInt16LittleEndian(destination[2..], HeaderLength);
        BinaryPrimitives.WriteUInt16LittleEndian(destination[4..], GsoSize);
        BinaryPrimitives.WriteUInt16LittleEndian(destination[6..], ChecksumStart);
        BinaryPrimitives.WriteUInt16LittleEndian(destination[8..], ChecksumOffset);
    }
}

/// <summary>
/// TCP segmentation of what a TUN device with offloads reads (docs/vpn.md "Fast path"), as the kernel's
/// <c>tcp_gso_segment</c> does it: every segment gets the headers of the super-packet with its own IP length (and IPv4
/// ID and header checksum), sequence number, flags (FIN and PSH only on the last, CWR only on the first) and a full
/// TCP checksum, so what crosses the mesh is a set of ordinary, complete IP packets. Nothing allocated.
/// </summary>
public static class TcpOffload
{
    private const byte TcpFin = 0x01, TcpPsh = 0x08, TcpCwr = 0x80;

    /// <summary>
    /// Completes a partial checksum (NEEDS_CSUM without GSO): the field at start + offset holds the pseudo-header sum;
    /// the checksum of everything from start to the end replaces it. False when the offsets do not fit the packet.
    /// </summary>
    public static bool CompleteChecksum(Span<byte> packet, int start, int offset)
    {
        var at = start + offset;
        if (start < 0 || offset < 0 || at + 2 > packet.Length)
        {
            return false;
        }

        var initial = BinaryPrimitives.ReadUInt16BigEndian(packet[at..]);
        packet[at] = 0;
        packet[at + 1] = 0;
        var value = Checksum.Finish(Checksum.Add(packet[start..], initial));

        // UDP sends a computed 0 as all ones (0 means "no checksum"); the UDP checksum sits at offset 6.
        BinaryPrimitives.WriteUInt16BigEndian(packet[at..], value == 0 && offset == 6 ? (ushort)0xFFFF : value);
        return true;
    }

    /// <summary>
    /// How many segments the TCP super-packet <paramref name="packet"/> (read with <paramref name="header"/>, GSO type
    /// TCPv4 or TCPv6) makes; 0 when it is not one the kernel would have made (then it is dropped).
    /// </summary>
    public static int SegmentCount(in VirtioNetHeader header, ReadOnlySpan<byte> packet)
    {
        var version = IpPacket.Version(packet);
        var type = header.GsoType & ~VirtioNetHeader.GsoEcn;
        if ((type == VirtioNetHeader.GsoTcpV4 && version != 4) || (type == VirtioNetHeader.GsoTcpV6 && version != 6) || header.GsoSize == 0)
        {
            return 0;
        }

        if (IpPacket.Validate(packet) == 0 || (version == 4 && IpPacket.Protocol(packet) != IpProtocol.Tcp))
        {
            return 0;
        }

        // TCP right after the IP header (IPv6: after its extension headers, if any).
        var tcp = TransportOffset(header, packet);
        var ip = version == 4 ? (packet[0] & 0x0F) * 4 : IpPacket.IPv6HeaderLength;
        if (tcp < ip || (tcp != ip && (version == 4 || packet[6] == IpProtocol.Tcp)) || tcp + 20 > packet.Length)
        {
            return 0;
        }

        var headers = tcp + ((packet[tcp + 12] >> 4) * 4);
        if (headers < tcp + 20 || headers >= packet.Length)
        {
            return 0;
        }

        return (packet.Length - headers + header.GsoSize - 1) / header.GsoSize;
    }

    /// <summary>
    /// Writes segment <paramref name="index"/> (of <see cref="SegmentCount"/>) of <paramref name="packet"/> into
    /// <paramref name="destination"/> as a complete IP packet; returns its length, or 0 when it does not fit.
    /// </summary>
    public static int Segment(in VirtioNetHeader header, ReadOnlySpan<byte> packet, int index, int count, Span<byte> destination)
    {
        var version = IpPacket.Version(packet);
        var tcp = TransportOffset(header, packet);
        var headers = tcp + ((packet[tcp + 12] >> 4) * 4);
        var start = headers + (index * header.GsoSize);
        var payload = Math.Min(header.GsoSize, packet.Length - start);
        var length = headers + payload;
        if (payload <= 0 || length > destination.Length)
        {
            return 0;
        }

        packet[..headers].CopyTo(destination);
        packet.Slice(start, payload).CopyTo(destination[headers..]);
        var segment = destination[..length];
        if (version == 4)
        {
            BinaryPrimitives.WriteUInt16BigEndian(segment[2..], (ushort)length);
            BinaryPrimitives.WriteUInt16BigEndian(segment[4..], (ushort)(BinaryPrimitives.ReadUInt16BigEndian(packet[4..]) + index));
            Checksum.SetIPv4Header(segment);
        }
        else
        {
            BinaryPrimitives.WriteUInt16BigEndian(segment[4..], (ushort)(length - IpPacket.IPv6HeaderLength));
        }

        var sequence = BinaryPrimitives.ReadUInt32BigEndian(packet[(tcp + 4)..]) + (uint)(index * header.GsoSize);
        BinaryPrimitives.WriteUInt32BigEndian(segment[(tcp + 4)..], sequence);
        var flags = packet[tcp + 13];
        if (index > 0)
        {
            flags &= unchecked((byte)~TcpCwr);
        }

        if (index < count - 1)
        {
            flags &= unchecked((byte)~(TcpFin | TcpPsh));
        }

        segment[tcp + 13] = flags;
        SetTcpChecksum(segment, tcp);
        return length;
    }

    // Where TCP starts: the checksum start the kernel gives with NEEDS_CSUM, else right after the IP header.
    private static int TransportOffset(in VirtioNetHeader header, ReadOnlySpan<byte> packet) =>
        (header.Flags & VirtioNetHeader.NeedsChecksum) != 0 ? header.ChecksumStart
        : IpPacket.Version(packet) == 4 ? (packet[0] & 0x0F) * 4 : IpPacket.IPv6HeaderLength;

    /// <summary>Computes and stores the full TCP checksum of <paramref name="packet"/> (TCP header at <paramref name="tcp"/>).</summary>
    public static void SetTcpChecksum(Span<byte> packet, int tcp)
    {
        packet[tcp + 16] = 0;
        packet[tcp + 17] = 0;
        var sum = Checksum.PseudoHeader(IpPacket.Source(packet), IpPacket.Destination(packet), IpProtocol.Tcp, packet.Length - tcp);
        BinaryPrimitives.WriteUInt16BigEndian(packet[(tcp + 16)..], Checksum.Finish(Checksum.Add(packet[tcp..], sum)));
    }
}
