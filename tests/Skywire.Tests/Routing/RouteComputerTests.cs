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
    public void ComputeRoutes_NoDisjointLeft_ReturnsOnlyDisjointRoutes()
    {
        // A bridge B-C carries every path: no two routes can be link-disjoint, so there is no alternate (Yen's
        // next-shortest paths, which shared the bridge, were removed: issue 19.5).
        var g = new RouteGraph<string>();
        g.SetLink("S", "x", 1); g.SetLink("S", "y", 2); g.SetLink("x", "B", 1); g.SetLink("y", "B", 1);
        g.SetLink("B", "C", 1);
        g.SetLink("C", "p", 1); g.SetLink("C", "q", 3); g.SetLink("p", "T", 1); g.SetLink("q", "T", 1);
        var routes = RouteComputer.ComputeRoutes(g, "S", "T", new RouteOptions { Count = 3 });
        Assert.Equal([5.0], routes.Select(r => r.Cost));
        Assert.Equal(["S", "x", "B", "C", "p", "T"], routes[0].Nodes);
    }

    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    [InlineData(3)]
    [InlineData(4)]
    [InlineData(5)]
    public void ShortestPathAndAlternates_MatchBruteForce_OnSmallRandomGraphs(int seed)
    {
        var random = new Random(seed);
        for (var round = 0; round < 40; round++)
        {
            var n = random.Next(4, 9);
            var g = RandomGraph(random, n, random.Next(n, n * 3), directed: round % 2 == 0);
            var all = AllSimplePaths(g, 0, n - 1);
            var best = RouteComputer.ShortestPath(g, 0, n - 1);
            Assert.Equal(all.Count > 0, best is not null);
            if (best is null)
            {
                Assert.Empty(RouteComputer.ComputeRoutes(g, 0, n - 1));
                continue;
            }
            Assert.Equal(all.Min(p => p.Cost), best.Cost, 9);
            AssertIsPath(g, best);

            // Each alternate is the shortest path that avoids every link of the routes before it.
            var routes = RouteComputer.ComputeRoutes(g, 0, n - 1, new RouteOptions { Count = 4 });
            Assert.Equal(best.Cost, routes[0].Cost, 9);
            var used = new HashSet<(int, int)>();
            for (var i = 0; i < routes.Count; i++)
            {
                AssertIsPath(g, routes[i]);
                var avoiding = all.Where(p => !p.Links.Overlaps(used)).ToList();
                Assert.NotEmpty(avoiding);
                Assert.Equal(avoiding.Min(p => p.Cost), routes[i].Cost, 9);
                foreach (var link in LinksOf(routes[i]))
                {
                    Assert.True(used.Add(link), $"link {link} is shared");
                }
            }
            if (routes.Count < 4)
            {
                Assert.DoesNotContain(all, p => !p.Links.Overlaps(used));
            }
        }
    }

    [Theory]
    [InlineData(false, 0.001)]
    [InlineData(true, 0.001)]
    [InlineData(false, 0)]
    public void ShortestPath_MatchesOneSidedDistances_OnLargeRandomGraphs(bool directed, double minWeight)
    {
        // The bidirectional search against the one-sided Dijkstra of Distances (itself checked against Bellman-Ford
        // below), zero weights included (loops in the joined trees must be cut).
        var random = new Random(7);
        const int n = 2000;
        var g = new RouteGraph<int>();
        for (var i = 0; i < n; i++)
        {
            g.AddNode(i);
        }
        for (var e = 0; e < n * 3; e++)
        {
            var a = random.Next(n);
            var b = random.Next(n);
            if (a != b)
            {
                var w = random.NextDouble() < 0.2 ? minWeight : Math.Round(random.NextDouble() * 10, 3) + minWeight;
                g.SetLink(a, b, w, bidirectional: !directed);
            }
        }
        for (var source = 0; source < 20; source++)
        {
            var distances = RouteComputer.Distances(g, source);
            for (var k = 0; k < 50; k++)
            {
                var d = random.Next(n);
                var route = RouteComputer.ShortestPath(g, source, d);
                Assert.Equal(distances.ContainsKey(d), route is not null);
                if (route is not null)
                {
                    Assert.Equal(distances[d], route.Cost, 9);
                    AssertIsPath(g, route);
                }
            }
        }
    }

    [Fact]
    public void IncrementalChanges_AreSeenByTheNextSearch()
    {
        // Links added, re-weighted and removed between searches, no rebuild: every answer matches Bellman-Ford on
        // the graph as it is then.
        var random = new Random(11);
        const int n = 300;
        var g = RandomGraph(random, n, n * 2, directed: false);
        for (var round = 0; round < 60; round++)
        {
            for (var change = 0; change < 20; change++)
            {
                var a = random.Next(n);
                var b = random.Next(n);
                if (a == b)
                {
                    continue;
                }
                if (random.Next(3) == 0)
                {
                    g.RemoveLink(a, b);
                }
                else
                {
                    g.SetLink(a, b, Math.Round(random.NextDouble() * 10, 3) + 0.001);
                }
            }
            var s = random.Next(n);
            var d = random.Next(n);
            var expected = BellmanFord(g, s, n)[d];
            var route = RouteComputer.ShortestPath(g, s, d);
            Assert.Equal(double.IsPositiveInfinity(expected), route is null);
            if (route is not null)
            {
                Assert.Equal(expected, route.Cost, 9);
                AssertIsPath(g, route);
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

    private static void AssertIsPath<TNode>(RouteGraph<TNode> g, Route<TNode> route) where TNode : notnull
    {
        Assert.Equal(route.Nodes.Count, route.Nodes.Distinct().Count()); // loop-free
        var cost = 0.0;
        for (var i = 0; i < route.Hops; i++)
        {
            var w = g.GetWeight(route.Nodes[i], route.Nodes[i + 1]);
            Assert.NotNull(w);
            cost += w.Value;
        }
        Assert.Equal(cost, route.Cost, 9);
    }

    private static IEnumerable<(int, int)> LinksOf(Route<int> route)
    {
        for (var i = 0; i < route.Hops; i++)
        {
            var (a, b) = (route.Nodes[i], route.Nodes[i + 1]);
            yield return a < b ? (a, b) : (b, a);
        }
    }

    private static List<(double Cost, HashSet<(int, int)> Links)> AllSimplePaths(RouteGraph<int> g, int s, int t)
    {
        var result = new List<(double, HashSet<(int, int)>)>();
        var onPath = new bool[g.NodeCount];
        var links = new Stack<(int, int)>();
        void Dfs(int u, double cost)
        {
            if (u == t)
            {
                result.Add((cost, [.. links]));
                return;
            }
            onPath[u] = true;
            for (var v = 0; v < g.NodeCount; v++)
            {
                if (!onPath[v] && g.GetWeight(u, v) is { } w)
                {
                    links.Push(u < v ? (u, v) : (v, u));
                    Dfs(v, cost + w);
                    links.Pop();
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
