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
/// <remarks>
/// Updates are incremental: every node keeps its out-edges and in-edges in small arrays that the searches read
/// directly, so adding, re-weighting or removing a link costs O(degree) and nothing is ever rebuilt (the
/// compressed copy an earlier version rebuilt after every change took 2.4 s for 100 000 nodes; docs/routing.md).
/// </remarks>
/// <typeparam name="TNode">Node key (a public key, a string, an int...).</typeparam>
public sealed class RouteGraph<TNode> where TNode : notnull
{
    private readonly Dictionary<TNode, int> _index;
    private readonly List<TNode> _nodes = [];
    private readonly Dictionary<(int, int), int> _linkIds = [];
    private Adjacency[] _out = new Adjacency[16];
    private Adjacency[] _in = new Adjacency[16];
    private int _edgeCount;
    private RouteSearch? _search;

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
            if (i == _out.Length)
            {
                Array.Resize(ref _out, i * 2);
                Array.Resize(ref _in, i * 2);
            }
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

    /// <summary>Adds or updates a link with an explicit non-negative weight (O(degree)).</summary>
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
    }

    /// <summary>Removes a link (both directions when <paramref name="bidirectional"/>); false when absent. O(degree).</summary>
    public bool RemoveLink(TNode from, TNode to, bool bidirectional = true)
    {
        if (!_index.TryGetValue(from, out var a) || !_index.TryGetValue(to, out var b))
        {
            return false;
        }
        var removed = RemoveEdge(a, b);
        if (bidirectional && RemoveEdge(b, a))
        {
            removed = true;
        }
        return removed;
    }

    /// <summary>The weight of the directed edge, or null.</summary>
    public double? GetWeight(TNode from, TNode to)
    {
        if (!_index.TryGetValue(from, out var a) || !_index.TryGetValue(to, out var b))
        {
            return null;
        }
        var i = _out[a].IndexOf(b);
        return i < 0 ? null : _out[a].Items![i].Weight;
    }

    internal bool TryGetIndex(TNode node, out int index) => _index.TryGetValue(node, out index);

    internal TNode NodeAt(int index) => _nodes[index];

    /// <summary>Out-edges of each node (index = node); entries past <see cref="NodeCount"/> are empty.</summary>
    internal Adjacency[] Out => _out;

    /// <summary>In-edges of each node (<see cref="Edge.To"/> is the edge's tail), for backward searches.</summary>
    internal Adjacency[] In => _in;

    /// <summary>Link ids are dense: every id below this was handed out once (removed links keep theirs).</summary>
    internal int LinkIdCount => _linkIds.Count;

    /// <summary>The search state, reused by every query on this graph (not thread-safe, as the graph is not).</summary>
    internal RouteSearch Search()
    {
        if (_search is null || _search.Capacity < _nodes.Count)
        {
            _search = new RouteSearch(Math.Max(_nodes.Count, 16) * 3 / 2);
        }
        return _search;
    }

    private void SetEdge(int a, int b, double weight, int link)
    {
        if (_out[a].Set(b, weight, link))
        {
            _edgeCount++;
        }
        _in[b].Set(a, weight, link);
    }

    private bool RemoveEdge(int a, int b)
    {
        if (!_out[a].Remove(b))
        {
            return false;
        }
        _in[b].Remove(a);
        _edgeCount--;
        return true;
    }
}

/// <summary>One directed edge as seen from one end: the other end, the link id and the weight.</summary>
internal readonly record struct Edge(int To, int Link, double Weight);

/// <summary>A node's edges: a small array, grown by doubling, unordered (removal moves the last edge in).</summary>
internal struct Adjacency
{
    public Edge[]? Items;
    public int Count;

    public readonly int IndexOf(int to)
    {
        for (var i = 0; i < Count; i++)
        {
            if (Items![i].To == to)
            {
                return i;
            }
        }
        return -1;
    }

    /// <summary>Adds or updates the edge to <paramref name="to"/>; true when it was added.</summary>
    public bool Set(int to, double weight, int link)
    {
        var i = IndexOf(to);
        if (i >= 0)
        {
            Items![i] = new Edge(to, link, weight);
            return false;
        }
        if (Items is null || Count == Items.Length)
        {
            Array.Resize(ref Items, Math.Max(4, Count * 2));
        }
        Items[Count++] = new Edge(to, link, weight);
        return true;
    }

    public bool Remove(int to)
    {
        var i = IndexOf(to);
        if (i < 0)
        {
            return false;
        }
        Items![i] = Items[--Count];
        Items[Count] = default;
        return true;
    }
}
