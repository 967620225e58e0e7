using System.Buffers.Binary;
using System.Net;
using BenchmarkDotNet.Attributes;
using Skywire.Apps.Vpn.Packets;
using Skywire.Apps.Vpn.Tun;

namespace Skywire.Benchmarks.Vpn;

/// <summary>
/// The VPN fast path's per-packet work in user space (docs/vpn.md "Fast path"), one operation = one 64 KiB TCP
/// super-packet of 48 segments of 1295 bytes: <see cref="Split"/> cuts what a TSO read returns into packets with full
/// checksums; <see cref="Coalesce"/> joins the 48 packets of a received batch into one GSO write. Both must allocate
/// nothing. ns per packet = Mean / 48.
/// </summary>
[MemoryDiagnoser]
public class TunOffloadBenchmarks
{
    private const int Segments = 48;
    private const int Mss = 1295;
    private byte[] _super = null!;
    private VirtioNetHeader _header;
    private byte[][] _packets = null!;
    private byte[] _segment = null!;
    private TunWriter _writer = null!;

    [GlobalSetup]
    public void Setup()
    {
        _super = Tcp(0, Segments * Mss, id: 1);
        _header = new VirtioNetHeader(VirtioNetHeader.NeedsChecksum, VirtioNetHeader.GsoTcpV4, 52, Mss, 20, 16);
        _segment = new byte[2048];
        _packets = new byte[Segments][];
        for (var i = 0; i < Segments; i++)
        {
            _packets[i] = new byte[2048];
            var n = TcpOffload.Segment(_header, _super, i, Segments, _packets[i]);
            _packets[i] = _packets[i][..n];
        }

        _writer = new TunWriter(new NullTun());
    }

    [Benchmark]
    public int Split()
    {
        var count = TcpOffload.SegmentCount(_header, _super);
        var total = 0;
        for (var i = 0; i < count; i++)
        {
            total += TcpOffload.Segment(_header, _super, i, count, _segment);
        }

        return total;
    }

    [Benchmark]
    public void Coalesce()
    {
        foreach (var packet in _packets)
        {
            _writer.Write(packet);
        }

        _writer.Flush();
    }

    private static byte[] Tcp(uint sequence, int payload, ushort id)
    {
        var packet = new byte[20 + 32 + payload];
        packet[0] = 0x45;
        BinaryPrimitives.WriteUInt16BigEndian(packet.AsSpan(2), (ushort)packet.Length);
        BinaryPrimitives.WriteUInt16BigEndian(packet.AsSpan(4), id);
        packet[6] = 0x40;
        packet[8] = 64;
        packet[9] = IpProtocol.Tcp;
        IPAddress.Parse("10.66.0.2").TryWriteBytes(packet.AsSpan(12), out _);
        IPAddress.Parse("10.66.0.1").TryWriteBytes(packet.AsSpan(16), out _);
        Checksum.SetIPv4Header(packet);
        BinaryPrimitives.WriteUInt16BigEndian(packet.AsSpan(20), 40000);
        BinaryPrimitives.WriteUInt16BigEndian(packet.AsSpan(22), 5201);
        BinaryPrimitives.WriteUInt32BigEndian(packet.AsSpan(24), sequence);
        packet[32] = 8 << 4;
        packet[33] = 0x10;
        Random.Shared.NextBytes(packet.AsSpan(52));
        return packet;
    }

    private sealed class NullTun : ITunDevice
    {
        public string Name => "null0";

        public bool Offloads => true;

        public bool WaitReadable(TimeSpan timeout) => false;

        public int Read(Span<byte> packet) => 0;

        public void Write(ReadOnlySpan<byte> packet)
        {
        }

        public void WriteSegmented(ReadOnlySpan<byte> packet, VirtioNetHeader header)
        {
        }

        public void Dispose()
        {
        }
    }
}
