using System.Text.Json;
using Skywire.Core.Channels;
using Skywire.Core.Control;
using Skywire.Core.Crypto;
using Skywire.Core.Manager;
using Skywire.IntegrationTests.Mesh;
using Skywire.Protocol;
using Skywire.Protocol.Control;

namespace Skywire.IntegrationTests.Manager;

/// <summary>
/// Issue 12.5 and 12.2 with real nodes on loopback: a rogue node that claims links, floods apps and route requests
/// gains nothing, legitimate routes keep working, and every manager answer arrives (whole, by page, or as an error).
/// </summary>
public sealed class Issue12RogueNodeTests
{
    private static readonly TimeSpan Limit = MeshHarness.Limit;

    private static async Task<FrameConnection> CliAsync(MeshHarness mesh)
    {
        var (cli, _) = await ControlClient.ConnectAsync(new ManagerAddress(mesh.Manager.LocalEndPoint, mesh.ManagerKey.Public), mesh.ManagerKey, "cli", null,
            (_, _, _) => throw new ControlException(ControlErrorCode.Forbidden, "no"), mesh.Log.CreateLogger("Cli"), Limit, CancellationToken.None);
        return cli;
    }

    /// <summary>
    /// Honest paths A-B-C-D and A-E-F-C-D; the rogue claims 1 µs links to A and D (two hops: before the fix every route
    /// went through it and carried nothing). Routes avoid it, a transfer is byte-exact, and when the relay on the route
    /// dies mid-transfer the route moves to the honest alternate, not onto the rogue.
    /// </summary>
    [Fact]
    public async Task RogueClaimsLinks_RoutesAvoidIt_RelayKilled_RerouteAvoidsItToo()
    {
        await using var mesh = MeshHarness.Start();
        var n = await mesh.AddNodesAsync(6);
        var (a, b, c, d, e, f) = (n[0], n[1], n[2], n[3], n[4], n[5]);
        await mesh.LinkAsync(a, b);
        await mesh.LinkAsync(b, c);
        await mesh.LinkAsync(c, d);
        await mesh.LinkAsync(a, e);
        await mesh.LinkAsync(e, f);
        await mesh.LinkAsync(f, c);

        await using var rogue = await RogueNode.ConnectAsync(mesh);
        rogue.KeepClaiming((a.PublicKey, 1), (d.PublicKey, 1));
        await MeshHarness.WaitUntilAsync(() => mesh.Manager.Controller.ListLinks().Links.Count(l => l.From == rogue.Key.ToString()) == 2, "the rogue's claims listed");

        await using (var cli = await CliAsync(mesh))
        {
            for (var i = 0; i < 6; i++)
            {
                var route = await cli.RequestAsync((byte)ControlOpcode.BuildRoute, new NodePairMessage { A = a.NodeKey, B = d.NodeKey },
                    ControlJsonContext.Default.NodePairMessage, ControlJsonContext.Default.RouteResultMessage).WaitAsync(Limit);
                Assert.DoesNotContain(rogue.Key.ToString(), route.Path);
                await mesh.Manager.Controller.CloseRouteAsync(a.PublicKey, route.SessionId);
            }

            var links = await ManagerQueries.ListLinksAsync(cli).WaitAsync(Limit);
            Assert.All(links.Where(l => l.From == rogue.Key.ToString()), l => Assert.False(l.Confirmed));
        }

        var rerouted = new TaskCompletionSource<IReadOnlyList<PubKey>>(TaskCreationOptions.RunContinuationsAsynchronously);
        mesh.Manager.Controller.Rerouted += (_, path) => rerouted.TrySetResult(path);
        string? victim = null;
        var size = 8L * 1024 * 1024;
        var (sent, received, count) = await MeshHarness.TransferAsync(a, d, size, async _ =>
        {
            if (victim is not null)
            {
                return;
            }

            var route = mesh.Manager.Controller.ListRoutes().Routes.Single();
            Assert.DoesNotContain(rogue.Key.ToString(), route.Path);
            victim = route.Path[1];
            await mesh.RemoveNodeAsync(mesh.Nodes.Single(x => x.NodeKey == victim));
        });

        Assert.Equal(size, count);
        Assert.Equal(sent, received);
        var path = await rerouted.Task.WaitAsync(Limit);
        Assert.DoesNotContain(rogue.Key, path);
        Assert.DoesNotContain(PubKey.Parse(victim!), path);
    }

    /// <summary>
    /// The rogue registers 6,000 fake socks-servers with long names (before the fix all were taken, the app list
    /// outgrew the 1 MiB frame and `cli apps` timed out). It gets its quota and a LimitExceeded for the rest; it cannot
    /// remove or refresh an honest node's app; the whole list still answers, and the honest node's apps are listed.
    /// </summary>
    [Fact]
    public async Task RogueFloodsApps_QuotaThenLimitExceeded_ListsStillAnswer()
    {
        await using var mesh = MeshHarness.Start();
        var honest = await mesh.AddNodeAsync();
        await using var app = await MeshHarness.AppAsync(honest);
        await app.RegisterAsync("socks", "socks-server");
        await using var rogue = await RogueNode.ConnectAsync(mesh);

        var outcomes = new List<ControlErrorCode?>();
        foreach (var batch in Enumerable.Range(0, 6000).Chunk(200))
        {
            outcomes.AddRange(await Task.WhenAll(batch.Select(i => rogue.RegisterAppAsync($"{i:d5}" + new string('x', 59), "socks-server"))));
        }

        var quota = ManagerLimits.Default.MaxAppsPerNode;
        Assert.Equal(quota, outcomes.Count(o => o is null));
        Assert.All(outcomes.Where(o => o is not null), o => Assert.Equal(ControlErrorCode.LimitExceeded, o));

        // Its own name "socks" is its own entry; removing "socks" removes only that.
        Assert.Equal(ControlErrorCode.LimitExceeded, await rogue.RegisterAppAsync("socks", "socks-server"));
        await rogue.RawAsync(ControlOpcode.AppUnregister, new { name = "socks" });

        await using var cli = await CliAsync(mesh);
        // Unpaged, as the cli asked before paging: the whole list comes back in one answer.
        var whole = JsonSerializer.Deserialize((await cli.RequestRawAsync((byte)ControlOpcode.AppList, """{"by":"all"}"""u8.ToArray()).WaitAsync(Limit)).Payload,
            ControlJsonContext.Default.AppListResultMessage)!;
        Assert.Equal(quota + 1, whole.Apps.Count);
        Assert.Contains(whole.Apps, x => x.Name == "socks" && x.Node == honest.NodeKey);
        var servers = await app.ListAppsAsync("type", "socks-server").WaitAsync(Limit);
        Assert.Equal(quota + 1, servers.Count);
    }

    /// <summary>
    /// The rogue has a real link to A (both ends report it) and asks for 500 routes to A at once (before the fix: 500
    /// routes, 500 sessions bound on A). It gets the per-pair quota; A binds no more sessions than that; B still
    /// reaches A byte-exact.
    /// </summary>
    [Fact]
    public async Task RogueFloodsRouteRequests_BoundedSessionsOnTheVictim_OthersStillServed()
    {
        await using var mesh = MeshHarness.Start(new ManagerOptions { LinkReportMaxAge = TimeSpan.FromMinutes(5) });
        var (a, b) = (await mesh.AddNodeAsync(), await mesh.AddNodeAsync());
        await mesh.LinkAsync(b, a);
        await using var rogue = await RogueNode.ConnectAsync(mesh, withDataPlane: true);
        await rogue.DataPlane!.OpenLinkAsync(a.PublicKey, a.LinkEndPoint).WaitAsync(Limit);
        await rogue.ClaimLinksAsync((a.PublicKey, 500));
        await MeshHarness.WaitUntilAsync(() => mesh.Manager.Controller.ListLinks().Links.Any(l => l.From == a.NodeKey && l.To == rogue.Key.ToString() && l.Confirmed),
            "the rogue's link to A confirmed by A");

        var sessionsBefore = a.DataPlane.GetSessions().Count;
        var outcomes = await Task.WhenAll(Enumerable.Range(0, 500).Select(_ => rogue.RequestRouteAsync(a.PublicKey)));
        var built = outcomes.Count(o => o is null);
        Assert.InRange(built, 1, ManagerLimits.Default.MaxRoutesPerPair);
        Assert.All(outcomes.Where(o => o is not null), o => Assert.Equal(ControlErrorCode.LimitExceeded, o));
        Assert.InRange(a.DataPlane.GetSessions().Count - sessionsBefore, built, ManagerLimits.Default.MaxRoutesPerPair);
        Assert.Equal(built, mesh.Manager.Controller.Routes.CountOf(rogue.Key));

        var (sent, received, count) = await MeshHarness.TransferAsync(b, a, 1024 * 1024);
        Assert.Equal(1024 * 1024, count);
        Assert.Equal(sent, received);
    }

    /// <summary>
    /// Issue 12.5: a node's connection may send only the node opcodes. The cli's and the ledger's (LinkNodes, BuildRoute,
    /// UnlinkNodes, the lists, LedgerGrant 0x37, LedgerAct 0x38) are answered Forbidden and change nothing: no route is
    /// built, the honest link stays; the rogue's connection stays usable. A key that is no admin of the manager cannot
    /// open a cli connection at all.
    /// </summary>
    [Fact]
    public async Task RogueNode_CliAndLedgerOpcodes_AreForbidden_ChangeNothing_AndAKeyThatIsNoAdminGetsNoCli()
    {
        await using var mesh = MeshHarness.Start();
        var (a, b) = (await mesh.AddNodeAsync(), await mesh.AddNodeAsync());
        await mesh.LinkAsync(a, b);
        await MeshHarness.WaitUntilAsync(() => mesh.Manager.Controller.ListLinks().Links.Any(l => l.From == a.NodeKey && l.To == b.NodeKey && l.Confirmed), "a-b routed");
        await using var rogue = await RogueNode.ConnectAsync(mesh);

        ControlOpcode[] forbidden = [ControlOpcode.ListNodes, ControlOpcode.ListLinks, ControlOpcode.ListRoutes, ControlOpcode.LinkNodes,
            ControlOpcode.BuildRoute, ControlOpcode.UnlinkNodes, ControlOpcode.LedgerGrant, ControlOpcode.LedgerAct];
        foreach (var opcode in forbidden)
        {
            var refused = await Assert.ThrowsAsync<ControlException>(() => rogue.RawAsync(opcode, new { a = a.NodeKey, b = b.NodeKey, node = rogue.Key.ToString(), amount = 1_000_000 }));
            Assert.Equal(ControlErrorCode.Forbidden, refused.Code);
        }

        Assert.Empty(mesh.Manager.Controller.ListRoutes().Routes);
        Assert.Contains(mesh.Manager.Controller.ListLinks().Links, l => l.From == a.NodeKey && l.To == b.NodeKey && l.Confirmed);
        await rogue.RawAsync(ControlOpcode.Ping, new { });

        using var stranger = KeyPair.Generate();
        var noAdmin = await Assert.ThrowsAsync<ControlException>(() => ControlClient.ConnectAsync(new ManagerAddress(mesh.Manager.LocalEndPoint, mesh.ManagerKey.Public), stranger, "cli", null,
            (_, _, _) => throw new ControlException(ControlErrorCode.Forbidden, "no"), mesh.Log.CreateLogger("Stranger"), Limit, CancellationToken.None));
        Assert.Equal(ControlErrorCode.Forbidden, noAdmin.Code);
        Assert.Contains("not an admin", noAdmin.Message, StringComparison.Ordinal);

        await using var cli = await CliAsync(mesh);
        var route = await cli.RequestAsync((byte)ControlOpcode.BuildRoute, new NodePairMessage { A = a.NodeKey, B = b.NodeKey },
            ControlJsonContext.Default.NodePairMessage, ControlJsonContext.Default.RouteResultMessage).WaitAsync(Limit);
        Assert.Equal([a.NodeKey, b.NodeKey], route.Path);
    }

    /// <summary>
    /// Issue 12.2: the tracker holds more than a frame of apps (the operator raised the per-node limit). A cli that asks
    /// for the whole list gets a ReplyTooLarge error at once (before the fix: no answer, a timeout); `cli apps`'s way,
    /// page by page, gets every app; so does an app through its node's 64 KiB app API.
    /// </summary>
    [Fact]
    public async Task ListLargerThanAFrame_WholeIsAnError_PagesGetEverything_AlsoThroughTheAppApi()
    {
        // The rogue never sends heartbeats: on a loaded machine registering 6000 apps can outlast the default app
        // lifetime (15 s), and expired apps would be missing from the lists below.
        await using var mesh = MeshHarness.Start(new ManagerOptions { Limits = new ManagerLimits { MaxAppsPerNode = 10_000 }, AppTtl = TimeSpan.FromHours(1) });
        var node = await mesh.AddNodeAsync();
        await using var rogue = await RogueNode.ConnectAsync(mesh);
        foreach (var batch in Enumerable.Range(0, 6000).Chunk(200))
        {
            Assert.All(await Task.WhenAll(batch.Select(i => rogue.RegisterAppAsync($"{i:d5}" + new string('x', 59), new string('t', 64)))), Assert.Null);
        }

        await using var cli = await CliAsync(mesh);
        var tooLarge = await Assert.ThrowsAsync<ControlException>(() => cli.RequestRawAsync((byte)ControlOpcode.AppList, """{"by":"all"}"""u8.ToArray()).WaitAsync(Limit));
        Assert.Equal(ControlErrorCode.ReplyTooLarge, tooLarge.Code);

        var all = await ManagerQueries.ListAppsAsync(cli).WaitAsync(Limit);
        Assert.Equal(6000, all.Select(x => x.Name).Distinct(StringComparer.Ordinal).Count());
        var nodes = await ManagerQueries.ListNodesAsync(cli).WaitAsync(Limit);
        Assert.Equal(2, nodes.Count);

        await using var app = await MeshHarness.AppAsync(node);
        var listed = await app.ListAppsAsync("type", new string('t', 64)).WaitAsync(Limit);
        Assert.Equal(6000, listed.Count);
    }
}
