using System.Collections.Concurrent;
using Microsoft.Extensions.Time.Testing;
using Skywire.Core.Channels;
using Skywire.Core.Manager;
using Skywire.Protocol.Control;

namespace Skywire.Tests.Manager;

public class MeshControllerTests
{
    private static readonly CancellationToken None = CancellationToken.None;

    private sealed class FakeNode(string key) : INodeChannel
    {
        public string Key { get; } = key;
        public ConcurrentDictionary<(string InLink, uint InRoute), RuleMessage> Rules { get; } = new();
        public ConcurrentDictionary<ulong, SessionRouteMessage> Sessions { get; } = new();
        public ConcurrentBag<OpenLinkMessage> LinkRequests { get; } = [];
        public ConcurrentBag<ulong> Closed { get; } = [];

        public Task OpenLinkAsync(OpenLinkMessage message, CancellationToken cancellationToken)
        {
            LinkRequests.Add(message);
            return Task.CompletedTask;
        }

        public Task InstallRulesAsync(InstallRulesMessage message, CancellationToken cancellationToken)
        {
            foreach (var r in message.Rules)
            {
                Rules[(r.InLink, r.InRoute)] = r;
            }

            return Task.CompletedTask;
        }

        public Task RemoveRulesAsync(RemoveRulesMessage message, CancellationToken cancellationToken)
        {
            foreach (var r in message.Rules)
            {
                Rules.TryRemove((r.InLink, r.InRoute), out _);
            }

            return Task.CompletedTask;
        }

        public int FailSessionRoutes { get; set; }

        public Task SessionRouteAsync(SessionRouteMessage message, CancellationToken cancellationToken)
        {
            if (FailSessionRoutes > 0)
            {
                FailSessionRoutes--;
                throw new ControlException(ControlErrorCode.Unavailable, "simulated timeout");
            }

            Sessions[message.SessionId] = message;
            return Task.CompletedTask;
        }

        public Task RouteClosedAsync(RouteCloseMessage message, CancellationToken cancellationToken)
        {
            Closed.Add(message.SessionId);
            return Task.CompletedTask;
        }
    }

    private static string Key(char c) => "02" + new string(c, 64);

    private static (MeshController Controller, Dictionary<string, FakeNode> Nodes) Mesh(string names, string links, ManagerOptions? options = null)
    {
        var controller = new MeshController(options);
        var nodes = new Dictionary<string, FakeNode>();
        foreach (var c in names)
        {
            var node = new FakeNode(Key(c));
            nodes[c.ToString()] = node;
            controller.NodeConnected(node.Key, "127.0.0.1:" + (1000 + c), node);
        }

        // links: "ab bc" = bidirectional links reported by both ends
        var reports = new Dictionary<string, List<LinkState>>();
        foreach (var pair in links.Split(' ', StringSplitOptions.RemoveEmptyEntries))
        {
            foreach (var (x, y) in new[] { (pair[0], pair[1]), (pair[1], pair[0]) })
            {
                if (!reports.TryGetValue(x.ToString(), out var list))
                {
                    reports[x.ToString()] = list = [];
                }

                list.Add(new LinkState { Peer = Key(y), Up = true, RttMicros = 500 });
            }
        }

        foreach (var (n, list) in reports)
        {
            controller.ReportLinks(Key(n[0]), new LinkReportMessage { Links = list });
        }

        return (controller, nodes);
    }

    /// <summary>Follows the labels hop by hop from the source's session route and returns the nodes visited.</summary>
    private static List<string> Walk(Dictionary<string, FakeNode> nodes, ulong session, string from, bool forward = true)
    {
        var byKey = nodes.Values.ToDictionary(n => n.Key);
        var start = nodes[from];
        var s = start.Sessions[session];
        var visited = new List<string> { start.Key };
        var prev = start.Key;
        var link = s.OutLink;
        var label = s.OutRoute;
        for (var hops = 0; hops < 10; hops++)
        {
            var node = byKey[link];
            visited.Add(node.Key);
            if (node.Rules.TryGetValue((prev, label), out var rule))
            {
                prev = node.Key;
                link = rule.OutLink;
                label = rule.OutRoute;
                continue;
            }

            // must be the other end, expecting exactly this label on this link
            var end = node.Sessions[session];
            Assert.Equal(prev, end.InLink);
            Assert.Equal(label, end.InRoute);
            return visited;
        }

        throw new InvalidOperationException("loop");
    }

    [Fact]
    public async Task BuildRoute_Chain_InstallsRulesThatLeadBothWays()
    {
        var (c, nodes) = Mesh("abcd", "ab bc cd");
        var result = await c.BuildRouteAsync(Key('a'), Key('d'), None);
        Assert.Equal([Key('a'), Key('b'), Key('c'), Key('d')], result.Path);
        Assert.Equal(result.Path, Walk(nodes, result.SessionId, "a"));
        Assert.Equal(((IEnumerable<string>)result.Path).Reverse(), Walk(nodes, result.SessionId, "d"));
        Assert.True(nodes["a"].Sessions[result.SessionId].Initiator);
        Assert.False(nodes["d"].Sessions[result.SessionId].Initiator);
        Assert.Empty(nodes["a"].Rules);
        Assert.Equal(2, nodes["b"].Rules.Count);
    }

    [Fact]
    public async Task BuildRoute_PrefersLowLatency()
    {
        var (c, nodes) = Mesh("abcd", "ab bd ac cd");
        // b is slow: a-b reports 50 ms
        c.ReportLinks(Key('a'), new LinkReportMessage { Links = [new LinkState { Peer = Key('b'), Up = true, RttMicros = 50_000 }, new LinkState { Peer = Key('c'), Up = true, RttMicros = 500 }] });
        var result = await c.BuildRouteAsync("02aaaa", "02dddd", None);
        Assert.Equal([Key('a'), Key('c'), Key('d')], result.Path);
    }

    [Fact]
    public async Task BuildRoute_NoPath_NoRoute()
    {
        var (c, _) = Mesh("abc", "ab");
        var ex = await Assert.ThrowsAsync<ControlException>(() => c.BuildRouteAsync(Key('a'), Key('c'), None));
        Assert.Equal(ControlErrorCode.NoRoute, ex.Code);
    }

    [Fact]
    public async Task RelayDisconnects_RouteMovesToAlternateAndEndsGetNewLabels()
    {
        var (c, nodes) = Mesh("abcde", "ab bc cd ae ed");
        c.ReportLinks(Key('a'), new LinkReportMessage { Links = [new LinkState { Peer = Key('b'), Up = true, RttMicros = 500 }, new LinkState { Peer = Key('e'), Up = true, RttMicros = 90_000 }] });
        var result = await c.BuildRouteAsync(Key('a'), Key('d'), None);
        Assert.Equal([Key('a'), Key('b'), Key('c'), Key('d')], result.Path);
        var oldLabel = nodes["a"].Sessions[result.SessionId].OutRoute;

        var rerouted = new TaskCompletionSource<IReadOnlyList<string>>();
        c.Rerouted += (_, path) => rerouted.TrySetResult(path);
        c.NodeDisconnected(Key('b'), nodes["b"]);
        var path = await rerouted.Task.WaitAsync(TimeSpan.FromSeconds(20));
        Assert.Equal([Key('a'), Key('e'), Key('d')], path);
        Assert.Equal(path, Walk(nodes, result.SessionId, "a"));
        Assert.Equal(path.Reverse(), Walk(nodes, result.SessionId, "d"));
        Assert.NotEqual(oldLabel, nodes["a"].Sessions[result.SessionId].OutRoute);
        Assert.Equal(1, c.ListRoutes().Routes.Single().Reroutes);
    }

    [Fact]
    public async Task RerouteInstallFails_RetriedAtNextRepair()
    {
        var (c, nodes) = Mesh("abcd", "ab bd ac cd");
        c.ReportLinks(Key('a'), new LinkReportMessage { Links = [new LinkState { Peer = Key('b'), Up = true, RttMicros = 500 }, new LinkState { Peer = Key('c'), Up = true, RttMicros = 9000 }] });
        var result = await c.BuildRouteAsync(Key('a'), Key('d'), None);
        Assert.Equal(Key('b'), result.Path[1]);
        nodes["a"].FailSessionRoutes = 1;
        c.NodeDisconnected(Key('b'), nodes["b"]);
        await c.RepairRoutesAsync(None); // the first attempt fails at the source end
        await c.RepairRoutesAsync(None); // and is retried
        Assert.Equal([Key('a'), Key('c'), Key('d')], Walk(nodes, result.SessionId, "a"));
    }

    [Fact]
    public async Task LinkReportedDown_Reroutes()
    {
        var (c, nodes) = Mesh("abcd", "ab bd ac cd");
        c.ReportLinks(Key('a'), new LinkReportMessage { Links = [new LinkState { Peer = Key('b'), Up = true, RttMicros = 500 }, new LinkState { Peer = Key('c'), Up = true, RttMicros = 9000 }] });
        var result = await c.BuildRouteAsync(Key('a'), Key('d'), None);
        Assert.Equal(Key('b'), result.Path[1]);
        var rerouted = new TaskCompletionSource<IReadOnlyList<string>>();
        c.Rerouted += (_, path) => rerouted.TrySetResult(path);
        c.ReportLinks(Key('b'), new LinkReportMessage { Links = [new LinkState { Peer = Key('a'), Up = false }, new LinkState { Peer = Key('d'), Up = true }] });
        var path = await rerouted.Task.WaitAsync(TimeSpan.FromSeconds(20));
        Assert.Equal(Key('c'), path[1]);
        Assert.Equal(path, Walk(nodes, result.SessionId, "a"));
    }

    [Fact]
    public async Task EndNodeDisconnects_RouteClosedAtOtherEnd()
    {
        var (c, nodes) = Mesh("abc", "ab bc");
        var result = await c.BuildRouteAsync(Key('a'), Key('c'), None);
        c.NodeDisconnected(Key('c'), nodes["c"]);
        await c.RepairRoutesAsync(None);
        Assert.Contains(result.SessionId, nodes["a"].Closed);
        Assert.Empty(c.ListRoutes().Routes);
    }

    [Fact]
    public async Task CloseRoute_RemovesRelayRules()
    {
        var (c, nodes) = Mesh("abc", "ab bc");
        var result = await c.BuildRouteAsync(Key('a'), Key('c'), None);
        Assert.Equal(2, nodes["b"].Rules.Count);
        await c.CloseRouteAsync(Key('a'), result.SessionId);
        Assert.Empty(c.ListRoutes().Routes);
        await WaitUntil(() => nodes["b"].Rules.IsEmpty);
    }

    [Fact]
    public void ResolveNode_UniquePrefix_AmbiguousAndMissingRejected()
    {
        var c = new MeshController();
        c.NodeConnected("02ab" + new string('0', 62), "x", new FakeNode("1"));
        c.NodeConnected("02ac" + new string('0', 62), "x", new FakeNode("2"));
        Assert.Equal("02ab" + new string('0', 62), c.ResolveNode("02AB"));
        Assert.Equal(ControlErrorCode.NotFound, Assert.Throws<ControlException>(() => c.ResolveNode("02a")).Code);
        Assert.Equal(ControlErrorCode.NotFound, Assert.Throws<ControlException>(() => c.ResolveNode("03")).Code);
    }

    [Fact]
    public void AppTracker_ListByNameAndType_ExpiresWithoutHeartbeat()
    {
        var clock = new FakeTimeProvider(DateTimeOffset.Parse("2026-01-01T00:00:00Z"));
        var c = new MeshController(new ManagerOptions { TimeProvider = clock, AppTtl = TimeSpan.FromSeconds(10) });
        c.NodeConnected(Key('a'), "x", new FakeNode(Key('a')));
        c.NodeConnected(Key('b'), "x", new FakeNode(Key('b')));
        c.RegisterApp(Key('a'), new AppRegisterMessage { Name = "socks", Type = "socks_server" });
        c.RegisterApp(Key('b'), new AppRegisterMessage { Name = "socks", Type = "socks_server" });
        c.RegisterApp(Key('b'), new AppRegisterMessage { Name = "nc1", Type = "nc" });

        Assert.Equal(3, c.ListApps(new AppListMessage()).Apps.Count);
        Assert.Equal(2, c.ListApps(new AppListMessage { By = "name", Value = "socks" }).Apps.Count);
        Assert.Equal("nc1", c.ListApps(new AppListMessage { By = "type", Value = "nc" }).Apps.Single().Name);
        Assert.Throws<ControlException>(() => c.ListApps(new AppListMessage { By = "color" }));
        Assert.Throws<ControlException>(() => c.RegisterApp(Key('a'), new AppRegisterMessage { Name = "a b", Type = "x" }));

        clock.Advance(TimeSpan.FromSeconds(6));
        c.HeartbeatApps(Key('b'), ["nc1"]);
        clock.Advance(TimeSpan.FromSeconds(6));
        Assert.Equal(2, c.ExpireApps());
        Assert.Equal("nc1", c.ListApps(new AppListMessage()).Apps.Single().Name);

        c.NodeDisconnected(Key('b'), new FakeNode("other")); // a stale connection's close changes nothing
        Assert.Single(c.ListApps(new AppListMessage()).Apps);
    }

    [Fact]
    public async Task LinkNodes_AsksFirstNodeWithSecondsAddress()
    {
        var (c, nodes) = Mesh("ab", "");
        await c.LinkNodesAsync(Key('a')[..6], Key('b'), None);
        var request = Assert.Single(nodes["a"].LinkRequests);
        Assert.Equal(Key('b'), request.Peer);
        Assert.Equal("127.0.0.1:" + (1000 + 'b'), request.Address);
        await Assert.ThrowsAsync<ControlException>(() => c.LinkNodesAsync(Key('a'), Key('a'), None));
    }

    [Fact]
    public void AutoLink_NewNodeLinksToExisting()
    {
        var c = new MeshController(new ManagerOptions { AutoLink = true });
        var a = new FakeNode(Key('a'));
        var b = new FakeNode(Key('b'));
        c.NodeConnected(a.Key, "1.1.1.1:1", a);
        c.NodeConnected(b.Key, "1.1.1.1:2", b);
        SpinWait.SpinUntil(() => !b.LinkRequests.IsEmpty, TimeSpan.FromSeconds(20));
        Assert.Equal(a.Key, Assert.Single(b.LinkRequests).Peer);
    }

    private static async Task WaitUntil(Func<bool> condition)
    {
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(20);
        while (!condition())
        {
            Assert.True(DateTime.UtcNow < deadline, "condition not met in time");
            await Task.Yield();
            await Task.Delay(5);
        }
    }
}
