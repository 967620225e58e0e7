using System.Buffers;
using System.Net;
using Skywire.Apps.Socks;
using Skywire.TestKit.Buffers;

namespace Skywire.Tests.Socks;

public class SocksCodecTests
{
    internal delegate OperationStatus Parser<T>(ref ReadOnlySequence<byte> buffer, out T value, out SocksReplyCode failure);

    private static readonly Parser<SocksGreeting> Greeting = (ref ReadOnlySequence<byte> b, out SocksGreeting v, out SocksReplyCode f) =>
    {
        f = SocksReplyCode.GeneralFailure;
        return SocksCodec.TryReadGreeting(ref b, out v);
    };

    private static readonly Parser<SocksCredentials> Credentials = (ref ReadOnlySequence<byte> b, out SocksCredentials v, out SocksReplyCode f) =>
    {
        f = SocksReplyCode.GeneralFailure;
        return SocksCodec.TryReadCredentials(ref b, out v);
    };

    private static readonly Parser<SocksRequest> Request = SocksCodec.TryReadRequest;

    /// <summary>
    /// The message parses to <paramref name="expected"/> from every split and from one-byte
    /// segments, leaves trailing bytes alone, and every strict prefix asks for more data.
    /// </summary>
    internal static void AssertParsesEverySplit<T>(Parser<T> parser, byte[] message, T expected)
    {
        byte[] trailer = [0xAA, 0xBB];
        byte[] withTrailer = [.. message, .. trailer];
        for (var offset = 0; offset <= withTrailer.Length; offset++)
        {
            var buffer = FragmentedSequence.SplitAt(withTrailer, offset);
            Assert.Equal(OperationStatus.Done, parser(ref buffer, out var value, out _));
            Assert.Equal(expected, value);
            Assert.Equal(trailer, buffer.ToArray());
        }

        var bytewise = FragmentedSequence.Bytewise(withTrailer);
        Assert.Equal(OperationStatus.Done, parser(ref bytewise, out var v2, out _));
        Assert.Equal(expected, v2);
        Assert.Equal(trailer, bytewise.ToArray());

        for (var length = 0; length < message.Length; length++)
        {
            for (var offset = 0; offset <= length; offset++)
            {
                var prefix = FragmentedSequence.SplitAt(message[..length], offset);
                var before = prefix;
                Assert.Equal(OperationStatus.NeedMoreData, parser(ref prefix, out _, out _));
                Assert.Equal(before, prefix);
            }
        }
    }

    [Fact]
    public void Greeting_NoAuthAndUserPass_ParsesEverySplit()
    {
        AssertParsesEverySplit(Greeting, [5, 3, 0x80, 0x00, 0x02], new SocksGreeting(true, true));
        AssertParsesEverySplit(Greeting, [5, 1, 0x00], new SocksGreeting(true, false));
        AssertParsesEverySplit(Greeting, [5, 2, 0x01, 0x03], new SocksGreeting(false, false));
    }

    [Theory]
    [InlineData(new byte[] { 4, 1, 0 })]
    [InlineData(new byte[] { 5, 0 })]
    [InlineData(new byte[] { 0x47, 0x45, 0x54, 0x20 })] // "GET " sent to a SOCKS port
    public void Greeting_BadVersionOrNoMethods_IsInvalid(byte[] data)
    {
        var buffer = new ReadOnlySequence<byte>(data);
        Assert.Equal(OperationStatus.InvalidData, SocksCodec.TryReadGreeting(ref buffer, out _));
    }

    [Fact]
    public void Credentials_ParseEverySplit()
    {
        byte[] message = [1, 4, .. "user"u8, 5, .. "p\u00e4ss"u8];
        AssertParsesEverySplit(Credentials, message, new SocksCredentials("user", "p\u00e4ss"));
    }

    [Theory]
    [InlineData(new byte[] { 5, 1, (byte)'u', 1, (byte)'p' })]
    [InlineData(new byte[] { 1, 0, 1, (byte)'p' })]
    [InlineData(new byte[] { 1, 1, (byte)'u', 0 })]
    public void Credentials_BadVersionOrEmptyField_IsInvalid(byte[] data)
    {
        var buffer = new ReadOnlySequence<byte>(data);
        Assert.Equal(OperationStatus.InvalidData, SocksCodec.TryReadCredentials(ref buffer, out _));
    }

    [Fact]
    public void Credentials_ToString_HidesPassword()
    {
        Assert.DoesNotContain("secret", new SocksCredentials("u", "secret").ToString(), StringComparison.Ordinal);
    }

    public static TheoryData<SocksCommand, string> RequestCases => new()
    {
        { SocksCommand.Connect, "ipv4" },
        { SocksCommand.Connect, "ipv6" },
        { SocksCommand.Connect, "domain" },
        { SocksCommand.Bind, "ipv4" },
        { SocksCommand.UdpAssociate, "domain" },
        { (SocksCommand)0x09, "ipv6" },
    };

    private static SocksEndpoint Endpoint(string kind) => kind switch
    {
        "ipv4" => SocksEndpoint.FromIP(IPAddress.Parse("192.0.2.7"), 443),
        "ipv6" => SocksEndpoint.FromIP(IPAddress.Parse("2001:db8::1"), 8080),
        _ => SocksEndpoint.FromHost("example.org", 80),
    };

    [Theory]
    [MemberData(nameof(RequestCases))]
    public void Request_RoundTrips_EverySplit(SocksCommand command, string kind)
    {
        var endpoint = Endpoint(kind);
        var bytes = new byte[SocksLimits.MaxRequestSize];
        var length = SocksCodec.WriteRequest(bytes, command, endpoint);
        AssertParsesEverySplit(Request, bytes[..length], new SocksRequest(command, endpoint));
    }

    [Fact]
    public void Request_KnownBytes_Parse()
    {
        // curl --socks5-hostname: CONNECT to "localhost":8080.
        byte[] wire = [5, 1, 0, 3, 9, .. "localhost"u8, 0x1F, 0x90];
        var buffer = new ReadOnlySequence<byte>(wire);
        Assert.Equal(OperationStatus.Done, SocksCodec.TryReadRequest(ref buffer, out var request, out _));
        Assert.Equal(SocksCommand.Connect, request.Command);
        Assert.Equal("localhost", request.Destination.Host);
        Assert.Equal(8080, request.Destination.Port);
        Assert.True(buffer.IsEmpty);
    }

    [Fact]
    public void Request_UnknownAddressType_IsInvalidWithAddressTypeNotSupported()
    {
        var buffer = new ReadOnlySequence<byte>([5, 1, 0, 2, 1, 2, 3, 4, 0, 80]);
        Assert.Equal(OperationStatus.InvalidData, SocksCodec.TryReadRequest(ref buffer, out _, out var failure));
        Assert.Equal(SocksReplyCode.AddressTypeNotSupported, failure);
    }

    [Theory]
    [InlineData(new byte[] { 5, 1, 0, 3, 0, 0, 80 })] // empty name
    [InlineData(new byte[] { 5, 1, 0, 3, 3, (byte)'a', 0, (byte)'b', 0, 80 })] // NUL in name
    [InlineData(new byte[] { 5, 1, 0, 3, 3, (byte)'a', (byte)' ', (byte)'b', 0, 80 })] // space in name
    [InlineData(new byte[] { 4, 1, 0, 1, 1, 2, 3, 4, 0, 80 })] // SOCKS4 version
    public void Request_Malformed_IsInvalid(byte[] data)
    {
        var buffer = new ReadOnlySequence<byte>(data);
        Assert.Equal(OperationStatus.InvalidData, SocksCodec.TryReadRequest(ref buffer, out _, out var failure));
        Assert.NotEqual(SocksReplyCode.Succeeded, failure);
    }

    [Fact]
    public void Reply_Writes_RfcLayout()
    {
        var bytes = new byte[SocksLimits.MaxRequestSize];
        var length = SocksCodec.WriteReply(bytes, SocksReplyCode.ConnectionRefused, SocksEndpoint.FromIP(IPAddress.Parse("10.1.2.3"), 0x1234));
        Assert.Equal(new byte[] { 5, 5, 0, 1, 10, 1, 2, 3, 0x12, 0x34 }, bytes[..length]);
        length = SocksCodec.WriteReply(bytes, SocksReplyCode.Succeeded, SocksEndpoint.FromIP(IPAddress.IPv6Loopback, 1));
        Assert.Equal(22, length);
        Assert.Equal(4, bytes[3]);
        Assert.Equal(new byte[] { 5, 0x02 }, bytes[..SocksCodec.WriteMethodSelection(bytes, SocksAuthMethod.UsernamePassword)]);
        Assert.Equal(new byte[] { 1, 1 }, bytes[..SocksCodec.WriteCredentialsStatus(bytes, success: false)]);
    }

    [Fact]
    public void Endpoint_FromHost_RejectsTooLongOrNonAscii()
    {
        Assert.Throws<ArgumentException>(() => SocksEndpoint.FromHost(new string('a', 256), 1));
        Assert.Throws<ArgumentException>(() => SocksEndpoint.FromHost("b\u00fccher.example", 1));
        Assert.Equal("[::1]:80", SocksEndpoint.FromIP(IPAddress.IPv6Loopback, 80).ToString());
        Assert.Equal(SocksAddressType.IPv4, SocksEndpoint.FromIP(IPAddress.Parse("::ffff:1.2.3.4"), 1).Type);
    }

    [Fact]
    public void AllParsers_RandomInput_NeverThrowAndNeverOverConsume()
    {
        var random = new Random(1928);
        for (var i = 0; i < 20_000; i++)
        {
            var data = new byte[random.Next(0, 300)];
            random.NextBytes(data);
            // Bias towards plausible headers so deep paths are reached, not only the version check.
            if (data.Length > 0 && random.Next(2) == 0)
            {
                data[0] = 5;
            }

            if (data.Length > 3 && random.Next(2) == 0)
            {
                data[3] = (byte)random.Next(0, 6);
            }

            var split = random.Next(0, data.Length + 1);
            Check(Greeting, data, split);
            Check(Request, data, split);
            Check(Credentials, data, split);
            Check(SocksTunnelCodecTests.RequestParser, data, split);
            Check(SocksTunnelCodecTests.ReplyParser, data, split);
        }

        static void Check<T>(Parser<T> parser, byte[] data, int split)
        {
            var whole = new ReadOnlySequence<byte>(data);
            var wholeStatus = parser(ref whole, out var wholeValue, out _);
            var pieces = FragmentedSequence.SplitAt(data, split);
            var pieceStatus = parser(ref pieces, out var pieceValue, out _);
            Assert.Equal(wholeStatus, pieceStatus);
            Assert.Equal(whole.Length, pieces.Length);
            if (wholeStatus == OperationStatus.Done)
            {
                Assert.Equal(wholeValue, pieceValue);
            }
            else
            {
                Assert.Equal(data.Length, whole.Length);
            }
        }
    }
}
