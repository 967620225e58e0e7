using System.Buffers.Binary;
using System.Net;
using Skywire.Apps.Vpn.Packets;
using Skywire.Apps.Vpn.Tun;

namespace Skywire.Tests.Vpn;

/// <summary>
/// The TUN fast path's packet work (docs/vpn.md "Fast path"): cutting a TSO super-packet into segments, completing a
/// partial checksum, and coalescing in-order segments into one super-packet; each checked by the other and by checksums.
/// </summary>
public sealed class TcpOffloadTests
{
    private const int Mss = 1300;

    /// <summary>A TCP segment (ACK, timestamps option) with full IP and TCP checksums.</summary>
    private static byte[] Tcp(int version, uint sequence, int payload, byte flags = 0x10, ushort id = 7, ushort window = 500, ushort sourcePort = 40000, int seed = 0)
    {
        var ip = version == 4 ? 20 : 40;
        var packet = new byte[ip + 32 + payload];
        if (version == 4)
        {
            packet[0] = 0x45;
            BinaryPrimitives.WriteUInt16BigEndian(packet.AsSpan(2), (ushort)packet.Length);
            BinaryPrimitives.WriteUInt16BigEndian(packet.AsSpan(4), id);
            packet[6] = 0x40; // DF
            packet[8] = 64;
            packet[9] = IpProtocol.Tcp;
            IPAddress.Parse("10.66.0.2").TryWriteBytes(packet.AsSpan(12), out _);
            IPAddress.Parse("10.66.0.1").TryWriteBytes(packet.AsSpan(16), out _);
            Checksum.SetIPv4Header(packet);
        }
        else
        {
            packet[0] = 0x60;
            BinaryPrimitives.WriteUInt16BigEndian(packet.AsSpan(4), (ushort)(packet.Length - 40));
            packet[6] = IpProtocol.Tcp;
            packet[7] = 64;
            IPAddress.Parse("fd66::2").TryWriteBytes(packet.AsSpan(8), out _);
            IPAddress.Parse("fd66::1").TryWriteBytes(packet.AsSpan(24), out _);
        }

        var tcp = packet.AsSpan(ip);
        BinaryPrimitives.WriteUInt16BigEndian(tcp, sourcePort);
        BinaryPrimitives.WriteUInt16BigEndian(tcp[2..], 5201);
        BinaryPrimitives.WriteUInt32BigEndian(tcp[4..], sequence);
        BinaryPrimitives.WriteUInt32BigEndian(tcp[8..], 99);
        tcp[12] = 8 << 4;
        tcp[13] = flags;
        BinaryPrimitives.WriteUInt16BigEndian(tcp[14..], window);
        tcp[20] = 1;
        tcp[21] = 1;
        tcp[22] = 8; // timestamps
        tcp[23] = 10;
        BinaryPrimitives.WriteUInt32BigEndian(tcp[24..], 12345);
        for (var i = 0; i < payload; i++)
        {
            tcp[32 + i] = (byte)((sequence + i) * 31 + seed);
        }

        TcpOffload.SetTcpChecksum(packet, ip);
        return packet;
    }

    private static bool TcpChecksumValid(byte[] packet)
    {
        var ip = IpPacket.Validate(packet);
        var sum = Checksum.PseudoHeader(IpPacket.Source(packet), IpPacket.Destination(packet), IpProtocol.Tcp, packet.Length - ip);
        return Checksum.Fold(Checksum.Add(packet.AsSpan(ip), sum)) == 0xFFFF;
    }

    private static List<byte[]> Split(byte[] packet, VirtioNetHeader header)
    {
        var count = TcpOffload.SegmentCount(header, packet);
        var segments = new List<byte[]>();
        var buffer = new byte[2048];
        for (var i = 0; i < count; i++)
        {
            var n = TcpOffload.Segment(header, packet, i, count, buffer);
            Assert.True(n > 0);
            segments.Add(buffer[..n]);
        }

        return segments;
    }

    [Theory]
    [InlineData(4)]
    [InlineData(6)]
    public void Coalesce_InOrderRun_OneSuperPacket_ThatSplitsBackByteExact(int version)
    {
        var tun = new RecordingTun();
        var writer = new TunWriter(tun);
        var sent = new List<byte[]>();
        for (var i = 0; i < 40; i++)
        {
            var last = i == 39;
            sent.Add(Tcp(version, 1000 + (uint)(i * Mss), last ? 700 : Mss, flags: last ? (byte)0x18 : (byte)0x10, id: (ushort)(7 + i)));
        }

        foreach (var packet in sent)
        {
            writer.Write(packet);
        }

        writer.Flush();
        var (super, header) = Assert.Single(tun.Segmented);
        Assert.Empty(tun.Plain);
        Assert.Equal(39, writer.Coalesced);
        Assert.Equal(version == 4 ? VirtioNetHeader.GsoTcpV4 : VirtioNetHeader.GsoTcpV6, header.GsoType);
        Assert.Equal(Mss, header.GsoSize);
        Assert.Equal(VirtioNetHeader.NeedsChecksum, header.Flags);
        Assert.Equal(IpPacket.Validate(super), header.ChecksumStart);
        Assert.Equal(16, header.ChecksumOffset);

        // The partial checksum completes to the full one of the whole packet.
        var completed = (byte[])super.Clone();
        Assert.True(TcpOffload.CompleteChecksum(completed, header.ChecksumStart, header.ChecksumOffset));
        Assert.True(TcpChecksumValid(completed));

        var back = Split(super, header);
        Assert.Equal(sent.Count, back.Count);
        for (var i = 0; i < sent.Count; i++)
        {
            Assert.Equal(sent[i], back[i]);
        }
    }

    [Fact]
    public void Coalesce_BreaksAtGapsFlowsFlagsAndShortSegments_WritesEverythingOnceInOrder()
    {
        var tun = new RecordingTun();
        var writer = new TunWriter(tun);
        var batch = new[]
        {
            Tcp(4, 0, Mss, id: 1), Tcp(4, Mss, Mss, id: 2), // run 1 (the kernel numbers IPv4 IDs on)
            Tcp(4, 5 * Mss, Mss), // a gap: run 2, alone
            Tcp(4, 6 * Mss, Mss, sourcePort: 40001), // another flow: run 3, alone
            Tcp(4, 6 * Mss, 500, id: 10), Tcp(4, 6 * Mss + 500, 100, id: 11), // run 4: segments of 500, the shorter one ends it
            Tcp(4, 6 * Mss + 600, 100, id: 12), // so this one starts run 5, alone
            Tcp(4, 9 * Mss, 0, flags: 0x11), // FIN: written as it is
            Tcp(4, 10 * Mss, Mss, flags: 0x18), // PSH alone: as it is
            VpnPacketTests.Udp4("10.66.0.2", "10.66.0.1", 100),
        };
        foreach (var packet in batch)
        {
            writer.Write(packet);
        }

        writer.Flush();
        var all = tun.All.SelectMany(w => w.Segmented ? Split(w.Packet, w.Header) : new List<byte[]> { w.Packet }).ToList();
        Assert.Equal(batch, all);
        Assert.Equal(2, tun.Segmented.Count);
    }

    [Theory]
    [InlineData(4)]
    [InlineData(6)]
    public void Split_KernelSuperPacket_SegmentsWithFullChecksums_FinAndPshOnlyOnTheLast(int version)
    {
        // What TCP hands a TSO device: one packet with 10 000 bytes of payload, PSH|FIN|ACK, checksum partial.
        var super = Tcp(version, 5000, 10_000, flags: 0x19, id: 100);
        var ip = version == 4 ? 20 : 40;
        var pseudo = Checksum.PseudoHeader(IpPacket.Source(super), IpPacket.Destination(super), IpProtocol.Tcp, super.Length - ip);
        BinaryPrimitives.WriteUInt16BigEndian(super.AsSpan(ip + 16), Checksum.Fold(pseudo));
        var header = new VirtioNetHeader(VirtioNetHeader.NeedsChecksum, version == 4 ? VirtioNetHeader.GsoTcpV4 : VirtioNetHeader.GsoTcpV6, (ushort)(ip + 32), Mss, (ushort)ip, 16);

        var segments = Split(super, header);
        Assert.Equal(8, segments.Count);
        var payload = 0;
        for (var i = 0; i < segments.Count; i++)
        {
            var segment = segments[i];
            Assert.NotEqual(0, IpPacket.Validate(segment));
            Assert.True(TcpChecksumValid(segment));
            Assert.Equal(5000u + (uint)(i * Mss), BinaryPrimitives.ReadUInt32BigEndian(segment.AsSpan(ip + 4)));
            Assert.Equal(i == 7 ? 0x19 : 0x10, segment[ip + 13]);
            if (version == 4)
            {
                Assert.Equal(100 + i, BinaryPrimitives.ReadUInt16BigEndian(segment.AsSpan(4)));
                Assert.Equal(0xFFFF, Checksum.Fold(Checksum.Add(segment.AsSpan(0, 20))));
            }

            Assert.Equal(super.AsSpan(ip + 32 + payload, segment.Length - ip - 32).ToArray(), segment[(ip + 32)..]);
            payload += segment.Length - ip - 32;
        }

        Assert.Equal(10_000, payload);
    }

    [Fact]
    public void Split_Refuses_WhatTheKernelWouldNotMake()
    {
        var packet = Tcp(4, 0, 3000);
        Assert.Equal(0, TcpOffload.SegmentCount(new VirtioNetHeader(1, VirtioNetHeader.GsoTcpV6, 52, Mss, 20, 16), packet));
        Assert.Equal(0, TcpOffload.SegmentCount(new VirtioNetHeader(1, VirtioNetHeader.GsoTcpV4, 52, 0, 20, 16), packet));
        Assert.Equal(0, TcpOffload.SegmentCount(new VirtioNetHeader(1, VirtioNetHeader.GsoTcpV4, 52, Mss, 3000, 16), packet));
        Assert.Equal(0, TcpOffload.SegmentCount(new VirtioNetHeader(1, VirtioNetHeader.GsoTcpV4, 52, Mss, 20, 16), packet.AsSpan(0, 100)));
        Assert.Equal(3, TcpOffload.SegmentCount(new VirtioNetHeader(1, VirtioNetHeader.GsoTcpV4, 52, Mss, 20, 16), packet));
        Assert.False(TcpOffload.CompleteChecksum(packet, packet.Length - 10, 16));
    }

    [Fact]
    public void CompleteChecksum_FromThePseudoHeaderSum_GivesTheFullOne()
    {
        var packet = Tcp(6, 77, 999);
        var expected = (byte[])packet.Clone();
        var pseudo = Checksum.PseudoHeader(IpPacket.Source(packet), IpPacket.Destination(packet), IpProtocol.Tcp, packet.Length - 40);
        BinaryPrimitives.WriteUInt16BigEndian(packet.AsSpan(40 + 16), Checksum.Fold(pseudo));
        Assert.True(TcpOffload.CompleteChecksum(packet, 40, 16));
        Assert.Equal(expected, packet);
    }

    [Fact]
    public void IcmpTooBig_AnswersOnlyWhatMayBeAnswered()
    {
        var answer = new byte[IcmpTooBig.MaxLength];
        var udp = VpnPacketTests.Udp4("10.66.0.2", "10.9.9.9", 1400);
        Assert.Equal(0, IcmpTooBig.Write(udp, 1300, answer)); // may be fragmented: no answer

        udp[6] = 0x40;
        Checksum.SetIPv4Header(udp.AsSpan(0, 20));
        var length = IcmpTooBig.Write(udp, 1300, answer);
        Assert.Equal(20 + 8 + 548, length);
        Assert.NotEqual(0, IpPacket.Validate(answer.AsSpan(0, length)));
        Assert.Equal(0xFFFF, Checksum.Fold(Checksum.Add(answer.AsSpan(0, 20))));
        Assert.Equal(0xFFFF, Checksum.Fold(Checksum.Add(answer.AsSpan(20, length - 20))));
        Assert.Equal(1300, BinaryPrimitives.ReadUInt16BigEndian(answer.AsSpan(26)));

        // An ICMP error is never answered (no storms); an echo request is.
        var icmp = VpnPacketTests.Udp4("10.66.0.2", "10.9.9.9", 1400);
        icmp[6] = 0x40;
        icmp[9] = IpProtocol.Icmp;
        icmp[20] = 3;
        Assert.Equal(0, IcmpTooBig.Write(icmp, 1300, answer));
        icmp[20] = 8;
        Assert.NotEqual(0, IcmpTooBig.Write(icmp, 1300, answer));
        Assert.Equal(0, IcmpTooBig.Write(udp.AsSpan(0, 100), 1300, answer)); // not a whole packet
        Assert.Equal(0, IcmpTooBig.Write(udp, 1300, new byte[100])); // no room
    }

    private sealed class RecordingTun : ITunDevice
    {
        public List<(byte[] Packet, VirtioNetHeader Header, bool Segmented)> All { get; } = [];

        public List<byte[]> Plain => [.. All.Where(w => !w.Segmented).Select(w => w.Packet)];

        public List<(byte[] Packet, VirtioNetHeader Header)> Segmented => [.. All.Where(w => w.Segmented).Select(w => (w.Packet, w.Header))];

        public string Name => "rec0";

        public bool Offloads => true;

        public bool WaitReadable(TimeSpan timeout) => false;

        public int Read(Span<byte> packet) => 0;

        public void Write(ReadOnlySpan<byte> packet) => All.Add((packet.ToArray(), default, false));

        public void WriteSegmented(ReadOnlySpan<byte> packet, VirtioNetHeader header) => All.Add((packet.ToArray(), header, true));

        public void Dispose()
        {
        }
    }
}
