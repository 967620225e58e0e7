using System.Net;
using System.Net.Sockets;
using Skywire.Apps.Socks;
using Skywire.TestKit.Streams;

namespace Skywire.Tests.Socks;

/// <summary>The exit side of UDP ASSOCIATE over an in-memory stream: rules per datagram, answers only from known peers.</summary>
public class SocksServerUdpTests
{
    private static readonly TimeSpan Limit = TimeSpan.FromSeconds(30);

    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    private static async Task<(DuplexStreamPair Pair, Task Serving, SocksUdpFrameReader Frames)> AssociateAsync(SocksServerOptions options)
    {
        var server = new SocksServer(options);
        var pair = new DuplexStreamPair();
        var serving = server.HandleStreamAsync(pair.B, "02aa", Ct);
        var request = new SocksTunnelRequest(SocksCommand.UdpAssociate, SocksEndpoint.Unspecified, "");
        var header = new byte[SocksTunnelCodec.GetRequestLength(request)];
        SocksTunnelCodec.WriteRequest(header, request);
        await pair.A.WriteAsync(header, Ct);
        Assert.Equal(SocksReplyCode.Succeeded, (await SocksServerTests.ReadReplyAsync(pair.A)).Code);
        return (pair, serving, new SocksUdpFrameReader(pair.A));
    }

    private static async Task SendFrameAsync(Stream stream, SocksEndpoint destination, byte[] data)
    {
        var frame = new byte[2 + SocksUdpCodec.MaxFrameBody];
        await stream.WriteAsync(frame.AsMemory(0, SocksUdpCodec.WriteFrame(frame, destination, data)), Ct);
    }

    private static Socket Bound(IPAddress address)
    {
        var socket = new Socket(address.AddressFamily, SocketType.Dgram, ProtocolType.Udp);
        socket.Bind(new IPEndPoint(address, 0));
        return socket;
    }

    [Fact]
    public async Task LoopbackDestinations_DroppedWithoutAllowLoopback_AssociationEndsWithTheStream()
    {
        using var target = Bound(IPAddress.Loopback);
        var port = (ushort)((IPEndPoint)target.LocalEndPoint!).Port;
        var (pair, serving, _) = await AssociateAsync(SocksServerOptions.Default);
        await SendFrameAsync(pair.A, SocksEndpoint.FromIP(IPAddress.Loopback, port), [1]);
        await SendFrameAsync(pair.A, SocksEndpoint.FromHost("localhost", port), [2]);
        await SendFrameAsync(pair.A, SocksEndpoint.FromIP(IPAddress.Parse("::ffff:127.0.0.1"), port), [3]);
        // A frame with a bad address is dropped, the framing goes on.
        await pair.A.WriteAsync(new byte[] { 0, 3, 9, 9, 9 }, Ct);
        await pair.A.CompleteWritesAsync(Ct);

        // The exit handles frames in order and sends each before reading the next, so once it has ended any
        // datagram it sent would already wait in the target's socket.
        await serving.WaitAsync(Limit, Ct);
        Assert.Equal(0, target.Available);
    }

    [Fact]
    public async Task Answers_OnlyFromEndpointsTheAssociationSentTo()
    {
        using var target = Bound(IPAddress.Loopback);
        using var stranger = Bound(IPAddress.Loopback);
        var targetEndPoint = (IPEndPoint)target.LocalEndPoint!;
        var (pair, serving, frames) = await AssociateAsync(SocksServerOptions.Default with { AllowLoopbackTargets = true });

        await SendFrameAsync(pair.A, SocksEndpoint.FromIP(targetEndPoint), "hello"u8.ToArray());
        var buffer = new byte[100];
        EndPoint exit = new IPEndPoint(IPAddress.Any, 0);
        var received = await target.ReceiveFromAsync(buffer, SocketFlags.None, exit, Ct).AsTask().WaitAsync(Limit, Ct);
        Assert.Equal("hello"u8.ToArray(), buffer[..received.ReceivedBytes]);

        // The stranger writes to the exit's socket first; then the target answers. Only the answer comes back.
        await stranger.SendToAsync("push"u8.ToArray(), SocketFlags.None, received.RemoteEndPoint, Ct);
        await target.SendToAsync("answer"u8.ToArray(), SocketFlags.None, received.RemoteEndPoint, Ct);
        var body = await frames.ReadAsync(Ct).AsTask().WaitAsync(Limit, Ct);
        Assert.NotNull(body);
        Assert.Equal(SocksUdpDrop.None, SocksUdpCodec.TryReadAddress(body.Value, out var source, out var length));
        Assert.Equal(SocksEndpoint.FromIP(targetEndPoint), source);
        Assert.Equal("answer"u8.ToArray(), body.Value[length..].ToArray());

        await pair.A.CompleteWritesAsync(Ct);
        await serving.WaitAsync(Limit, Ct);
    }

    [Fact]
    public async Task Refused_ByAllowList_BeforeAnySocket()
    {
        var server = new SocksServer(SocksServerOptions.Default with { AllowedClients = new HashSet<string> { "02bb" } });
        var pair = new DuplexStreamPair();
        var serving = server.HandleStreamAsync(pair.B, "02aa", Ct);
        var request = new SocksTunnelRequest(SocksCommand.UdpAssociate, SocksEndpoint.Unspecified, "");
        var header = new byte[SocksTunnelCodec.GetRequestLength(request)];
        SocksTunnelCodec.WriteRequest(header, request);
        await pair.A.WriteAsync(header, Ct);
        Assert.Equal(SocksReplyCode.NotAllowedByRuleset, (await SocksServerTests.ReadReplyAsync(pair.A)).Code);
        await serving.WaitAsync(Limit, Ct);
    }
}
