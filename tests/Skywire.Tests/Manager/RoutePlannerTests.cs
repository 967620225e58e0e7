using Skywire.Core.Manager;
using Skywire.Protocol;
using static Skywire.Tests.Manager.TestMesh;

namespace Skywire.Tests.Manager;

/// <summary>The trust rule, the weights and the plans, with no controller, channel or clock: pure functions of their input.</summary>
public class RoutePlannerTests
{
    private static readonly DateTimeOffset Now = DateTimeOffset.Parse("2026-01-01T00:00:00Z", System.Globalization.CultureInfo.InvariantCulture);
    private static readonly TimeSpan MaxAge = TimeSpan.FromSeconds(10);

    private static LinkReport R(char from, char to, long rtt = 500, bool up = true, double loss = 0, double ageSeconds = 0) =>
        new(Key(from), Key(to), up, rtt, loss, Now - TimeSpan.FromSeconds(ageSeconds));

    private static HashSet<PubKey> Online(string names) => [.. names.Select(Key)];

    private static string Names(IReadOnlyList<PubKey>? path) => path is null ? "" : new([.. path.Select(p => p.ToString()[2])]);

    [Fact]
    public void Graph_HasALinkOnlyWhenBothEndsReportItUpFreshAndOnline()
    {
        var graph = MeshGraph.Build(Online("abcdef"),
        [
            R('a', 'b'), R('b', 'a'),                       // confirmed
            R('a', 'c'),                                    // one end only
            R('a', 'd'), R('d', 'a', up: false),            // one end says down
            R('a', 'e'), R('e', 'a', ageSeconds: 11),       // one report too old
            R('b', 'c'), R('c', 'b', ageSeconds: 10),       // exactly at the bound: still counts
        ], Now, MaxAge);
        Assert.True(graph.HasLink(Key('a'), Key('b')));
        Assert.True(graph.HasLink(Key('b'), Key('a')));
        Assert.False(graph.HasLink(Key('a'), Key('c')));
        Assert.False(graph.HasLink(Key('a'), Key('d')));
        Assert.False(graph.HasLink(Key('a'), Key('e')));
        Assert.True(graph.HasLink(Key('b'), Key('c')));
        Assert.Equal(2, graph.LinkCount);

        var offline = MeshGraph.Build(Online("a"), [R('a', 'b'), R('b', 'a')], Now, MaxAge);
        Assert.Equal(0, offline.LinkCount);
    }

    [Fact]
    public void Weight_IsTheWorseOfBothEnds_WithA1msFloor()
    {
        Assert.Equal(50_000, MeshGraph.Weight(R('a', 'b', rtt: 50_000), R('b', 'a', rtt: 1)));
        Assert.Equal(1000, MeshGraph.Weight(R('a', 'b', rtt: 10), R('b', 'a', rtt: 20)));
        Assert.Equal(1000 + 20_000, MeshGraph.Weight(R('a', 'b', loss: 0.1), R('b', 'a', loss: 0)));
    }

    [Fact]
    public void FindPaths_AgreesWithOneSearchPerPair_NullWhereFindPathIsNull()
    {
        // A ring a..e with chords of varied RTT, plus an isolated node f: every ordered pair, unreachable and self
        // pairs included, gets from the batch exactly what FindPath gives it alone.
        const string names = "abcdef";
        var reports = new List<LinkReport>();
        void Link(char x, char y, long rtt) { reports.Add(R(x, y, rtt)); reports.Add(R(y, x, rtt)); }
        for (var i = 0; i < 5; i++)
        {
            Link(names[i], names[(i + 1) % 5], 1000 + (i * 700));
        }
        Link('a', 'c', 2500);
        Link('b', 'd', 900);
        var graph = MeshGraph.Build(Online(names), reports, Now, MaxAge);
        var pairs = (from x in names from y in names select (Key(x), Key(y))).ToList();

        var batch = RoutePlanner.FindPaths(graph, pairs);

        Assert.Equal(pairs.Count, batch.Length);
        for (var i = 0; i < pairs.Count; i++)
        {
            Assert.Equal(Names(RoutePlanner.FindPath(graph, pairs[i].Item1, pairs[i].Item2)), Names(batch[i]));
            Assert.Equal(RoutePlanner.FindPath(graph, pairs[i].Item1, pairs[i].Item2) is null, batch[i] is null);
        }
        Assert.Null(batch[pairs.IndexOf((Key('a'), Key('a')))]);
        Assert.Null(batch[pairs.IndexOf((Key('a'), Key('f')))]);
        Assert.Equal("bd", Names(batch[pairs.IndexOf((Key('b'), Key('d')))]));
    }

    [Fact]
    public void FindPath_ShortestByWeight_NoneAcrossUnconfirmedLinks()
    {
        var reports = new List<LinkReport> { R('a', 'b'), R('b', 'a'), R('b', 'd'), R('d', 'b'), R('a', 'c', rtt: 9000), R('c', 'a'), R('c', 'd'), R('d', 'c') };
        var graph = MeshGraph.Build(Online("abcd"), reports, Now, MaxAge);
        Assert.Equal("abd", Names(RoutePlanner.FindPath(graph, Key('a'), Key('d'))));
        Assert.Null(RoutePlanner.FindPath(graph, Key('a'), Key('a')));
        Assert.Null(RoutePlanner.FindPath(graph, Key('a'), Key('e')));

        // f claims both ends of a shortcut; only its own word: not a path.
        reports.AddRange([R('f', 'a', rtt: 1), R('f', 'd', rtt: 1)]);
        var claimed = MeshGraph.Build(Online("abcdf"), reports, Now, MaxAge);
        Assert.Equal("abd", Names(RoutePlanner.FindPath(claimed, Key('a'), Key('d'))));
        Assert.True(RoutePlanner.IsUsable(claimed, [Key('a'), Key('b'), Key('d')]));
        Assert.False(RoutePlanner.IsUsable(claimed, [Key('a'), Key('f'), Key('d')]));
    }

    [Fact]
    public void Plan_LabelsChainHopByHop_BothWays()
    {
        var graph = MeshGraph.Build(Online("abcd"), [R('a', 'b'), R('b', 'a'), R('b', 'c'), R('c', 'b'), R('c', 'd'), R('d', 'c')], Now, MaxAge);
        var labels = new CountingLabels();
        var plan = RoutePlanner.Plan(graph, new RouteRequest(7, Key('a'), Key('d')), labels)!;
        Assert.Equal("abcd", Names(plan.Path));
        Assert.Equal(6, labels.Allocated); // k forward + k reverse, k = 3 hops

        // Forward: the source sends with f1; each relay maps (prev, f_i) to (next, f_i+1); the destination receives f_k.
        var source = plan.Source();
        var relays = plan.RelayRules();
        var destination = plan.Destination();
        Assert.Equal((Key('b'), plan.Forward[1]), (source.OutLink, source.OutRoute));
        Assert.Equal(new HopRule(Key('a'), plan.Forward[1], Key('c'), plan.Forward[2]), relays[0].Forward);
        Assert.Equal(new HopRule(Key('b'), plan.Forward[2], Key('d'), plan.Forward[3]), relays[1].Forward);
        Assert.Equal((Key('c'), plan.Forward[3]), (destination.InLink, destination.InRoute));

        // Reverse the same way back.
        Assert.Equal((Key('c'), plan.Reverse[2]), (destination.OutLink, destination.OutRoute));
        Assert.Equal(new HopRule(Key('d'), plan.Reverse[2], Key('b'), plan.Reverse[1]), relays[1].Reverse);
        Assert.Equal(new HopRule(Key('c'), plan.Reverse[1], Key('a'), plan.Reverse[0]), relays[0].Reverse);
        Assert.Equal((Key('b'), plan.Reverse[0]), (source.InLink, source.InRoute));
        Assert.True(source.Initiator);
        Assert.False(destination.Initiator);
        Assert.Equal(6, plan.Labels().Count());

        Assert.Null(RoutePlanner.Plan(graph, new RouteRequest(8, Key('a'), Key('e')), labels));
        Assert.Equal(6, labels.Allocated); // no path, no labels
    }

    /// <summary>Labels 1, 2, 3, … (a deterministic allocator for plans).</summary>
    private sealed class CountingLabels : ILabelAllocator
    {
        public int Allocated { get; private set; }

        public uint Allocate(PubKey node, PubKey inLink) => (uint)++Allocated;

        public void Release(PubKey node, PubKey inLink, uint label)
        {
        }
    }
}
