using Skywire.Core.Channels;
using Skywire.Core.Manager;
using Skywire.Protocol.Control;
using static Skywire.Tests.Manager.TestMesh;

namespace Skywire.Tests.Manager;

/// <summary>
/// Issue 13.3: links are standing intents the manager re-opens (after a stall or a restart of either end), and a
/// restarted manager adopts the sessions both ends report. The controller runs on a fake clock; <c>TendIntents</c> is
/// the pass the maintenance loop makes every tick.
/// </summary>
public class StandingLinkTests
{
    private static readonly CancellationToken None = CancellationToken.None;

    [Fact]
    public async Task LinkGoesDownAtBothEnds_ManagerOpensItAgain_WithoutACommand()
    {
        await using var m = new TestMesh("ab", "");
        await m.Controller.LinkNodesAsync(Key('a'), Key('b'), None);
        m.Report("ab");
        m.Controller.TendIntents();
        Assert.Single(m['a'].LinkRequests);

        // A 5-second stall: both ends declare the link dead and report it down.
        m.ReportOf('a', ('b', 500, false));
        m.ReportOf('b', ('a', 500, false));
        m.Controller.TendIntents();
        Assert.Single(m['a'].LinkRequests); // within the report grace: not yet

        m.Clock.Advance(TimeSpan.FromSeconds(3));
        m.Controller.TendIntents();
        Assert.Equal(2, m['a'].LinkRequests.Count);
        Assert.All(m['a'].LinkRequests, r => Assert.Equal(Key('b').ToString(), r.Peer));
        Assert.Empty(m['b'].LinkRequests); // the end that opened it opens it again

        // Still down: retried with backoff (at most MaxLinkRetryDelay apart), not at every tick.
        m.Controller.TendIntents();
        Assert.Equal(2, m['a'].LinkRequests.Count);
        m.Clock.Advance(new ManagerOptions().MaxLinkRetryDelay + TimeSpan.FromSeconds(1));
        m.Controller.TendIntents();
        Assert.Equal(3, m['a'].LinkRequests.Count);

        // Up again: nothing more.
        m.Report("ab");
        m.Clock.Advance(TimeSpan.FromMinutes(1));
        m.Report("ab");
        m.Controller.TendIntents();
        Assert.Equal(3, m['a'].LinkRequests.Count);
    }

    [Fact]
    public async Task PeerRestarts_OpenerClosesItsStaleSideAndOpensAgain()
    {
        await using var m = new TestMesh("ab", "");
        await m.Controller.LinkNodesAsync(Key('a'), Key('b'), None);
        m.Report("ab");

        // b's process restarts: its control connection drops, a new one registers with no links; a still holds its side.
        m.Controller.NodeDisconnected(Key('b'), m['b']);
        var b = m.Add('b');
        m.ReportOf('b');
        m.Controller.TendIntents(); // the maintenance tick that first sees the link unconfirmed
        m.Clock.Advance(TimeSpan.FromSeconds(3));
        m.ReportOf('a', ('b', 500, true));
        m.Controller.TendIntents();

        Assert.Equal(Key('b').ToString(), Assert.Single(m['a'].LinkCloses).Peer);
        Assert.Equal(2, m['a'].LinkRequests.Count);
        Assert.Empty(b.LinkRequests);
    }

    [Fact]
    public async Task NodeBlipsButKeepsItsLinks_NothingIsReopened()
    {
        await using var m = new TestMesh("ab", "");
        await m.Controller.LinkNodesAsync(Key('a'), Key('b'), None);
        m.Report("ab");
        m.Controller.NodeDisconnected(Key('b'), m['b']);
        m.Add('b');
        m.Report("ab"); // its first report after registering: the link is still up
        m.Clock.Advance(TimeSpan.FromSeconds(3));
        m.Controller.TendIntents();
        Assert.Single(m['a'].LinkRequests);
        Assert.Empty(m['a'].LinkCloses);
    }

    [Fact]
    public async Task RestartedManager_TakesUpLinksFromReports_AndUnlinkWithdrawsThem()
    {
        // A manager that never asked for the link learns it from the opener's report.
        await using var m = new TestMesh("ab", "");
        m.Controller.ReportLinks(Key('a'), new LinkReportMessage { Links = [new LinkState { Peer = Key('b').ToString(), Up = true, Initiator = true, RttMicros = 500 }] });
        m.ReportOf('b', ('a', 500, true));
        var intent = Assert.Single(m.Controller.Intents.Snapshot());
        Assert.Equal((Key('a'), Key('b')), (intent.From, intent.To));

        m.ReportOf('a', ('b', 500, false));
        m.ReportOf('b', ('a', 500, false));
        m.Controller.TendIntents(); // the tick that first sees it down
        m.Clock.Advance(TimeSpan.FromSeconds(3));
        m.Controller.TendIntents();
        Assert.Single(m['a'].LinkRequests);

        await m.Controller.UnlinkNodesAsync(Key('b'), Key('a'), None);
        Assert.Empty(m.Controller.Intents.Snapshot());
        Assert.Single(m['a'].LinkCloses);
        Assert.Single(m['b'].LinkCloses);
        m.Clock.Advance(TimeSpan.FromMinutes(1));
        m.Controller.TendIntents();
        Assert.Single(m['a'].LinkRequests);
        var ex = await Assert.ThrowsAsync<ControlException>(() => m.Controller.UnlinkNodesAsync(Key('a'), Key('a'), None));
        Assert.Equal(ControlErrorCode.BadRequest, ex.Code);
    }

    [Fact]
    public async Task OfflineEnd_IntentWaits_AndIsOpenedWhenItRegisters()
    {
        await using var m = new TestMesh("ab", "");
        m.Controller.NodeDisconnected(Key('b'), m['b']);
        var ex = await Assert.ThrowsAsync<ControlException>(() => m.Controller.LinkNodesAsync(Key('a'), Key('b'), None));
        Assert.Equal(ControlErrorCode.Unavailable, ex.Code);
        m.Clock.Advance(TimeSpan.FromMinutes(1));
        m.Controller.TendIntents();
        Assert.Empty(m['a'].LinkRequests);

        m.Add('b');
        m.Clock.Advance(TimeSpan.FromSeconds(3));
        m.Controller.TendIntents();
        Assert.Equal(Key('b').ToString(), Assert.Single(m['a'].LinkRequests).Peer);
    }

    [Fact]
    public async Task SessionBothEndsReport_IsAdoptedOnAFreshPath()
    {
        await using var m = new TestMesh("abc", "ab bc");
        const ulong id = 0x1234_5678_9abc_def1;
        m.Controller.ReportSessions(Key('a'), Sessions((id, 'c', true)));
        await m.Controller.RepairRoutesAsync(None);
        Assert.Empty(m.Controller.ListRoutes().Routes); // one end's word is not enough

        m.Controller.ReportSessions(Key('c'), Sessions((id, 'a', false)));
        await m.Controller.RepairRoutesAsync(None);
        var route = Assert.Single(m.Controller.ListRoutes().Routes);
        Assert.Equal(id, route.SessionId);
        Assert.Equal("abc", m.Names(route.Path));
        Assert.Equal("abc", m.Walk(id, 'a'));
        Assert.Equal("cba", m.Walk(id, 'c'));
        Assert.True(m['a'].Sessions[id].Initiator);
        Assert.False(m['c'].Sessions[id].Initiator);

        // Adopted routes are refreshed and closed like any other.
        await m.Controller.CloseRouteAsync(Key('a'), id);
        Assert.Empty(m.Controller.ListRoutes().Routes);
    }

    [Fact]
    public async Task SessionClaim_NamingANodeNotRegisteredYet_IsKept_AndAdoptedWhenThatEndReports()
    {
        // After a manager restart the ends register in any order: the first to report names a node the new manager
        // does not know yet (the claim used to be dropped, and the session was never adopted).
        await using var m = new TestMesh("c", "");
        const ulong id = 0x0bad_cafe_0000_0013;
        m.Controller.ReportSessions(Key('c'), Sessions((id, 'a', false)));
        await m.Controller.RepairRoutesAsync(None);
        Assert.Empty(m.Controller.ListRoutes().Routes);

        m.Add('b');
        m.Add('a');
        m.Report("ab bc");
        m.Controller.ReportSessions(Key('a'), Sessions((id, 'c', true)));
        await m.Controller.RepairRoutesAsync(None);
        Assert.Equal(id, Assert.Single(m.Controller.ListRoutes().Routes).SessionId);
        Assert.Equal("abc", m.Walk(id, 'a'));
    }

    [Fact]
    public async Task SessionClaims_ThatDisagree_AreNeverAdopted()
    {
        await using var m = new TestMesh("abc", "ab bc");
        // Both claim to be the initiator; and a claim naming a third node.
        m.Controller.ReportSessions(Key('a'), Sessions((7, 'c', true), (8, 'c', true)));
        m.Controller.ReportSessions(Key('c'), Sessions((7, 'a', true), (8, 'b', false)));
        await m.Controller.RepairRoutesAsync(None);
        Assert.Empty(m.Controller.ListRoutes().Routes);

        // Stale claims are forgotten: a matching claim after the rule lifetime finds nothing to match.
        m.Clock.Advance(new ManagerOptions().RuleLifetime + TimeSpan.FromSeconds(1));
        await m.Controller.RepairRoutesAsync(None);
        m.Controller.ReportSessions(Key('c'), Sessions((7, 'a', false)));
        await m.Controller.RepairRoutesAsync(None);
        Assert.Empty(m.Controller.ListRoutes().Routes);
    }

    [Fact]
    public async Task EndRegistersAgainWithoutTheSession_RouteClosedAtTheOtherEnd()
    {
        await using var m = new TestMesh("abc", "ab bc");
        var result = await m.Controller.BuildRouteAsync(Key('a'), Key('c'), None);
        m.Controller.NodeDisconnected(Key('c'), m['c']);
        m.Clock.Advance(TimeSpan.FromSeconds(1));
        m.Add('c');
        m.Report("ab bc");
        m.Controller.ReportSessions(Key('c'), Sessions());
        await m.Controller.RepairRoutesAsync(None);
        Assert.Empty(m.Controller.ListRoutes().Routes);
        Assert.Contains(result.SessionId, m['a'].Closed);
    }

    [Fact]
    public async Task EndLosesOnlyTheManager_RouteKeptThroughTheGrace_AndKeptWhenItReportsTheSession()
    {
        await using var m = new TestMesh("abc", "ab bc");
        var result = await m.Controller.BuildRouteAsync(Key('a'), Key('c'), None);
        m.Controller.NodeDisconnected(Key('c'), m['c']);
        await m.Controller.RepairRoutesAsync(None);
        Assert.Single(m.Controller.ListRoutes().Routes); // b still reports its link to c up
        Assert.Empty(m['a'].Closed);

        m.Clock.Advance(TimeSpan.FromSeconds(1));
        m.Add('c');
        m.Report("ab bc");
        m.Controller.ReportSessions(Key('c'), Sessions((result.SessionId, 'a', false)));
        await m.Controller.RepairRoutesAsync(None);
        Assert.Equal(result.SessionId, Assert.Single(m.Controller.ListRoutes().Routes).SessionId);
        Assert.Empty(m['a'].Closed);
    }

    private static SessionReportMessage Sessions(params (ulong Id, char Peer, bool Initiator)[] sessions) =>
        new() { Sessions = [.. sessions.Select(s => new SessionState { SessionId = s.Id, Peer = Key(s.Peer).ToString(), Initiator = s.Initiator })] };
}
