using Skywire.Core.Sessions.Mux;
using Skywire.TestKit;

namespace Skywire.Tests.Mux;

public class MuxCodecTests
{
    [Theory]
    [InlineData(0L)]
    [InlineData(63L)]
    [InlineData(64L)]
    [InlineData(16383L)]
    [InlineData(16384L)]
    [InlineData((1L << 30) - 1)]
    [InlineData(1L << 30)]
    [InlineData((1L << 62) - 1)]
    public void VarInt_RoundTrips(long value)
    {
        var buffer = new byte[8];
        var pos = 0;
        VarInt.Write(buffer, ref pos, value);
        Assert.Equal(VarInt.Size(value), pos);
        var read = 0;
        Assert.True(VarInt.TryRead(buffer.AsSpan(0, pos), ref read, out var back));
        Assert.Equal(value, back);
        Assert.Equal(pos, read);
        for (var cut = 0; cut < pos; cut++)
        {
            var p = 0;
            Assert.False(VarInt.TryRead(buffer.AsSpan(0, cut), ref p, out _));
        }
    }

    private static byte[] SamplePacket(out RangeSet acked)
    {
        var buffer = new byte[1200];
        var pos = MuxCodec.WritePacketHeader(buffer, 123456);
        acked = new RangeSet();
        acked.Add(0, 10);
        acked.Add(12, 20);
        acked.Add(100, 101);
        Assert.True(MuxCodec.TryWriteAck(buffer, ref pos, 200, acked, 777));
        MuxCodec.WriteSimple(buffer, ref pos, MuxFrameType.Ping);
        MuxCodec.WriteValue(buffer, ref pos, MuxFrameType.MaxData, 1 << 24);
        MuxCodec.WriteOpen(buffer, ref pos, 5, 65536, "app"u8);
        MuxCodec.WriteStreamValue(buffer, ref pos, MuxFrameType.Accept, 4, 4096);
        MuxCodec.WriteStreamValue(buffer, ref pos, MuxFrameType.Refuse, 6, 42);
        MuxCodec.WriteReset(buffer, ref pos, 8, 7, 300_000);
        MuxCodec.WriteStreamValue(buffer, ref pos, MuxFrameType.MaxStreamData, 9, 1 << 20);
        MuxCodec.WriteStreamHeader(buffer, ref pos, 3, 1_000_000, 5, fin: true);
        "hello"u8.CopyTo(buffer.AsSpan(pos));
        pos += 5;
        MuxCodec.WriteDatagram(buffer, ref pos, "dgram"u8);
        MuxCodec.WriteValue(buffer, ref pos, MuxFrameType.Close, 9);
        return buffer[..pos];
    }

    [Fact]
    public void Packet_RoundTripsEveryFrameType()
    {
        var packet = SamplePacket(out _);
        Assert.True(MuxCodec.TryReadPacketHeader(packet, out var pn, out var start));
        Assert.Equal(123456, pn);
        var reader = new MuxFrameReader(packet.AsSpan(start));
        var types = new List<MuxFrameType>();
        while (reader.TryRead(out var f, out var invalid))
        {
            Assert.False(invalid);
            types.Add(f.Type);
            switch (f.Type)
            {
                case MuxFrameType.Ack:
                    Assert.Equal(100, f.A);
                    Assert.Equal(777, f.B);
                    var ranges = new List<(long, long)>();
                    var ar = new AckRangeReader(f.A, f.Data);
                    while (ar.TryNext(out var lo, out var hi))
                    {
                        ranges.Add((lo, hi));
                    }
                    Assert.Equal([(100L, 100L), (12L, 19L), (0L, 9L)], ranges);
                    break;
                case MuxFrameType.Open:
                    Assert.Equal(5, f.StreamRef);
                    Assert.Equal(65536, f.A);
                    Assert.Equal("app"u8.ToArray(), f.Data.ToArray());
                    break;
                case MuxFrameType.StreamFin:
                    Assert.Equal(3, f.StreamRef);
                    Assert.Equal(1_000_000, f.A);
                    Assert.Equal("hello"u8.ToArray(), f.Data.ToArray());
                    break;
                case MuxFrameType.Refuse:
                    Assert.Equal((6L, 42L), (f.StreamRef, f.A));
                    break;
                case MuxFrameType.Reset:
                    Assert.Equal((8L, 7L, 300_000L), (f.StreamRef, f.A, f.B));
                    break;
                case MuxFrameType.Datagram:
                    Assert.Equal("dgram"u8.ToArray(), f.Data.ToArray());
                    break;
            }
        }
        Assert.Equal(
            [MuxFrameType.Ack, MuxFrameType.Ping, MuxFrameType.MaxData, MuxFrameType.Open, MuxFrameType.Accept, MuxFrameType.Refuse,
             MuxFrameType.Reset, MuxFrameType.MaxStreamData, MuxFrameType.StreamFin, MuxFrameType.Datagram, MuxFrameType.Close],
            types);
    }

    [Fact]
    public void Packet_TruncatedAtEveryOffset_NeverThrowsAndFlagsTheCut()
    {
        var packet = SamplePacket(out _);
        Assert.True(MuxCodec.TryReadPacketHeader(packet, out _, out var start));
        var boundaries = new HashSet<int>();
        boundaries.Add(start);
        // Frame boundaries: cutting exactly there leaves a valid shorter packet.
        var probe = packet.AsSpan(start);
        for (var cut = 1; cut <= probe.Length; cut++)
        {
            var r = new MuxFrameReader(probe[..cut]);
            var ok = true;
            while (r.TryRead(out _, out var invalid) || invalid)
            {
                if (invalid)
                {
                    ok = false;
                    break;
                }
            }
            if (ok)
            {
                boundaries.Add(start + cut);
            }
        }
        Assert.True(boundaries.Count >= 12, "every frame end is a valid cut");
        Assert.Contains(packet.Length, boundaries);
        for (var cut = 0; cut < packet.Length; cut++)
        {
            var valid = MuxCodec.TryReadPacketHeader(packet.AsSpan(0, cut), out _, out var s2) && cut > s2;
            if (!valid)
            {
                continue;
            }
            var reader = new MuxFrameReader(packet.AsSpan(s2, cut - s2));
            bool invalid;
            while (reader.TryRead(out _, out invalid))
            {
            }
            Assert.Equal(!boundaries.Contains(cut), invalid);
        }
    }

    [Fact]
    public async Task Receive_GarbageAndTruncatedPackets_AreDroppedAndCounted()
    {
        await using var pair = MuxPair.Create();
        var packet = SamplePacket(out _);
        for (var cut = 0; cut < packet.Length; cut++)
        {
            var prefix = packet.AsSpan(0, cut);
            pair.B.Receive(prefix);
        }
        var random = new Random(99);
        var junk = new byte[1500];
        for (var i = 0; i < 5000; i++)
        {
            var len = random.Next(0, junk.Length);
            random.NextBytes(junk.AsSpan(0, len));
            if (i % 2 == 0 && len > 0)
            {
                junk[0] = MuxCodec.PacketHeader; // get past the header check, into the frame parser
            }
            pair.B.Receive(junk.AsSpan(0, len));
        }
        var stats = pair.B.Statistics;
        Assert.True(stats.BadDatagrams > 4000, $"bad datagrams: {stats.BadDatagrams}");

        // The multiplexer still works afterwards.
        var ct = TestContext.Current.CancellationToken;
        var (client, server) = await MuxTestUtil.OpenPairAsync(pair, "after-fuzz", ct);
        await client.WriteAsync("still alive"u8.ToArray(), ct);
        await client.CompleteWritesAsync(ct);
        Assert.Equal("still alive"u8.ToArray(), await MuxTestUtil.ReadAllAsync(server).WaitAsync(MuxTestUtil.TestTimeout, ct));
    }

    [Fact]
    public void RangeSet_AddRemoveMerge()
    {
        var set = new RangeSet();
        Assert.Equal(5, set.Add(10, 15));
        Assert.Equal(5, set.Add(20, 25));
        Assert.Equal(5, set.Add(12, 22)); // fills 15..20 only
        Assert.Equal(1, set.Count);
        Assert.Equal((10L, 25L), set[0]);
        set.Remove(14, 16);
        Assert.Equal(2, set.Count);
        Assert.Equal(14, set.ContiguousEnd(10));
        Assert.Equal(16, set.NextStartAfter(14));
        Assert.True(set.Contains(16));
        Assert.False(set.Contains(15));
        set.RemoveBelow(20);
        Assert.Equal((20L, 25L), set[0]);
        Assert.Equal(0, set.Add(21, 23));
    }

    [Fact]
    public void ByteRing_WrapsGrowsAndReleases()
    {
        var ring = new ByteRing(1 << 16);
        var data = new byte[10_000];
        new Random(1).NextBytes(data);
        ring.Write(0, data.AsSpan(0, 3000));
        ring.Write(3000, data.AsSpan(3000, 7000)); // grows past 4096 with live data
        var back = new byte[10_000];
        ring.Read(0, back);
        Assert.Equal(data, back);
        ring.Release(9000);
        ring.Write(10_000, data); // wraps
        var tail = new byte[10_000];
        ring.Read(10_000, tail);
        Assert.Equal(data, tail);
        ring.Release(20_000);
        Assert.Equal(0, ring.AllocatedBytes); // drained: the array went back to the pool
    }

    [Fact]
    public void ByteRing_AfterADrain_RentsWhatTheLastFillNeeded()
    {
        // A busy stream's ring drains and refills all the time: a refill starts at the last fill's size (no copy
        // per doubling from 4 KiB), and a fill that needed less shrinks the next one.
        var ring = new ByteRing(1 << 20);
        var data = new byte[100_000];
        new Random(2).NextBytes(data);
        ring.Write(0, data);
        ring.Release(100_000);
        Assert.Equal(0, ring.AllocatedBytes);

        ring.Write(100_000, data.AsSpan(0, 1000));
        Assert.Equal(131_072, ring.AllocatedBytes);
        ring.Write(101_000, data.AsSpan(1000, 9000));
        var back = new byte[10_000];
        ring.Read(100_000, back);
        Assert.Equal(data.AsSpan(0, 10_000).ToArray(), back);
        ring.Release(110_000);

        ring.Write(110_000, data.AsSpan(0, 10));
        Assert.Equal(16_384, ring.AllocatedBytes); // the last fill held 10 000 bytes
    }
}
