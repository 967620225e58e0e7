using Skywire.Core.Manager;
using Skywire.Core.Manager.Store;
using Skywire.IntegrationTests.Mesh;

namespace Skywire.IntegrationTests.Manager;

/// <summary>
/// One manager on <c>skywire manager --store file:PATH</c> (docs/operations.md, docs/architecture.md "Manager state")
/// restarts: its routes and labels are in the file (mode 0600) when it is down, the new process takes the route over
/// with the nodes' session, keeps its rules fresh past their lifetime, and draws no label the stored route holds.
/// </summary>
public class FileStoreRestartTests
{
    [Fact]
    public async Task ManagerOnAFileStore_Restarts_RoutesAndLabelsSurvive_AndTheSessionKeepsCarryingData()
    {
        var dir = Directory.CreateTempSubdirectory("skywire-filestore-");
        try
        {
            var path = Path.Combine(dir.FullName, "manager-state.json");
            var first = new EmbeddedStore(path);
            var options = new ManagerOptions { Store = first, RuleLifetime = TimeSpan.FromSeconds(6), RefreshInterval = TimeSpan.FromSeconds(2) };
            EmbeddedStore? second = null;
            try
            {
                await using var mesh = MeshHarness.Start(options);
                var a = await mesh.AddNodeAsync();
                var b = await mesh.AddNodeAsync();
                var c = await mesh.AddNodeAsync();
                await mesh.LinkAsync(a, b);
                await mesh.LinkAsync(b, c);

                var (sent, received, _) = await MeshHarness.TransferAsync(a, c, 1 << 20);
                Assert.Equal(sent, received);
                var route = Assert.Single(mesh.Manager.Controller.Routes.Snapshot());
                var firstOwner = mesh.Manager.Controller.Shared!.ManagerId;
                var labels = route.Plan.Labels().Select(l => MeshStoreCodec.LabelKey(l.Node, l.InLink, l.Label)).ToHashSet(StringComparer.Ordinal);
                Assert.NotEmpty(labels);

                await mesh.RestartManagerAsync(async () =>
                {
                    // Down: the file holds the route (path, labels, its owner) and every label key, only for its owner.
                    await first.DisposeAsync();
                    Assert.True(File.Exists(path));
                    if (!OperatingSystem.IsWindows())
                    {
                        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(path));
                    }

                    second = new EmbeddedStore(path);
                    var stored = Assert.Single((await second.ReadAsync(MeshStoreCodec.Routes, CancellationToken.None)).Entries);
                    Assert.Equal(MeshStoreCodec.RouteKey(route.SessionId), stored.Key);
                    var value = MeshStoreCodec.TryDecode<RouteValue>(stored.Value)!;
                    Assert.Equal(firstOwner, value.Owner);
                    Assert.Equal(route.Plan.Path.Select(p => p.ToString()), value.Path);
                    var storedLabels = (await second.ReadAsync(MeshStoreCodec.Labels, CancellationToken.None)).Entries.Select(e => e.Key).ToHashSet(StringComparer.Ordinal);
                    Assert.Equal(labels, storedLabels);
                    Assert.Empty((await second.ReadAsync(MeshStoreCodec.Presence, CancellationToken.None)).Entries); // leased: this process's liveness, never persisted
                }, o => o with { Store = second });

                // Up again: the nodes come back and the new process owns the same session's route.
                var manager = mesh.Manager.Controller;
                await MeshHarness.WaitUntilAsync(() => manager.Routes.Get(route.SessionId) is not null, "the restarted manager routes the session");
                await MeshHarness.WaitUntilAsync(
                    () => manager.Shared!.StoredRoutes.TryGetValue(route.SessionId, out var r) && r.Owner == manager.Shared.ManagerId,
                    "the stored route owned by the new process");

                // Past the lifetime of every rule the first process installed: the session still carries data.
                await Task.Delay(options.RuleLifetime + TimeSpan.FromSeconds(1), TestContext.Current.CancellationToken);
                (sent, received, _) = await MeshHarness.TransferAsync(a, c, 1 << 20);
                Assert.Equal(sent, received);
                Assert.Equal(route.SessionId, Assert.Single(manager.Routes.Snapshot()).SessionId);

                // A new route draws labels of its own: no label key is shared with the stored route's (create-only).
                var other = await manager.BuildRouteAsync(b.PublicKey, a.PublicKey, TestContext.Current.CancellationToken);
                var now = (await second!.ReadAsync(MeshStoreCodec.Labels, CancellationToken.None)).Entries.Select(e => e.Key).ToList();
                var expected = manager.Routes.Snapshot().SelectMany(r => r.Plan.Labels()).Select(l => MeshStoreCodec.LabelKey(l.Node, l.InLink, l.Label)).ToList();
                Assert.Equal(expected.Count, expected.Distinct(StringComparer.Ordinal).Count());
                Assert.Equal(expected.Order(StringComparer.Ordinal), now.Order(StringComparer.Ordinal));
                Assert.Equal(2, manager.Routes.Snapshot().Count);
                Assert.Equal([b.NodeKey, a.NodeKey], other.Path);
            }
            finally
            {
                await first.DisposeAsync();
                if (second is not null)
                {
                    await second.DisposeAsync();
                }
            }
        }
        finally
        {
            dir.Delete(recursive: true);
        }
    }
}
