using BenchmarkDotNet.Attributes;
using Skywire.Core.Routing;

namespace Skywire.Benchmarks.Routing;

/// <summary>Route computation on random connected graphs with average degree 6 (3 undirected links per node).</summary>
[MemoryDiagnoser]
public class RouteComputerBenchmarks
{
    private RouteGraph<int> _graph = null!;
    private (int, int)[] _pairs = null!;
    private int _next;

    [Params(10_000, 100_000)]
    public int Nodes { get; set; }

    /// <summary>The graph built by <see cref="Setup"/>.</summary>
    public RouteGraph<int> Graph => _graph;

    [GlobalSetup]
    public void Setup()
    {
        var random = new Random(12345);
        _graph = new RouteGraph<int>();
        for (var i = 0; i < Nodes; i++)
        {
            _graph.AddNode(i);
        }
        // A random spanning tree keeps the graph connected; random extra links bring the degree to ~6.
        for (var i = 1; i < Nodes; i++)
        {
            _graph.SetLink(i, random.Next(i), Metrics(random));
        }
        for (var i = 0; i < 2 * Nodes; i++)
        {
            var a = random.Next(Nodes);
            var b = random.Next(Nodes);
            if (a != b)
            {
                _graph.SetLink(a, b, Metrics(random));
            }
        }
        _pairs = new (int, int)[64];
        for (var i = 0; i < _pairs.Length; i++)
        {
            _pairs[i] = (random.Next(Nodes), random.Next(Nodes));
        }
        RouteComputer.ShortestPath(_graph, 0, 1); // size the search state outside the measurement
    }

    private static LinkMetrics Metrics(Random random) =>
        new(TimeSpan.FromMilliseconds(1 + (random.NextDouble() * 80)), random.NextDouble() < 0.1 ? random.NextDouble() * 0.1 : 0);

    private (int, int) NextPair() => _pairs[_next++ & (_pairs.Length - 1)];

    [Benchmark]
    public Route<int>? ShortestPath()
    {
        var (s, d) = NextPair();
        return RouteComputer.ShortestPath(_graph, s, d);
    }

    [Benchmark]
    public int ThreeRoutesDisjointPreferred()
    {
        var (s, d) = NextPair();
        return RouteComputer.ComputeRoutes(_graph, s, d, new RouteOptions { Count = 3 }).Count;
    }

    /// <summary>One link's weight changes (incremental: no rebuild), then a route is computed on the changed graph.</summary>
    [Benchmark]
    public Route<int>? LinkChangeThenRoute()
    {
        var (s, d) = NextPair();
        _graph.SetLink(s, (s + 1) % Nodes, 5 + (_next & 7));
        return RouteComputer.ShortestPath(_graph, s, d);
    }

    [Benchmark]
    public int AllDistances() => RouteComputer.Distances(_graph, NextPair().Item1).Count;
}
