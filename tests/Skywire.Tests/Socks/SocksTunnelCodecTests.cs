using System.Buffers;
using System.Net;
using Skywire.Apps.Socks;

namespace Skywire.Tests.Socks;

public class SocksTunnelCodecTests
{
    internal static readonly SocksCodecTests.Parser<SocksTunnelRequest> RequestParser = SocksTunnelCodec.TryReadRequest;

    internal static readonly SocksCodecTests.Parser<SocksTunnelReply> ReplyParser = (ref ReadOnlySequence<byte> b, out SocksTunnelReply v, out SocksReplyCode f) =>
    {
        f = SocksReplyCode.GeneralFailure;
        return SocksTunnelCodec.TryReadReply(ref b, out v);
    };

    public static TheoryData<string, string> Requests => new()
    {
        { "192.0.2.1", "" },
        { "2001:db8::5", "pass" },
        { "name", "\u00fc-unicode-passcode" },
        { "name", new string('p', 255) },
    };

    [Theory]
    [MemberData(nameof(Requests))]
    public void Request_RoundTrips_EverySplit(string host, string passcode)
    {
        var destination = host == "name"
            ? SocksEndpoint.FromHost(new string('h', 255), 65535)
            : SocksEndpoint.FromIP(IPAddress.Parse(host), 1);
        var request = new SocksTunnelRequest(SocksCommand.Connect, destination, passcode);
        var bytes = new byte[SocksTunnelCodec.GetRequestLength(request)];
        Assert.Equal(bytes.Length, SocksTunnelCodec.WriteRequest(bytes, request));
        Assert.True(bytes.Length <= SocksLimits.MaxTunnelRequestSize);
        SocksCodecTests.AssertParsesEverySplit(RequestParser, bytes, request);
    }

    [Fact]
    public void Request_KnownBytes()
    {
        var request = new SocksTunnelRequest(SocksCommand.Connect, SocksEndpoint.FromHost("ab", 80), "x");
        var bytes = new byte[SocksTunnelCodec.GetRequestLength(request)];
        SocksTunnelCodec.WriteRequest(bytes, request);
        Assert.Equal(new byte[] { 1, 1, 3, 2, (byte)'a', (byte)'b', 0, 80, 1, (byte)'x' }, bytes);
        Assert.DoesNotContain("x\"", request.ToString(), StringComparison.Ordinal);
    }

    [Fact]
    public void Request_TooLongPasscode_Throws()
    {
        var request = new SocksTunnelRequest(SocksCommand.Connect, SocksEndpoint.FromHost("a", 1), new string('\u00fc', 128));
        Assert.Throws<ArgumentException>(() => SocksTunnelCodec.WriteRequest(new byte[600], request));
    }

    [Theory]
    [InlineData(new byte[] { 2, 1, 1, 1, 2, 3, 4, 0, 80, 0 })] // unknown version
    [InlineData(new byte[] { 1, 1, 7, 1, 2, 3, 4, 0, 80, 0 })] // unknown address type
    public void Request_Malformed_IsInvalid(byte[] data)
    {
        var buffer = new ReadOnlySequence<byte>(data);
        Assert.Equal(OperationStatus.InvalidData, SocksTunnelCodec.TryReadRequest(ref buffer, out _, out _));
    }

    [Theory]
    [InlineData(SocksReplyCode.Succeeded)]
    [InlineData(SocksReplyCode.ConnectionRefused)]
    [InlineData(SocksReplyCode.AddressTypeNotSupported)]
    public void Reply_RoundTrips_EverySplit(SocksReplyCode code)
    {
        var reply = new SocksTunnelReply(code, SocksEndpoint.FromIP(IPAddress.Parse("2001:db8::9"), 40000));
        var bytes = new byte[SocksLimits.MaxTunnelReplySize];
        var length = SocksTunnelCodec.WriteReply(bytes, reply);
        SocksCodecTests.AssertParsesEverySplit(ReplyParser, bytes[..length], reply);
    }

    [Fact]
    public void Reply_CodeOutsideSocks5_IsInvalid()
    {
        var buffer = new ReadOnlySequence<byte>([1, 9, 1, 0, 0, 0, 0, 0, 0]);
        Assert.Equal(OperationStatus.InvalidData, SocksTunnelCodec.TryReadReply(ref buffer, out _));
    }
}
