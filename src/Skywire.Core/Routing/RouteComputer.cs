using System.Buffers;

namespace Skywire.Core.Routing;

/// <summary>A loop-free path and its total weight.</summary>
/// <typeparam name="TNode">Node key.</typeparam>
public sealed class Route<TNode> where TNode : notnull
{
    internal Route(IReadOnlyList<TNode> nodes, double cost, int[] nodeIndexes, int[] edges)
    {
        Nodes = nodes;
        Cost = cost;
        NodeIndexes = nodeIndexes;
        Edges = edges;
    }

    /// <summary>Source first, destination last.</summary>
    public IReadOnlyList<TNode> Nodes { get; }

    /// <summary>Sum of the link weights.</summary>
    public double Cost { get; }

    /// <summary>Number of links.</summary>
    public int Hops => Nodes.Count - 1;

    internal int[] NodeIndexes { get; }

    internal int[] Edges { get; }

    /// <inheritdoc/>
    public override string ToString() => $"{string.Join(" -> ", Nodes)} ({Cost:0.###})";
}

/// <summary>Options of <see cref="RouteComputer.ComputeRoutes"/>.</summary>
public sealed record RouteOptions
{
    /// <summary>The defaults: 3 routes, link-disjoint alternates preferred.</summary>
    public static RouteOptions Default { get; } = new();

    /// <summary>How many routes to return at most (the shortest plus alternates). Default 3.</summary>
    public int Count { get; init; } = 3;

    /// <summary>
    /// True: alternates are first chosen link-disjoint from the routes already chosen (one link failure then
    /// leaves a working route), and only if those run out, the next-shortest loop-free paths (Yen) fill up.
    /// False: the k shortest loop-free paths (Yen's algorithm). Default true.
    /// </summary>
    public bool PreferLinkDisjoint { get; init; } = true;
}

/// <summary>
/// Weighted shortest paths with alternates over a <see cref="RouteGraph{TNode}"/>: Dijkstra with a binary heap
/// (O((V + E) log V)), link-disjoint alternates, and Yen's k shortest loop-free paths.
/// </summary>
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
        var g = graph.Compile();
        using var search = new Search(g);
        return search.Run(s, d, bannedEdges: null, bannedNodes: null) ? ToRoute(graph, g, search, s, d) : null;
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
        var g = graph.Compile();
        using var search = new Search(g);
        search.Run(s, -1, null, null);
        for (var i = 0; i < g.NodeCount; i++)
        {
            if (search.Reached(i))
            {
                result[graph.NodeAt(i)] = search.Distance(i);
            }
        }
        return result;
    }

    /// <summary>
    /// The shortest route and up to Count - 1 alternates, shortest first within each kind (see
    /// <see cref="RouteOptions.PreferLinkDisjoint"/>). Empty when the destination is unreachable.
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
        var g = graph.Compile();
        using var search = new Search(g);
        if (!search.Run(s, d, null, null))
        {
            return routes;
        }
        routes.Add(ToRoute(graph, g, search, s, d));
        if (options.PreferLinkDisjoint)
        {
            var bannedLinks = new bool[g.LinkCount];
            var bannedEdges = new bool[g.Target.Length];
            while (routes.Count < options.Count)
            {
                foreach (var e in routes[^1].Edges)
                {
                    bannedLinks[g.Link[e]] = true;
                }
                for (var e = 0; e < bannedEdges.Length; e++)
                {
                    bannedEdges[e] = bannedLinks[g.Link[e]];
                }
                if (!search.Run(s, d, bannedEdges, null))
                {
                    break;
                }
                routes.Add(ToRoute(graph, g, search, s, d));
            }
        }
        if (routes.Count < options.Count)
        {
            foreach (var r in Yen(graph, g, search, routes[0], s, d, options.Count, routes))
            {
                routes.Add(r);
                if (routes.Count == options.Count)
                {
                    break;
                }
            }
        }
        return routes;
    }

    // Yen's k shortest loop-free paths, starting from the shortest; yields paths not already in `existing`.
    private static IEnumerable<Route<TNode>> Yen<TNode>(RouteGraph<TNode> graph, CompiledGraph g, Search search,
        Route<TNode> shortest, int s, int d, int k, List<Route<TNode>> existing) where TNode : notnull
    {
        var accepted = new List<Route<TNode>> { shortest };
        var seen = new HashSet<string>(StringComparer.Ordinal) { Key(shortest) };
        foreach (var r in existing)
        {
            seen.Add(Key(r));
        }
        var candidates = new PriorityQueue<Route<TNode>, (double, int)>();
        var candidateKeys = new HashSet<string>(StringComparer.Ordinal);
        var bannedEdges = new bool[g.Target.Length];
        var bannedNodes = new bool[g.NodeCount];
        var produced = existing.Count;
        var tiebreak = 0;
        while (produced < k)
        {
            var last = accepted[^1];
            for (var i = 0; i < last.NodeIndexes.Length - 1; i++)
            {
                var spur = last.NodeIndexes[i];
                Array.Clear(bannedEdges);
                Array.Clear(bannedNodes);
                foreach (var p in accepted)
                {
                    if (p.NodeIndexes.Length > i + 1 && p.NodeIndexes.AsSpan(0, i + 1).SequenceEqual(last.NodeIndexes.AsSpan(0, i + 1)))
                    {
                        bannedEdges[p.Edges[i]] = true;
                    }
                }
                var rootCost = 0.0;
                for (var j = 0; j < i; j++)
                {
                    bannedNodes[last.NodeIndexes[j]] = true;
                    rootCost += g.Weight[last.Edges[j]];
                }
                if (!search.Run(spur, d, bannedEdges, bannedNodes))
                {
                    continue;
                }
                var spurRoute = ToRoute(graph, g, search, spur, d);
                var nodes = new int[i + spurRoute.NodeIndexes.Length];
                var edges = new int[nodes.Length - 1];
                Array.Copy(last.NodeIndexes, nodes, i);
                Array.Copy(spurRoute.NodeIndexes, 0, nodes, i, spurRoute.NodeIndexes.Length);
                Array.Copy(last.Edges, edges, i);
                Array.Copy(spurRoute.Edges, 0, edges, i, spurRoute.Edges.Length);
                var candidate = MakeRoute(graph, nodes, edges, rootCost + spurRoute.Cost);
                var key = Key(candidate);
                if (candidateKeys.Add(key))
                {
                    candidates.Enqueue(candidate, (candidate.Cost, tiebreak++));
                }
            }
            if (!candidates.TryDequeue(out var next, out _))
            {
                yield break;
            }
            accepted.Add(next);
            if (seen.Add(Key(next)))
            {
                produced++;
                yield return next;
            }
        }
    }

    private static string Key<TNode>(Route<TNode> r) where TNode : notnull => string.Join(",", r.NodeIndexes);

    private static Route<TNode> ToRoute<TNode>(RouteGraph<TNode> graph, CompiledGraph g, Search search, int s, int d)
        where TNode : notnull
    {
        var count = 1;
        for (var v = d; v != s; v = search.PreviousNode(v))
        {
            count++;
        }
        var nodes = new int[count];
        var edges = new int[count - 1];
        var i = count - 1;
        for (var v = d; ; v = search.PreviousNode(v))
        {
            nodes[i] = v;
            if (v == s)
            {
                break;
            }
            edges[i - 1] = search.PreviousEdge(v);
            i--;
        }
        var cost = 0.0;
        foreach (var e in edges)
        {
            cost += g.Weight[e];
        }
        return MakeRoute(graph, nodes, edges, cost);
    }

    private static Route<TNode> MakeRoute<TNode>(RouteGraph<TNode> graph, int[] nodes, int[] edges, double cost) where TNode : notnull
    {
        var keys = new TNode[nodes.Length];
        for (var i = 0; i < nodes.Length; i++)
        {
            keys[i] = graph.NodeAt(nodes[i]);
        }
        return new Route<TNode>(keys, cost, nodes, edges);
    }

    /// <summary>Dijkstra state over pooled arrays, reusable for several runs on one compiled graph.</summary>
    private sealed class Search : IDisposable
    {
        private readonly int[] _start;
        private readonly int[] _target;
        private readonly double[] _weight;
        private readonly double[] _dist;
        private readonly int[] _prevEdge;
        private readonly int[] _prevNode;
        private readonly int[] _stamp;
        private readonly bool[] _done;
        private int _run;
        private double[] _heapKey;
        private int[] _heapNode;
        private int _heapCount;

        public Search(CompiledGraph g)
        {
            var n = g.NodeCount;
            _start = g.Start;
            _target = g.Target;
            _weight = g.Weight;
            _dist = ArrayPool<double>.Shared.Rent(Math.Max(n, 1));
            _prevEdge = ArrayPool<int>.Shared.Rent(Math.Max(n, 1));
            _prevNode = ArrayPool<int>.Shared.Rent(Math.Max(n, 1));
            _stamp = ArrayPool<int>.Shared.Rent(Math.Max(n, 1));
            _done = ArrayPool<bool>.Shared.Rent(Math.Max(n, 1));
            Array.Clear(_stamp, 0, n);
            _heapKey = ArrayPool<double>.Shared.Rent(Math.Max(16, n / 4));
            _heapNode = ArrayPool<int>.Shared.Rent(Math.Max(16, n / 4));
        }

        public bool Reached(int v) => _stamp[v] == _run;

        public double Distance(int v) => _dist[v];

        public int PreviousEdge(int v) => _prevEdge[v];

        public int PreviousNode(int v) => _prevNode[v];

        /// <summary>Runs from s; stops early when d (>= 0) is settled. True when d was reached.</summary>
        public bool Run(int s, int d, bool[]? bannedEdges, bool[]? bannedNodes)
        {
            _run++;
            _heapCount = 0;
            Visit(s, 0, -1, -1);
            Push(0, s);
            while (_heapCount > 0)
            {
                var (du, u) = Pop();
                if (_done[u] || du > _dist[u])
                {
                    continue; // stale heap entry (lazy deletion instead of decrease-key)
                }
                _done[u] = true;
                if (u == d)
                {
                    return true;
                }
                for (var e = _start[u]; e < _start[u + 1]; e++)
                {
                    if (bannedEdges is not null && bannedEdges[e])
                    {
                        continue;
                    }
                    var v = _target[e];
                    if (bannedNodes is not null && bannedNodes[v])
                    {
                        continue;
                    }
                    var nd = du + _weight[e];
                    if (_stamp[v] != _run)
                    {
                        Visit(v, nd, e, u);
                        Push(nd, v);
                    }
                    else if (nd < _dist[v] && !_done[v])
                    {
                        _dist[v] = nd;
                        _prevEdge[v] = e;
                        _prevNode[v] = u;
                        Push(nd, v);
                    }
                }
            }
            return d >= 0 && _stamp[d] == _run && _done[d];
        }

        private void Visit(int v, double dist, int edge, int prev)
        {
            _stamp[v] = _run;
            _done[v] = false;
            _dist[v] = dist;
            _prevEdge[v] = edge;
            _prevNode[v] = prev;
        }

        private void Push(double key, int node)
        {
            if (_heapCount == _heapKey.Length)
            {
                Grow();
            }
            var i = _heapCount++;
            while (i > 0)
            {
                var parent = (i - 1) >> 1;
                if (_heapKey[parent] <= key)
                {
                    break;
                }
                _heapKey[i] = _heapKey[parent];
                _heapNode[i] = _heapNode[parent];
                i = parent;
            }
            _heapKey[i] = key;
            _heapNode[i] = node;
        }

        private (double Key, int Node) Pop()
        {
            var top = (_heapKey[0], _heapNode[0]);
            var count = --_heapCount;
            if (count > 0)
            {
                var key = _heapKey[count];
                var node = _heapNode[count];
                var i = 0;
                while (true)
                {
                    var child = (2 * i) + 1;
                    if (child >= count)
                    {
                        break;
                    }
                    if (child + 1 < count && _heapKey[child + 1] < _heapKey[child])
                    {
                        child++;
                    }
                    if (_heapKey[child] >= key)
                    {
                        break;
                    }
                    _heapKey[i] = _heapKey[child];
                    _heapNode[i] = _heapNode[child];
                    i = child;
                }
                _heapKey[i] = key;
                _heapNode[i] = node;
            }
            return top;
        }

        private void Grow()
        {
            var keys = ArrayPool<double>.Shared.Rent(_heapKey.Length * 2);
            var nodes = ArrayPool<int>.Shared.Rent(_heapNode.Length * 2);
            Array.Copy(_heapKey, keys, _heapCount);
            Array.Copy(_heapNode, nodes, _heapCount);
            ArrayPool<double>.Shared.Return(_heapKey);
            ArrayPool<int>.Shared.Return(_heapNode);
            _heapKey = keys;
            _heapNode = nodes;
        }

        public void Dispose()
        {
            ArrayPool<double>.Shared.Return(_dist);
            ArrayPool<int>.Shared.Return(_prevEdge);
            ArrayPool<int>.Shared.Return(_prevNode);
            ArrayPool<int>.Shared.Return(_stamp);
            ArrayPool<bool>.Shared.Return(_done);
            ArrayPool<double>.Shared.Return(_heapKey);
            ArrayPool<int>.Shared.Return(_heapNode);
        }
    }
}
