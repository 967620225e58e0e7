using Skywire.Protocol;

namespace Skywire.Core.Manager;

/// <summary>A standing intent: node <see cref="From"/> keeps a link open to node <see cref="To"/> (docs/protocol.md §4.5).</summary>
/// <param name="From">The end that opens the link (the one asked by <c>LinkNodes</c>, or the handshake initiator a node reported).</param>
/// <param name="To">The end it links to (reached at its registered link address).</param>
/// <param name="Since">When the manager took the intent.</param>
public sealed record LinkIntent(PubKey From, PubKey To, DateTimeOffset Since);

/// <summary>
/// The links the manager keeps open: one intent per unordered pair of nodes, from <c>LinkNodes</c> (cli), auto-link, or
/// adopted from the link reports of nodes (a restarted manager learns the links that were up). The controller re-opens
/// a link whose intent stands whenever both ends are online and the link is not confirmed (<see cref="MeshGraph"/>).
/// Holds values only (the retry state is the controller's). Thread-safe.
/// </summary>
public sealed class LinkIntents
{
    private readonly Lock _sync = new();
    private readonly Dictionary<(PubKey, PubKey), LinkIntent> _intents = [];

    /// <summary>The number of intents.</summary>
    public int Count
    {
        get
        {
            lock (_sync)
            {
                return _intents.Count;
            }
        }
    }

    /// <summary>The pair's key: the two ends in key order (an intent is one per pair, whichever end opens it).</summary>
    public static (PubKey, PubKey) PairOf(PubKey a, PubKey b) => a.CompareTo(b) < 0 ? (a, b) : (b, a);

    /// <summary>Sets the intent <paramref name="from"/> → <paramref name="to"/>, replacing the pair's previous direction.</summary>
    /// <returns>The intent in force.</returns>
    public LinkIntent Set(PubKey from, PubKey to, DateTimeOffset now)
    {
        lock (_sync)
        {
            var pair = PairOf(from, to);
            if (_intents.TryGetValue(pair, out var existing) && existing.From == from)
            {
                return existing;
            }

            return _intents[pair] = new LinkIntent(from, to, now);
        }
    }

    /// <summary>Adds the intent unless the pair already has one (either direction).</summary>
    /// <returns>True when it was added.</returns>
    public bool TryAdd(PubKey from, PubKey to, DateTimeOffset now)
    {
        lock (_sync)
        {
            return _intents.TryAdd(PairOf(from, to), new LinkIntent(from, to, now));
        }
    }

    /// <summary>The pair's intent, or null.</summary>
    public LinkIntent? Get(PubKey a, PubKey b)
    {
        lock (_sync)
        {
            return _intents.GetValueOrDefault(PairOf(a, b));
        }
    }

    /// <summary>Withdraws the pair's intent; false when there was none.</summary>
    public bool Remove(PubKey a, PubKey b)
    {
        lock (_sync)
        {
            return _intents.Remove(PairOf(a, b));
        }
    }

    /// <summary>Withdraws every intent of <paramref name="node"/> (it was forgotten).</summary>
    public void RemoveNode(PubKey node)
    {
        lock (_sync)
        {
            foreach (var pair in _intents.Keys.Where(p => p.Item1 == node || p.Item2 == node).ToList())
            {
                _intents.Remove(pair);
            }
        }
    }

    /// <summary>Every intent now.</summary>
    public IReadOnlyList<LinkIntent> Snapshot()
    {
        lock (_sync)
        {
            return [.. _intents.Values];
        }
    }

    /// <summary>The intents <paramref name="node"/> is an end of.</summary>
    public IReadOnlyList<LinkIntent> Of(PubKey node)
    {
        lock (_sync)
        {
            return [.. _intents.Values.Where(i => i.From == node || i.To == node)];
        }
    }
}
