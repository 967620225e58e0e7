namespace Skywire.Core.Routing;

/// <summary>Measured quality of one link, as the manager learns it from the nodes.</summary>
/// <param name="Latency">One-way latency (half the measured RTT is fine).</param>
/// <param name="LossRate">Fraction of packets lost, 0..1.</param>
public readonly record struct LinkMetrics(TimeSpan Latency, double LossRate);

/// <summary>
/// How link metrics become an additive path weight (docs/routing.md):
/// <c>weight = latency_ms + HopCostMs + LossPenaltyMs * p / (1 - p)</c>.
/// </summary>
/// <remarks>
/// p / (1 - p) is the expected number of extra transmissions per delivered packet on a link with loss p; each one
/// costs about a retransmission timeout, so <see cref="LossPenaltyMs"/> is of that order. <see cref="HopCostMs"/>
/// makes a path through fewer relays win a near tie (every relay spends bandwidth and is paid for it). Links whose
/// loss reaches <see cref="MaxLossRate"/> are unusable.
/// </remarks>
public sealed record RouteWeightOptions
{
    /// <summary>The defaults: hop cost 1 ms, loss penalty 200 ms, links with 50 % loss or more excluded.</summary>
    public static RouteWeightOptions Default { get; } = new();

    /// <summary>Fixed cost per hop, in milliseconds. Default 1.</summary>
    public double HopCostMs { get; init; } = 1;

    /// <summary>Cost of one expected retransmission, in milliseconds. Default 200.</summary>
    public double LossPenaltyMs { get; init; } = 200;

    /// <summary>Links with at least this loss rate get no weight (unusable). Default 0.5.</summary>
    public double MaxLossRate { get; init; } = 0.5;

    /// <summary>The weight of a link, or <see cref="double.PositiveInfinity"/> when it is unusable.</summary>
    public double Weight(LinkMetrics metrics)
    {
        var p = double.IsNaN(metrics.LossRate) ? 1 : Math.Clamp(metrics.LossRate, 0, 1);
        if (p >= MaxLossRate || p >= 1)
        {
            return double.PositiveInfinity;
        }
        var latency = Math.Max(0, metrics.Latency.TotalMilliseconds);
        return latency + HopCostMs + (LossPenaltyMs * p / (1 - p));
    }
}

/// <summary>
/// A weighted directed graph of node keys for route computation. Undirected links are two directed edges that
/// share one link id (link-disjointness is judged by link, so a path and its reverse share links).
/// Not thread-safe: mutate and compute from one thread, or lock around both.
/// </summary>
/// <typeparam name="TNode">Node key (a public key, a string, an int...).</typeparam>
public sealed class RouteGraph<TNode> where TNode : notnull
{
    private readonly Dictionary<TNode, int> _index;
    private readonly List<TNode> _nodes = [];
    private readonly List<Dictionary<int, (double Weight, int Link)>> _out = [];
    private readonly Dictionary<(int, int), int> _linkIds = [];
    private int _edgeCount;
    private CompiledGraph? _compiled;

    /// <summary>Creates an empty graph.</summary>
    public RouteGraph(IEqualityComparer<TNode>? comparer = null) => _index = new Dictionary<TNode, int>(comparer);

    /// <summary>Number of nodes.</summary>
    public int NodeCount => _nodes.Count;

    /// <summary>Number of directed edges.</summary>
    public int EdgeCount => _edgeCount;

    /// <summary>The nodes, in insertion order.</summary>
    public IReadOnlyList<TNode> Nodes => _nodes;

    /// <summary>True when the node is in the graph.</summary>
    public bool Contains(TNode node) => _index.ContainsKey(node);

    /// <summary>Adds a node (no-op if present); returns its dense index.</summary>
    public int AddNode(TNode node)
    {
        if (!_index.TryGetValue(node, out var i))
        {
            i = _nodes.Count;
            _index.Add(node, i);
            _nodes.Add(node);
            _out.Add([]);
            _compiled = null;
        }
        return i;
    }

    /// <summary>Adds or updates a link weighted from its metrics; unusable links (infinite weight) are removed instead.</summary>
    public void SetLink(TNode from, TNode to, LinkMetrics metrics, RouteWeightOptions? weights = null, bool bidirectional = true)
    {
        var w = (weights ?? RouteWeightOptions.Default).Weight(metrics);
        if (double.IsPositiveInfinity(w))
        {
            RemoveLink(from, to, bidirectional);
            return;
        }
        SetLink(from, to, w, bidirectional);
    }

    /// <summary>Adds or updates a link with an explicit non-negative weight.</summary>
    public void SetLink(TNode from, TNode to, double weight, bool bidirectional = true)
    {
        if (double.IsNaN(weight) || weight < 0 || double.IsInfinity(weight))
        {
            throw new ArgumentOutOfRangeException(nameof(weight), weight, "Link weights must be finite and non-negative.");
        }
        var a = AddNode(from);
        var b = AddNode(to);
        if (a == b)
        {
            throw new ArgumentException("A link needs two different nodes.", nameof(to));
        }
        var key = a < b ? (a, b) : (b, a);
        if (!_linkIds.TryGetValue(key, out var link))
        {
            link = _linkIds.Count;
            _linkIds.Add(key, link);
        }
        SetEdge(a, b, weight, link);
        if (bidirectional)
        {
            SetEdge(b, a, weight, link);
        }
        _compiled = null;
    }

    /// <summary>Removes a link (both directions when <paramref name="bidirectional"/>); false when absent.</summary>
    public bool RemoveLink(TNode from, TNode to, bool bidirectional = true)
    {
        if (!_index.TryGetValue(from, out var a) || !_index.TryGetValue(to, out var b))
        {
            return false;
        }
        var removed = _out[a].Remove(b);
        if (removed)
        {
            _edgeCount--;
        }
        if (bidirectional && _out[b].Remove(a))
        {
            _edgeCount--;
            removed = true;
        }
        if (removed)
        {
            _compiled = null;
        }
        return removed;
    }

    /// <summary>The weight of the directed edge, or null.</summary>
    public double? GetWeight(TNode from, TNode to) =>
        _index.TryGetValue(from, out var a) && _index.TryGetValue(to, out var b) && _out[a].TryGetValue(b, out var e) ? e.Weight : null;

    internal bool TryGetIndex(TNode node, out int index) => _index.TryGetValue(node, out index);

    internal TNode NodeAt(int index) => _nodes[index];

    private void SetEdge(int a, int b, double weight, int link)
    {
        if (!_out[a].ContainsKey(b))
        {
            _edgeCount++;
        }
        _out[a][b] = (weight, link);
    }

    /// <summary>Adjacency in compressed sparse row form, rebuilt after any change.</summary>
    internal CompiledGraph Compile()
    {
        if (_compiled is not null)
        {
            return _compiled;
        }
        var n = _nodes.Count;
        var start = new int[n + 1];
        var target = new int[_edgeCount];
        var weight = new double[_edgeCount];
        var link = new int[_edgeCount];
        var e = 0;
        for (var i = 0; i < n; i++)
        {
            start[i] = e;
            foreach (var (to, (w, l)) in _out[i])
            {
                target[e] = to;
                weight[e] = w;
                link[e] = l;
                e++;
            }
        }
        start[n] = e;
        return _compiled = new CompiledGraph(n, start, target, weight, link, _linkIds.Count);
    }
}

/// <summary>A graph in compressed sparse row form: the out-edges of node i are Start[i]..Start[i+1]-1.</summary>
internal sealed record CompiledGraph(int NodeCount, int[] Start, int[] Target, double[] Weight, int[] Link, int LinkCount);
