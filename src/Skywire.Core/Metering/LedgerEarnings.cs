using Skywire.Protocol;

namespace Skywire.Core.Metering;

/// <summary>What one node earned (as a provider) and spent (as a route's source) in one epoch, droplets.</summary>
public sealed record NodeEarnings(PubKey Node, long Earned, long Spent);

/// <summary>One closed epoch's earnings and spending per node, and when it closed (Unix ms).</summary>
public sealed record EpochEarnings(long Epoch, long ClosedAtMs, IReadOnlyList<NodeEarnings> Nodes);

/// <summary>
/// Earnings and spending per node and epoch, read from the ledger's settle entries (docs/metering.md "Operator view";
/// `skywire ledger epochs`, the viscript GUI's chart): a provider earns what a settlement credits it; a source spends
/// what settlements take from its routes' reserves (providers' pay plus the fee). Reservations and refunds move the
/// source's own money and are neither.
/// </summary>
public static class LedgerEarnings
{
    /// <summary>Every closed epoch in order (an epoch in which nothing settled lists no nodes).</summary>
    public static IReadOnlyList<EpochEarnings> PerEpoch(Ledger ledger)
    {
        ArgumentNullException.ThrowIfNull(ledger);
        var sources = ledger.Routes.ToDictionary(r => r.ReserveAccount, r => r.Terms.Source, StringComparer.Ordinal);
        var byEpoch = new SortedDictionary<long, Dictionary<PubKey, (long Earned, long Spent)>>();
        foreach (var entry in ledger.Entries.Where(e => e.Memo.StartsWith("settle ", StringComparison.Ordinal)))
        {
            if (!byEpoch.TryGetValue(entry.Epoch, out var nodes))
            {
                byEpoch[entry.Epoch] = nodes = [];
            }

            foreach (var (account, amount) in entry.Postings)
            {
                if (amount > 0 && account.StartsWith("provider:", StringComparison.Ordinal) && PubKey.TryParse(account["provider:".Length..], out var provider))
                {
                    var e = nodes.GetValueOrDefault(provider);
                    nodes[provider] = (e.Earned + amount, e.Spent);
                }
                else if (amount < 0 && sources.TryGetValue(account, out var source))
                {
                    var e = nodes.GetValueOrDefault(source);
                    nodes[source] = (e.Earned, e.Spent - amount);
                }
            }
        }

        return [.. ledger.Roots.Select(root => new EpochEarnings(root.Epoch, root.AtMs,
            byEpoch.TryGetValue(root.Epoch, out var nodes)
                ? [.. nodes.OrderBy(n => n.Key.ToString(), StringComparer.Ordinal).Select(n => new NodeEarnings(n.Key, n.Value.Earned, n.Value.Spent))]
                : []))];
    }
}
