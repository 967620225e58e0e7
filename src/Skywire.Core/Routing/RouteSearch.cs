namespace Skywire.Core.Routing;

/// <summary>
/// Dijkstra state for one graph, reused by every query (arrays sized once, "reached" and "settled" judged by a
/// run stamp, so a query never clears O(V) memory). Point-to-point queries search from both ends at once
/// (bidirectional Dijkstra): on the meshes the manager routes, each side settles a few thousand nodes of 100 000
/// where a one-sided search settles tens of thousands (docs/routing.md "Algorithms").
/// </summary>
internal sealed class RouteSearch
{
    private readonly Side _forward;
    private readonly Side _backward;
    private readonly int[] _mark;
    private readonly int[] _markStamp;
    private int _markRun;

    public RouteSearch(int capacity)
    {
        Capacity = capacity;
        _forward = new Side(capacity);
        _backward = new Side(capacity);
        _mark = new int[capacity];
        _markStamp = new int[capacity];
    }

    /// <summary>Nodes this state can hold.</summary>
    public int Capacity { get; }

    /// <summary>The forward side after <see cref="RunAll"/>: distances from the source.</summary>
    public bool Reached(int v) => _forward.Reached(v);

    /// <summary>Distance of <paramref name="v"/> after <see cref="RunAll"/>.</summary>
    public double Distance(int v) => _forward.Labels[v].Dist;

    /// <summary>One-sided Dijkstra from <paramref name="s"/> over every reachable node.</summary>
    public void RunAll(Adjacency[] outEdges, int s)
    {
        var f = _forward;
        f.Start(s);
        while (f.PopSettle(out var u, out var du))
        {
            ref readonly var adj = ref outEdges[u];
            var items = adj.Items;
            for (var i = 0; i < adj.Count; i++)
            {
                var e = items![i];
                f.Relax(e.To, du + e.Weight, u, e.Link);
            }
        }
    }

    /// <summary>
    /// Bidirectional Dijkstra from <paramref name="s"/> to <paramref name="d"/> (s != d) over edges whose link is not
    /// banned. Returns the path's nodes (source first) and links and its cost, or false when d is unreachable.
    /// </summary>
    public bool Run(Adjacency[] outEdges, Adjacency[] inEdges, int s, int d, bool[]? bannedLinks,
        out int[] nodes, out int[] links, out double cost)
    {
        var f = _forward;
        var b = _backward;
        f.Start(s);
        b.Start(d);
        var best = double.PositiveInfinity;
        int meetF = -1, meetB = -1, meetLink = -1;
        var meetWeight = 0.0;
        while (true)
        {
            var topF = f.PeekKey();
            var topB = b.PeekKey();
            if (double.IsPositiveInfinity(topF) || double.IsPositiveInfinity(topB) || topF + topB >= best)
            {
                break;
            }

            // Grow the side whose frontier is nearer its root: the two balls meet in the middle.
            var forward = topF <= topB;
            var side = forward ? f : b;
            var other = forward ? b : f;
            if (!side.PopSettle(out var u, out var du))
            {
                break;
            }

            ref readonly var adj = ref (forward ? ref outEdges[u] : ref inEdges[u]);
            var items = adj.Items;
            for (var i = 0; i < adj.Count; i++)
            {
                var e = items![i];
                if (bannedLinks is not null && bannedLinks[e.Link])
                {
                    continue;
                }

                // The best meeting is updated only when a label improves: a relaxation that improves nothing offers
                // no shorter s-d path than the one checked when this side last improved e.To (or when the other side
                // reached it), so the other side's labels are read once per improvement, not once per edge.
                var nd = du + e.Weight;
                if (side.Relax(e.To, nd, u, e.Link) && other.Reached(e.To))
                {
                    var through = nd + other.Labels[e.To].Dist;
                    if (through < best)
                    {
                        best = through;
                        (meetF, meetB) = forward ? (u, e.To) : (e.To, u);
                        meetLink = e.Link;
                        meetWeight = e.Weight;
                    }
                }
            }
        }

        if (meetF < 0)
        {
            nodes = links = [];
            cost = 0;
            return false;
        }

        BuildPath(outEdges, s, d, meetF, meetB, meetLink, meetWeight, out nodes, out links, out cost);
        return true;
    }

    // s ..(forward tree).. meetF -> meetB ..(backward tree).. d, with any repeated node's loop cut out.
    private void BuildPath(Adjacency[] outEdges, int s, int d, int meetF, int meetB, int meetLink, double meetWeight, out int[] nodes, out int[] links, out double cost)
    {
        var f = _forward;
        var b = _backward;
        var front = 1;
        for (var v = meetF; v != s; v = f.Labels[v].Prev)
        {
            front++;
        }
        var back = 1;
        for (var v = meetB; v != d; v = b.Labels[v].Prev)
        {
            back++;
        }

        var n = new int[front + back];
        var l = new int[front + back - 1];
        var w = new double[front + back - 1];
        var i = front - 1;
        for (var v = meetF; ; v = f.Labels[v].Prev)
        {
            n[i] = v;
            if (v == s)
            {
                break;
            }
            l[i - 1] = f.Labels[v].Link;
            w[i - 1] = WeightOf(outEdges, f.Labels[v].Prev, v, f.Labels[v].Link);
            i--;
        }
        l[front - 1] = meetLink;
        w[front - 1] = meetWeight;
        i = front;
        for (var v = meetB; ; v = b.Labels[v].Prev)
        {
            n[i] = v;
            if (v == d)
            {
                break;
            }
            l[i] = b.Labels[v].Link;
            w[i] = WeightOf(outEdges, v, b.Labels[v].Prev, b.Labels[v].Link);
            i++;
        }

        // With zero-weight links the two trees may cross: keep the path loop-free (never costlier). A node seen
        // again cuts the path back to its first visit.
        _markRun++;
        var count = 0;
        for (var k = 0; k < n.Length; k++)
        {
            var v = n[k];
            if (_markStamp[v] == _markRun)
            {
                var p = _mark[v];
                for (var j = p + 1; j < count; j++)
                {
                    _markStamp[n[j]] = 0;
                }
                count = p + 1;
                continue;
            }
            n[count] = v;
            if (count > 0)
            {
                l[count - 1] = l[k - 1];
                w[count - 1] = w[k - 1];
            }
            _mark[v] = count;
            _markStamp[v] = _markRun;
            count++;
        }

        cost = 0;
        for (var k = 0; k < count - 1; k++)
        {
            cost += w[k];
        }
        nodes = count == n.Length ? n : n[..count];
        links = count == n.Length ? l : l[..(count - 1)];
    }

    // The weight of the edge from -> to with this link id (a path is built once per query: O(degree) per hop).
    private static double WeightOf(Adjacency[] outEdges, int from, int to, int link)
    {
        ref readonly var adj = ref outEdges[from];
        for (var i = 0; i < adj.Count; i++)
        {
            var e = adj.Items![i];
            if (e.To == to && e.Link == link)
            {
                return e.Weight;
            }
        }
        throw new InvalidOperationException("a path edge is missing from the graph");
    }

    /// <summary>
    /// A node's label on one side: 24 bytes (the edge weight is looked up again when the path is built, and one
    /// stamp says both reached and settled), so a relaxation touches one small place.
    /// </summary>
    private struct Label
    {
        public double Dist;
        public int Prev;
        public int Link;
        public int State; // 2 * run: reached in this run; 2 * run + 1: settled in this run; less: not reached
    }

    /// <summary>A heap entry: key and node side by side.</summary>
    private struct HeapEntry
    {
        public double Key;
        public int Node;
    }

    /// <summary>
    /// One direction's labels and its 4-ary heap (lazy deletion instead of decrease-key): half the depth of a binary
    /// heap, so a pop moves half as many entries (it compares four children per level instead of two).
    /// </summary>
    private sealed class Side
    {
        public readonly Label[] Labels;
        private HeapEntry[] _heap = new HeapEntry[256];
        private int _heapCount;
        private int _reached; // 2 * run
        private int _settled; // 2 * run + 1

        public Side(int capacity) => Labels = new Label[capacity];

        public bool Reached(int v) => Labels[v].State >= _reached;

        public void Start(int root)
        {
            if (_reached >= int.MaxValue - 2)
            {
                Array.Clear(Labels); // stamps wrapped: start again from "never reached"
                _reached = 0;
            }
            _reached += 2;
            _settled = _reached + 1;
            _heapCount = 0;
            ref var label = ref Labels[root];
            label.State = _reached;
            label.Dist = 0;
            label.Prev = -1;
            Push(0, root);
        }

        /// <summary>The smallest key of a node not yet settled, or +infinity when none is left.</summary>
        public double PeekKey()
        {
            while (_heapCount > 0)
            {
                ref readonly var top = ref _heap[0];
                ref readonly var label = ref Labels[top.Node];
                if (label.State != _settled && top.Key <= label.Dist)
                {
                    return top.Key;
                }
                PopTop(); // stale entry
            }
            return double.PositiveInfinity;
        }

        public bool PopSettle(out int u, out double du)
        {
            while (_heapCount > 0)
            {
                u = _heap[0].Node;
                du = _heap[0].Key;
                PopTop();
                ref var label = ref Labels[u];
                if (label.State == _settled || du > label.Dist)
                {
                    continue;
                }
                label.State = _settled;
                return true;
            }
            u = -1;
            du = 0;
            return false;
        }

        /// <summary>Lowers <paramref name="v"/>'s label to <paramref name="nd"/> if that is an improvement; true when it was.</summary>
        public bool Relax(int v, double nd, int from, int link)
        {
            ref var label = ref Labels[v];
            if (label.State < _reached)
            {
                label.State = _reached;
            }
            else if (nd >= label.Dist || label.State == _settled)
            {
                return false;
            }
            label.Dist = nd;
            label.Prev = from;
            label.Link = link;
            Push(nd, v);
            return true;
        }

        private void Push(double key, int node)
        {
            if (_heapCount == _heap.Length)
            {
                Array.Resize(ref _heap, _heapCount * 2);
            }
            var heap = _heap;
            var i = _heapCount++;
            while (i > 0)
            {
                var parent = (i - 1) >> 2;
                if (heap[parent].Key <= key)
                {
                    break;
                }
                heap[i] = heap[parent];
                i = parent;
            }
            heap[i].Key = key;
            heap[i].Node = node;
        }

        private void PopTop()
        {
            var count = --_heapCount;
            if (count == 0)
            {
                return;
            }
            var heap = _heap;
            var last = heap[count];
            var i = 0;
            while (true)
            {
                var first = (i << 2) + 1;
                if (first >= count)
                {
                    break;
                }
                var child = first;
                var key = heap[first].Key;
                var end = Math.Min(first + 4, count);
                for (var c = first + 1; c < end; c++)
                {
                    if (heap[c].Key < key)
                    {
                        child = c;
                        key = heap[c].Key;
                    }
                }
                if (key >= last.Key)
                {
                    break;
                }
                heap[i] = heap[child];
                i = child;
            }
            heap[i] = last;
        }
    }
}
