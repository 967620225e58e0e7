using Skywire.Core.Routing;

namespace Skywire.Tests.Routing;

public class RouteComputerTests
{
    private static RouteGraph<string> Diamond()
    {
        var g = new RouteGraph<string>();
        g.SetLink("A", "B", 1);
        g.SetLink("B", "D", 1);
        g.SetLink("A", "C", 1);
        g.SetLink("C", "D", 5);
        g.SetLink("A", "D", 10);
        return g;
    }

    [Fact]
    public void ShortestPath_KnownGraph_PicksLowestWeight()
    {
        var route = RouteComputer.ShortestPath(Diamond(), "A", "D");
        Assert.NotNull(route);
        Assert.Equal(["A", "B", "D"], route.Nodes);
        Assert.Equal(2, route.Cost);
        Assert.Equal(2, route.Hops);
    }

    [Fact]
    public void ShortestPath_DirectedEdge_IsOneWay()
    {
        var g = new RouteGraph<int>();
        g.SetLink(1, 2, 1, bidirectional: false);
        g.SetLink(2, 3, 1, bidirectional: false);
        Assert.NotNull(RouteComputer.ShortestPath(g, 1, 3));
        Assert.Null(RouteComputer.ShortestPath(g, 3, 1));
    }

    [Fact]
    public void Disconnected_NoRoute()
    {
        var g = Diamond();
        g.SetLink("X", "Y", 1);
        Assert.Null(RouteComputer.ShortestPath(g, "A", "Y"));
        Assert.Empty(RouteComputer.ComputeRoutes(g, "A", "Y"));
        Assert.False(RouteComputer.Distances(g, "A").ContainsKey("X"));
        Assert.Null(RouteComputer.ShortestPath(g, "A", "unknown"));
        Assert.Empty(RouteComputer.ComputeRoutes(g, "A", "A"));
    }

    [Fact]
    public void RemoveLink_Reroutes()
    {
        var g = Diamond();
        Assert.True(g.RemoveLink("B", "D"));
        var route = RouteComputer.ShortestPath(g, "A", "D");
        Assert.Equal(["A", "C", "D"], route!.Nodes);
        Assert.False(g.RemoveLink("B", "D"));
    }

    [Fact]
    public void ComputeRoutes_PrefersLinkDisjointAlternates()
    {
        // Three disjoint paths S..T of cost 3, 4 and 6, plus cheap cross links that tempt a shared-link alternate.
        var g = new RouteGraph<string>();
        g.SetLink("S", "a1", 1); g.SetLink("a1", "a2", 1); g.SetLink("a2", "T", 1);
        g.SetLink("S", "b1", 1); g.SetLink("b1", "b2", 2); g.SetLink("b2", "T", 1);
        g.SetLink("S", "c1", 2); g.SetLink("c1", "c2", 2); g.SetLink("c2", "T", 2);
        g.SetLink("a1", "b2", 1.5);
        g.SetLink("b1", "a2", 1.6);
        var routes = RouteComputer.ComputeRoutes(g, "S", "T", new RouteOptions { Count = 3 });
        Assert.Equal(3, routes.Count);
        Assert.Equal([3.0, 4.0, 6.0], routes.Select(r => r.Cost));
        // Without the preference, the second route would reuse S-a1 (S-a1-b2-T, cost 3.5).
        var yen = RouteComputer.ComputeRoutes(g, "S", "T", new RouteOptions { Count = 2, PreferLinkDisjoint = false });
        Assert.Equal(["S", "a1", "b2", "T"], yen[1].Nodes);
        var links = new HashSet<string>();
        foreach (var r in routes)
        {
            for (var i = 0; i < r.Hops; i++)
            {
                var a = r.Nodes[i];
                var b = r.Nodes[i + 1];
                var key = string.CompareOrdinal(a, b) < 0 ? a + "-" + b : b + "-" + a;
                Assert.True(links.Add(key), $"link {key} is shared");
            }
        }
    }

    [Fact]
    public void ComputeRoutes_NoDisjointLeft_FallsBackToNextShortest()
    {
        // A bridge B-C carries every path: no two routes can be link-disjoint.
        var g = new RouteGraph<string>();
        g.SetLink("S", "x", 1); g.SetLink("S", "y", 2); g.SetLink("x", "B", 1); g.SetLink("y", "B", 1);
        g.SetLink("B", "C", 1);
        g.SetLink("C", "p", 1); g.SetLink("C", "q", 3); g.SetLink("p", "T", 1); g.SetLink("q", "T", 1);
        var routes = RouteComputer.ComputeRoutes(g, "S", "T", new RouteOptions { Count = 3 });
        Assert.Equal([5.0, 6.0, 7.0], routes.Select(r => r.Cost));
        Assert.Equal(3, routes.Select(r => string.Join(",", r.Nodes)).Distinct().Count());
    }

    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    [InlineData(3)]
    [InlineData(4)]
    [InlineData(5)]
    public void KShortest_MatchesBruteForce_OnSmallRandomGraphs(int seed)
    {
        var random = new Random(seed);
        for (var round = 0; round < 20; round++)
        {
            var n = random.Next(4, 9);
            var g = RandomGraph(random, n, random.Next(n, n * 3), directed: round % 2 == 0);
            var all = AllSimplePathCosts(g, 0, n - 1);
            all.Sort();
            var routes = RouteComputer.ComputeRoutes(g, 0, n - 1, new RouteOptions { Count = 6, PreferLinkDisjoint = false });
            Assert.Equal(Math.Min(6, all.Count), routes.Count);
            for (var i = 0; i < routes.Count; i++)
            {
                Assert.Equal(all[i], routes[i].Cost, 9);
                Assert.Equal(routes[i].Nodes.Count, routes[i].Nodes.Distinct().Count()); // loop-free
                Assert.Equal(0, routes[i].Nodes[0]);
                Assert.Equal(n - 1, routes[i].Nodes[^1]);
            }
            var best = RouteComputer.ShortestPath(g, 0, n - 1);
            Assert.Equal(all.Count > 0, best is not null);
            if (best is not null)
            {
                Assert.Equal(all[0], best.Cost, 9);
            }
        }
    }

    [Fact]
    public void Distances_MatchBellmanFord_OnLargeRandomGraph()
    {
        var random = new Random(42);
        const int n = 3000;
        var g = RandomGraph(random, n, n * 3, directed: true);
        var dijkstra = RouteComputer.Distances(g, 0);
        var bellman = BellmanFord(g, 0, n);
        for (var v = 0; v < n; v++)
        {
            Assert.Equal(double.IsPositiveInfinity(bellman[v]), !dijkstra.ContainsKey(v));
            if (dijkstra.TryGetValue(v, out var d))
            {
                Assert.Equal(bellman[v], d, 9);
            }
        }
        Assert.True(dijkstra.Count > n / 2);
    }

    [Fact]
    public void Weight_FollowsTheDocumentedFormula()
    {
        var w = RouteWeightOptions.Default;
        Assert.Equal(10 + 1, w.Weight(new LinkMetrics(TimeSpan.FromMilliseconds(10), 0)), 9);
        Assert.Equal(10 + 1 + (200 * 0.1 / 0.9), w.Weight(new LinkMetrics(TimeSpan.FromMilliseconds(10), 0.1)), 9);
        Assert.True(double.IsPositiveInfinity(w.Weight(new LinkMetrics(TimeSpan.FromMilliseconds(1), 0.5))));
        Assert.True(double.IsPositiveInfinity(w.Weight(new LinkMetrics(TimeSpan.FromMilliseconds(1), double.NaN))));
        Assert.True(w.Weight(new LinkMetrics(TimeSpan.FromMilliseconds(5), 0.02)) > w.Weight(new LinkMetrics(TimeSpan.FromMilliseconds(5), 0.01)));

        var g = new RouteGraph<string>();
        g.SetLink("A", "B", new LinkMetrics(TimeSpan.FromMilliseconds(3), 0));
        Assert.Equal(4, g.GetWeight("A", "B"));
        g.SetLink("A", "B", new LinkMetrics(TimeSpan.FromMilliseconds(3), 0.9));
        Assert.Null(g.GetWeight("A", "B"));
        Assert.Null(RouteComputer.ShortestPath(g, "A", "B"));
    }

    [Fact]
    public void SetLink_RejectsBadWeights()
    {
        var g = new RouteGraph<int>();
        Assert.Throws<ArgumentOutOfRangeException>(() => g.SetLink(1, 2, -1));
        Assert.Throws<ArgumentOutOfRangeException>(() => g.SetLink(1, 2, double.NaN));
        Assert.Throws<ArgumentException>(() => g.SetLink(1, 1, 1));
    }

    internal static RouteGraph<int> RandomGraph(Random random, int n, int edges, bool directed)
    {
        var g = new RouteGraph<int>();
        for (var i = 0; i < n; i++)
        {
            g.AddNode(i);
        }
        for (var e = 0; e < edges; e++)
        {
            var a = random.Next(n);
            var b = random.Next(n);
            if (a != b)
            {
                g.SetLink(a, b, Math.Round(random.NextDouble() * 10, 3) + 0.001, bidirectional: !directed);
            }
        }
        return g;
    }

    private static List<double> AllSimplePathCosts(RouteGraph<int> g, int s, int t)
    {
        var result = new List<double>();
        var onPath = new bool[g.NodeCount];
        void Dfs(int u, double cost)
        {
            if (u == t)
            {
                result.Add(cost);
                return;
            }
            onPath[u] = true;
            for (var v = 0; v < g.NodeCount; v++)
            {
                if (!onPath[v] && g.GetWeight(u, v) is { } w)
                {
                    Dfs(v, cost + w);
                }
            }
            onPath[u] = false;
        }
        Dfs(s, 0);
        return result;
    }

    private static double[] BellmanFord(RouteGraph<int> g, int s, int n)
    {
        var edges = new List<(int, int, double)>();
        for (var a = 0; a < n; a++)
        {
            for (var b = 0; b < n; b++)
            {
                // Too slow for n^2 lookups on big graphs? 9 M dictionary probes: fine once.
                if (g.GetWeight(a, b) is { } w)
                {
                    edges.Add((a, b, w));
                }
            }
        }
        var dist = Enumerable.Repeat(double.PositiveInfinity, n).ToArray();
        dist[s] = 0;
        for (var round = 0; round < n; round++)
        {
            var changed = false;
            foreach (var (a, b, w) in edges)
            {
                if (dist[a] + w < dist[b])
                {
                    dist[b] = dist[a] + w;
                    changed = true;
                }
            }
            if (!changed)
            {
                break;
            }
        }
        return dist;
    }
}
