using Skywire.Protocol;
using Skywire.Protocol.Messenger;

namespace Skywire.Core.Messenger;

/// <summary>
/// The discovery directory (docs/messenger.md "Discovery"): each key offers up to
/// <see cref="MessengerProtocol.MaxServicesPerKey"/> named services with a type, attributes and an optional allow-list;
/// entries expire unless offered again before their TTL ends. Queries match by key, type, name and attributes (all
/// given criteria), hide entries whose allow-list excludes the asker, and page in (key, name) order with a cursor.
/// Thread-safe.
/// </summary>
public sealed class ServiceDirectory
{
    private readonly TimeProvider _time;
    private readonly TimeSpan _defaultTtl;
    private readonly TimeSpan _maxTtl;
    private readonly int _maxEntries;
    private readonly Lock _lock = new();
    private readonly Dictionary<PubKey, Dictionary<string, Entry>> _byOwner = [];
    private int _count;

    /// <param name="timeProvider">Clock for expiry.</param>
    /// <param name="defaultTtl">TTL when an offer gives none.</param>
    /// <param name="maxTtl">Longest TTL an offer may ask for.</param>
    /// <param name="maxEntries">Entries over all keys; an offer that would exceed it is refused.</param>
    public ServiceDirectory(TimeProvider? timeProvider, TimeSpan defaultTtl, TimeSpan maxTtl, int maxEntries = 100_000)
    {
        _time = timeProvider ?? TimeProvider.System;
        _defaultTtl = defaultTtl;
        _maxTtl = maxTtl;
        _maxEntries = maxEntries;
    }

    /// <summary>Live (unexpired) entries.</summary>
    public int Count
    {
        get
        {
            lock (_lock)
            {
                PruneLocked();
                return _count;
            }
        }
    }

    /// <summary>Adds or refreshes <paramref name="owner"/>'s services (by name); other services of the owner keep their own expiry.</summary>
    /// <exception cref="MessengerException">BadRequest for invalid offers, Unavailable when the directory is full.</exception>
    public OfferResult Offer(PubKey owner, OfferRequest request)
    {
        ArgumentNullException.ThrowIfNull(request);
        var ttl = request.TtlMs <= 0 ? _defaultTtl : TimeSpan.FromMilliseconds(Math.Min(request.TtlMs, (long)_maxTtl.TotalMilliseconds));
        if (ttl < TimeSpan.FromSeconds(1))
        {
            ttl = TimeSpan.FromSeconds(1);
        }

        var validated = request.Services.Select(Validate).ToList();
        if (validated.Select(v => v.Name).Distinct(StringComparer.Ordinal).Count() != validated.Count)
        {
            throw Bad("duplicate service names in one offer");
        }

        var expires = _time.GetUtcNow() + ttl;
        lock (_lock)
        {
            PruneLocked();
            _byOwner.TryGetValue(owner, out var mine);
            var existing = mine?.Count ?? 0;
            var added = validated.Count(v => mine is null || !mine.ContainsKey(v.Name));
            if (existing + added > MessengerProtocol.MaxServicesPerKey)
            {
                throw Bad($"a key offers at most {MessengerProtocol.MaxServicesPerKey} services");
            }

            if (_count + added > _maxEntries)
            {
                throw new MessengerException(MessengerErrorCode.Unavailable, "the directory is full");
            }

            if (mine is null)
            {
                mine = new Dictionary<string, Entry>(StringComparer.Ordinal);
                _byOwner[owner] = mine;
            }

            foreach (var v in validated)
            {
                mine[v.Name] = v with { Owner = owner, OwnerHex = owner.ToString(), ExpiresAt = expires };
            }

            _count += added;
        }

        return new OfferResult { ExpiresAtMs = expires.ToUnixTimeMilliseconds(), TtlMs = (long)ttl.TotalMilliseconds };
    }

    /// <summary>The names <paramref name="owner"/> offers now.</summary>
    public IReadOnlyList<string> NamesOf(PubKey owner)
    {
        lock (_lock)
        {
            return _byOwner.TryGetValue(owner, out var mine) ? [.. mine.Keys] : [];
        }
    }

    /// <summary>
    /// An entry another messenger (<paramref name="origin"/>) holds, read from the shared store: validated as an offer
    /// (false when it is not valid, or would go over the directory's limits), its expiry capped at the longest TTL.
    /// </summary>
    public bool ApplyRemote(PubKey origin, PubKey owner, ServiceOffer offer, DateTimeOffset expires)
    {
        ArgumentNullException.ThrowIfNull(offer);
        Entry entry;
        try
        {
            entry = Validate(offer);
        }
        catch (MessengerException)
        {
            return false;
        }

        var now = _time.GetUtcNow();
        if (expires > now + _maxTtl)
        {
            expires = now + _maxTtl;
        }

        lock (_lock)
        {
            PruneLocked();
            _byOwner.TryGetValue(owner, out var mine);
            var isNew = mine is null || !mine.ContainsKey(entry.Name);
            if (isNew && ((mine?.Count ?? 0) >= MessengerProtocol.MaxServicesPerKey || _count >= _maxEntries))
            {
                return false;
            }

            if (mine is null)
            {
                mine = new Dictionary<string, Entry>(StringComparer.Ordinal);
                _byOwner[owner] = mine;
            }

            mine[entry.Name] = entry with { Owner = owner, OwnerHex = owner.ToString(), ExpiresAt = expires, Origin = origin };
            if (isNew)
            {
                _count++;
            }
        }

        return true;
    }

    /// <summary>Removes an entry that came from <paramref name="origin"/> (its key left the store); a local offer of the same name stays.</summary>
    public void RemoveRemote(PubKey origin, PubKey owner, string name)
    {
        lock (_lock)
        {
            if (_byOwner.TryGetValue(owner, out var mine) && mine.TryGetValue(name, out var entry) && entry.Origin == origin)
            {
                mine.Remove(name);
                _count--;
                if (mine.Count == 0)
                {
                    _byOwner.Remove(owner);
                }
            }
        }
    }

    /// <summary>Withdraws services by name; an empty list withdraws all of the owner's.</summary>
    public void Withdraw(PubKey owner, IReadOnlyCollection<string> names)
    {
        ArgumentNullException.ThrowIfNull(names);
        lock (_lock)
        {
            if (!_byOwner.TryGetValue(owner, out var mine))
            {
                return;
            }

            if (names.Count == 0)
            {
                _count -= mine.Count;
                _byOwner.Remove(owner);
                return;
            }

            foreach (var name in names)
            {
                if (mine.Remove(name))
                {
                    _count--;
                }
            }

            if (mine.Count == 0)
            {
                _byOwner.Remove(owner);
            }
        }
    }

    /// <summary>One page of entries matching <paramref name="query"/> that <paramref name="asker"/> may see.</summary>
    /// <param name="asker">The authenticated key asking (allow-lists are checked against it).</param>
    /// <param name="query">Criteria and paging.</param>
    /// <param name="isOnline">Tells whether a key is connected now.</param>
    public ServiceQueryResult Query(PubKey asker, ServiceQuery query, Func<PubKey, bool>? isOnline = null)
    {
        ArgumentNullException.ThrowIfNull(query);
        var limit = query.Limit == 0 ? MessengerProtocol.DefaultQueryLimit : query.Limit;
        if (limit is < 1 or > MessengerProtocol.MaxQueryLimit)
        {
            throw Bad($"limit must be 1-{MessengerProtocol.MaxQueryLimit}");
        }

        PubKey? onlyKey = null;
        if (query.Key is not null)
        {
            onlyKey = PubKey.TryParse(query.Key, out var k) ? k : throw Bad("key is not a public key");
        }

        var now = _time.GetUtcNow();
        List<Entry> matches;
        lock (_lock)
        {
            PruneLocked();
            IEnumerable<Entry> candidates = onlyKey is { } only
                ? (_byOwner.TryGetValue(only, out var mine) ? mine.Values : [])
                : _byOwner.Values.SelectMany(d => d.Values);
            matches = [.. candidates.Where(e => e.ExpiresAt > now && Matches(e, query) && (e.Allow is null || e.Owner == asker || e.Allow.Contains(asker)))];
        }

        matches.Sort((a, b) => string.CompareOrdinal(a.Cursor, b.Cursor));
        var start = 0;
        if (query.After is not null)
        {
            while (start < matches.Count && string.CompareOrdinal(matches[start].Cursor, query.After) <= 0)
            {
                start++;
            }
        }

        var page = matches.Skip(start).Take(limit).ToList();
        var more = start + page.Count < matches.Count;
        return new ServiceQueryResult
        {
            Total = matches.Count,
            Next = more ? page[^1].Cursor : null,
            Entries = [.. page.Select(e => new ServiceEntry
            {
                Key = e.OwnerHex,
                Name = e.Name,
                Type = e.Type,
                Attributes = e.Attributes is null ? null : new Dictionary<string, string>(e.Attributes, StringComparer.Ordinal),
                Online = isOnline?.Invoke(e.Owner) ?? false,
                ExpiresAtMs = e.ExpiresAt.ToUnixTimeMilliseconds(),
            })],
        };
    }

    private static bool Matches(Entry e, ServiceQuery q)
    {
        if (q.Type is not null && !string.Equals(e.Type, q.Type, StringComparison.Ordinal))
        {
            return false;
        }

        if (q.Name is not null && !string.Equals(e.Name, q.Name, StringComparison.Ordinal))
        {
            return false;
        }

        if (q.Attributes is not null)
        {
            foreach (var (k, v) in q.Attributes)
            {
                if (e.Attributes is null || !e.Attributes.TryGetValue(k, out var have) || !string.Equals(have, v, StringComparison.Ordinal))
                {
                    return false;
                }
            }
        }

        return true;
    }

    private void PruneLocked()
    {
        var now = _time.GetUtcNow();
        List<PubKey>? empty = null;
        foreach (var (owner, mine) in _byOwner)
        {
            List<string>? dead = null;
            foreach (var (name, entry) in mine)
            {
                if (entry.ExpiresAt <= now)
                {
                    (dead ??= []).Add(name);
                }
            }

            if (dead is not null)
            {
                foreach (var name in dead)
                {
                    mine.Remove(name);
                    _count--;
                }

                if (mine.Count == 0)
                {
                    (empty ??= []).Add(owner);
                }
            }
        }

        if (empty is not null)
        {
            foreach (var owner in empty)
            {
                _byOwner.Remove(owner);
            }
        }
    }

    private static Entry Validate(ServiceOffer offer)
    {
        if (offer is null)
        {
            throw Bad("null service");
        }

        CheckText(offer.Name, MessengerProtocol.MaxNameLength, "name");
        CheckText(offer.Type, MessengerProtocol.MaxNameLength, "type");
        Dictionary<string, string>? attributes = null;
        if (offer.Attributes is { Count: > 0 })
        {
            if (offer.Attributes.Count > MessengerProtocol.MaxAttributes)
            {
                throw Bad($"at most {MessengerProtocol.MaxAttributes} attributes");
            }

            foreach (var (k, v) in offer.Attributes)
            {
                CheckText(k, MessengerProtocol.MaxAttributeKeyLength, "attribute name");
                if (v is null || v.Length > MessengerProtocol.MaxAttributeValueLength)
                {
                    throw Bad($"attribute values are at most {MessengerProtocol.MaxAttributeValueLength} characters");
                }
            }

            attributes = new Dictionary<string, string>(offer.Attributes, StringComparer.Ordinal);
        }

        HashSet<PubKey>? allow = null;
        if (offer.AllowKeys is not null)
        {
            if (offer.AllowKeys.Count > MessengerProtocol.MaxAllowKeys)
            {
                throw Bad($"an allow-list has at most {MessengerProtocol.MaxAllowKeys} keys");
            }

            allow = [];
            foreach (var hex in offer.AllowKeys)
            {
                allow.Add(PubKey.TryParse(hex, out var key) ? key : throw Bad($"'{hex}' in the allow-list is not a public key"));
            }
        }

        return new Entry(default, "", offer.Name, offer.Type, attributes, allow, default);
    }

    private static void CheckText(string? text, int max, string what)
    {
        if (string.IsNullOrEmpty(text) || text.Length > max || text.Any(char.IsControl))
        {
            throw Bad($"{what} must be 1-{max} printable characters");
        }
    }

    private static MessengerException Bad(string message) => new(MessengerErrorCode.BadRequest, message);

    private sealed record Entry(PubKey Owner, string OwnerHex, string Name, string Type, Dictionary<string, string>? Attributes, HashSet<PubKey>? Allow, DateTimeOffset ExpiresAt)
    {
        /// <summary>The messenger that holds the entry, when it came from the shared store; null for an offer made here.</summary>
        public PubKey? Origin { get; init; }

        public string Cursor => OwnerHex + "/" + Name;
    }
}
