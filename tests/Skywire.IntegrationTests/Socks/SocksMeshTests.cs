using System.Net;
using System.Text;
using Skywire.Apps.Socks;
using Skywire.Core.Node;
using Skywire.IntegrationTests.Mesh;
using Skywire.TestKit.Http;

namespace Skywire.IntegrationTests.Socks;

/// <summary>
/// The socks apps over a real in-process mesh: manager, three nodes entry - relay - exit (a 2-hop
/// route), encrypted UDP links and mux streams, apps bound through each node's app API.
/// </summary>
public sealed class SocksMeshTests : IAsyncLifetime
{
    private static readonly TimeSpan Limit = MeshHarness.Limit;
    private readonly TestHttpServer _http = new();
    private readonly CancellationTokenSource _stop = new();
    private MeshHarness _mesh = null!;
    private NodeHost _entry = null!;
    private NodeHost _exit = null!;
    private Task _server = null!;
    private Task _client = null!;
    private IPEndPoint _proxy = null!;

    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    public async ValueTask InitializeAsync()
    {
        _mesh = MeshHarness.Start();
        var nodes = await _mesh.AddNodesAsync(3);
        (_entry, var relay, _exit) = (nodes[0], nodes[1], nodes[2]);
        await _mesh.LinkAsync(_entry, relay);
        await _mesh.LinkAsync(relay, _exit);

        var serverReady = new TaskCompletionSource<string>(TaskCreationOptions.RunContinuationsAsynchronously);
        _server = SocksApps.RunServerAsync(new SocksAppBinding(_exit.AppsEndPoint, _exit.AppToken, "exit"),
            SocksServerOptions.Default with { AllowLoopbackTargets = true }, null, serverReady.SetResult, _stop.Token);
        await serverReady.Task.WaitAsync(Limit, Ct);

        var clientReady = new TaskCompletionSource<IPEndPoint>(TaskCreationOptions.RunContinuationsAsynchronously);
        _client = SocksApps.RunClientAsync(new SocksAppBinding(_entry.AppsEndPoint, _entry.AppToken, "entry"), server: null,
            SocksClientOptions.Default with { Listen = new IPEndPoint(IPAddress.Loopback, 0) }, null, (ep, _) => clientReady.SetResult(ep), _stop.Token);
        _proxy = await clientReady.Task.WaitAsync(Limit, Ct);
    }

    public async ValueTask DisposeAsync()
    {
        // Both apps stop cleanly when cancelled: any other end (a failure, or not ending at all) fails the test.
        await _stop.CancelAsync();
        await Task.WhenAll(_server, _client).WaitAsync(Limit);

        await _mesh.DisposeAsync();
        await _http.DisposeAsync();
    }

    [Fact]
    public async Task Curl_AcrossTwoHops_ByteExact_AndRoutedThroughTheRelay()
    {
        var hello = await Curl.RunAsync(["-sS", "--socks5-hostname", $"127.0.0.1:{_proxy.Port}", $"http://localhost:{_http.Port}/hello"], Ct);
        Assert.True(hello.ExitCode == 0, hello.Stderr);
        Assert.Equal(TestHttpServer.Hello, Encoding.ASCII.GetString(hello.Body));

        const long size = 20L * 1024 * 1024;
        var big = await Curl.RunAsync(["-sS", "--socks5-hostname", $"127.0.0.1:{_proxy.Port}", $"http://127.0.0.1:{_http.Port}/bytes/{size}"], Ct, keepBytes: 0);
        Assert.True(big.ExitCode == 0, big.Stderr);
        Assert.Equal(size, big.Length);
        Assert.Equal(TestHttpServer.ExpectedHash(size), big.Sha256);

        var route = Assert.Single(_mesh.Manager.Controller.ListRoutes().Routes);
        Assert.Equal(3, route.Path.Count);
        Assert.Equal(_entry.NodeKey, route.Path[0]);
        Assert.Equal(_exit.NodeKey, route.Path[2]);
    }

    [Fact]
    public async Task UdpAssociate_ThroughTheApps_EchoByteExact()
    {
        using var echo = new SocksUdpMeshTests.UdpEcho(IPAddress.Loopback);
        await using var association = await SocksUdpMeshTests.UdpAssociation.OpenAsync(_proxy, Ct);
        var payload = new byte[3000];
        new Random(5).NextBytes(payload);
        var (source, data) = await association.ExchangeAsync(SocksEndpoint.FromHost("localhost", (ushort)echo.Port), payload, Ct);
        Assert.Equal(SocksEndpoint.FromIP(IPAddress.Loopback, (ushort)echo.Port), source);
        Assert.Equal(payload, data);
    }

    [Fact]
    public async Task RefusedTarget_Reply05_AcrossTheMesh()
    {
        using var tunnel = await SocksTestClient.ConnectAsync(_proxy, SocksEndpoint.FromIP(IPAddress.Loopback, (ushort)SocksTestClient.FreePort()), Ct);
        Assert.Equal(SocksReplyCode.ConnectionRefused, tunnel.Reply);
    }

    [Fact]
    public async Task TwentyParallelConnections_AcrossTheMesh_AllByteExact()
    {
        var tasks = Enumerable.Range(0, 20).Select(async i =>
        {
            using var tunnel = await SocksTestClient.ConnectAsync(_proxy, SocksEndpoint.FromIP(IPAddress.Loopback, (ushort)_http.Port), Ct);
            Assert.Equal(SocksReplyCode.Succeeded, tunnel.Reply);
            var size = 5000 + (i * 40_009);
            Assert.Equal(TestHttpServer.ExpectedBody(size), await SocksTestClient.GetAsync(tunnel.Stream, $"/bytes/{size}", Ct));
        });
        await Task.WhenAll(tasks).WaitAsync(Limit * 2, Ct);
    }

    [Fact]
    public async Task ClientDisconnectsMidTransfer_TargetFreedAtTheExit()
    {
        var tunnel = await SocksTestClient.ConnectAsync(_proxy, SocksEndpoint.FromIP(IPAddress.Loopback, (ushort)_http.Port), Ct);
        Assert.Equal(SocksReplyCode.Succeeded, tunnel.Reply);
        await tunnel.Stream.WriteAsync("GET /bytes/100000000000 HTTP/1.1\r\nHost: t\r\n\r\n"u8.ToArray(), Ct);
        await tunnel.Stream.ReadExactlyAsync(new byte[256 * 1024], Ct);
        tunnel.Stream.Socket.LingerState = new System.Net.Sockets.LingerOption(true, 0);
        tunnel.Dispose();

        // The exit's target connection ends only if the abort crossed the mesh and socks-server freed it.
        await Task.WhenAll(_http.Connections).WaitAsync(Limit, Ct);
        Assert.Equal(0, _http.Active);
    }
}
