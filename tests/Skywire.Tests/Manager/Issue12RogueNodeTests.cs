using Skywire.Core.Channels;
using Skywire.Core.Manager;
using Skywire.Protocol;
using Skywire.Protocol.Control;
using static Skywire.Tests.Manager.TestMesh;

namespace Skywire.Tests.Manager;

/// <summary>
/// Issue 12.5: the manager trusts only what both ends of a link say, and a node's share of the manager is bounded.
/// Node 'f' is the rogue throughout: it speaks the control protocol correctly and lies.
/// </summary>
public class Issue12RogueNodeTests
{
    private static readonly CancellationToken None = CancellationToken.None;

    [Fact]
    public async Task OneSidedLinkClaims_AreListedButNeverRouted()
    {
        // Honest chain a-b-c-d (3 hops); f claims 1 µs links to a and d, which a and d never report.
        await using var m = new TestMesh("abcdf", "ab bc cd");
        m.ReportOf('f', ('a', 1, true), ('d', 1, true));

        for (var i = 0; i < 6; i++)
        {
            var route = await m.Controller.BuildRouteAsync(Key('a'), Key('d'), None);
            Assert.Equal("abcd", m.Names(route.Path));
        }

        Assert.Empty(m['f'].Rules);
        var claims = m.Controller.ListLinks().Links.Where(l => l.From == Key('f').ToString()).ToList();
        Assert.Equal(2, claims.Count);
        Assert.All(claims, l => Assert.False(l.Confirmed));
        Assert.All(m.Controller.ListLinks().Links.Where(l => l.From != Key('f').ToString()), l => Assert.True(l.Confirmed));
    }

    [Fact]
    public async Task RelayDies_LiveRouteDoesNotMoveOntoOneSidedClaims()
    {
        await using var m = new TestMesh("abcdf", "ab bc cd");
        m.ReportOf('f', ('a', 1, true), ('d', 1, true));
        var route = await m.Controller.BuildRouteAsync(Key('a'), Key('d'), None);
        var moved = false;
        m.Controller.Rerouted += (_, _) => moved = true;

        m.Controller.NodeDisconnected(Key('c'), m['c']);
        await m.Controller.RepairRoutesAsync(None);

        // No confirmed alternate: the route stays (its sessions time out if c does not come back), f gets nothing.
        Assert.False(moved);
        Assert.Equal("abcd", m.Names(m.Controller.ListRoutes().Routes.Single().Path));
        Assert.Empty(m['f'].Rules);
        Assert.DoesNotContain(route.SessionId, m['f'].Sessions.Keys);
    }

    [Fact]
    public async Task StaleReports_DoNotCount_RouteMovesOffASilentRelay()
    {
        // Two paths a-b-d (fast) and a-c-d (slow). b stays connected but stops reporting.
        await using var m = new TestMesh("abcd", "ab bd ac cd", new ManagerOptions { LinkReportMaxAge = TimeSpan.FromSeconds(5) });
        m.ReportOf('a', ('b', 500, true), ('c', 9000, true));
        var route = await m.Controller.BuildRouteAsync(Key('a'), Key('d'), None);
        Assert.Equal("abd", m.Names(route.Path));

        m.Clock.Advance(TimeSpan.FromSeconds(4));
        m.ReportOf('a', ('b', 500, true), ('c', 9000, true));
        m.ReportOf('c', ('a', 500, true), ('d', 500, true));
        m.ReportOf('d', ('b', 500, true), ('c', 500, true));
        m.Clock.Advance(TimeSpan.FromSeconds(2)); // b's last report is 6 s old; everyone else's 2 s

        Assert.Equal("acd", m.Names((await m.Controller.BuildRouteAsync(Key('a'), Key('d'), None)).Path));
        await m.Controller.RepairRoutesAsync(None);
        Assert.Equal("acd", m.Walk(route.SessionId, 'a'));
        Assert.All(m.Controller.ListLinks().Links.Where(l => l.From == Key('b').ToString() || l.To == Key('b').ToString()), l => Assert.False(l.Confirmed));
    }

    [Fact]
    public async Task HostileMeasurements_AreClamped_RoutingKeepsWorking()
    {
        // b confirms its links but reports absurd numbers; before the fix a negative or huge loss made every route
        // computation throw (ArgumentOutOfRangeException from the graph), for every node.
        await using var m = new TestMesh("abcd", "ab bc cd");
        m.Controller.ReportLinks(Key('b'), new LinkReportMessage
        {
            Links =
            [
                new LinkState { Peer = Key('a').ToString(), Up = true, RttMicros = -5, Loss = -1e300 },
                new LinkState { Peer = Key('c').ToString(), Up = true, RttMicros = long.MaxValue, Loss = 1e306 },
                new LinkState { Peer = "not a key", Up = true },
                new LinkState { Peer = Key('b').ToString(), Up = true },
                new LinkState { Peer = PubKey.Parse("03" + new string('9', 64)).ToString(), Up = true }, // no such node
            ],
        });

        var route = await m.Controller.BuildRouteAsync(Key('a'), Key('d'), None);
        Assert.Equal("abcd", m.Names(route.Path));
        var fromB = m.Controller.ListLinks().Links.Where(l => l.From == Key('b').ToString()).OrderBy(l => l.To, StringComparer.Ordinal).ToList();
        Assert.Equal(2, fromB.Count);
        Assert.Equal((0L, 0.0), (fromB[0].RttMicros, fromB[0].Loss));
        Assert.Equal((LinkTable.MaxRttMicros, 1.0), (fromB[1].RttMicros, fromB[1].Loss));
    }

    [Fact]
    public async Task AnEndCannotUnderstateALink_TheWorseMeasurementCounts()
    {
        // a measures a-f at 50 ms; f claims 0.001 ms. Through c (9 ms) wins.
        await using var m = new TestMesh("acdf", "af fd ac cd");
        m.ReportOf('a', ('f', 50_000, true), ('c', 9000, true));
        m.ReportOf('f', ('a', 1, true), ('d', 1, true));
        Assert.Equal("acd", m.Names((await m.Controller.BuildRouteAsync(Key('a'), Key('d'), None)).Path));
    }

    [Fact]
    public async Task LinkReport_OverTheLimit_IsRefusedWhole()
    {
        await using var m = new TestMesh("abcdf", "fa", new ManagerOptions { Limits = new ManagerLimits { MaxLinksPerNode = 3 } });
        var ex = Assert.Throws<ControlException>(() => m.ReportOf('f', ('a', 500, true), ('b', 500, true), ('c', 500, true), ('d', 500, true)));
        Assert.Equal(ControlErrorCode.LimitExceeded, ex.Code);
        // The previous report stands (and ages out): f still lists only its link to a.
        Assert.Equal([Key('a').ToString()], m.Controller.ListLinks().Links.Where(l => l.From == Key('f').ToString()).Select(l => l.To));
        Assert.Contains(m.Log.Entries, e => e.EventId.Id == 2112);

        m.ReportOf('f', ('a', 500, true), ('b', 500, true), ('c', 500, true)); // at the limit: taken
        Assert.Equal(3, m.Controller.ListLinks().Links.Count(l => l.From == Key('f').ToString()));
    }

    [Fact]
    public async Task RouteRequests_Flood_BoundedPerPair_OthersStillServed()
    {
        // f has a real link to a (both ends confirm it) and asks for 50 routes to a.
        await using var m = new TestMesh("abf", "fa ab");
        var outcomes = await Task.WhenAll(Enumerable.Range(0, 50).Select(async _ =>
        {
            try
            {
                await m.Controller.RequestRouteAsync(Key('f'), Key('a'), None);
                return (ControlErrorCode)0; // built
            }
            catch (ControlException ex)
            {
                return ex.Code;
            }
        }));

        var limit = ManagerLimits.Default.MaxRoutesPerPair;
        Assert.Equal(limit, outcomes.Count(o => o == 0));
        Assert.All(outcomes.Where(o => o != 0), o => Assert.Equal(ControlErrorCode.LimitExceeded, o));
        Assert.Equal(limit, m['a'].Sessions.Count);
        Assert.Equal(limit, m.Controller.Routes.CountOf(Key('f')));

        // An honest node is served meanwhile, and f gets room back only by closing a route.
        Assert.Equal("ba", m.Names((await m.Controller.RequestRouteAsync(Key('b'), Key('a'), None)).Path));
        await Assert.ThrowsAsync<ControlException>(() => m.Controller.RequestRouteAsync(Key('f'), Key('a'), None));
        await m.Controller.CloseRouteAsync(Key('f'), m['f'].Sessions.Keys.First());
        await m.Controller.RequestRouteAsync(Key('f'), Key('a'), None);
    }

    [Fact]
    public async Task RouteRequests_BoundedPerNode_AcrossPeers()
    {
        await using var m = new TestMesh("abcdf", "fa fb fc fd", new ManagerOptions { Limits = new ManagerLimits { MaxRoutesPerNode = 3 } });
        foreach (var peer in "abc")
        {
            await m.Controller.RequestRouteAsync(Key('f'), Key(peer), None);
        }

        var ex = await Assert.ThrowsAsync<ControlException>(() => m.Controller.RequestRouteAsync(Key('f'), Key('d'), None));
        Assert.Equal(ControlErrorCode.LimitExceeded, ex.Code);
        Assert.Contains("live routes", ex.Message, StringComparison.Ordinal);
        // Operators' routes (cli BuildRoute) are not a node's to count.
        await m.Controller.BuildRouteAsync(Key('f'), Key('d'), None);
    }

    [Fact]
    public async Task RouteRequests_InFlightBeyondLimit_RefusedAtOnce_NotQueued()
    {
        await using var m = new TestMesh("abf", "fa fb");
        var hold = new TaskCompletionSource();
        m['a'].Hold = hold.Task;
        var limit = ManagerLimits.Default.MaxRouteRequestsInFlight;
        var inFlight = Enumerable.Range(0, limit).Select(_ => m.Controller.RequestRouteAsync(Key('f'), Key('a'), None)).ToList();
        var refused = await Assert.ThrowsAsync<ControlException>(() => m.Controller.RequestRouteAsync(Key('f'), Key('b'), None));
        Assert.Equal(ControlErrorCode.LimitExceeded, refused.Code);
        Assert.Contains("being built", refused.Message, StringComparison.Ordinal);

        hold.SetResult();
        await Task.WhenAll(inFlight).WaitAsync(TimeSpan.FromSeconds(20));
        await m.Controller.RequestRouteAsync(Key('f'), Key('b'), None);
    }

    [Fact]
    public async Task Apps_FloodBeyondTheLimit_Refused_OthersUnaffected()
    {
        await using var m = new TestMesh("bf", "", new ManagerOptions { Limits = new ManagerLimits { MaxAppsPerNode = 16 } });
        m.Controller.RegisterApp(Key('b'), new AppRegisterMessage { Name = "socks", Type = "socks-server" });
        var refused = 0;
        for (var i = 0; i < 200; i++)
        {
            try
            {
                m.Controller.RegisterApp(Key('f'), new AppRegisterMessage { Name = "fake" + i, Type = "socks-server" });
            }
            catch (ControlException ex) when (ex.Code == ControlErrorCode.LimitExceeded)
            {
                refused++;
            }
        }

        Assert.Equal(184, refused);
        Assert.Equal(16, m.Controller.ListApps(new AppListMessage()).Apps.Count(a => a.Node == Key('f').ToString()));
        // Refreshing an app it has is not a new one; b registers as before.
        m.Controller.RegisterApp(Key('f'), new AppRegisterMessage { Name = "fake0", Type = "nc" });
        m.Controller.RegisterApp(Key('b'), new AppRegisterMessage { Name = "chat", Type = "chat" });
        Assert.Equal(2, m.Controller.ListApps(new AppListMessage()).Apps.Count(a => a.Node == Key('b').ToString()));
    }

    [Fact]
    public async Task Apps_AreBoundToTheirNode_NoOtherNodeCanChangeOrRemoveThem()
    {
        await using var m = new TestMesh("bf", "", new ManagerOptions { AppTtl = TimeSpan.FromSeconds(10) });
        var c = m.Controller;
        c.RegisterApp(Key('b'), new AppRegisterMessage { Name = "echo", Type = "echo" });
        c.RegisterApp(Key('f'), new AppRegisterMessage { Name = "echo", Type = "socks-server" }); // its own, beside b's
        c.UnregisterApp(Key('f'), "echo");
        c.UnregisterApp(Key('f'), "never-registered");

        var b = Assert.Single(c.ListApps(new AppListMessage { By = "name", Value = "echo" }).Apps);
        Assert.Equal((Key('b').ToString(), "echo"), (b.Node, b.Type));

        // f's heartbeats naming b's app do not keep it alive.
        m.Clock.Advance(TimeSpan.FromSeconds(6));
        c.HeartbeatApps(Key('f'), ["echo"]);
        m.Clock.Advance(TimeSpan.FromSeconds(6));
        c.ExpireApps();
        Assert.Empty(c.ListApps(new AppListMessage()).Apps);
    }

    [Fact]
    public async Task CloseRoute_ByANodeThatIsNoEnd_ChangesNothing()
    {
        await using var m = new TestMesh("abcf", "ab bc fa");
        var route = await m.Controller.BuildRouteAsync(Key('a'), Key('c'), None);
        await m.Controller.CloseRouteAsync(Key('f'), route.SessionId);
        await m.Controller.CloseRouteAsync(Key('b'), route.SessionId); // a relay is no end either
        Assert.Equal(route.SessionId, m.Controller.ListRoutes().Routes.Single().SessionId);
        Assert.Empty(m['a'].Closed);
    }
}
