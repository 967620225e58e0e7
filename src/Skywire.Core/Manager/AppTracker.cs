using Skywire.Core.Channels;
using Skywire.Protocol;
using Skywire.Protocol.Control;

namespace Skywire.Core.Manager;

/// <summary>An app as the tracker keeps it (a value: replaced, never changed in place).</summary>
/// <param name="Node">The node that registered it (its owner): the only one that may change or remove it.</param>
/// <param name="Name">Unique per node.</param>
/// <param name="Type">What it is ("socks-server", "nc", ...).</param>
/// <param name="LastSeen">Its registration or latest heartbeat.</param>
public sealed record AppRecord(PubKey Node, string Name, string Type, DateTimeOffset LastSeen);

/// <summary>
/// The app tracker: apps by (owner node, name). Every change names the owner, which is the authenticated key of
/// the control connection it came on, so no node can register, refresh or remove another node's app. A node holds
/// at most <see cref="ManagerLimits.MaxAppsPerNode"/> apps. Thread-safe; records are values, so they could live in
/// a shared store (heartbeats would then be leases).
/// </summary>
public sealed class AppTracker
{
    /// <summary>Longest app name or type (the app API's limit too).</summary>
    public const int MaxNameLength = 64;

    private readonly object _sync = new();
    private readonly Dictionary<PubKey, Dictionary<string, AppRecord>> _byNode = [];
    private readonly int _maxPerNode;

    /// <param name="maxPerNode">Apps one node may hold.</param>
    public AppTracker(int maxPerNode)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(maxPerNode, 1);
        _maxPerNode = maxPerNode;
    }

    /// <summary>How many apps are tracked.</summary>
    public int Count
    {
        get
        {
            lock (_sync)
            {
                return _byNode.Values.Sum(a => a.Count);
            }
        }
    }

    /// <summary>Registers (or refreshes, with a new type) an app of <paramref name="owner"/>.</summary>
    /// <exception cref="ControlException">BadRequest for an invalid name or type; LimitExceeded when the node holds its maximum of apps.</exception>
    public AppRecord Register(PubKey owner, string name, string type, DateTimeOffset now)
    {
        ValidateName(name, "app name");
        ValidateName(type, "app type");
        lock (_sync)
        {
            if (!_byNode.TryGetValue(owner, out var apps))
            {
                _byNode[owner] = apps = new Dictionary<string, AppRecord>(StringComparer.Ordinal);
            }

            if (!apps.ContainsKey(name) && apps.Count >= _maxPerNode)
            {
                throw new ControlException(ControlErrorCode.LimitExceeded,
                    $"this node already has {apps.Count} apps in the tracker, the most a node may have (unregister one first)");
            }

            var record = new AppRecord(owner, name, type, now);
            apps[name] = record;
            return record;
        }
    }

    /// <summary>Removes an app of <paramref name="owner"/>; false when it has none of that name.</summary>
    public bool Unregister(PubKey owner, string name)
    {
        lock (_sync)
        {
            if (!_byNode.TryGetValue(owner, out var apps) || !apps.Remove(name))
            {
                return false;
            }

            if (apps.Count == 0)
            {
                _byNode.Remove(owner);
            }

            return true;
        }
    }

    /// <summary>Marks apps of <paramref name="owner"/> alive; names it does not own are ignored.</summary>
    public void Heartbeat(PubKey owner, IEnumerable<string> names, DateTimeOffset now)
    {
        ArgumentNullException.ThrowIfNull(names);
        lock (_sync)
        {
            if (!_byNode.TryGetValue(owner, out var apps))
            {
                return;
            }

            foreach (var name in names)
            {
                if (name is not null && apps.TryGetValue(name, out var app))
                {
                    apps[name] = app with { LastSeen = now };
                }
            }
        }
    }

    /// <summary>Removes every app of a node (it went offline); returns how many.</summary>
    public int RemoveNode(PubKey owner)
    {
        lock (_sync)
        {
            return _byNode.Remove(owner, out var apps) ? apps.Count : 0;
        }
    }

    /// <summary>Removes apps last seen before <paramref name="cutoff"/>; returns them.</summary>
    public IReadOnlyList<AppRecord> Expire(DateTimeOffset cutoff)
    {
        lock (_sync)
        {
            var dead = _byNode.Values.SelectMany(a => a.Values).Where(a => a.LastSeen < cutoff).ToList();
            foreach (var app in dead)
            {
                Unregister(app.Node, app.Name);
            }

            return dead;
        }
    }

    /// <summary>The names of a node's apps, in ordinal order.</summary>
    public IReadOnlyList<string> NamesOf(PubKey node)
    {
        lock (_sync)
        {
            return _byNode.TryGetValue(node, out var apps) ? [.. apps.Keys.Order(StringComparer.Ordinal)] : [];
        }
    }

    /// <summary>Apps matching a query, ordered by name, then node.</summary>
    /// <param name="by">"all" (or empty), "name" or "type".</param>
    /// <param name="value">The name or type for "name" and "type".</param>
    /// <exception cref="ControlException">BadRequest for an unknown <paramref name="by"/>.</exception>
    public IReadOnlyList<AppRecord> Query(string? by, string? value)
    {
        Func<AppRecord, bool> match = by switch
        {
            "all" or "" or null => _ => true, // null: a request that left "by" out (JSON init defaults do not survive deserialization)
            "name" => a => a.Name == value,
            "type" => a => a.Type == value,
            _ => throw new ControlException(ControlErrorCode.BadRequest, $"unknown app query '{Quote.Of(by)}' (all, name, type)"),
        };
        lock (_sync)
        {
            return [.. _byNode.Values.SelectMany(a => a.Values).Where(match)
                .OrderBy(a => a.Name, StringComparer.Ordinal).ThenBy(a => a.Node)];
        }
    }

    private static void ValidateName(string value, string what)
    {
        if (string.IsNullOrEmpty(value) || value.Length > MaxNameLength || value.Any(c => char.IsControl(c) || c == '/' || char.IsWhiteSpace(c)))
        {
            throw new ControlException(ControlErrorCode.BadRequest, $"invalid {what} '{Quote.Of(value, MaxNameLength)}' (1-64 characters, no spaces, '/' or control characters)");
        }
    }
}
