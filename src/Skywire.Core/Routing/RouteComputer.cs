namespace Skywire.Core.Routing;

/// <summary>A loop-free path and its total weight.</summary>
/// <typeparam name="TNode">Node key.</typeparam>
public sealed class Route<TNode> where TNode : notnull
{
    internal Route(IReadOnlyList<TNode> nodes, double cost, int[] nodeIndexes, int[] links)
    {
        Nodes = nodes;
        Cost = cost;
        NodeIndexes = nodeIndexes;
        Links = links;
    }

    /// <summary>Source first, destination last.</summary>
    public IReadOnlyList<TNode> Nodes { get; }

    /// <summary>Sum of the link weights.</summary>
    public double Cost { get; }

    /// <summary>Number of links.</summary>
    public int Hops => Nodes.Count - 1;

    internal int[] NodeIndexes { get; }

    /// <summary>Link ids of the graph, one per hop.</summary>
    internal int[] Links { get; }

    /// <inheritdoc/>
    public override string ToString() => $"{string.Join(" -> ", Nodes)} ({Cost:0.###})";
}

/// <summary>Options of <see cref="RouteComputer.ComputeRoutes"/>.</summary>
public sealed record RouteOptions
{
    /// <summary>The defaults: 3 routes (the shortest and two link-disjoint alternates).</summary>
    public static RouteOptions Default { get; } = new();

    /// <summary>How many routes to return at most: the shortest, then link-disjoint alternates. Default 3.</summary>
    public int Count { get; init; } = 3;
}

/// <summary>
/// Weighted shortest paths over a <see cref="RouteGraph{TNode}"/>: bidirectional Dijkstra with binary heaps for one
/// pair, one-sided Dijkstra for every distance, and link-disjoint alternates (each alternate avoids every link of the
/// routes before it, so one link failure leaves a working route).
/// </summary>
/// <remarks>
/// Yen's k shortest loop-free paths were removed (issue 19.5): the manager never installed them, they cost five times
/// the disjoint alternates (one search per spur node), and an alternate that shares links with the primary does not
/// survive the failure it exists for.
/// </remarks>
public static class RouteComputer
{
    /// <summary>The lowest-weight path from <paramref name="source"/> to <paramref name="destination"/>, or null when none exists.</summary>
    public static Route<TNode>? ShortestPath<TNode>(RouteGraph<TNode> graph, TNode source, TNode destination) where TNode : notnull
    {
        ArgumentNullException.ThrowIfNull(graph);
        if (!graph.TryGetIndex(source, out var s) || !graph.TryGetIndex(destination, out var d))
        {
            return null;
        }
        if (s == d)
        {
            return new Route<TNode>([source], 0, [s], []);
        }
        return graph.Search().Run(graph.Out, graph.In, s, d, bannedLinks: null, out var nodes, out var links, out var cost)
            ? MakeRoute(graph, nodes, links, cost)
            : null;
    }

    /// <summary>
    /// The shortest paths of many pairs at once (e.g. every route that crossed a link that died), on up to
    /// <paramref name="maxParallelism"/> threads (-1: one per core), each with its own search state. The graph must
    /// not change while this runs. Entry i is null when pair i has no path.
    /// </summary>
    public static Route<TNode>?[] ShortestPaths<TNode>(RouteGraph<TNode> graph, IReadOnlyList<(TNode Source, TNode Destination)> pairs, int maxParallelism = -1)
        where TNode : notnull
    {
        ArgumentNullException.ThrowIfNull(graph);
        ArgumentNullException.ThrowIfNull(pairs);
        var result = new Route<TNode>?[pairs.Count];
        if (pairs.Count == 0)
        {
            return result;
        }
        var options = new ParallelOptions { MaxDegreeOfParallelism = maxParallelism };
        var capacity = Math.Max(graph.NodeCount, 16);
        Parallel.For(0, pairs.Count, options, () => new RouteSearch(capacity), (i, _, search) =>
        {
            var (source, destination) = pairs[i];
            if (graph.TryGetIndex(source, out var s) && graph.TryGetIndex(destination, out var d))
            {
                result[i] = s == d
                    ? new Route<TNode>([source], 0, [s], [])
                    : search.Run(graph.Out, graph.In, s, d, bannedLinks: null, out var nodes, out var links, out var cost) ? MakeRoute(graph, nodes, links, cost) : null;
            }
            return search;
        }, _ => { });
        return result;
    }

    /// <summary>Weights of the shortest paths from <paramref name="source"/> to every reachable node.</summary>
    public static Dictionary<TNode, double> Distances<TNode>(RouteGraph<TNode> graph, TNode source) where TNode : notnull
    {
        ArgumentNullException.ThrowIfNull(graph);
        var result = new Dictionary<TNode, double>();
        if (!graph.TryGetIndex(source, out var s))
        {
            return result;
        }
        var search = graph.Search();
        search.RunAll(graph.Out, s);
        for (var i = 0; i < graph.NodeCount; i++)
        {
            if (search.Reached(i))
            {
                result[graph.NodeAt(i)] = search.Distance(i);
            }
        }
        return result;
    }

    /// <summary>
    /// The shortest route and up to Count - 1 link-disjoint alternates, each the shortest path that shares no link with
    /// the routes before it (so costs never decrease). Fewer when no disjoint path is left; empty when the destination
    /// is unreachable or equals the source.
    /// </summary>
    public static IReadOnlyList<Route<TNode>> ComputeRoutes<TNode>(RouteGraph<TNode> graph, TNode source, TNode destination, RouteOptions? options = null)
        where TNode : notnull
    {
        ArgumentNullException.ThrowIfNull(graph);
        options ??= RouteOptions.Default;
        var routes = new List<Route<TNode>>();
        if (options.Count < 1 || !graph.TryGetIndex(source, out var s) || !graph.TryGetIndex(destination, out var d) || s == d)
        {
            return routes;
        }
        var search = graph.Search();
        bool[]? banned = null;
        while (routes.Count < options.Count)
        {
            if (!search.Run(graph.Out, graph.In, s, d, banned, out var nodes, out var links, out var cost))
            {
                break;
            }
            routes.Add(MakeRoute(graph, nodes, links, cost));
            banned ??= new bool[graph.LinkIdCount];
            foreach (var link in links)
            {
                banned[link] = true;
            }
        }
        return routes;
    }

    private static Route<TNode> MakeRoute<TNode>(RouteGraph<TNode> graph, int[] nodes, int[] links, double cost) where TNode : notnull
    {
        var keys = new TNode[nodes.Length];
        for (var i = 0; i < nodes.Length; i++)
        {
            keys[i] = graph.NodeAt(nodes[i]);
        }
        return new Route<TNode>(keys, cost, nodes, links);
    }
}
