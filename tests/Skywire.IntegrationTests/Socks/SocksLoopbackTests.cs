using System.Net;
using System.Net.Sockets;
using System.Text;
using Skywire.Apps.Socks;
using Skywire.TestKit.Http;
using Skywire.TestKit.Logging;

namespace Skywire.IntegrationTests.Socks;

/// <summary>
/// socks-client -> (tunnel over loopback TCP, standing in for the mesh) -> socks-server -> a local
/// HTTP server, driven by curl and by a raw SOCKS5 client.
/// </summary>
public sealed class SocksLoopbackTests : IAsyncLifetime
{
    private static readonly TimeSpan Limit = TimeSpan.FromSeconds(30);
    private readonly TestHttpServer _http = new();
    private readonly TestLog _log = new(line => TestContext.Current.TestOutputHelper?.WriteLine(line));
    private SocksServer _server = null!;
    private SocksTcpStandIn _exit = null!;
    private SocksClient _client = null!;

    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    private IPEndPoint Proxy => _client.LocalEndPoint;

    private string ProxyArg => $"127.0.0.1:{Proxy.Port}";

    // These tests count the streams at the exit, so the client keeps no spare stream (the Spare_* tests cover it).
    private static SocksClientOptions NoSpare => SocksClientOptions.Default with { SpareStreamLifetime = TimeSpan.Zero };

    public ValueTask InitializeAsync() => StartAsync(NoSpare);

    private async ValueTask StartAsync(SocksClientOptions clientOptions)
    {
        if (_client is not null)
        {
            await _client.DisposeAsync();
            await _exit.DisposeAsync();
        }

        _server = new SocksServer(SocksServerOptions.Default with { AllowLoopbackTargets = true, ConnectTimeout = TimeSpan.FromSeconds(5) }, _log.CreateLogger(nameof(SocksServer)));
        _exit = new SocksTcpStandIn(_server);
        _client = new SocksClient(clientOptions with { Listen = new IPEndPoint(IPAddress.Loopback, 0) }, _exit.DialAsync, _log.CreateLogger(nameof(SocksClient)));
        _client.Start();
    }

    public async ValueTask DisposeAsync()
    {
        await _client.DisposeAsync();
        await _exit.DisposeAsync();
        await _http.DisposeAsync();
        _log.Dispose(); // fails the test on an unexpected Error log
    }

    /// <summary>Waits (bounded) until no connection is open at either end of the tunnel.</summary>
    private async Task AssertAllFreedAsync()
    {
        var deadline = DateTime.UtcNow + Limit;
        while (_client.ActiveConnections > 0 || _server.ActiveConnections > 0 || _http.Active > 0)
        {
            Assert.True(DateTime.UtcNow < deadline,
                $"still open: client {_client.ActiveConnections}, server {_server.ActiveConnections}, http {_http.Active}");
            await Task.Delay(10, Ct);
        }
    }

    [Theory]
    [InlineData("127.0.0.1")]
    [InlineData("localhost")]
    public async Task Curl_Socks5Hostname_FetchesByteExact(string host)
    {
        var result = await Curl.RunAsync(["-sS", "--socks5-hostname", ProxyArg, $"http://{host}:{_http.Port}/hello"], Ct);
        Assert.True(result.ExitCode == 0, result.Stderr);
        Assert.Equal(TestHttpServer.Hello, Encoding.ASCII.GetString(result.Body));

        var binary = await Curl.RunAsync(["-sS", "--socks5-hostname", ProxyArg, $"http://{host}:{_http.Port}/bytes/300001"], Ct);
        Assert.True(binary.ExitCode == 0, binary.Stderr);
        Assert.Equal(TestHttpServer.ExpectedBody(300_001), binary.Body);
        await AssertAllFreedAsync();
    }

    [Fact]
    public async Task Curl_Socks5WithLocalResolution_IPv4Request_Works()
    {
        var result = await Curl.RunAsync(["-sS", "--socks5", ProxyArg, $"http://127.0.0.1:{_http.Port}/hello"], Ct);
        Assert.True(result.ExitCode == 0, result.Stderr);
        Assert.Equal(TestHttpServer.Hello, Encoding.ASCII.GetString(result.Body));
    }

    [Fact]
    public async Task Curl_100MegabyteDownload_HashMatches()
    {
        const long size = 100L * 1024 * 1024;
        var result = await Curl.RunAsync(["-sS", "--socks5-hostname", ProxyArg, $"http://127.0.0.1:{_http.Port}/bytes/{size}"], Ct, keepBytes: 0);
        Assert.True(result.ExitCode == 0, result.Stderr);
        Assert.Equal(size, result.Length);
        Assert.Equal(TestHttpServer.ExpectedHash(size), result.Sha256);
        await AssertAllFreedAsync();
    }

    [Fact]
    public async Task HundredParallelConnections_AllByteExact()
    {
        var tasks = Enumerable.Range(0, 100).Select(async i =>
        {
            using var tunnel = await SocksTestClient.ConnectAsync(Proxy, SocksEndpoint.FromIP(IPAddress.Loopback, (ushort)_http.Port), Ct);
            Assert.Equal(SocksReplyCode.Succeeded, tunnel.Reply);
            var size = 1000 + (i * 7919);
            var body = await SocksTestClient.GetAsync(tunnel.Stream, $"/bytes/{size}", Ct);
            Assert.Equal(TestHttpServer.ExpectedBody(size), body);
        });
        await Task.WhenAll(tasks).WaitAsync(Limit * 2, Ct);
        Assert.Equal(100, _http.Accepted);
        Assert.True(_server.ServedConnections >= 100);
        await AssertAllFreedAsync();
    }

    [Fact]
    public async Task RefusedTarget_Reply05_AndCurlReportsIt()
    {
        var port = SocksTestClient.FreePort();
        using (var tunnel = await SocksTestClient.ConnectAsync(Proxy, SocksEndpoint.FromIP(IPAddress.Loopback, (ushort)port), Ct))
        {
            Assert.Equal(SocksReplyCode.ConnectionRefused, tunnel.Reply);
            Assert.Equal(0, await tunnel.Stream.ReadAsync(new byte[1], Ct));
        }

        var started = DateTime.UtcNow;
        var result = await Curl.RunAsync(["-sS", "--socks5-hostname", ProxyArg, $"http://127.0.0.1:{port}/"], Ct);
        Assert.Equal(97, result.ExitCode); // CURLE_PROXY
        // curl 7.x prints the reply code as "(5)"; curl 8 spells it out ("Connection refused").
        Assert.True(result.Stderr.Contains("(5)", StringComparison.Ordinal) || result.Stderr.Contains("refused", StringComparison.OrdinalIgnoreCase), result.Stderr);
        // A refused target fails fast: nothing in the path waits for a timeout.
        Assert.True(DateTime.UtcNow - started < TimeSpan.FromSeconds(5), $"took {DateTime.UtcNow - started}");
        await AssertAllFreedAsync();
    }

    [Theory]
    [InlineData(SocksCommand.Bind)]
    [InlineData((SocksCommand)0x05)]
    public async Task UnsupportedCommand_Reply07(SocksCommand command)
    {
        using var tunnel = await SocksTestClient.ConnectAsync(Proxy, SocksEndpoint.FromIP(IPAddress.Loopback, 80), Ct, command: command);
        Assert.Equal(SocksReplyCode.CommandNotSupported, tunnel.Reply);
        Assert.Equal(0, await tunnel.Stream.ReadAsync(new byte[1], Ct));
    }

    [Fact]
    public async Task UnknownAddressType_Reply08()
    {
        using var tunnel = await SocksTestClient.ConnectAsync(Proxy, default, Ct, rawRequest: [5, 1, 0, 0x09, 1, 2, 3, 4, 0, 80]);
        Assert.Equal(SocksReplyCode.AddressTypeNotSupported, tunnel.Reply);
    }

    [Fact]
    public async Task UnresolvableName_Reply04_FromTheExit()
    {
        using var tunnel = await SocksTestClient.ConnectAsync(Proxy, SocksEndpoint.FromHost("no-such-host.invalid", 80), Ct);
        Assert.True(tunnel.Reply is SocksReplyCode.HostUnreachable or SocksReplyCode.TtlExpired, tunnel.Reply.ToString());
    }

    [Fact]
    public async Task ExitUnreachable_Reply03()
    {
        await using var client = new SocksClient(SocksClientOptions.Default with { Listen = new IPEndPoint(IPAddress.Loopback, 0) },
            _ => Task.FromException<Skywire.Core.Streams.DuplexStream>(new IOException("no route to the exit")));
        client.Start();
        using var tunnel = await SocksTestClient.ConnectAsync(client.LocalEndPoint, SocksEndpoint.FromIP(IPAddress.Loopback, 80), Ct);
        Assert.Equal(SocksReplyCode.NetworkUnreachable, tunnel.Reply);
    }

    [Fact]
    public async Task UserPassword_AcceptsRightCredentials_RejectsWrong()
    {
        await StartAsync(NoSpare with { Username = "alice", Password = "s3cret" });
        var target = SocksEndpoint.FromIP(IPAddress.Loopback, (ushort)_http.Port);

        using (var ok = await SocksTestClient.ConnectAsync(Proxy, target, Ct, credentials: ("alice", "s3cret")))
        {
            Assert.Equal(SocksReplyCode.Succeeded, ok.Reply);
            Assert.Equal(TestHttpServer.Hello, Encoding.ASCII.GetString(await SocksTestClient.GetAsync(ok.Stream, "/hello", Ct)));
        }

        using (var wrong = await SocksTestClient.ConnectAsync(Proxy, target, Ct, credentials: ("alice", "guess")))
        {
            Assert.Null(wrong.Reply);
            Assert.Equal(1, wrong.Method); // RFC 1929 status: failure
            Assert.Equal(0, await wrong.Stream.ReadAsync(new byte[1], Ct));
        }

        using (var noAuth = await SocksTestClient.ConnectAsync(Proxy, target, Ct))
        {
            Assert.Null(noAuth.Reply);
            Assert.Equal(0xFF, noAuth.Method); // no acceptable methods
        }

        var good = await Curl.RunAsync(["-sS", "--socks5-hostname", ProxyArg, "--proxy-user", "alice:s3cret", $"http://127.0.0.1:{_http.Port}/hello"], Ct);
        Assert.True(good.ExitCode == 0, good.Stderr);
        Assert.Equal(TestHttpServer.Hello, Encoding.ASCII.GetString(good.Body));

        var bad = await Curl.RunAsync(["-sS", "--socks5-hostname", ProxyArg, "--proxy-user", "alice:nope", $"http://127.0.0.1:{_http.Port}/hello"], Ct);
        Assert.Equal(97, bad.ExitCode);
        Assert.Contains("rejected", bad.Stderr, StringComparison.OrdinalIgnoreCase);
    }

    [Fact]
    public async Task ClientDisconnectsMidTransfer_FreesBothSidesAndTheTarget()
    {
        var tunnel = await SocksTestClient.ConnectAsync(Proxy, SocksEndpoint.FromIP(IPAddress.Loopback, (ushort)_http.Port), Ct);
        Assert.Equal(SocksReplyCode.Succeeded, tunnel.Reply);
        await tunnel.Stream.WriteAsync("GET /bytes/100000000000 HTTP/1.1\r\nHost: t\r\n\r\n"u8.ToArray(), Ct);
        var buffer = new byte[256 * 1024];
        await tunnel.Stream.ReadExactlyAsync(buffer, Ct);
        Assert.Equal(1, _client.ActiveConnections);
        Assert.Equal(1, _server.ActiveConnections);

        // Vanish abruptly (RST), as a killed browser tab does.
        tunnel.Stream.Socket.LingerState = new LingerOption(true, 0);
        tunnel.Dispose();

        await AssertAllFreedAsync();
        await Task.WhenAll(_http.Connections).WaitAsync(Limit, Ct);
    }

    [Fact]
    public async Task EarlyData_SentWithTheRequest_IsForwarded()
    {
        // Some clients send their first bytes right behind the CONNECT request, before the reply.
        var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        await socket.ConnectAsync(Proxy, Ct);
        using var stream = new NetworkStream(socket, ownsSocket: true);
        var buffer = new byte[64];
        await stream.WriteAsync(new byte[] { 5, 1, 0 }, Ct);
        await stream.ReadExactlyAsync(buffer.AsMemory(0, 2), Ct);
        var request = buffer[..SocksCodec.WriteRequest(buffer, SocksCommand.Connect, SocksEndpoint.FromIP(IPAddress.Loopback, (ushort)_http.Port))];
        await stream.WriteAsync((byte[])[.. request, .. "GET /hello HTTP/1.1\r\nHost: t\r\n\r\n"u8], Ct);
        await stream.ReadExactlyAsync(buffer.AsMemory(0, 10), Ct);
        Assert.Equal(0, buffer[1]);
        var rest = new MemoryStream();
        await stream.CopyToAsync(rest, Ct);
        Assert.EndsWith(TestHttpServer.Hello, Encoding.ASCII.GetString(rest.ToArray()), StringComparison.Ordinal);
    }

    [Fact]
    public async Task Spare_NextConnectionTakesTheStreamDialledAhead()
    {
        var dials = 0;
        await using var client = new SocksClient(SocksClientOptions.Default with { Listen = new IPEndPoint(IPAddress.Loopback, 0), SpareStreamLifetime = Limit },
            ct =>
            {
                Interlocked.Increment(ref dials);
                return _exit.DialAsync(ct);
            }, _log.CreateLogger("spare"));
        client.Start();
        var target = SocksEndpoint.FromIP(IPAddress.Loopback, (ushort)_http.Port);
        using (var first = await SocksTestClient.ConnectAsync(client.LocalEndPoint, target, Ct))
        {
            Assert.Equal(SocksReplyCode.Succeeded, first.Reply);
            Assert.Equal(TestHttpServer.ExpectedBody(5000), await SocksTestClient.GetAsync(first.Stream, "/bytes/5000", Ct));
        }

        // The first connection dialled its own stream and, once the exit answered it, a spare; the second takes the spare.
        Assert.Equal(2, Volatile.Read(ref dials));
        using (var second = await SocksTestClient.ConnectAsync(client.LocalEndPoint, target, Ct))
        {
            Assert.Equal(SocksReplyCode.Succeeded, second.Reply);
            Assert.Equal(TestHttpServer.ExpectedBody(7000), await SocksTestClient.GetAsync(second.Stream, "/bytes/7000", Ct));
            Assert.Equal(3, Volatile.Read(ref dials)); // the spare for the next one was dialled before this one relayed
        }
    }

    [Theory]
    [InlineData(SocksCommand.Connect)]
    [InlineData(SocksCommand.UdpAssociate)]
    public async Task Spare_NotDialledForAnExitThatRefuses_WhichAnswersOnTheConnectionsOwnStream(SocksCommand command)
    {
        // A spare is dialled only once the exit answered a connection Succeeded. Dialled beside the connection's own
        // stream (as at first), it could reach an exit that takes one stream at a time before that stream did, and the
        // refusal never came back (SocksUdpMeshTests.UdpAssociate_RefusedByTheExit_GetsItsReplyCode timed out so).
        var server = new SocksServer(SocksServerOptions.Default with { AllowLoopbackTargets = true, Passcode = "not ours" },
            _log.CreateLogger("refusing-exit"));
        await using var exit = new SocksTcpStandIn(server);
        var dials = 0;
        await using var client = new SocksClient(SocksClientOptions.Default with { Listen = new IPEndPoint(IPAddress.Loopback, 0), SpareStreamLifetime = Limit },
            ct =>
            {
                Interlocked.Increment(ref dials);
                return exit.DialAsync(ct);
            }, _log.CreateLogger("spare"));
        client.Start();
        var target = command == SocksCommand.Connect ? SocksEndpoint.FromIP(IPAddress.Loopback, (ushort)_http.Port) : SocksEndpoint.Unspecified;
        for (var i = 1; i <= 3; i++)
        {
            using var tunnel = await SocksTestClient.ConnectAsync(client.LocalEndPoint, target, Ct, command: command).WaitAsync(Limit, Ct);
            Assert.Equal(SocksReplyCode.NotAllowedByRuleset, tunnel.Reply);
            Assert.Equal(i, Volatile.Read(ref dials));
        }
    }

    [Fact]
    public async Task Spare_ClosedByTheExitWhileItWaited_IsReplacedByAFreshDial()
    {
        // An exit whose header timeout is shorter than the spare's lifetime closes every spare before it is used.
        var server = new SocksServer(SocksServerOptions.Default with { AllowLoopbackTargets = true, HeaderTimeout = TimeSpan.FromSeconds(1) },
            _log.CreateLogger("strict-exit"));
        await using var exit = new SocksTcpStandIn(server);
        await using var client = new SocksClient(SocksClientOptions.Default with { Listen = new IPEndPoint(IPAddress.Loopback, 0), SpareStreamLifetime = Limit },
            exit.DialAsync, _log.CreateLogger("spare"));
        client.Start();
        var target = SocksEndpoint.FromIP(IPAddress.Loopback, (ushort)_http.Port);
        for (var i = 0; i < 3; i++)
        {
            using var tunnel = await SocksTestClient.ConnectAsync(client.LocalEndPoint, target, Ct);
            Assert.Equal(SocksReplyCode.Succeeded, tunnel.Reply);
            Assert.Equal(TestHttpServer.Hello, Encoding.ASCII.GetString(await SocksTestClient.GetAsync(tunnel.Stream, "/hello", Ct)));
            tunnel.Dispose();

            // Wait until the exit has timed out the spare dialled for the next connection (and served this one).
            var deadline = DateTime.UtcNow + Limit;
            while (server.ActiveConnections > 0 || server.ServedConnections < 2 * (i + 1))
            {
                Assert.True(DateTime.UtcNow < deadline, $"exit still serving {server.ActiveConnections}, served {server.ServedConnections}");
                await Task.Delay(10, Ct);
            }
        }
    }

    [Fact]
    public async Task Spare_NotTakenWithinItsLifetime_IsClosedByTheClient()
    {
        await using var client = new SocksClient(SocksClientOptions.Default with { Listen = new IPEndPoint(IPAddress.Loopback, 0), SpareStreamLifetime = TimeSpan.FromMilliseconds(200) },
            _exit.DialAsync, _log.CreateLogger("spare"));
        client.Start();
        using (var tunnel = await SocksTestClient.ConnectAsync(client.LocalEndPoint, SocksEndpoint.FromIP(IPAddress.Loopback, (ushort)_http.Port), Ct))
        {
            Assert.Equal(SocksReplyCode.Succeeded, tunnel.Reply);
        }

        // The exit's own header timeout is 10 s: the spare is gone long before, closed by the client.
        var started = DateTime.UtcNow;
        while (_server.ActiveConnections > 0 || _server.ServedConnections < 2)
        {
            Assert.True(DateTime.UtcNow - started < TimeSpan.FromSeconds(8), $"exit still serving {_server.ActiveConnections}, served {_server.ServedConnections}");
            await Task.Delay(10, Ct);
        }
    }
}
