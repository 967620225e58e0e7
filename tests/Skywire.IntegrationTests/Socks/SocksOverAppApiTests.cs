using System.Net;
using System.Net.Sockets;
using System.Text;
using Microsoft.Extensions.Logging;
using Skywire.Apps.Socks;
using Skywire.Core.AppApi;
using Skywire.Core.Streams;
using Skywire.Protocol.AppApi;
using Skywire.Protocol.Control;
using Skywire.TestKit.Http;
using Skywire.TestKit.Logging;
using Skywire.TestKit.Streams;

namespace Skywire.IntegrationTests.Socks;

/// <summary>
/// The socks apps bound through the real app API server and SDK on two nodes; the mesh between the
/// nodes is an in-memory stream pair per stream (the node data plane is not in this test).
/// </summary>
public sealed class SocksOverAppApiTests : IAsyncLifetime
{
    private static readonly TimeSpan Limit = TimeSpan.FromSeconds(30);
    private const string Token = "feedfacefeedfacefeedfacefeedface";
    private readonly TestLog _log = new(line => TestContext.Current.TestOutputHelper?.WriteLine(line));
    private readonly FakeMesh _mesh;
    private readonly TestHttpServer _http = new();
    private readonly CancellationTokenSource _stop = new();
    private readonly List<Task> _apps = [];

    public SocksOverAppApiTests() => _mesh = new FakeMesh(_log);
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
        // Every app that started stops cleanly when cancelled: any other end (a failure, or not ending) fails the test.
        await _stop.CancelAsync();
        await Task.WhenAll(_apps).WaitAsync(Limit);
        await _mesh.DisposeAsync();
        await _http.DisposeAsync();
        _log.Dispose(); // fails the test on an unexpected Error log
    }

    private async Task<(Task Server, string Ready)> StartServerAsync(SocksServerOptions options)
    {
        var ready = new TaskCompletionSource<string>(TaskCreationOptions.RunContinuationsAsynchronously);
        var server = SocksApps.RunServerAsync(new SocksAppBinding(_exitNode.Api.LocalEndPoint, Token, "exit1"), options, _log.CreateLogger("socks-server"), ready.SetResult, _stop.Token);
        var name = await ready.Task.WaitAsync(Limit, Ct);
        _apps.Add(server);
        return (server, name);
    }

    private async Task<IPEndPoint> StartClientAsync(string? server, SocksClientOptions? options = null)
    {
        var ready = new TaskCompletionSource<IPEndPoint>(TaskCreationOptions.RunContinuationsAsynchronously);
        var run = SocksApps.RunClientAsync(new SocksAppBinding(_entryNode.Api.LocalEndPoint, Token, "entry1"), server,
            (options ?? SocksClientOptions.Default) with { Listen = new IPEndPoint(IPAddress.Loopback, 0) }, _log.CreateLogger("socks-client"), (ep, _) => ready.SetResult(ep), _stop.Token);
        var first = await Task.WhenAny(ready.Task, run).WaitAsync(Limit, Ct);
        if (first == run)
        {
            await run; // surfaces the failure
        }

        _apps.Add(run);
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
    private sealed class FakeMesh(ILoggerFactory logging) : IAsyncDisposable
    {
        private readonly List<FakeNode> _nodes = [];

        public ILoggerFactory Logging { get; } = logging;

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
            Api = new AppApiServer(this, new IPEndPoint(IPAddress.Loopback, 0), Token, mesh.Logging.CreateLogger<AppApiServer>());
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

        public Task<DuplexStream> DialAsync(string node, string app, string? from, CancellationToken cancellationToken)
        {
            var remote = _mesh.Find(node);
            var pair = new DuplexStreamPair();
            remote.LastDialer = NodeKey;
            if (!remote.Api.TryDeliver(app, new IncomingStream(pair.B, NodeKey, from)))
            {
                throw new AppApiException(AppApiErrorCode.Refused, $"no app '{app}' on {node}");
            }

            return Task.FromResult<DuplexStream>(pair.A);
        }
    }
}
