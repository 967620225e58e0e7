using Skywire.Core.Manager.Store;
using Skywire.IntegrationTests.Mesh;
using Skywire.TestKit.Etcd;
using Skywire.TestKit.Logging;

namespace Skywire.IntegrationTests.Manager;

/// <summary>
/// Several managers serving one mesh through a shared store (issue 17): with a real etcd (Debian's etcd-server, started
/// and stopped by the test) and with the embedded store shared in-process.
/// </summary>
public class MultiManagerTests
{
    private static Action<string>? Output() => TestContext.Current.TestOutputHelper is { } output ? output.WriteLine : null;

    private static EtcdStoreOptions EtcdOptions(EtcdCluster etcd, string prefix) => EtcdStoreOptions.Parse(etcd.StoreAddress(prefix)) with
    {
        LeaseTtl = TimeSpan.FromSeconds(3),
        RevokeOnDispose = false,
    };

    [Fact]
    public async Task RouteAcrossRelaysOnDifferentManagers_Etcd_TransfersByteExact()
    {
        await using var etcd = await EtcdCluster.StartAsync(1, Output(), TestContext.Current.CancellationToken);
        using var log = new TestLog(Output());
        await using var mesh = MultiManagerHarness.Start(2, () => new EtcdStore(EtcdOptions(etcd, "/t1/"), log.CreateLogger("etcd")), log);
        await AssertTransferAcrossManagersAsync(mesh);
    }

    [Fact]
    public async Task RouteAcrossRelaysOnDifferentManagers_EmbeddedShared_TransfersByteExact()
    {
        using var log = new TestLog(Output());
        await using var shared = new EmbeddedStore();
        await using var mesh = MultiManagerHarness.Start(2, shared.OpenSession, log);
        await AssertTransferAcrossManagersAsync(mesh);
    }

    /// <summary>
    /// Regression (issue 17, samples/mesh/etcd-mesh.yaml): the managers start before the store is reachable (etcd still
    /// forming), and a node registers with each before either manager has seen the other's nodes. With --auto-link the
    /// two nodes must still be linked once the store is up (the link is known to each manager only through the store),
    /// and a route between them must carry data. Auto-link used to look only at the nodes online when a node registered,
    /// so the pair was never linked and the SOCKS client of the sample got "no route".
    /// </summary>
    [Fact]
    public async Task AutoLink_NodesRegisteredWithDifferentManagersBeforeTheStoreWasUp_AreLinkedAndRouted()
    {
        using var log = new TestLog(Output());
        await using var shared = new EmbeddedStore();
        var gate = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        await using var mesh = MultiManagerHarness.Start(2, () => new GatedStore(shared.OpenSession(), gate.Task), log, new Core.Manager.ManagerOptions { AutoLink = true });
        var a = await mesh.AddNodeAsync(0, everywhere: false);
        var d = await mesh.AddNodeAsync(1, everywhere: false);
        Assert.False(mesh.Managers[0].Controller.Nodes.IsOnline(d.PublicKey));
        Assert.False(mesh.Managers[1].Controller.Nodes.IsOnline(a.PublicKey));

        gate.SetResult();
        await mesh.WaitAllAsync(m =>
        {
            var links = m.Controller.ListLinks().Links;
            return links.Any(l => l.From == a.NodeKey && l.To == d.NodeKey && l.Confirmed) && links.Any(l => l.From == d.NodeKey && l.To == a.NodeKey && l.Confirmed);
        }, "the auto-link a-d routed by every manager");
        var (sent, received, count) = await MeshHarness.TransferAsync(a, d, 1 << 20);
        Assert.Equal(1 << 20, count);
        Assert.Equal(sent, received);
        var (back, received2, _) = await MeshHarness.TransferAsync(d, a, 1 << 20);
        Assert.Equal(back, received2);
    }

    [Fact]
    public async Task ManagerKilledMidTransfer_TransferCompletes_SurvivorTakesTheRouteOver_AndMakesNewRoutes()
    {
        await using var etcd = await EtcdCluster.StartAsync(1, Output(), TestContext.Current.CancellationToken);
        using var log = new TestLog(Output());
        var options = new Core.Manager.ManagerOptions { RuleLifetime = TimeSpan.FromSeconds(6), RefreshInterval = TimeSpan.FromSeconds(2) };
        await using var mesh = MultiManagerHarness.Start(2, () => new EtcdStore(EtcdOptions(etcd, "/t2/"), log.CreateLogger("etcd")), log, options);
        var a = await mesh.AddNodeAsync(0);
        var b = await mesh.AddNodeAsync(1);
        var c = await mesh.AddNodeAsync(1);
        await mesh.LinkAsync(mesh.Managers[0], a, b);
        await mesh.LinkAsync(mesh.Managers[1], b, c);

        // a's manager (M0) builds and owns the route a > b > c; it dies (no clean stop: its lease runs out) a quarter in.
        ulong sessionId = 0;
        var (sent, received, count) = await MeshHarness.TransferAsync(a, c, 24 << 20, async progress =>
        {
            if (sessionId == 0)
            {
                sessionId = Assert.Single(mesh.Managers[0].Controller.Routes.Snapshot()).SessionId;
                await mesh.KillManagerAsync(0, s => s.DisposeAsync());
            }
        });
        Assert.Equal(24 << 20, count);
        Assert.Equal(sent, received);

        // a fails over to M1; M1 takes the route over once M0's lease is gone, and keeps its rules fresh.
        var survivor = mesh.Managers[1].Controller;
        // (Its own view of the store shows the new owner once etcd's watch brought the write back: wait for that too.)
        await MeshHarness.WaitUntilAsync(
            () => survivor.Routes.Get(sessionId) is not null
                && survivor.Shared!.StoredRoutes.TryGetValue(sessionId, out var stored) && stored.Owner == survivor.Shared.ManagerId,
            "the survivor owns the route, in the store too");
        await MeshHarness.WaitUntilAsync(() => a.ManagerConnected && survivor.LocalChannel(a.PublicKey) is not null, "a registered with the survivor");

        // Past the lifetime of every rule the dead manager installed: the session still carries a new stream.
        await Task.Delay(options.RuleLifetime + TimeSpan.FromSeconds(1), TestContext.Current.CancellationToken); // let M0's rules run out
        (sent, received, count) = await MeshHarness.TransferAsync(a, c, 1 << 20);
        Assert.Equal(sent, received);

        // New routes are made by the survivor.
        var route = await survivor.BuildRouteAsync(c.PublicKey, a.PublicKey, TestContext.Current.CancellationToken);
        Assert.Equal([c.NodeKey, b.NodeKey, a.NodeKey], route.Path);
    }

    [Fact]
    public async Task EtcdMemberLost_ChangesNothing_AllMembersDown_RefusesChanges_ThenRecovers()
    {
        await using var etcd = await EtcdCluster.StartAsync(3, Output(), TestContext.Current.CancellationToken);
        using var log = new TestLog(Output());
        var stores = 0;
        await using var mesh = MultiManagerHarness.Start(2, () => new EtcdStore(EtcdOptions(etcd, "/t3/") with { CallTimeout = TimeSpan.FromSeconds(3) }, log.CreateLogger($"etcd-M{stores++}")), log);
        var a = await mesh.AddNodeAsync(0);
        var b = await mesh.AddNodeAsync(1);
        await mesh.LinkAsync(mesh.Managers[0], a, b);
        var (sent, received, _) = await MeshHarness.TransferAsync(a, b, 1 << 20);
        Assert.Equal(sent, received);

        // One member of three lost: registrations, links and routes across managers go on.
        await etcd.KillAsync(0);
        var c = await mesh.AddNodeAsync(1);
        await mesh.LinkAsync(mesh.Managers[1], b, c);
        (sent, received, _) = await MeshHarness.TransferAsync(a, c, 1 << 20);
        Assert.Equal(sent, received);

        // Every member down: installed routes keep carrying data, new routes are refused with a clear error.
        await etcd.KillAsync(1);
        await etcd.KillAsync(2);
        (sent, received, _) = await MeshHarness.TransferAsync(a, c, 1 << 20);
        Assert.Equal(sent, received);
        var refused = await Assert.ThrowsAsync<Core.Channels.ControlException>(() => mesh.Managers[0].Controller.BuildRouteAsync(a.PublicKey, b.PublicKey, TestContext.Current.CancellationToken));
        Assert.Equal(Protocol.Control.ControlErrorCode.Unavailable, refused.Code);
        Assert.Contains("mesh store", refused.Message, StringComparison.Ordinal);

        // Back: routes are made again and what a manager learns reaches the other.
        for (var i = 0; i < 3; i++)
        {
            etcd.Restart(i);
        }

        await etcd.WaitHealthyAsync(TestContext.Current.CancellationToken);
        await RetryAsync(() => mesh.Managers[0].Controller.BuildRouteAsync(a.PublicKey, b.PublicKey, TestContext.Current.CancellationToken));
        var d = await mesh.AddNodeAsync(0);
        await mesh.LinkAsync(mesh.Managers[0], d, a);
        (sent, received, _) = await MeshHarness.TransferAsync(d, c, 1 << 20);
        Assert.Equal(sent, received);
    }

    private static async Task RetryAsync(Func<Task> action)
    {
        var deadline = DateTime.UtcNow + MeshHarness.Limit;
        while (true)
        {
            try
            {
                await action();
                return;
            }
            catch (Core.Channels.ControlException) when (DateTime.UtcNow < deadline)
            {
                await Task.Delay(200);
            }
        }
    }

    /// <summary>
    /// a (M0) - b (M0, relay) - c (M1, relay) - d (M1): a's manager builds the route, so c's rules and d's session route
    /// go through the store to M1.
    /// </summary>
    private static async Task AssertTransferAcrossManagersAsync(MultiManagerHarness mesh)
    {
        var a = await mesh.AddNodeAsync(0);
        var b = await mesh.AddNodeAsync(0);
        var c = await mesh.AddNodeAsync(1);
        var d = await mesh.AddNodeAsync(1);
        await mesh.LinkAsync(mesh.Managers[0], a, b);
        await mesh.LinkAsync(mesh.Managers[0], b, c);
        await mesh.LinkAsync(mesh.Managers[1], c, d);

        var (sent, received, count) = await MeshHarness.TransferAsync(a, d, 4 << 20);
        Assert.Equal(4 << 20, count);
        Assert.Equal(sent, received);

        // One route, owned by a's manager, known to both; its relays are on different managers.
        var route = Assert.Single(mesh.Managers[0].Controller.Routes.Snapshot());
        Assert.Equal([a.PublicKey, b.PublicKey, c.PublicKey, d.PublicKey], route.Plan.Path);
        await mesh.WaitAllAsync(m => m.Controller.ListRoutes().Routes.Any(r => r.SessionId == route.SessionId && r.Path.Count == 4), "the route listed by every manager (the cli's view)");
        Assert.Empty(mesh.Managers[1].Controller.Routes.Snapshot());

        // The same nodes and apps everywhere.
        foreach (var manager in mesh.Managers)
        {
            Assert.Equal(4, manager.Controller.ListNodes().Nodes.Count(n => n.Online));
        }

        await using var app = await MeshHarness.AppAsync(c);
        await app.RegisterAsync("tracked", "test");
        await mesh.WaitAllAsync(m => m.Controller.ListApps(new Protocol.Control.AppListMessage { By = "name", Value = "tracked" }).Apps.Any(x => x.Node == c.NodeKey), "c's app in every manager's tracker");
    }
}
