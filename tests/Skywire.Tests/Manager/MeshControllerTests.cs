using Skywire.Core.Channels;
using Skywire.Core.Manager;
using Skywire.Protocol;
using Skywire.Protocol.Control;
using static Skywire.Tests.Manager.TestMesh;

namespace Skywire.Tests.Manager;

public class MeshControllerTests
{
    private static readonly CancellationToken None = CancellationToken.None;

    [Fact]
    public async Task BuildRoute_Chain_InstallsRulesThatLeadBothWays()
    {
        await using var m = new TestMesh("abcd", "ab bc cd");
        var result = await m.Controller.BuildRouteAsync(Key('a'), Key('d'), None);
        Assert.Equal("abcd", m.Names(result.Path));
        Assert.Equal("abcd", m.Walk(result.SessionId, 'a'));
        Assert.Equal("dcba", m.Walk(result.SessionId, 'd'));
        Assert.True(m['a'].Sessions[result.SessionId].Initiator);
        Assert.False(m['d'].Sessions[result.SessionId].Initiator);
        Assert.Empty(m['a'].Rules);
        Assert.Equal(2, m['b'].Rules.Count);
    }

    [Fact]
    public async Task BuildRoute_PrefersLowLatency()
    {
        await using var m = new TestMesh("abcd", "ab bd ac cd");
        m.ReportOf('a', ('b', 50_000, true), ('c', 500, true)); // b is slow: a measures a-b at 50 ms
        var c = m.Controller;
        var result = await c.BuildRouteAsync(c.ResolveNode("02aaaa"), c.ResolveNode("02DDDD"), None);
        Assert.Equal("acd", m.Names(result.Path));
    }

    [Fact]
    public async Task BuildRoute_NoPath_NoRoute()
    {
        await using var m = new TestMesh("abc", "ab");
        var ex = await Assert.ThrowsAsync<ControlException>(() => m.Controller.BuildRouteAsync(Key('a'), Key('c'), None));
        Assert.Equal(ControlErrorCode.NoRoute, ex.Code);
    }

    [Fact]
    public async Task RelayDisconnects_RouteMovesToAlternateAndEndsGetNewLabels()
    {
        await using var m = new TestMesh("abcde", "ab bc cd ae ed");
        m.ReportOf('a', ('b', 500, true), ('e', 90_000, true));
        var result = await m.Controller.BuildRouteAsync(Key('a'), Key('d'), None);
        Assert.Equal("abcd", m.Names(result.Path));
        var oldLabel = m['a'].Sessions[result.SessionId].OutRoute;

        var rerouted = new TaskCompletionSource<IReadOnlyList<PubKey>>();
        m.Controller.Rerouted += (_, path) => rerouted.TrySetResult(path);
        m.Controller.NodeDisconnected(Key('b'), m['b']);
        var path = await rerouted.Task.WaitAsync(TimeSpan.FromSeconds(20));
        Assert.Equal("aed", m.Names(path));
        Assert.Equal("aed", m.Walk(result.SessionId, 'a'));
        Assert.Equal("dea", m.Walk(result.SessionId, 'd'));
        Assert.NotEqual(oldLabel, m['a'].Sessions[result.SessionId].OutRoute);
        Assert.Equal(1, m.Controller.ListRoutes().Routes.Single().Reroutes);
    }

    [Fact]
    public async Task RelayDisconnects_EveryRouteThroughItMovesInOnePass()
    {
        // Four routes cross relay b; one repair pass searches the new paths of all of them at once and moves the three
        // that have one. The fourth (to c, whose only link was to b) keeps waiting for a path, unchanged.
        await using var m = new TestMesh("abcdef", "ab bd ae ed fb fe cb");
        m.ReportOf('a', ('b', 500, true), ('e', 90_000, true));
        m.ReportOf('f', ('b', 500, true), ('e', 90_000, true));
        var ad = await m.Controller.BuildRouteAsync(Key('a'), Key('d'), None);
        var fd = await m.Controller.BuildRouteAsync(Key('f'), Key('d'), None);
        var da = await m.Controller.BuildRouteAsync(Key('d'), Key('a'), None);
        var ac = await m.Controller.BuildRouteAsync(Key('a'), Key('c'), None);
        Assert.Equal(["abd", "fbd", "dba", "abc"], [m.Names(ad.Path), m.Names(fd.Path), m.Names(da.Path), m.Names(ac.Path)]);

        m.Controller.NodeDisconnected(Key('b'), m['b']);
        await m.Controller.RepairRoutesAsync(None);

        Assert.Equal("aed", m.Walk(ad.SessionId, 'a'));
        Assert.Equal("dea", m.Walk(ad.SessionId, 'd'));
        Assert.Equal("fed", m.Walk(fd.SessionId, 'f'));
        Assert.Equal("dea", m.Walk(da.SessionId, 'd'));
        var routes = m.Controller.ListRoutes().Routes;
        Assert.Equal(3, routes.Count(r => r.Reroutes == 1));
        Assert.Equal(0, routes.Single(r => r.SessionId == ac.SessionId).Reroutes);
    }

    [Fact]
    public async Task RerouteInstallFails_RetriedAtNextRepair()
    {
        await using var m = new TestMesh("abcd", "ab bd ac cd");
        m.ReportOf('a', ('b', 500, true), ('c', 9000, true));
        var result = await m.Controller.BuildRouteAsync(Key('a'), Key('d'), None);
        Assert.Equal("abd", m.Names(result.Path));
        m['a'].FailSessionRoutes = 1;
        m.Controller.NodeDisconnected(Key('b'), m['b']);
        await m.Controller.RepairRoutesAsync(None); // the first attempt fails at the source end
        await m.Controller.RepairRoutesAsync(None); // and is retried
        Assert.Equal("acd", m.Walk(result.SessionId, 'a'));
    }

    [Fact]
    public async Task LinkReportedDown_Reroutes()
    {
        await using var m = new TestMesh("abcd", "ab bd ac cd");
        m.ReportOf('a', ('b', 500, true), ('c', 9000, true));
        var result = await m.Controller.BuildRouteAsync(Key('a'), Key('d'), None);
        Assert.Equal("abd", m.Names(result.Path));
        var rerouted = new TaskCompletionSource<IReadOnlyList<PubKey>>();
        m.Controller.Rerouted += (_, path) => rerouted.TrySetResult(path);
        m.ReportOf('b', ('a', 0, false), ('d', 500, true));
        var path = await rerouted.Task.WaitAsync(TimeSpan.FromSeconds(20));
        Assert.Equal("acd", m.Names(path));
        Assert.Equal("acd", m.Walk(result.SessionId, 'a'));
    }

    [Fact]
    public async Task EndNodeDisconnects_RouteClosedAtOtherEnd_OnceItsLinksAreDownOrAfterTheGrace()
    {
        // Issue 13: an end that only lost its control connection keeps its routes a while (its neighbour still reports
        // its link up); an end whose links died (its process is gone) loses them at once.
        await using var m = new TestMesh("abc", "ab bc");
        var result = await m.Controller.BuildRouteAsync(Key('a'), Key('c'), None);
        m.Controller.NodeDisconnected(Key('c'), m['c']);
        await m.Controller.RepairRoutesAsync(None);
        Assert.Single(m.Controller.ListRoutes().Routes);
        m.ReportOf('b', ('a', 500, true), ('c', 500, false));
        await m.Controller.RepairRoutesAsync(None);
        Assert.Contains(result.SessionId, m['a'].Closed);
        Assert.Empty(m.Controller.ListRoutes().Routes);

        var second = await m.Controller.BuildRouteAsync(Key('a'), Key('b'), None);
        m.Controller.NodeDisconnected(Key('b'), m['b']);
        await m.Controller.RepairRoutesAsync(None);
        Assert.DoesNotContain(second.SessionId, m['a'].Closed); // a still reports its link to b up
        m.Clock.Advance(new ManagerOptions().EndOfflineGrace);
        await m.Controller.RepairRoutesAsync(None);
        Assert.Contains(second.SessionId, m['a'].Closed);
    }

    [Fact]
    public async Task CloseRoute_RemovesRelayRulesAndLabels_OnlyAnEndMayCloseIt()
    {
        await using var m = new TestMesh("abcd", "ab bc cd");
        var labels = (LabelAllocator)m.Controller.Labels;
        var result = await m.Controller.BuildRouteAsync(Key('a'), Key('c'), None);
        Assert.Equal(2, m['b'].Rules.Count);
        Assert.Equal(4, labels.Count);

        await m.Controller.CloseRouteAsync(Key('d'), result.SessionId); // d is no end of it
        Assert.Single(m.Controller.ListRoutes().Routes);

        await m.Controller.CloseRouteAsync(Key('c'), result.SessionId);
        Assert.Empty(m.Controller.ListRoutes().Routes);
        Assert.Empty(m['b'].Rules); // the fake answers at once, so the best-effort removal is done
        Assert.Equal(0, labels.Count);
    }

    [Fact]
    public async Task ResolveNode_UniquePrefix_AmbiguousAndMissingRejected()
    {
        await using var m = new TestMesh("", "");
        var ab = PubKey.Parse("02ab" + new string('0', 62));
        var ac = PubKey.Parse("02ac" + new string('0', 62));
        m.Controller.NodeConnected(ab, "x", new FakeNode(ab));
        m.Controller.NodeConnected(ac, "x", new FakeNode(ac));
        Assert.Equal(ab, m.Controller.ResolveNode("02AB"));
        Assert.Equal(ControlErrorCode.NotFound, Assert.Throws<ControlException>(() => m.Controller.ResolveNode("02a")).Code);
        Assert.Equal(ControlErrorCode.NotFound, Assert.Throws<ControlException>(() => m.Controller.ResolveNode("03")).Code);
        Assert.Equal(ControlErrorCode.BadRequest, Assert.Throws<ControlException>(() => m.Controller.ResolveNode(" ")).Code);
        // A node may send anything as a key: the error quotes a bounded head of it.
        var huge = Assert.Throws<ControlException>(() => m.Controller.ResolveNode(new string('f', 100_000)));
        Assert.True(huge.Message.Length < 200, huge.Message.Length.ToString(System.Globalization.CultureInfo.InvariantCulture));
    }

    [Fact]
    public async Task AppTracker_ListByNameAndType_ExpiresWithoutHeartbeat()
    {
        await using var m = new TestMesh("ab", "", new ManagerOptions { AppTtl = TimeSpan.FromSeconds(10) });
        var c = m.Controller;
        c.RegisterApp(Key('a'), new AppRegisterMessage { Name = "socks", Type = "socks_server" });
        c.RegisterApp(Key('b'), new AppRegisterMessage { Name = "socks", Type = "socks_server" });
        c.RegisterApp(Key('b'), new AppRegisterMessage { Name = "nc1", Type = "nc" });

        Assert.Equal(3, c.ListApps(new AppListMessage()).Apps.Count);
        Assert.Equal(2, c.ListApps(new AppListMessage { By = "name", Value = "socks" }).Apps.Count);
        Assert.Equal("nc1", c.ListApps(new AppListMessage { By = "type", Value = "nc" }).Apps.Single().Name);
        Assert.Throws<ControlException>(() => c.ListApps(new AppListMessage { By = "color" }));
        Assert.Throws<ControlException>(() => c.RegisterApp(Key('a'), new AppRegisterMessage { Name = "a b", Type = "x" }));

        m.Clock.Advance(TimeSpan.FromSeconds(6));
        c.HeartbeatApps(Key('b'), ["nc1"]);
        m.Clock.Advance(TimeSpan.FromSeconds(6));
        Assert.Equal(2, c.ExpireApps());
        Assert.Equal("nc1", c.ListApps(new AppListMessage()).Apps.Single().Name);

        c.NodeDisconnected(Key('b'), new FakeNode(Key('b'))); // a stale connection's close changes nothing
        Assert.Single(c.ListApps(new AppListMessage()).Apps);
        c.NodeDisconnected(Key('b'), m['b']); // its own does: its apps go with it
        Assert.Empty(c.ListApps(new AppListMessage()).Apps);
    }

    [Fact]
    public async Task LinkNodes_AsksFirstNodeWithSecondsAddress()
    {
        await using var m = new TestMesh("ab", "");
        await m.Controller.LinkNodesAsync(m.Controller.ResolveNode(Key('a').ToString()[..6]), Key('b'), None);
        var request = Assert.Single(m['a'].LinkRequests);
        Assert.Equal(Key('b').ToString(), request.Peer);
        Assert.Equal("127.0.0.1:" + (1000 + 'b'), request.Address);
        await Assert.ThrowsAsync<ControlException>(() => m.Controller.LinkNodesAsync(Key('a'), Key('a'), None));
    }

    [Fact]
    public async Task AutoLink_NewNodeLinksToExisting()
    {
        await using var m = new TestMesh("a", "", new ManagerOptions { AutoLink = true });
        var b = m.Add('b');
        // The fake answers at once, so the auto-link request is made by the time NodeConnected returns.
        Assert.Equal(Key('a').ToString(), Assert.Single(b.LinkRequests).Peer);
    }

    [Fact]
    public async Task OfflineNode_ForgottenAfterRetention_WithItsLinkReports()
    {
        await using var m = new TestMesh("abc", "ab bc", new ManagerOptions { OfflineNodeRetention = TimeSpan.FromMinutes(5) });
        m.Controller.NodeDisconnected(Key('b'), m['b']);
        Assert.Equal(0, m.Controller.ForgetOfflineNodes());
        Assert.False(Assert.Single(m.Controller.ListNodes().Nodes, n => n.Key == Key('b').ToString()).Online);
        m.Clock.Advance(TimeSpan.FromMinutes(6));
        Assert.Equal(1, m.Controller.ForgetOfflineNodes());
        Assert.DoesNotContain(m.Controller.ListNodes().Nodes, n => n.Key == Key('b').ToString());
        Assert.DoesNotContain(m.Controller.ListLinks().Links, l => l.From == Key('b').ToString() || l.To == Key('b').ToString());
    }

    [Fact]
    public async Task OfflineNodes_BeyondTheCap_LongestOfflineForgottenAtOnce()
    {
        await using var m = new TestMesh("abcd", "ab", new ManagerOptions { Limits = new ManagerLimits { MaxOfflineNodes = 2 } });
        foreach (var name in "abc")
        {
            m.Controller.NodeDisconnected(Key(name), m[name]);
            m.Clock.Advance(TimeSpan.FromSeconds(1));
        }

        // a went first: forgotten, with what it reported; b and c stay listed offline.
        Assert.Equal([Key('b').ToString(), Key('c').ToString(), Key('d').ToString()], m.Controller.ListNodes().Nodes.Select(n => n.Key));
        Assert.DoesNotContain(m.Controller.ListLinks().Links, l => l.From == Key('a').ToString() || l.To == Key('a').ToString());
    }
}
