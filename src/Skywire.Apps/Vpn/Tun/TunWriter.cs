using System.Buffers.Binary;
using Skywire.Apps.Vpn.Packets;

namespace Skywire.Apps.Vpn.Tun;

/// <summary>
/// Writes a batch of packets to a TUN device, coalescing in-order TCP segments of one flow into one super-packet when
/// the device takes them (<see cref="ITunDevice.Offloads"/>; docs/vpn.md "Fast path"), as the kernel's GRO does:
/// same addresses, ports, ACK number, header sizes and options; contiguous sequence numbers; ACK (and PSH on the last)
/// as the only flags; every segment the size of the first except a shorter last one. The kernel's TCP then takes the
/// whole run as one packet (one TUN write, one pass through the stack). Everything else is written as it is. Call
/// <see cref="Write"/> for each packet of a batch and <see cref="Flush"/> at its end. One thread; nothing allocated.
/// </summary>
public sealed class TunWriter
{
    private const byte TcpAck = 0x10, TcpPsh = 0x08;
    private const int MaxCoalesced = ushort.MaxValue;

    private readonly ITunDevice _tun;
    private readonly byte[] _buffer;
    private int _length;
    private int _segments;
    private int _transport; // offset of the TCP header
    private int _headers; // IP + TCP header bytes
    private int _segmentSize;
    private uint _nextSequence;
    private bool _closed; // a shorter segment or PSH ended the run

    /// <summary>Writes to <paramref name="tun"/>.</summary>
    public TunWriter(ITunDevice tun)
    {
        ArgumentNullException.ThrowIfNull(tun);
        _tun = tun;
        _buffer = GC.AllocateArray<byte>(MaxCoalesced, pinned: true);
    }

    /// <summary>Segments written inside a larger packet so far (not counting the run's first).</summary>
    public long Coalesced { get; private set; }

    /// <summary>Writes (or holds for coalescing) one valid IP packet.</summary>
    /// <exception cref="IOException">The device refused a packet (the rest of the batch still goes).</exception>
    public void Write(ReadOnlySpan<byte> packet)
    {
        if (!_tun.Offloads)
        {
            _tun.Write(packet);
            return;
        }

        if (_segments > 0 && TryAppend(packet))
        {
            return;
        }

        Flush();
        if (!TryStart(packet))
        {
            _tun.Write(packet);
        }
    }

    /// <summary>Writes what is held.</summary>
    /// <exception cref="IOException">The device refused the packet.</exception>
    public void Flush()
    {
        if (_segments == 0)
        {
            return;
        }

        var packet = _buffer.AsSpan(0, _length);
        var segments = _segments;
        _segments = 0;
        _length = 0;
        if (segments == 1)
        {
            _tun.Write(packet);
            return;
        }

        var version = IpPacket.Version(packet);
        if (version == 4)
        {
            BinaryPrimitives.WriteUInt16BigEndian(packet[2..], (ushort)packet.Length);
            Checksum.SetIPv4Header(packet);
        }
        else
        {
            BinaryPrimitives.WriteUInt16BigEndian(packet[4..], (ushort)(packet.Length - IpPacket.IPv6HeaderLength));
        }

        // NEEDS_CSUM: the field holds the pseudo-header sum; the kernel takes the packet as checked on local delivery
        // and completes each segment's checksum when it forwards it.
        var pseudo = Checksum.PseudoHeader(IpPacket.Source(packet), IpPacket.Destination(packet), IpProtocol.Tcp, packet.Length - _transport);
        BinaryPrimitives.WriteUInt16BigEndian(packet[(_transport + 16)..], Checksum.Fold(pseudo));
        Coalesced += segments - 1;
        _tun.WriteSegmented(packet, new VirtioNetHeader(
            VirtioNetHeader.NeedsChecksum,
            version == 4 ? VirtioNetHeader.GsoTcpV4 : VirtioNetHeader.GsoTcpV6,
            (ushort)_headers,
            (ushort)_segmentSize,
            (ushort)_transport,
            16));
    }

    // A TCP data segment with no IP options or extension headers and only ACK (PSH ends a run, so it does not start one).
    private static bool IsCandidate(ReadOnlySpan<byte> packet, out int transport, out int headers)
    {
        transport = headers = 0;
        switch (IpPacket.Version(packet))
        {
            case 4:
                if (packet[0] != 0x45 || packet[9] != IpProtocol.Tcp || IpPacket.IsIPv4Fragment(packet))
                {
                    return false;
                }

                transport = IpPacket.IPv4HeaderLength;
                break;
            case 6:
                if (packet[6] != IpProtocol.Tcp)
                {
                    return false;
                }

                transport = IpPacket.IPv6HeaderLength;
                break;
            default:
                return false;
        }

        if (packet.Length < transport + 20)
        {
            return false;
        }

        headers = transport + ((packet[transport + 12] >> 4) * 4);
        return headers >= transport + 20 && headers < packet.Length && packet[transport + 13] == TcpAck;
    }

    private bool TryStart(ReadOnlySpan<byte> packet)
    {
        if (!IsCandidate(packet, out var transport, out var headers))
        {
            return false;
        }

        packet.CopyTo(_buffer);
        _length = packet.Length;
        _segments = 1;
        _transport = transport;
        _headers = headers;
        _segmentSize = packet.Length - headers;
        _nextSequence = BinaryPrimitives.ReadUInt32BigEndian(packet[(transport + 4)..]) + (uint)_segmentSize;
        _closed = false;
        return true;
    }

    private bool TryAppend(ReadOnlySpan<byte> packet)
    {
        if (_closed || packet.Length <= _headers || packet.Length - _headers > _segmentSize || _length + packet.Length - _headers > MaxCoalesced)
        {
            return false;
        }

        var held = _buffer.AsSpan(0, _length);
        var t = _transport;
        var flags = packet[t + 13];
        if ((flags & ~TcpPsh) != TcpAck || IpPacket.Version(packet) != IpPacket.Version(held) || ((packet[t + 12] >> 4) * 4) != _headers - t)
        {
            return false;
        }

        if (t == IpPacket.IPv4HeaderLength)
        {
            // Version/IHL, TOS; flags and fragment offset; TTL, protocol; addresses (not length, ID or checksum).
            if (packet[0] != held[0] || packet[1] != held[1] || !packet.Slice(6, 4).SequenceEqual(held.Slice(6, 4)) || !packet.Slice(12, 8).SequenceEqual(held.Slice(12, 8)))
            {
                return false;
            }
        }
        else if (!packet[..4].SequenceEqual(held[..4]) || !packet.Slice(6, 34).SequenceEqual(held.Slice(6, 34)))
        {
            return false;
        }

        // Ports, ACK number, options; the sequence number must continue the run.
        if (!packet.Slice(t, 4).SequenceEqual(held.Slice(t, 4)) || !packet.Slice(t + 8, 4).SequenceEqual(held.Slice(t + 8, 4))
            || !packet[(t + 20).._headers].SequenceEqual(held[(t + 20).._headers])
            || BinaryPrimitives.ReadUInt32BigEndian(packet[(t + 4)..]) != _nextSequence)
        {
            return false;
        }

        var payload = packet.Length - _headers;
        packet[_headers..].CopyTo(_buffer.AsSpan(_length));
        _length += payload;
        _segments++;
        _nextSequence += (uint)payload;
        held[t + 14] = packet[t + 14]; // the newest receive window
        held[t + 15] = packet[t + 15];
        if ((flags & TcpPsh) != 0)
        {
            held[t + 13] |= TcpPsh;
            _closed = true;
        }

        if (payload < _segmentSize)
        {
            _closed = true;
        }

        return true;
    }
}
