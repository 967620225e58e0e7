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
        await mesh.WaitAllAsync(m => m.Controller.Shared!.StoredRoutes.ContainsKey(route.SessionId), "the route in every manager's view of the store");
        Assert.Empty(mesh.Managers[1].Controller.Routes.Snapshot());

        // The same tracker and nodes everywhere.
        foreach (var manager in mesh.Managers)
        {
            Assert.Equal(4, manager.Controller.ListNodes().Nodes.Count(n => n.Online));
        }
    }
}
