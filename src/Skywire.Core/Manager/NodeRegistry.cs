using Skywire.Core.Channels;
using Skywire.Protocol;
using Skywire.Protocol.Control;

namespace Skywire.Core.Manager;

/// <summary>A node as the registry keeps it (a value: replaced, never changed in place).</summary>
/// <param name="Key">The node's proven public key.</param>
/// <param name="LinkAddress">The UDP address its links listen on ("ip:port"), as its hello gave it.</param>
/// <param name="ConnectedAt">When its current (or last) control connection registered.</param>
/// <param name="Generation">
/// Grows with every registration of any node: a disconnect of an older connection of the same key is told apart
/// from the current one by it (the revision an external store would give).
/// </param>
/// <param name="OfflineSince">Null while online; when its control connection closed otherwise.</param>
public sealed record NodeRecord(PubKey Key, string LinkAddress, DateTimeOffset ConnectedAt, long Generation, DateTimeOffset? OfflineSince)
{
    /// <summary>True while the node's control connection is open.</summary>
    public bool Online => OfflineSince is null;
}

/// <summary>
/// The nodes that registered with this manager, online or recently offline, keyed by public key. Holds no
/// connections (the controller keeps those, they are local to one manager process), so the records could live in a
/// shared store. Thread-safe.
/// </summary>
public sealed class NodeRegistry
{
    private readonly object _sync = new();
    private readonly Dictionary<PubKey, NodeRecord> _nodes = [];
    private long _generation;

    /// <summary>Registers a node (a previous registration of the same key is replaced); returns its record.</summary>
    public NodeRecord Connect(PubKey key, string linkAddress, DateTimeOffset now)
    {
        lock (_sync)
        {
            var record = new NodeRecord(key, linkAddress, now, ++_generation, null);
            _nodes[key] = record;
            return record;
        }
    }

    /// <summary>Marks the node offline, unless a newer registration (another generation) replaced the one that closed.</summary>
    /// <returns>True when the node went offline.</returns>
    public bool Disconnect(PubKey key, long generation, DateTimeOffset now)
    {
        lock (_sync)
        {
            if (!_nodes.TryGetValue(key, out var node) || node.Generation != generation || !node.Online)
            {
                return false;
            }

            _nodes[key] = node with { OfflineSince = now };
            return true;
        }
    }

    /// <summary>The node's record, or null.</summary>
    public NodeRecord? Get(PubKey key)
    {
        lock (_sync)
        {
            return _nodes.GetValueOrDefault(key);
        }
    }

    /// <summary>True when the node is registered and online.</summary>
    public bool IsOnline(PubKey key)
    {
        lock (_sync)
        {
            return _nodes.TryGetValue(key, out var node) && node.Online;
        }
    }

    /// <summary>True when the key is registered (online or not yet forgotten).</summary>
    public bool Contains(PubKey key)
    {
        lock (_sync)
        {
            return _nodes.ContainsKey(key);
        }
    }

    /// <summary>Every node, ordered by key.</summary>
    public IReadOnlyList<NodeRecord> Snapshot()
    {
        lock (_sync)
        {
            return [.. _nodes.Values.OrderBy(n => n.Key)];
        }
    }

    /// <summary>The keys of the online nodes.</summary>
    public HashSet<PubKey> OnlineKeys()
    {
        lock (_sync)
        {
            return [.. _nodes.Values.Where(n => n.Online).Select(n => n.Key)];
        }
    }

    /// <summary>Forgets nodes offline since before <paramref name="cutoff"/>; returns their keys.</summary>
    public IReadOnlyList<PubKey> ForgetOffline(DateTimeOffset cutoff)
    {
        lock (_sync)
        {
            var gone = _nodes.Values.Where(n => n.OfflineSince < cutoff).Select(n => n.Key).ToList();
            foreach (var key in gone)
            {
                _nodes.Remove(key);
            }

            return gone;
        }
    }

    /// <summary>Forgets the longest-offline nodes beyond <paramref name="max"/> offline ones; returns their keys.</summary>
    public IReadOnlyList<PubKey> TrimOffline(int max)
    {
        lock (_sync)
        {
            var offline = _nodes.Values.Where(n => !n.Online).ToList();
            if (offline.Count <= max)
            {
                return [];
            }

            var gone = offline.OrderBy(n => n.OfflineSince).Take(offline.Count - max).Select(n => n.Key).ToList();
            foreach (var key in gone)
            {
                _nodes.Remove(key);
            }

            return gone;
        }
    }

    /// <summary>Resolves a full key or a unique prefix of a registered node's key (either case).</summary>
    /// <exception cref="ControlException">BadRequest for an empty text; NotFound when nothing or more than one node matches.</exception>
    public PubKey Resolve(string keyOrPrefix)
    {
        ArgumentNullException.ThrowIfNull(keyOrPrefix);
        var prefix = keyOrPrefix.Trim().ToLowerInvariant();
        if (prefix.Length == 0)
        {
            throw new ControlException(ControlErrorCode.BadRequest, "empty node key");
        }

        lock (_sync)
        {
            if (PubKey.TryParse(prefix, out var exact) && _nodes.ContainsKey(exact))
            {
                return exact;
            }

            var matches = _nodes.Keys.Where(k => k.ToString().StartsWith(prefix, StringComparison.Ordinal)).Take(2).ToList();
            return matches.Count switch
            {
                1 => matches[0],
                0 => throw new ControlException(ControlErrorCode.NotFound, $"no node matches '{Quote.Of(keyOrPrefix)}'"),
                _ => throw new ControlException(ControlErrorCode.NotFound, $"'{Quote.Of(keyOrPrefix)}' matches more than one node"),
            };
        }
    }
}
