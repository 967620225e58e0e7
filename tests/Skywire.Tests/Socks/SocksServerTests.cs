using System.Buffers;
using System.Net;
using System.Net.Sockets;
using Skywire.Apps.Socks;
using Skywire.TestKit.Streams;

namespace Skywire.Tests.Socks;

/// <summary>The exit's decisions before any socket exists: header, rules, connect failures.</summary>
public class SocksServerTests
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    private const string AllowedKey = "02aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    private static readonly TimeSpan Limit = TimeSpan.FromSeconds(20);

    private static readonly SocksEndpoint Remote = SocksEndpoint.FromIP(IPAddress.Parse("192.0.2.10"), 80);

    private static async Task<(SocksTunnelReply Reply, int ConnectorCalls)> AskAsync(
        SocksServerOptions options, SocksConnector? connector, SocksTunnelRequest request, string? remoteKey = AllowedKey)
    {
        var calls = 0;
        var server = new SocksServer(options, connector: connector is null ? null : (d, ct) =>
        {
            Interlocked.Increment(ref calls);
            return connector(d, ct);
        });
        var pair = new DuplexStreamPair();
        var serving = server.HandleStreamAsync(pair.B, remoteKey);
        var header = new byte[SocksTunnelCodec.GetRequestLength(request)];
        SocksTunnelCodec.WriteRequest(header, request);
        await pair.A.WriteAsync(header);
        var reply = await ReadReplyAsync(pair.A);
        await serving.WaitAsync(Limit, Ct);
        Assert.Equal(0, await pair.A.ReadAsync(new byte[1]).AsTask().WaitAsync(Limit, Ct));
        Assert.Equal(0, server.ActiveConnections);
        return (reply, calls);
    }

    internal static async Task<SocksTunnelReply> ReadReplyAsync(Stream stream)
    {
        var buffer = new byte[64];
        var filled = 0;
        while (true)
        {
            var sequence = new ReadOnlySequence<byte>(buffer, 0, filled);
            if (SocksTunnelCodec.TryReadReply(ref sequence, out var reply) == OperationStatus.Done)
            {
                return reply;
            }

            var read = await stream.ReadAsync(buffer.AsMemory(filled)).AsTask().WaitAsync(Limit, Ct);
            Assert.NotEqual(0, read);
            filled += read;
        }
    }

    private static SocksTunnelRequest Connect(SocksEndpoint destination, string passcode = "") => new(SocksCommand.Connect, destination, passcode);

    private static SocksConnector Throws(Exception ex) => (_, _) => ValueTask.FromException<Socket>(ex);

    [Theory]
    [InlineData(SocketError.ConnectionRefused, SocksReplyCode.ConnectionRefused)]
    [InlineData(SocketError.NetworkUnreachable, SocksReplyCode.NetworkUnreachable)]
    [InlineData(SocketError.HostUnreachable, SocksReplyCode.HostUnreachable)]
    [InlineData(SocketError.HostNotFound, SocksReplyCode.HostUnreachable)]
    [InlineData(SocketError.TimedOut, SocksReplyCode.TtlExpired)]
    [InlineData(SocketError.AccessDenied, SocksReplyCode.NotAllowedByRuleset)]
    [InlineData(SocketError.AddressFamilyNotSupported, SocksReplyCode.AddressTypeNotSupported)]
    [InlineData(SocketError.ConnectionReset, SocksReplyCode.GeneralFailure)]
    public async Task ConnectFails_SocketError_MapsToReplyCode(SocketError error, SocksReplyCode expected)
    {
        var (reply, calls) = await AskAsync(SocksServerOptions.Default, Throws(new SocketException((int)error)), Connect(Remote));
        Assert.Equal(expected, reply.Code);
        Assert.Equal(1, calls);
    }

    [Fact]
    public async Task ConnectHangs_PastTimeout_RepliesTtlExpired()
    {
        var options = SocksServerOptions.Default with { ConnectTimeout = TimeSpan.FromMilliseconds(100) };
        var (reply, _) = await AskAsync(options, async (_, ct) =>
        {
            await Task.Delay(Timeout.Infinite, ct);
            throw new InvalidOperationException();
        }, Connect(Remote));
        Assert.Equal(SocksReplyCode.TtlExpired, reply.Code);
    }

    [Fact]
    public async Task UnresolvableName_RepliesHostUnreachable()
    {
        // ".invalid" never resolves (RFC 6761), and the resolver answers without the network.
        var (reply, _) = await AskAsync(SocksServerOptions.Default with { ConnectTimeout = TimeSpan.FromSeconds(5) },
            null, Connect(SocksEndpoint.FromHost("no-such-host.invalid", 80)));
        Assert.True(reply.Code is SocksReplyCode.HostUnreachable or SocksReplyCode.TtlExpired, reply.Code.ToString());
    }

    [Fact]
    public async Task AllowList_UnknownNode_RefusedWithoutConnecting()
    {
        var options = SocksServerOptions.Default with { AllowedClients = new HashSet<string>([AllowedKey], StringComparer.OrdinalIgnoreCase) };
        var refused = Throws(new SocketException((int)SocketError.ConnectionRefused));
        var (reply, calls) = await AskAsync(options, refused, Connect(Remote), remoteKey: "03" + new string('b', 64));
        Assert.Equal(SocksReplyCode.NotAllowedByRuleset, reply.Code);
        Assert.Equal(0, calls);

        (reply, calls) = await AskAsync(options, refused, Connect(Remote), remoteKey: null);
        Assert.Equal(SocksReplyCode.NotAllowedByRuleset, reply.Code);
        Assert.Equal(0, calls);

        (reply, calls) = await AskAsync(options, refused, Connect(Remote), remoteKey: AllowedKey.ToUpperInvariant());
        Assert.Equal(SocksReplyCode.ConnectionRefused, reply.Code);
        Assert.Equal(1, calls);
    }

    [Fact]
    public async Task Passcode_WrongOrMissing_Refused_RightOne_Connects()
    {
        var options = SocksServerOptions.Default with { Passcode = "open sesame" };
        var refused = Throws(new SocketException((int)SocketError.ConnectionRefused));
        Assert.Equal(SocksReplyCode.NotAllowedByRuleset, (await AskAsync(options, refused, Connect(Remote, "open sesam"))).Reply.Code);
        Assert.Equal(SocksReplyCode.NotAllowedByRuleset, (await AskAsync(options, refused, Connect(Remote))).Reply.Code);
        Assert.Equal(SocksReplyCode.ConnectionRefused, (await AskAsync(options, refused, Connect(Remote, "open sesame"))).Reply.Code);
    }

    [Theory]
    [InlineData("127.0.0.1")]
    [InlineData("127.1.2.3")]
    [InlineData("::1")]
    [InlineData("::ffff:127.0.0.1")]
    [InlineData("0.0.0.0")]
    [InlineData("169.254.169.254")]
    [InlineData("fe80::1")]
    [InlineData("::ffff:169.254.169.254")]
    public async Task LoopbackTarget_RefusedByDefault(string address)
    {
        var (reply, calls) = await AskAsync(SocksServerOptions.Default, Throws(new SocketException((int)SocketError.ConnectionRefused)),
            Connect(SocksEndpoint.FromIP(IPAddress.Parse(address), 22)));
        Assert.Equal(SocksReplyCode.NotAllowedByRuleset, reply.Code);
        Assert.Equal(0, calls);
    }

    [Fact]
    public async Task LocalhostName_RefusedByDefault_AfterResolution()
    {
        var (reply, _) = await AskAsync(SocksServerOptions.Default, null, Connect(SocksEndpoint.FromHost("localhost", 22)));
        Assert.Equal(SocksReplyCode.NotAllowedByRuleset, reply.Code);
    }

    [Theory]
    [InlineData(SocksCommand.Bind)]
    [InlineData((SocksCommand)0x7F)]
    public async Task OtherCommands_RepliedCommandNotSupported(SocksCommand command)
    {
        var (reply, calls) = await AskAsync(SocksServerOptions.Default, Throws(new InvalidOperationException()),
            new SocksTunnelRequest(command, Remote, ""));
        Assert.Equal(SocksReplyCode.CommandNotSupported, reply.Code);
        Assert.Equal(0, calls);
    }

    [Fact]
    public async Task UnknownAddressType_RepliedAddressTypeNotSupported()
    {
        var server = new SocksServer();
        var pair = new DuplexStreamPair();
        var serving = server.HandleStreamAsync(pair.B, AllowedKey, Ct);
        await pair.A.WriteAsync(new byte[] { 1, 1, 9, 1, 2, 3, 4, 0, 80, 0 }, Ct);
        Assert.Equal(SocksReplyCode.AddressTypeNotSupported, (await ReadReplyAsync(pair.A)).Code);
        await serving.WaitAsync(Limit, Ct);
    }

    [Fact]
    public async Task GarbageOrTruncatedHeader_ClosesStream()
    {
        var server = new SocksServer();
        var pair = new DuplexStreamPair();
        var serving = server.HandleStreamAsync(pair.B, AllowedKey, Ct);
        await pair.A.WriteAsync(new byte[] { 1, 1, 1, 10 }, Ct);
        await pair.A.CompleteWritesAsync(Ct);
        await serving.WaitAsync(Limit, Ct);
        Assert.Equal(0, await pair.A.ReadAsync(new byte[16], Ct).AsTask().WaitAsync(Limit, Ct));
        Assert.True(pair.B.IsDisposed);
    }

    [Fact]
    public async Task SilentStream_ClosedAfterHeaderTimeout()
    {
        var server = new SocksServer(SocksServerOptions.Default with { HeaderTimeout = TimeSpan.FromMilliseconds(100) });
        var pair = new DuplexStreamPair();
        await server.HandleStreamAsync(pair.B, AllowedKey, Ct).WaitAsync(Limit, Ct);
        Assert.True(pair.B.IsDisposed);
        Assert.Equal(0, server.ActiveConnections);
        Assert.Equal(1, server.ServedConnections);
    }
}
