using System.Net;
using System.Net.Sockets;
using Skywire.Core.Channels;
using Skywire.Core.Control;
using Skywire.Core.Crypto;
using Skywire.Core.Manager;
using Skywire.Core.Node;
using Skywire.Core.Sdk;
using Skywire.IntegrationTests.Mesh;
using Skywire.Protocol.Control;
using Skywire.TestKit;
using Skywire.TestKit.Logging;

namespace Skywire.IntegrationTests.Resilience;

/// <summary>
/// Issue 13.3 in one process: components started in any order find each other, a manager restart ends no session,
/// and links come back by themselves after a node restart or a stall. Each test fails on the code before issue 13.
/// </summary>
public sealed class WaitForEachOtherTests
{
    private static readonly TimeSpan Limit = MeshHarness.Limit;

    private static TestLog NewLog() => new(TestContext.Current.TestOutputHelper is { } output ? output.WriteLine : null);

    [Fact]
    public async Task NodeStartedBeforeItsManager_WaitsAndRegistersWhenItComes()
    {
        using var log = NewLog();
        using var managerKey = KeyPair.Generate();
        using var nodeKey = KeyPair.Generate();
        var endPoint = new IPEndPoint(IPAddress.Loopback, FreeTcpPort());
        var options = new NodeOptions
        {
            Manager = new ManagerAddress(endPoint, managerKey.Public),
            ReconnectDelay = TimeSpan.FromMilliseconds(100),
            MaxReconnectDelay = TimeSpan.FromMilliseconds(500),
        };
        await using var node = new NodeHost(nodeKey, options, log);
        await node.StartAsync(TestContext.Current.CancellationToken); // before issue 13: "cannot reach the manager" thrown here
        Assert.False(node.Completion.IsCompleted);
        Assert.False(node.ManagerConnected);

        // An app registered while the manager is away is registered with it when it comes.
        await using var app = await SkywireApp.ConnectAsync(node.AppsEndPoint, node.AppToken, TestContext.Current.CancellationToken);
        await app.RegisterAsync("early", "test", TestContext.Current.CancellationToken);

        await using var manager = new ManagerServer(managerKey, new ManagerOptions { Listen = endPoint }, log);
        manager.Start();
        await MeshHarness.WaitUntilAsync(() => manager.Controller.ListNodes().Nodes.Any(n => n.Key == node.NodeKey && n.Online), "the node registered");
        await MeshHarness.WaitUntilAsync(() => manager.Controller.ListApps(new Protocol.Control.AppListMessage { By = "all" }).Apps.Any(a => a.Name == "early"), "the app registered");
        Assert.True(node.ManagerConnected);
        await node.DisposeAsync();
        Assert.True(node.Completion.IsCompletedSuccessfully);
    }

    /// <summary>
    /// A manager at its connection cap, or evicting unauthenticated connections under a flood, hangs up during the
    /// handshake as a manager with another key does. A node that never registered takes three in a row for a wrong
    /// pinned key and stops; a node that registered once (its key was right) keeps retrying: a flood at the manager's
    /// port must not make it exit (issue 12.3, found by probing: it exited after three hang-ups in a row).
    /// </summary>
    [Fact]
    public async Task HangUpsDuringTheHandshake_AreFatalOnlyForANodeThatNeverRegistered()
    {
        using var log = NewLog().ExpectError(7020); // the fresh node gives up, as it should
        using var managerKey = KeyPair.Generate();
        using var nodeKey = KeyPair.Generate();
        using var freshKey = KeyPair.Generate();
        var endPoint = new IPEndPoint(IPAddress.Loopback, FreeTcpPort());
        var options = new NodeOptions
        {
            Manager = new ManagerAddress(endPoint, managerKey.Public),
            ReconnectDelay = TimeSpan.FromMilliseconds(50),
            MaxReconnectDelay = TimeSpan.FromMilliseconds(200),
            ConnectTimeout = TimeSpan.FromSeconds(2),
        };
        await using var node = new NodeHost(nodeKey, options, log);
        await using (var manager = new ManagerServer(managerKey, new ManagerOptions { Listen = endPoint }, log))
        {
            manager.Start();
            await node.StartAsync(TestContext.Current.CancellationToken);
            await MeshHarness.WaitUntilAsync(() => node.ManagerConnected, "the node registered");
        }

        // The port now accepts and hangs up at once, as a listener that refuses a connection at its cap does.
        using var busy = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        busy.SetSocketOption(SocketOptionLevel.Socket, SocketOptionName.ReuseAddress, true);
        busy.Bind(endPoint);
        busy.Listen(64);
        var hangUps = 0;
        using var stop = new CancellationTokenSource();
        var hanging = Task.Run(async () =>
        {
            while (!stop.IsCancellationRequested)
            {
                using var accepted = await busy.AcceptAsync(stop.Token);
                Interlocked.Increment(ref hangUps);
            }
        }, CancellationToken.None);

        await MeshHarness.WaitUntilAsync(() => Volatile.Read(ref hangUps) >= 6 || node.Completion.IsCompleted, "the node met six hang-ups");
        Assert.False(node.Completion.IsCompleted, $"a node that registered once must not exit on hang-ups: {node.Completion.Exception?.InnerException}");

        // The same hang-ups stop a node that never registered: to it they say "wrong pinned key".
        await using var fresh = new NodeHost(freshKey, options, log);
        await fresh.StartAsync(TestContext.Current.CancellationToken);
        var refused = await Assert.ThrowsAsync<ControlException>(() => fresh.Completion.WaitAsync(Limit, TestContext.Current.CancellationToken));
        Assert.Equal(ControlErrorCode.Forbidden, refused.Code);
        Assert.Contains("pinned key", refused.Message, StringComparison.Ordinal);
        Assert.False(node.Completion.IsCompleted);

        await stop.CancelAsync();
        busy.Close();
        await hanging.ContinueWith(_ => { }, TaskScheduler.Default);
    }

    [Fact]
    public async Task AppStartedBeforeItsNode_WaitsForIt_AndAcceptsAcrossANodeRestart()
    {
        await using var mesh = MeshHarness.Start();
        var dir = Directory.CreateTempSubdirectory("skywire-app-first-");
        try
        {
            var tokenFile = Path.Combine(dir.FullName, "node.token");
            var apps = new IPEndPoint(IPAddress.Loopback, FreeTcpPort());
            using var key = KeyPair.Generate();
            var retries = 0;
            var connecting = SkywireApp.ConnectAsync(new SkywireAppOptions
            {
                NodeApps = apps, TokenFile = tokenFile, RetryDelay = TimeSpan.FromMilliseconds(50), MaxRetryDelay = TimeSpan.FromMilliseconds(200),
                OnRetry = _ => Interlocked.Increment(ref retries),
            }, TestContext.Current.CancellationToken);
            await MeshHarness.WaitUntilAsync(() => Volatile.Read(ref retries) >= 2, "the app retried");
            Assert.False(connecting.IsCompleted);

            var b = await mesh.AddNodeAsync(o => o with { AppsListen = apps, AppTokenFile = tokenFile }, key);
            await using var app = await connecting.WaitAsync(Limit, TestContext.Current.CancellationToken);
            await app.RegisterAsync("sink", "test", TestContext.Current.CancellationToken);
            var a = await mesh.AddNodeAsync();
            await mesh.LinkAsync(a, b);
            await AssertDeliversAsync(app, a, b.NodeKey);

            // The node restarts (same key, same app API address, a new token): the waiting accept goes on with it.
            var accept = app.AcceptAsync(TestContext.Current.CancellationToken);
            await mesh.RemoveNodeAsync(b);
            b = await mesh.AddNodeAsync(o => o with { AppsListen = apps, AppTokenFile = tokenFile }, key);
            await MeshHarness.WaitUntilAsync(() => app.Reconnects >= 1, "the app connected to the new node");
            await MeshHarness.WaitUntilAsync(() => mesh.Manager.Controller.ListLinks().Links.Count(l => l.Confirmed) >= 2, "the standing link came back");
            await using var source = await MeshHarness.AppAsync(a);
            await using var outbound = await source.DialAsync(b.NodeKey, "sink", TestContext.Current.CancellationToken).WaitAsync(Limit, TestContext.Current.CancellationToken);
            await using var inbound = await accept.WaitAsync(Limit, TestContext.Current.CancellationToken);
            await outbound.WriteAsync("again"u8.ToArray(), TestContext.Current.CancellationToken);
            outbound.CompleteWrites();
            Assert.Equal("again", await ReadAllTextAsync(inbound));
        }
        finally
        {
            dir.Delete(recursive: true);
        }
    }

    [Fact]
    public async Task ManagerRestart_LiveSessionKeepsGoing_PastItsRulesLifetime()
    {
        // Short rule lifetime: without adoption by the new manager the session's rules lapse within seconds.
        await using var mesh = MeshHarness.Start(new ManagerOptions { RuleLifetime = TimeSpan.FromSeconds(3), RefreshInterval = TimeSpan.FromSeconds(1) });
        var nodes = new NodeHost[3];
        for (var i = 0; i < nodes.Length; i++)
        {
            nodes[i] = await mesh.AddNodeAsync(o => o with { MaxReconnectDelay = TimeSpan.FromMilliseconds(500), ConnectTimeout = TimeSpan.FromSeconds(2) });
        }

        var (a, b, c) = (nodes[0], nodes[1], nodes[2]);
        await mesh.LinkAsync(a, b);
        await mesh.LinkAsync(b, c);
        ulong sessionId = 0;
        var size = 8L * 1024 * 1024;
        var (sent, received, count) = await MeshHarness.TransferAsync(a, c, size, async progress =>
        {
            if (sessionId != 0)
            {
                return;
            }

            var route = Assert.Single(mesh.Manager.Controller.ListRoutes().Routes);
            sessionId = route.SessionId;
            var oldRules = b.DataPlane.GetRules().Select(r => (r.InLink, r.InRoute)).ToHashSet();
            await mesh.RestartManagerAsync(async () =>
            {
                // Away for longer than the rules live: the nodes hold them meanwhile.
                await MeshHarness.WaitUntilAsync(() => nodes.All(n => !n.ManagerConnected), "the nodes noticed");
                var away = TimeProvider.System.GetTimestamp();
                await MeshHarness.WaitUntilAsync(() => TimeProvider.System.GetElapsedTime(away) > TimeSpan.FromSeconds(4), "the rules' lifetime passed");
                Assert.Equal(oldRules, b.DataPlane.GetRules().Select(r => (r.InLink, r.InRoute)).ToHashSet());
            });

            // The new manager takes the session over from its ends and keeps it alive; the old relay rules then lapse.
            await MeshHarness.WaitUntilAsync(() => mesh.Manager.Controller.ListRoutes().Routes.Any(r => r.SessionId == sessionId), "the session adopted");
            await MeshHarness.WaitUntilAsync(() => !b.DataPlane.GetRules().Any(r => oldRules.Contains((r.InLink, r.InRoute))), "the old rules lapsed");
        });

        Assert.Equal(size, count);
        Assert.Equal(sent, received);
        Assert.Equal(sessionId, Assert.Single(mesh.Manager.Controller.ListRoutes().Routes).SessionId);
        Assert.Equal(2, mesh.Manager.Controller.Intents.Count); // the links were learned from the nodes' reports
    }

    [Fact]
    public async Task NodeRestarts_ItsLinksComeBack_AndRoutesThroughItWork()
    {
        await using var mesh = MeshHarness.Start();
        using var key = KeyPair.Generate();
        var a = await mesh.AddNodeAsync();
        var b = await mesh.AddNodeAsync(key: key);
        var c = await mesh.AddNodeAsync();
        await mesh.LinkAsync(a, b);
        await mesh.LinkAsync(b, c);

        await mesh.RemoveNodeAsync(b);
        b = await mesh.AddNodeAsync(key: key); // a new process: new link port, no links
        await MeshHarness.WaitUntilAsync(() => mesh.Manager.Controller.ListLinks().Links.Count(l => l.Confirmed) == 4, "both links confirmed again");

        var (sent, received, count) = await MeshHarness.TransferAsync(a, c, 1024 * 1024);
        Assert.Equal(1024 * 1024, count);
        Assert.Equal(sent, received);
        Assert.Equal(3, Assert.Single(mesh.Manager.Controller.ListRoutes().Routes).Path.Count);
    }

    [Fact]
    public async Task ManagerAwayWhileTheOpenerRestarts_TheLinkComesBackWithoutACommand()
    {
        // The soak's regression: a restarted manager knows the links only from the nodes' reports. Here the node that
        // opened the link restarts while the manager is away (and forgets it), and its peer sees the link die. Before
        // the fix the peer dropped the dead link it had not opened, nobody reported it, and it stayed down for good.
        await using var mesh = MeshHarness.Start();
        using var key = KeyPair.Generate();
        static NodeOptions Patient(NodeOptions o) => o with { MaxReconnectDelay = TimeSpan.FromMilliseconds(500), ConnectTimeout = TimeSpan.FromSeconds(2) };
        var a = await mesh.AddNodeAsync(Patient, key);
        var b = await mesh.AddNodeAsync(Patient);
        await mesh.LinkAsync(a, b);

        var manager = new ManagerAddress(mesh.Manager.LocalEndPoint, mesh.ManagerKey.Public);
        await mesh.RestartManagerAsync(async () =>
        {
            await mesh.RemoveNodeAsync(a);
            await MeshHarness.WaitUntilAsync(() => b.DataPlane.GetLink(key.Public) is not { State: Core.Links.LinkState.Up }, "b saw the link die");
            a = await mesh.AddNodeAsync(o => Patient(o) with { Manager = manager }, key); // no links; registers when the manager is back
        });

        await MeshHarness.WaitUntilAsync(() => mesh.Manager.Controller.ListLinks().Links.Count(l => l.Confirmed) == 2, "the link up again without a command");
        Assert.Equal(1, mesh.Manager.Controller.Intents.Count);
    }

    [Fact]
    public async Task LinkStalledLongerThanDeadAfter_ComesBackWhenThePathDoes()
    {
        await using var mesh = MeshHarness.Start();
        using var relay = new UdpFaultRelay(new IPEndPoint(IPAddress.Loopback, FreeUdpPort()));
        var a = await mesh.AddNodeAsync();
        var b = await mesh.AddNodeAsync(o => o with { LinkListen = relay.Target, AdvertisedLinkAddress = relay.ListenEndPoint });
        await mesh.LinkAsync(a, b);

        // Like a SIGSTOP of b for a few seconds: nothing passes, both ends declare the link dead.
        relay.Blackhole = true;
        await MeshHarness.WaitUntilAsync(() => mesh.Manager.Controller.ListLinks().Links.All(l => !l.Confirmed), "the link is down");
        relay.Blackhole = false;
        await MeshHarness.WaitUntilAsync(() => mesh.Manager.Controller.ListLinks().Links.Count(l => l.Confirmed) == 2, "the link up again without a command");
    }

    private static async Task AssertDeliversAsync(SkywireApp sink, NodeHost from, string to)
    {
        var accept = sink.AcceptAsync(TestContext.Current.CancellationToken);
        await using var source = await MeshHarness.AppAsync(from);
        await using var outbound = await source.DialAsync(to, sink.Name!, TestContext.Current.CancellationToken).WaitAsync(Limit, TestContext.Current.CancellationToken);
        await using var inbound = await accept.WaitAsync(Limit, TestContext.Current.CancellationToken);
        await outbound.WriteAsync("hello"u8.ToArray(), TestContext.Current.CancellationToken);
        outbound.CompleteWrites();
        Assert.Equal("hello", await ReadAllTextAsync(inbound));
    }

    private static async Task<string> ReadAllTextAsync(Stream stream)
    {
        using var memory = new MemoryStream();
        await stream.CopyToAsync(memory, TestContext.Current.CancellationToken).WaitAsync(Limit, TestContext.Current.CancellationToken);
        return System.Text.Encoding.UTF8.GetString(memory.ToArray());
    }

    internal static int FreeTcpPort()
    {
        using var s = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        s.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        return ((IPEndPoint)s.LocalEndPoint!).Port;
    }

    internal static int FreeUdpPort()
    {
        using var s = new Socket(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp);
        s.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        return ((IPEndPoint)s.LocalEndPoint!).Port;
    }
}
