using Skywire.Core.Routing;
using Skywire.Protocol;
using Skywire.Protocol.Control;

namespace Skywire.Core.Manager;

/// <summary>A route to plan: its session id and its two ends.</summary>
/// <param name="SessionId">The session both ends will use.</param>
/// <param name="From">The initiating end.</param>
/// <param name="To">The other end.</param>
public sealed record RouteRequest(ulong SessionId, PubKey From, PubKey To);

/// <summary>
/// Plans routes: the weighted shortest path over a <see cref="MeshGraph"/> and fresh labels for it. Pure: no
/// channels, no I/O, no state of its own (labels come from the given <see cref="ILabelAllocator"/>).
/// </summary>
public static class RoutePlanner
{
    /// <summary>The lowest-weight path of routable links from <paramref name="from"/> to <paramref name="to"/>, or null.</summary>
    public static IReadOnlyList<PubKey>? FindPath(MeshGraph graph, PubKey from, PubKey to)
    {
        ArgumentNullException.ThrowIfNull(graph);
        if (from == to || !graph.Contains(from) || !graph.Contains(to))
        {
            return null;
        }

        return RouteComputer.ShortestPath(graph.Graph, from, to) is { } route ? [.. route.Nodes] : null;
    }

    /// <summary>
    /// The lowest-weight paths of many (from, to) pairs over one <paramref name="graph"/>, searched on every core
    /// (<see cref="RouteComputer.ShortestPaths{TNode}"/>); entry i is what <see cref="FindPath"/> would return for
    /// pair i. The manager's repair pass uses it for every route a dead link or node broke.
    /// </summary>
    public static IReadOnlyList<PubKey>?[] FindPaths(MeshGraph graph, IReadOnlyList<(PubKey From, PubKey To)> pairs)
    {
        ArgumentNullException.ThrowIfNull(graph);
        ArgumentNullException.ThrowIfNull(pairs);
        var routes = RouteComputer.ShortestPaths(graph.Graph, pairs);
        var paths = new IReadOnlyList<PubKey>?[pairs.Count];
        for (var i = 0; i < routes.Length; i++)
        {
            paths[i] = routes[i] is { Hops: > 0 } route ? [.. route.Nodes] : null;
        }
        return paths;
    }

    /// <summary>
    /// The plan of <paramref name="request"/> over <paramref name="graph"/>, or null when no path exists. A
    /// <paramref name="path"/> found beforehand (<see cref="FindPaths"/>) on the same graph is used instead of a new search.
    /// </summary>
    public static RoutePlan? Plan(MeshGraph graph, RouteRequest request, ILabelAllocator labels, IReadOnlyList<PubKey>? path = null)
    {
        ArgumentNullException.ThrowIfNull(request);
        path ??= FindPath(graph, request.From, request.To);
        return path is null ? null : RoutePlan.Create(request.SessionId, path, labels);
    }

    /// <summary>True when every hop of <paramref name="path"/> is a routable link of <paramref name="graph"/>.</summary>
    public static bool IsUsable(MeshGraph graph, IReadOnlyList<PubKey> path)
    {
        ArgumentNullException.ThrowIfNull(graph);
        ArgumentNullException.ThrowIfNull(path);
        if (path.Count < 2)
        {
            return false;
        }

        for (var i = 1; i < path.Count; i++)
        {
            if (!graph.HasLink(path[i - 1], path[i]))
            {
                return false;
            }
        }

        return true;
    }
}

/// <summary>One forwarding rule of a relay: packets in on (link, label) leave on (link, label).</summary>
public readonly record struct HopRule(PubKey InLink, uint InRoute, PubKey OutLink, uint OutRoute)
{
    /// <summary>The rule as the node receives it.</summary>
    public RuleMessage ToMessage(TimeSpan lifetime) => new()
    {
        InLink = InLink.ToString(), InRoute = InRoute, OutLink = OutLink.ToString(), OutRoute = OutRoute, TtlMs = (int)lifetime.TotalMilliseconds,
    };
}

/// <summary>The two rules of relay <paramref name="Node"/>: one per direction.</summary>
public sealed record RelayRules(PubKey Node, HopRule Forward, HopRule Reverse)
{
    /// <summary>Both rules as the node receives them.</summary>
    public List<RuleMessage> ToMessages(TimeSpan lifetime) => [Forward.ToMessage(lifetime), Reverse.ToMessage(lifetime)];
}

/// <summary>What an end node of a route is told: its peer, and the labels it sends and receives on.</summary>
public sealed record EndRoute(ulong SessionId, PubKey Node, PubKey Peer, bool Initiator, PubKey OutLink, uint OutRoute, PubKey InLink, uint InRoute)
{
    /// <summary>The session route as the node receives it.</summary>
    public SessionRouteMessage ToMessage(TimeSpan lifetime) => new()
    {
        SessionId = SessionId, Peer = Peer.ToString(), Initiator = Initiator,
        OutLink = OutLink.ToString(), OutRoute = OutRoute, InLink = InLink.ToString(), InRoute = InRoute, TtlMs = (int)lifetime.TotalMilliseconds,
    };
}

/// <summary>
/// A planned route n0 … nk with its labels (docs/protocol.md §4.5): <c>f_i</c> on the link n(i-1) → n(i)
/// (i = 1..k) and <c>r_i</c> on n(i+1) → n(i) (i = 0..k-1), each unique per (receiving node, incoming link).
/// Immutable.
/// </summary>
public sealed class RoutePlan
{
    private readonly PubKey[] _path;
    private readonly uint[] _forward;
    private readonly uint[] _reverse;

    private RoutePlan(ulong sessionId, PubKey[] path, uint[] forward, uint[] reverse)
    {
        SessionId = sessionId;
        _path = path;
        _forward = forward;
        _reverse = reverse;
    }

    /// <summary>The session id both ends use.</summary>
    public ulong SessionId { get; }

    /// <summary>Nodes along the forward path, source first.</summary>
    public IReadOnlyList<PubKey> Path => _path;

    /// <summary>The initiating end.</summary>
    public PubKey From => _path[0];

    /// <summary>The other end.</summary>
    public PubKey To => _path[^1];

    /// <summary>Forward labels: index i is the label on the link into node i (index 0 unused).</summary>
    public IReadOnlyList<uint> Forward => _forward;

    /// <summary>Reverse labels: index i is the label on the link into node i from node i+1 (index k unused).</summary>
    public IReadOnlyList<uint> Reverse => _reverse;

    /// <summary>Draws the labels of <paramref name="path"/> from <paramref name="labels"/>.</summary>
    public static RoutePlan Create(ulong sessionId, IReadOnlyList<PubKey> path, ILabelAllocator labels)
    {
        ArgumentNullException.ThrowIfNull(path);
        ArgumentNullException.ThrowIfNull(labels);
        if (path.Count < 2)
        {
            throw new ArgumentException("a route needs two nodes at least", nameof(path));
        }

        var p = path.ToArray();
        var k = p.Length - 1;
        var forward = new uint[k + 1];
        var reverse = new uint[k + 1];
        for (var i = 1; i <= k; i++)
        {
            forward[i] = labels.Allocate(p[i], p[i - 1]);
        }

        for (var i = 0; i < k; i++)
        {
            reverse[i] = labels.Allocate(p[i], p[i + 1]);
        }

        return new RoutePlan(sessionId, p, forward, reverse);
    }

    /// <summary>
    /// A plan with the labels it already has (read back from a store, which other clients can write): null unless the
    /// path has two distinct nodes at least, no node twice, and a non-zero label at every position the route uses.
    /// </summary>
    public static RoutePlan? FromLabels(ulong sessionId, IReadOnlyList<PubKey> path, IReadOnlyList<uint> forward, IReadOnlyList<uint> reverse)
    {
        ArgumentNullException.ThrowIfNull(path);
        ArgumentNullException.ThrowIfNull(forward);
        ArgumentNullException.ThrowIfNull(reverse);
        var k = path.Count - 1;
        if (sessionId == 0 || path.Count < 2 || path.Count > 64 || path.Distinct().Count() != path.Count || forward.Count != k + 1 || reverse.Count != k + 1)
        {
            return null;
        }

        for (var i = 1; i <= k; i++)
        {
            if (forward[i] == 0 || reverse[i - 1] == 0)
            {
                return null;
            }
        }

        var f = forward.ToArray();
        var r = reverse.ToArray();
        f[0] = 0;
        r[k] = 0;
        return new RoutePlan(sessionId, [.. path], f, r);
    }

    /// <summary>Every label of the plan as (receiving node, incoming link, label), to release them.</summary>
    public IEnumerable<(PubKey Node, PubKey InLink, uint Label)> Labels()
    {
        for (var i = 1; i < _path.Length; i++)
        {
            yield return (_path[i], _path[i - 1], _forward[i]);
        }

        for (var i = 0; i < _path.Length - 1; i++)
        {
            yield return (_path[i], _path[i + 1], _reverse[i]);
        }
    }

    /// <summary>The rules of every relay (every node but the ends), in path order.</summary>
    public IReadOnlyList<RelayRules> RelayRules()
    {
        var result = new List<RelayRules>(_path.Length - 2);
        for (var i = 1; i < _path.Length - 1; i++)
        {
            result.Add(new RelayRules(_path[i],
                new HopRule(_path[i - 1], _forward[i], _path[i + 1], _forward[i + 1]),
                new HopRule(_path[i + 1], _reverse[i], _path[i - 1], _reverse[i - 1])));
        }

        return result;
    }

    /// <summary>What the initiating end is told.</summary>
    public EndRoute Source() => new(SessionId, _path[0], _path[^1], Initiator: true, _path[1], _forward[1], _path[1], _reverse[0]);

    /// <summary>What the other end is told.</summary>
    public EndRoute Destination()
    {
        var k = _path.Length - 1;
        return new EndRoute(SessionId, _path[k], _path[0], Initiator: false, _path[k - 1], _reverse[k - 1], _path[k - 1], _forward[k]);
    }
}
