using System.Net;
using System.Net.Sockets;
using System.Text;
using Skywire.Apps.Socks;
using Skywire.Core.AppApi;
using Skywire.Protocol.AppApi;
using Skywire.Protocol.Control;
using Skywire.TestKit.Http;

namespace Skywire.IntegrationTests.Socks;

/// <summary>
/// The socks apps bound through the real app API server and SDK on two nodes; the mesh between the
/// nodes is a loopback TCP connection per stream (the node data plane is not in this test).
/// </summary>
public sealed class SocksOverAppApiTests : IAsyncLifetime
{
    private static readonly TimeSpan Limit = TimeSpan.FromSeconds(30);
    private const string Token = "feedfacefeedfacefeedfacefeedface";
    private readonly FakeMesh _mesh = new();
    private readonly TestHttpServer _http = new();
    private readonly CancellationTokenSource _stop = new();
    private FakeNode _exitNode = null!;
    private FakeNode _entryNode = null!;

    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    public ValueTask InitializeAsync()
    {
        _exitNode = _mesh.AddNode("02" + new string('e', 64));
        _entryNode = _mesh.AddNode("03" + new string('c', 64));
        return ValueTask.CompletedTask;
    }

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync();
        await _mesh.DisposeAsync();
        await _http.DisposeAsync();
    }

    private async Task<(Task Server, string Ready)> StartServerAsync(SocksServerOptions options)
    {
        var ready = new TaskCompletionSource<string>(TaskCreationOptions.RunContinuationsAsynchronously);
        var server = SocksApps.RunServerAsync(new SocksAppBinding(_exitNode.Api.LocalEndPoint, Token, "exit1"), options, null, ready.SetResult, _stop.Token);
        var name = await ready.Task.WaitAsync(Limit, Ct);
        return (server, name);
    }

    private async Task<IPEndPoint> StartClientAsync(string? server, SocksClientOptions? options = null)
    {
        var ready = new TaskCompletionSource<IPEndPoint>(TaskCreationOptions.RunContinuationsAsynchronously);
        var run = SocksApps.RunClientAsync(new SocksAppBinding(_entryNode.Api.LocalEndPoint, Token, "entry1"), server,
            (options ?? SocksClientOptions.Default) with { Listen = new IPEndPoint(IPAddress.Loopback, 0) }, null, (ep, _) => ready.SetResult(ep), _stop.Token);
        var first = await Task.WhenAny(ready.Task, run).WaitAsync(Limit, Ct);
        if (first == run)
        {
            await run; // surfaces the failure
        }

        return await ready.Task;
    }

    [Fact]
    public async Task Curl_ThroughAppApiOnBothNodes_ExitPickedFromTracker()
    {
        var (_, ready) = await StartServerAsync(SocksServerOptions.Default with { AllowLoopbackTargets = true });
        Assert.Equal($"{_exitNode.NodeKey}/exit1", ready);
        var proxy = await StartClientAsync(server: null);

        var result = await Curl.RunAsync(["-sS", "--socks5-hostname", $"127.0.0.1:{proxy.Port}", $"http://localhost:{_http.Port}/bytes/2000000"], Ct);
        Assert.True(result.ExitCode == 0, result.Stderr);
        Assert.Equal(2_000_000, result.Length);
        Assert.Equal(TestHttpServer.ExpectedHash(2_000_000), result.Sha256);
        Assert.Equal(_entryNode.NodeKey, _exitNode.LastDialer);
    }

    [Fact]
    public async Task AllowList_UsesTheMeshAuthenticatedNodeKey()
    {
        var others = SocksServerOptions.Default with
        {
            AllowLoopbackTargets = true,
            AllowedClients = new HashSet<string>(["02" + new string('9', 64)], StringComparer.OrdinalIgnoreCase),
        };
        var (_, ready) = await StartServerAsync(others);
        var proxy = await StartClientAsync(ready);
        using var tunnel = await SocksTestClient.ConnectAsync(proxy, SocksEndpoint.FromIP(IPAddress.Loopback, (ushort)_http.Port), Ct);
        Assert.Equal(SocksReplyCode.NotAllowedByRuleset, tunnel.Reply);
    }

    [Fact]
    public async Task HalfClose_CrossesTheAppApi()
    {
        // An echo-until-EOF target: it answers only after the client's FIN arrived through both app APIs.
        using var target = new TcpListener(IPAddress.Loopback, 0);
        target.Start();
        var echo = Task.Run(async () =>
        {
            using var peer = await target.AcceptTcpClientAsync(Ct);
            var stream = peer.GetStream();
            var all = new MemoryStream();
            await stream.CopyToAsync(all, Ct);
            await stream.WriteAsync(Encoding.ASCII.GetBytes($"got {all.Length} bytes"), Ct);
            peer.Client.Shutdown(SocketShutdown.Send);
        }, Ct);

        var (_, ready) = await StartServerAsync(SocksServerOptions.Default with { AllowLoopbackTargets = true });
        var proxy = await StartClientAsync(ready);
        using var tunnel = await SocksTestClient.ConnectAsync(proxy, SocksEndpoint.FromIP(IPAddress.Loopback, (ushort)((IPEndPoint)target.LocalEndpoint).Port), Ct);
        Assert.Equal(SocksReplyCode.Succeeded, tunnel.Reply);
        await tunnel.Stream.WriteAsync(new byte[12345], Ct);
        tunnel.Stream.Socket.Shutdown(SocketShutdown.Send);
        var reply = new MemoryStream();
        await tunnel.Stream.CopyToAsync(reply, Ct).WaitAsync(Limit, Ct);
        Assert.Equal("got 12345 bytes", Encoding.ASCII.GetString(reply.ToArray()));
        await echo.WaitAsync(Limit, Ct);
    }

    [Fact]
    public async Task NoServerInTracker_ClientFailsWithClearError()
    {
        var ex = await Assert.ThrowsAsync<AppApiException>(() => StartClientAsync(server: null));
        Assert.Equal(AppApiErrorCode.NotFound, ex.Code);
        Assert.Contains("socks-server", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task ExitAppMissing_Reply03()
    {
        var proxy = await StartClientAsync($"{_exitNode.NodeKey}/nobody");
        using var tunnel = await SocksTestClient.ConnectAsync(proxy, SocksEndpoint.FromIP(IPAddress.Loopback, 80), Ct);
        Assert.Equal(SocksReplyCode.NetworkUnreachable, tunnel.Reply);
    }

    /// <summary>Nodes that share one tracker and carry each dialled stream over a loopback TCP pair.</summary>
    private sealed class FakeMesh : IAsyncDisposable
    {
        private readonly List<FakeNode> _nodes = [];

        public List<AppInfo> Tracker { get; } = [];

        public FakeNode AddNode(string key)
        {
            var node = new FakeNode(this, key);
            _nodes.Add(node);
            return node;
        }

        public FakeNode Find(string key) =>
            _nodes.FirstOrDefault(n => n.NodeKey == key) ?? throw new AppApiException(AppApiErrorCode.NotFound, "unknown node");

        public async ValueTask DisposeAsync()
        {
            foreach (var node in _nodes)
            {
                await node.Api.DisposeAsync();
            }
        }
    }

    private sealed class FakeNode : IAppHost
    {
        private readonly FakeMesh _mesh;

        public FakeNode(FakeMesh mesh, string key)
        {
            _mesh = mesh;
            NodeKey = key;
            Api = new AppApiServer(this, new IPEndPoint(IPAddress.Loopback, 0), Token);
            Api.Start();
        }

        public string NodeKey { get; }

        public AppApiServer Api { get; }

        public string? LastDialer { get; private set; }

        public Task RegisterAppAsync(string name, string type, CancellationToken cancellationToken)
        {
            lock (_mesh.Tracker)
            {
                _mesh.Tracker.RemoveAll(a => a.Node == NodeKey && a.Name == name);
                _mesh.Tracker.Add(new AppInfo { Name = name, Type = type, Node = NodeKey });
            }

            return Task.CompletedTask;
        }

        public Task UnregisterAppAsync(string name, CancellationToken cancellationToken)
        {
            lock (_mesh.Tracker)
            {
                _mesh.Tracker.RemoveAll(a => a.Node == NodeKey && a.Name == name);
            }

            return Task.CompletedTask;
        }

        public Task<AppListResultMessage> ListAppsAsync(AppListMessage query, CancellationToken cancellationToken)
        {
            lock (_mesh.Tracker)
            {
                var apps = _mesh.Tracker.Where(a => query.By switch
                {
                    "name" => a.Name == query.Value,
                    "type" => a.Type == query.Value,
                    _ => true,
                }).ToList();
                return Task.FromResult(new AppListResultMessage { Apps = apps });
            }
        }

        public async Task<Stream> DialAsync(string node, string app, string? from, CancellationToken cancellationToken)
        {
            var remote = _mesh.Find(node);
            using var listener = new TcpListener(IPAddress.Loopback, 0);
            listener.Start();
            var client = new TcpClient();
            await client.ConnectAsync((IPEndPoint)listener.LocalEndpoint, cancellationToken);
            var server = await listener.AcceptTcpClientAsync(cancellationToken);
            remote.LastDialer = NodeKey;
            if (!remote.Api.TryDeliver(app, new IncomingStream(server.GetStream(), NodeKey, from)))
            {
                client.Dispose();
                server.Dispose();
                throw new AppApiException(AppApiErrorCode.Refused, $"no app '{app}' on {node}");
            }

            return client.GetStream();
        }

        public ValueTask CompleteWritesAsync(Stream stream, CancellationToken cancellationToken)
        {
            ((NetworkStream)stream).Socket.Shutdown(SocketShutdown.Send);
            return ValueTask.CompletedTask;
        }

        public void AbortStream(Stream stream)
        {
            var socket = ((NetworkStream)stream).Socket;
            socket.LingerState = new LingerOption(true, 0);
            stream.Dispose();
        }
    }
}
