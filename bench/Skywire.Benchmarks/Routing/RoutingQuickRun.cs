using System.Diagnostics;
using System.Globalization;
using Skywire.Core.Routing;

namespace Skywire.Benchmarks.Routing;

/// <summary>
/// <c>Skywire.Benchmarks.dll routing-quick [nodes] [routes]</c> (issue 19.5): on the random graph of
/// <see cref="RouteComputerBenchmarks"/> (default 100 000 nodes, ~300 000 links), the CPU time of a shortest path, of a
/// route with two link-disjoint alternates, of one link update, and of re-routing every route that crossed a link
/// that died (default 10 000 routes, all recomputed on the changed graph). Prints a table and RESULT lines.
/// </summary>
internal static class RoutingQuickRun
{
    public static void Run(int nodes, int routes)
    {
        var process = Process.GetCurrentProcess();
        var r = new RouteComputerBenchmarks { Nodes = nodes };
        var build = Cpu(process, 1, () => r.Setup());
        var g = r.Graph;
        var random = new Random(7);
        var pairs = new (int S, int D)[Math.Max(routes, 200)];
        for (var i = 0; i < pairs.Length; i++)
        {
            pairs[i] = (random.Next(nodes), random.Next(nodes));
        }

        var k = 0;
        RouteComputer.ComputeRoutes(g, pairs[0].S, pairs[0].D); // JIT and search state outside the measurement
        var shortest = Cpu(process, 200, () => RouteComputer.ShortestPath(g, pairs[k].S, pairs[k++ % pairs.Length].D));
        k = 0;
        var three = Cpu(process, 200, () => RouteComputer.ComputeRoutes(g, pairs[k].S, pairs[k++ % pairs.Length].D));
        var update = Cpu(process, 100_000, () =>
        {
            var (a, b) = pairs[k++ % pairs.Length];
            if (a != b)
            {
                g.SetLink(a, b, 10 + (k & 15));
                g.RemoveLink(a, b);
            }
        });

        // The routes of `routes` pairs; the link most of them cross dies; then `routes` routes are recomputed on the
        // changed graph, as the manager must for every route that crossed it. In a random mesh few routes share one
        // link, so the pairs themselves stand for the routes that crossed it: the cost is that of `routes` fresh
        // shortest paths either way. Measured on one thread (CPU) and on every core (wall).
        var list = pairs[..routes].Select(p => (p.S, p.D)).ToArray();
        var live = RouteComputer.ShortestPaths(g, list, maxParallelism: 1);
        var crossing = new Dictionary<(int, int), int>();
        foreach (var route in live)
        {
            for (var h = 0; route is not null && h < route.Hops; h++)
            {
                var (a, b) = (route.Nodes[h], route.Nodes[h + 1]);
                var key = a < b ? (a, b) : (b, a);
                crossing[key] = crossing.GetValueOrDefault(key) + 1;
            }
        }
        var dead = crossing.MaxBy(kv => kv.Value);
        g.RemoveLink(dead.Key.Item1, dead.Key.Item2);
        var reroute = Cpu(process, 1, () => live = RouteComputer.ShortestPaths(g, list, maxParallelism: 1));
        var wall = Stopwatch.StartNew();
        var parallelCpu = Cpu(process, 1, () => live = RouteComputer.ShortestPaths(g, list));
        wall.Stop();

        var inv = CultureInfo.InvariantCulture;
        Console.WriteLine(string.Create(inv, $"Graph: {g.NodeCount} nodes, {g.EdgeCount / 2} links (random spanning tree + 2 random links per node; latency 1-81 ms, 10 % of links lossy)"));
        Console.WriteLine();
        Console.WriteLine("| operation | CPU |");
        Console.WriteLine("|---|---:|");
        Console.WriteLine(string.Create(inv, $"| build the graph ({nodes} nodes) | {build.TotalMilliseconds:0} ms |"));
        Console.WriteLine(string.Create(inv, $"| shortest path (mean of 200 pairs) | {shortest.TotalMilliseconds:0.000} ms |"));
        Console.WriteLine(string.Create(inv, $"| shortest + two link-disjoint alternates (mean of 200 pairs) | {three.TotalMilliseconds:0.000} ms |"));
        Console.WriteLine(string.Create(inv, $"| one link update (add + remove, incremental) | {update.TotalMicroseconds:0.00} us |"));
        Console.WriteLine(string.Create(inv, $"| re-route {routes} routes after a link died, one thread (the busiest link of the {routes} routes was crossed by {dead.Value}) | {reroute.TotalMilliseconds:0} ms |"));
        Console.WriteLine(string.Create(inv, $"| the same on {Environment.ProcessorCount} threads: wall time (CPU) | {wall.Elapsed.TotalMilliseconds:0} ms ({parallelCpu.TotalMilliseconds:0} ms) |"));
        Console.WriteLine();
        Console.WriteLine(string.Create(inv, $"RESULT name=routing-3-disjoint-routes-{nodes / 1000}k-nodes-vs-goal ours={three.TotalMilliseconds:0.000} baseline=100 unit=ms better=lower"));
        Console.WriteLine(string.Create(inv, $"RESULT name=routing-reroute-{routes}-routes-wall-vs-goal ours={wall.Elapsed.TotalMilliseconds:0} baseline=2000 unit=ms better=lower"));
        Console.WriteLine(string.Create(inv, $"RESULT name=routing-reroute-{routes}-routes-cpu-vs-goal ours={reroute.TotalMilliseconds:0} baseline=2000 unit=ms better=lower"));
    }

    private static TimeSpan Cpu(Process process, int ops, Action op)
    {
        process.Refresh();
        var cpu0 = process.TotalProcessorTime;
        for (var i = 0; i < ops; i++)
        {
            op();
        }
        process.Refresh();
        return (process.TotalProcessorTime - cpu0) / ops;
    }
}
