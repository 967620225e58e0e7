using System.Collections.Concurrent;
using Skywire.Core.Metering;
using Skywire.Core.Sessions;
using Skywire.Protocol;

namespace Skywire.Core.Forwarding;

internal readonly record struct RuleKey(PubKey InLink, uint InRoute);

/// <summary>
/// A rule in the table. Counters are updated with Interlocked from the receive thread. <see cref="Cap"/> is the
/// metering gate (docs/metering.md "Live path"): a packet that would take <see cref="Bytes"/> past it is dropped and
/// counted in <see cref="Capped"/>, not forwarded; it stays <see cref="long.MaxValue"/> on unmetered routes.
/// </summary>
internal sealed class RuleEntry : IHopCounter
{
    public RuleEntry(PubKey inLink, uint inRoute, RouteAction action, PubKey outLink, uint outRoute, long expiresAt, SecureSession? session)
    {
        InLink = inLink;
        InRoute = inRoute;
        Action = action;
        OutLink = outLink;
        OutRoute = outRoute;
        ExpiresAt = expiresAt;
        Session = session;
    }

    public PubKey InLink { get; }

    public uint InRoute { get; }

    public RouteAction Action { get; }

    public PubKey OutLink { get; }

    public uint OutRoute { get; }

    public SecureSession? Session { get; }

    /// <summary>TimeProvider timestamp after which the rule is void; long.MaxValue: never.</summary>
    public long ExpiresAt;

    public long Packets;

    public long Bytes;

    /// <summary>Cumulative byte cap of a metered route (the source's latest spend authorization).</summary>
    public long Cap = long.MaxValue;

    /// <summary>Packets dropped at the cap.</summary>
    public long Capped;

    ulong IHopCounter.Bytes => (ulong)Interlocked.Read(ref Bytes);

    ulong IHopCounter.Frames => (ulong)Interlocked.Read(ref Packets);

    public void Count(int bytes)
    {
        Interlocked.Increment(ref Packets);
        Interlocked.Add(ref Bytes, bytes);
    }

    /// <summary>True when <paramref name="bytes"/> more would pass the cap (one volatile read on unmetered routes).</summary>
    public bool OverCap(int bytes)
    {
        var cap = Volatile.Read(ref Cap);
        return cap != long.MaxValue && Volatile.Read(ref Bytes) + bytes > cap;
    }
}

/// <summary>
/// The label table: (incoming link, incoming route id) to an action. Lock-free reads on the
/// receive thread (ConcurrentDictionary with a struct key: no allocation per lookup);
/// installs and removals come from the control plane.
/// </summary>
internal sealed class RuleTable
{
    private readonly ConcurrentDictionary<RuleKey, RuleEntry> _rules = new();
    private readonly ConcurrentDictionary<RuleKey, SendMeter> _sendMeters = new();
    private readonly TimeProvider _time;
    private readonly Lock _sendMeterLock = new();
    private int _sendMeterCount;

    public RuleTable(TimeProvider time) => _time = time;

    public int Count => _rules.Count;

    /// <summary>The send meter of (outgoing link, label), or null; a plain field read when no route is metered.</summary>
    public SendMeter? FindSendMeter(PubKey outLink, uint outRoute) =>
        Volatile.Read(ref _sendMeterCount) != 0 && _sendMeters.TryGetValue(new RuleKey(outLink, outRoute), out var meter) ? meter : null;

    /// <summary>Adds (or returns) the send meter of (outgoing link, label).</summary>
    public SendMeter AddSendMeter(PubKey outLink, uint outRoute)
    {
        lock (_sendMeterLock)
        {
            var meter = _sendMeters.GetOrAdd(new RuleKey(outLink, outRoute), _ => new SendMeter(outLink, outRoute));
            Volatile.Write(ref _sendMeterCount, _sendMeters.Count);
            return meter;
        }
    }

    /// <summary>Removes a send meter (the metered route ended).</summary>
    public void RemoveSendMeter(PubKey outLink, uint outRoute, SendMeter meter)
    {
        lock (_sendMeterLock)
        {
            _sendMeters.TryRemove(new KeyValuePair<RuleKey, SendMeter>(new RuleKey(outLink, outRoute), meter));
            Volatile.Write(ref _sendMeterCount, _sendMeters.Count);
            meter.Discard();
        }
    }

    /// <summary>The live entry of (incoming link, label) without expiring it, or null (the metering agent's lookup).</summary>
    public RuleEntry? Peek(PubKey inLink, uint inRoute) => _rules.TryGetValue(new RuleKey(inLink, inRoute), out var entry) ? entry : null;

    public void Install(RouteRule rule)
    {
        rule.Validate();
        var expires = ExpiryFor(rule.Lifetime);
        _rules.AddOrUpdate(
            new RuleKey(rule.InLink, rule.InRoute),
            _ => new RuleEntry(rule.InLink, rule.InRoute, RouteAction.Forward, rule.OutLink, rule.OutRoute, expires, null),
            (_, existing) =>
            {
                // A refresh of the same rule keeps its counters; a changed rule starts anew.
                if (existing.Action == RouteAction.Forward && existing.OutLink == rule.OutLink && existing.OutRoute == rule.OutRoute)
                {
                    Volatile.Write(ref existing.ExpiresAt, expires);
                    return existing;
                }

                return new RuleEntry(rule.InLink, rule.InRoute, RouteAction.Forward, rule.OutLink, rule.OutRoute, expires, null);
            });
    }

    public void InstallLocal(PubKey inLink, uint inRoute, SecureSession session, TimeSpan? lifetime)
    {
        var expires = lifetime is { } l ? ExpiryFor(l) : long.MaxValue;
        var route = session.Route;
        _rules.AddOrUpdate(
            new RuleKey(inLink, inRoute),
            _ => new RuleEntry(inLink, inRoute, RouteAction.Local, route.OutLink, route.OutRoute, expires, session),
            (_, existing) =>
            {
                if (existing.Action == RouteAction.Local && ReferenceEquals(existing.Session, session))
                {
                    Volatile.Write(ref existing.ExpiresAt, expires);
                    return existing;
                }

                return new RuleEntry(inLink, inRoute, RouteAction.Local, route.OutLink, route.OutRoute, expires, session);
            });
    }

    public bool Remove(PubKey inLink, uint inRoute) => _rules.TryRemove(new RuleKey(inLink, inRoute), out _);

    public void RemoveSession(SecureSession session)
    {
        foreach (var pair in _rules)
        {
            if (ReferenceEquals(pair.Value.Session, session))
            {
                _rules.TryRemove(pair);
            }
        }
    }

    /// <summary>The live rule for the key, or null when absent or expired (an expired rule is removed).</summary>
    public RuleEntry? Find(PubKey inLink, uint inRoute, out bool expired)
    {
        expired = false;
        var key = new RuleKey(inLink, inRoute);
        if (!_rules.TryGetValue(key, out var entry))
        {
            return null;
        }

        if (Volatile.Read(ref entry.ExpiresAt) <= _time.GetTimestamp())
        {
            _rules.TryRemove(new KeyValuePair<RuleKey, RuleEntry>(key, entry));
            expired = true;
            return null;
        }

        return entry;
    }

    /// <summary>
    /// Keeps every live rule for at least <paramref name="atLeast"/> from now (rules that would lapse sooner are pushed
    /// out; expired ones stay expired). The node holds its routes this way while its manager is away. Returns how many moved.
    /// </summary>
    public int Hold(TimeSpan atLeast)
    {
        var now = _time.GetTimestamp();
        var until = ExpiryFor(atLeast);
        var held = 0;
        foreach (var entry in _rules.Values)
        {
            var expires = Volatile.Read(ref entry.ExpiresAt);
            if (expires > now && expires < until && Interlocked.CompareExchange(ref entry.ExpiresAt, until, expires) == expires)
            {
                held++;
            }
        }

        return held;
    }

    /// <summary>Adds the incoming and outgoing link of every live rule to <paramref name="peers"/> (links that carry routes).</summary>
    public void AddLinksInUse(HashSet<PubKey> peers)
    {
        var now = _time.GetTimestamp();
        foreach (var entry in _rules.Values)
        {
            if (Volatile.Read(ref entry.ExpiresAt) > now)
            {
                peers.Add(entry.InLink);
                peers.Add(entry.OutLink);
            }
        }
    }

    /// <summary>Removes every expired rule; returns how many.</summary>
    public int Sweep()
    {
        var now = _time.GetTimestamp();
        var removed = 0;
        foreach (var pair in _rules)
        {
            if (Volatile.Read(ref pair.Value.ExpiresAt) <= now && _rules.TryRemove(pair))
            {
                removed++;
            }
        }

        return removed;
    }

    public IReadOnlyList<RouteRuleInfo> Snapshot()
    {
        var now = _time.GetTimestamp();
        var nowUtc = _time.GetUtcNow();
        var list = new List<RouteRuleInfo>(_rules.Count);
        foreach (var entry in _rules.Values)
        {
            var expires = Volatile.Read(ref entry.ExpiresAt);
            var at = expires == long.MaxValue
                ? DateTimeOffset.MaxValue
                : nowUtc + TimeSpan.FromSeconds((double)(expires - now) / _time.TimestampFrequency);
            list.Add(new RouteRuleInfo(
                entry.InLink,
                entry.InRoute,
                entry.Action,
                entry.OutLink,
                entry.OutRoute,
                at,
                Interlocked.Read(ref entry.Packets),
                Interlocked.Read(ref entry.Bytes),
                entry.Session?.SessionId ?? 0));
        }

        return list;
    }

    private long ExpiryFor(TimeSpan lifetime)
    {
        var ticks = lifetime.TotalSeconds * _time.TimestampFrequency;
        return ticks >= long.MaxValue / 2 ? long.MaxValue : _time.GetTimestamp() + (long)ticks;
    }
}
