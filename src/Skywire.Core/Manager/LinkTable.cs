using Skywire.Protocol;

namespace Skywire.Core.Manager;

/// <summary>One end's word about one link (a value: replaced by the end's next report).</summary>
/// <param name="From">The node that reported it: the end this measurement belongs to.</param>
/// <param name="To">The peer it names.</param>
/// <param name="Up">Whether <paramref name="From"/> sees the link established and passing traffic.</param>
/// <param name="RttMicros">Smoothed round-trip time measured by <paramref name="From"/> (0 = unknown), clamped to 0..<see cref="LinkTable.MaxRttMicros"/>.</param>
/// <param name="Loss">Loss ratio measured by <paramref name="From"/>, clamped to 0..1.</param>
/// <param name="ReportedAt">When the manager received the report (the manager's clock; nodes' clocks are not trusted), or
/// <see cref="HeldByStore"/> for the report of a node connected to another manager.</param>
public sealed record LinkReport(PubKey From, PubKey To, bool Up, long RttMicros, double Loss, DateTimeOffset ReportedAt)
{
    /// <summary>
    /// The time of a report that another manager wrote to the shared store: it never ages here, it holds while its key
    /// does (its manager rewrites it on each change and deletes it when the node leaves or the manager dies).
    /// </summary>
    public static readonly DateTimeOffset HeldByStore = DateTimeOffset.MaxValue;
}

/// <summary>
/// What every node last said about its links, one <see cref="LinkReport"/> per (reporting node, peer). This is hearsay:
/// which links are routable is decided from it by <see cref="MeshGraph"/> (both ends, fresh). Thread-safe.
/// </summary>
public sealed class LinkTable
{
    /// <summary>Largest RTT a report may claim (60 s); larger values are clamped.</summary>
    public const long MaxRttMicros = 60_000_000;

    private readonly object _sync = new();
    private readonly Dictionary<PubKey, Dictionary<PubKey, LinkReport>> _byReporter = [];

    /// <summary>
    /// Replaces everything <paramref name="reporter"/> said before with <paramref name="links"/> (a link it no longer
    /// lists is gone). Returns true when a link it had reported up is now down or gone (routes over it need repair).
    /// </summary>
    public bool Replace(PubKey reporter, IReadOnlyCollection<LinkReport> links)
    {
        ArgumentNullException.ThrowIfNull(links);
        var next = new Dictionary<PubKey, LinkReport>(links.Count);
        foreach (var link in links)
        {
            if (link.From != reporter || link.To == reporter)
            {
                throw new ArgumentException("a node reports its own links to other nodes only", nameof(links));
            }

            next[link.To] = Clamp(link);
        }

        lock (_sync)
        {
            var wentDown = false;
            if (_byReporter.TryGetValue(reporter, out var previous))
            {
                foreach (var (peer, old) in previous)
                {
                    wentDown |= old.Up && !(next.TryGetValue(peer, out var now) && now.Up);
                }
            }

            if (next.Count == 0)
            {
                _byReporter.Remove(reporter);
            }
            else
            {
                _byReporter[reporter] = next;
            }

            return wentDown;
        }
    }

    /// <summary>Forgets what <paramref name="node"/> reported and what others reported about it (the node was forgotten).</summary>
    public void RemoveNode(PubKey node)
    {
        lock (_sync)
        {
            _byReporter.Remove(node);
            foreach (var links in _byReporter.Values)
            {
                links.Remove(node);
            }
        }
    }

    /// <summary>The report of <paramref name="from"/> about its link to <paramref name="to"/>, or null.</summary>
    public LinkReport? Get(PubKey from, PubKey to)
    {
        lock (_sync)
        {
            return _byReporter.TryGetValue(from, out var links) ? links.GetValueOrDefault(to) : null;
        }
    }

    /// <summary>Number of reports (cheap: no copy, no sort).</summary>
    public int Count
    {
        get
        {
            lock (_sync)
            {
                return _byReporter.Values.Sum(l => l.Count);
            }
        }
    }

    /// <summary>Every report, ordered by reporter, then peer.</summary>
    public IReadOnlyList<LinkReport> Snapshot()
    {
        lock (_sync)
        {
            return [.. _byReporter.Values.SelectMany(l => l.Values).OrderBy(l => l.From).ThenBy(l => l.To)];
        }
    }

    // Measurements are the reporter's claims: bounded so that no claim can break the weight arithmetic.
    private static LinkReport Clamp(LinkReport link) => link with
    {
        RttMicros = Math.Clamp(link.RttMicros, 0, MaxRttMicros),
        Loss = double.IsNaN(link.Loss) ? 1 : Math.Clamp(link.Loss, 0, 1),
    };
}
