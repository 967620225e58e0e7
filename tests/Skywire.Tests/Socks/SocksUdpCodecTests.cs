using System.Net;
using Skywire.Apps.Socks;

namespace Skywire.Tests.Socks;

/// <summary>The SOCKS5 UDP header (RFC 1928 §7) and the datagram frames of a UDP association's stream.</summary>
public class SocksUdpCodecTests
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    private static byte[] Datagram(SocksEndpoint destination, byte[] data, byte frag = 0)
    {
        var buffer = new byte[SocksUdpCodec.MaxHeaderSize + data.Length];
        var header = SocksUdpCodec.WriteReplyHeader(buffer, destination);
        buffer[2] = frag;
        data.CopyTo(buffer, header);
        return buffer[..(header + data.Length)];
    }

    public static TheoryData<string> Endpoints => ["192.0.2.1:53", "[2001:db8::1]:443", "example.org:5353"];

    private static SocksEndpoint Parse(string text) => text.StartsWith("example", StringComparison.Ordinal)
        ? SocksEndpoint.FromHost("example.org", 5353)
        : SocksEndpoint.FromIP(IPEndPoint.Parse(text));

    [Theory]
    [MemberData(nameof(Endpoints))]
    public void Request_RoundTrips_AndEveryTruncatedHeaderIsDropped(string text)
    {
        var endpoint = Parse(text);
        var datagram = Datagram(endpoint, [1, 2, 3]);
        Assert.Equal(SocksUdpDrop.None, SocksUdpCodec.TryReadRequest(datagram, out var parsed, out var header));
        Assert.Equal(endpoint, parsed);
        Assert.Equal(datagram.Length - 3, header);

        // A datagram cut anywhere inside its header is dropped as truncated (cut after it, it is a shorter payload).
        for (var cut = 0; cut < header; cut++)
        {
            Assert.Equal(SocksUdpDrop.Truncated, SocksUdpCodec.TryReadRequest(datagram.AsMemory(0, cut), out _, out _));
        }

        Assert.Equal(SocksUdpDrop.None, SocksUdpCodec.TryReadRequest(datagram.AsMemory(0, header), out _, out var emptyHeader));
        Assert.Equal(header, emptyHeader);
    }

    [Fact]
    public void Fragments_Reserved_BadAddresses_AreDropped()
    {
        var endpoint = SocksEndpoint.FromIP(IPAddress.Loopback, 7);
        for (var frag = 1; frag <= 255; frag++)
        {
            Assert.Equal(SocksUdpDrop.Fragment, SocksUdpCodec.TryReadRequest(Datagram(endpoint, [9], (byte)frag), out _, out _));
        }

        var rsv = Datagram(endpoint, [9]);
        rsv[1] = 1;
        Assert.Equal(SocksUdpDrop.Reserved, SocksUdpCodec.TryReadRequest(rsv, out _, out _));
        Assert.Equal(SocksUdpDrop.BadAddress, SocksUdpCodec.TryReadRequest(new byte[] { 0, 0, 0, 9, 1, 2, 3, 4, 0, 7 }, out _, out _));
        Assert.Equal(SocksUdpDrop.BadAddress, SocksUdpCodec.TryReadRequest(new byte[] { 0, 0, 0, 3, 0, 0, 7 }, out _, out _));
        Assert.Equal(SocksUdpDrop.BadAddress, SocksUdpCodec.TryReadRequest(new byte[] { 0, 0, 0, 3, 2, (byte)'a', 0, 0, 7 }, out _, out _));
    }

    [Fact]
    public void RandomDatagrams_NeverThrow_AndWhatParsesIsConsistent()
    {
        var random = new Random(7);
        var valid = Datagram(SocksEndpoint.FromHost("example.org", 53), [1, 2, 3, 4]);
        for (var i = 0; i < 20_000; i++)
        {
            byte[] datagram;
            if (i % 2 == 0)
            {
                datagram = new byte[random.Next(0, 300)];
                random.NextBytes(datagram);
                if (datagram.Length > 3 && random.Next(2) == 0)
                {
                    datagram[0] = datagram[1] = datagram[2] = 0;
                }
            }
            else
            {
                datagram = (byte[])valid.Clone();
                datagram[random.Next(datagram.Length)] = (byte)random.Next(256);
            }

            if (SocksUdpCodec.TryReadRequest(datagram, out var destination, out var header) == SocksUdpDrop.None)
            {
                Assert.Equal(0, datagram[0] | datagram[1] | datagram[2]);
                Assert.InRange(header, 4 + 2, datagram.Length);
                Assert.Equal(header - 3, destination.EncodedLength);
            }
        }
    }

    [Fact]
    public void Frame_TooLargeForTheLengthField_IsNotWritten()
    {
        var buffer = new byte[2 + SocksUdpCodec.MaxFrameBody + 100];
        var endpoint = SocksEndpoint.FromIP(IPAddress.Loopback, 7);
        Assert.Equal(0, SocksUdpCodec.WriteFrame(buffer, endpoint, new byte[SocksUdpCodec.MaxFrameBody]));
        var fits = SocksUdpCodec.MaxFrameBody - endpoint.EncodedLength;
        Assert.Equal(2 + SocksUdpCodec.MaxFrameBody, SocksUdpCodec.WriteFrame(buffer, endpoint, new byte[fits]));
    }

    private static byte[] Frames(params (SocksEndpoint Endpoint, byte[] Data)[] frames)
    {
        var all = new MemoryStream();
        var buffer = new byte[2 + SocksUdpCodec.MaxFrameBody];
        foreach (var (endpoint, data) in frames)
        {
            all.Write(buffer, 0, SocksUdpCodec.WriteFrame(buffer, endpoint, data));
        }

        return all.ToArray();
    }

    private static async Task<List<(SocksEndpoint, byte[])>> ReadAllAsync(Stream stream, byte[]? prefix = null)
    {
        var reader = new SocksUdpFrameReader(stream, prefix);
        var frames = new List<(SocksEndpoint, byte[])>();
        while (await reader.ReadAsync(Ct) is { } body)
        {
            Assert.Equal(SocksUdpDrop.None, SocksUdpCodec.TryReadAddress(body, out var endpoint, out var length));
            frames.Add((endpoint, body[length..].ToArray()));
        }

        return frames;
    }

    [Fact]
    public async Task FrameReader_SplitAtEveryOffset_AndWithAPrefix_YieldsTheSameFrames()
    {
        var a = (SocksEndpoint.FromIP(IPAddress.Parse("192.0.2.1"), 53), new byte[] { 1, 2, 3 });
        var b = (SocksEndpoint.FromHost("example.org", 443), Array.Empty<byte>());
        var c = (SocksEndpoint.FromIP(IPAddress.IPv6Loopback, 9), Enumerable.Range(0, 1000).Select(i => (byte)i).ToArray());
        var bytes = Frames(a, b, c);
        for (var cut = 0; cut <= bytes.Length; cut++)
        {
            var frames = await ReadAllAsync(new ChunkedStream(bytes[cut..], 1 + (cut % 7)), bytes[..cut]);
            Assert.Equal(3, frames.Count);
            Assert.Equal(a.Item1, frames[0].Item1);
            Assert.Equal(a.Item2, frames[0].Item2);
            Assert.Equal(b.Item1, frames[1].Item1);
            Assert.Empty(frames[1].Item2);
            Assert.Equal(c.Item2, frames[2].Item2);
        }
    }

    [Fact]
    public async Task FrameReader_EndInsideAFrame_IsAnError_CleanEndIsNull()
    {
        var bytes = Frames((SocksEndpoint.FromIP(IPAddress.Loopback, 7), new byte[] { 1, 2, 3, 4 }));
        for (var cut = 1; cut < bytes.Length; cut++)
        {
            var reader = new SocksUdpFrameReader(new ChunkedStream(bytes[..cut], 3));
            await Assert.ThrowsAsync<EndOfStreamException>(async () => await reader.ReadAsync(Ct));
        }

        Assert.Null(await new SocksUdpFrameReader(new MemoryStream()).ReadAsync(Ct));
    }

    [Fact]
    public async Task FrameReader_LargestFramesBackToBack()
    {
        var endpoint = SocksEndpoint.FromIP(IPAddress.Loopback, 7);
        var big = new byte[SocksUdpCodec.MaxFrameBody - endpoint.EncodedLength];
        new Random(3).NextBytes(big);
        var frames = await ReadAllAsync(new ChunkedStream(Frames((endpoint, big), (endpoint, [5]), (endpoint, big)), 40_000));
        Assert.Equal(3, frames.Count);
        Assert.Equal(big, frames[0].Item2);
        Assert.Equal([5], frames[1].Item2);
        Assert.Equal(big, frames[2].Item2);
    }

    /// <summary>A read-only stream that returns at most <c>chunk</c> bytes per read.</summary>
    private sealed class ChunkedStream(byte[] data, int chunk) : Stream
    {
        private int _position;

        public override bool CanRead => true;
        public override bool CanSeek => false;
        public override bool CanWrite => false;
        public override long Length => data.Length;
        public override long Position { get => _position; set => throw new NotSupportedException(); }
        public override void Flush() { }
        public override int Read(byte[] buffer, int offset, int count)
        {
            var n = Math.Min(Math.Min(count, chunk), data.Length - _position);
            Array.Copy(data, _position, buffer, offset, n);
            _position += n;
            return n;
        }

        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
        public override void SetLength(long value) => throw new NotSupportedException();
        public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
    }
}
