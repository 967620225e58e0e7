using Skywire.Core.Routing;
using Skywire.Protocol;

namespace Skywire.Core.Manager;

/// <summary>
/// The routable mesh at one instant: the links the manager trusts, with their weights. Built from what the nodes
/// reported (<see cref="LinkTable"/>) by one rule (docs/protocol.md §4.5): a link is routable only when both of its
/// ends are online and each of them reported it up within <c>maxAge</c>. One end's claim alone never makes a link,
/// and a link's weight takes the worse of the two ends' measurements, so no end can make a link look better than
/// its peer measures it. Immutable once built.
/// </summary>
public sealed class MeshGraph
{
    private readonly RouteGraph<PubKey> _graph;
    private readonly HashSet<(PubKey, PubKey)> _links;

    private MeshGraph(RouteGraph<PubKey> graph, HashSet<(PubKey, PubKey)> links)
    {
        _graph = graph;
        _links = links;
    }

    /// <summary>An empty graph.</summary>
    public static MeshGraph Empty { get; } = new(new RouteGraph<PubKey>(), []);

    /// <summary>Number of routable links.</summary>
    public int LinkCount => _links.Count;

    /// <summary>The weighted graph the planner searches (do not change it).</summary>
    internal RouteGraph<PubKey> Graph => _graph;

    /// <summary>Builds the graph from the nodes online now and every link report.</summary>
    /// <param name="online">Nodes whose control connection is open.</param>
    /// <param name="reports">What each node last said about its links.</param>
    /// <param name="now">The manager's clock now.</param>
    /// <param name="maxAge">How old a report may be and still count.</param>
    public static MeshGraph Build(IReadOnlySet<PubKey> online, IEnumerable<LinkReport> reports, DateTimeOffset now, TimeSpan maxAge)
    {
        ArgumentNullException.ThrowIfNull(online);
        ArgumentNullException.ThrowIfNull(reports);
        var byEnds = new Dictionary<(PubKey From, PubKey To), LinkReport>();
        foreach (var report in reports)
        {
            byEnds[(report.From, report.To)] = report;
        }

        var graph = new RouteGraph<PubKey>();
        var links = new HashSet<(PubKey, PubKey)>();
        foreach (var ((a, b), ab) in byEnds)
        {
            // Each link once, from its lower key's report.
            if (a.CompareTo(b) >= 0 || !byEnds.TryGetValue((b, a), out var ba))
            {
                continue;
            }

            if (IsConfirmed(ab, ba, online.Contains(a) && online.Contains(b), now, maxAge))
            {
                graph.SetLink(a, b, Weight(ab, ba), bidirectional: true);
                links.Add((a, b));
            }
        }

        return new MeshGraph(graph, links);
    }

    /// <summary>
    /// The trust rule: a link is routable when both ends are online and both reports (one from each end, about the
    /// other) are up and no older than <paramref name="maxAge"/>.
    /// </summary>
    public static bool IsConfirmed(LinkReport? ab, LinkReport? ba, bool bothOnline, DateTimeOffset now, TimeSpan maxAge) =>
        bothOnline && ab is not null && ba is not null
        && ab.From == ba.To && ab.To == ba.From
        && ab.Up && ba.Up
        && now - ab.ReportedAt <= maxAge && now - ba.ReportedAt <= maxAge;

    /// <summary>
    /// The weight of a confirmed link in microseconds: the larger RTT of the two ends (at least 1 ms, which keeps hop
    /// count meaningful on a LAN) plus the larger loss ratio times 200 ms.
    /// </summary>
    public static double Weight(LinkReport ab, LinkReport ba)
    {
        ArgumentNullException.ThrowIfNull(ab);
        ArgumentNullException.ThrowIfNull(ba);
        var rtt = Math.Max(ab.RttMicros, ba.RttMicros);
        var loss = Math.Max(ab.Loss, ba.Loss);
        return Math.Max(rtt, 1000) + (loss * 200_000);
    }

    /// <summary>True when the link between <paramref name="a"/> and <paramref name="b"/> is routable.</summary>
    public bool HasLink(PubKey a, PubKey b) => _links.Contains(a.CompareTo(b) < 0 ? (a, b) : (b, a));

    /// <summary>True when <paramref name="node"/> has at least one routable link.</summary>
    public bool Contains(PubKey node) => _graph.Contains(node);
}
