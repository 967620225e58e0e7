using System.Collections.Concurrent;
using System.Diagnostics.CodeAnalysis;
using System.Security.Cryptography;
using Skywire.Protocol;

namespace Skywire.Core.Links;

/// <summary>
/// The links of a data plane and their index tables (wireguard-go's peer map and index table), with bounded
/// room for strangers: at most <c>maxLinks</c> links. A valid handshake needs only a key pair, which anyone can
/// make, so a link a stranger opens must not cost memory for ever:
/// <list type="bullet">
/// <item>a link this node did not ask for is removed when it goes Down before it was ever up (a handshake never
/// confirmed); one that was up and is lost (dead, closed by the peer) is kept Down, without keys, until
/// <see cref="ForgetLocked"/> (the maintenance loop, after <c>DataPlaneOptions.RememberLostLinks</c>);</item>
/// <item>when the table is full, a new stranger's link takes the place of the least valuable one, in this
/// order: a stranger's handshake never confirmed (oldest first), a link that is down or closed, a stranger's
/// up link that carries nothing (the one silent longest). Never evicted: a link this node opened and has not
/// closed (the manager asked for it), and a link that carries routes or sessions. With nothing to evict the
/// handshake is refused (<see cref="TryAdmitInbound"/> returns null);</item>
/// <item>a link this node opens is always admitted, if need be beyond the cap (the manager is trusted).</item>
/// </list>
/// Lookups are lock-free (the receive thread); admission and eviction take one lock, then the victim's gate
/// (never the other way round). Lifecycle changes of a link happen under its <see cref="Link.Gate"/>.
/// </summary>
internal sealed class LinkTable
{
    private readonly ConcurrentDictionary<PubKey, Link> _links = new();
    private readonly ConcurrentDictionary<uint, LinkSession> _sessions = new();
    private readonly ConcurrentDictionary<uint, Link> _pending = new();
    private readonly Lock _admission = new();
    private readonly int _maxLinks;
    private readonly Func<IReadOnlySet<PubKey>> _inUse;
    private readonly TimeProvider _time;
    private int _count;
    private long _evictions;

    /// <summary>The reason of the LinkDown event of an evicted link.</summary>
    public const string EvictedReason = "evicted: the link table is full";

    /// <param name="maxLinks">The cap on links (strangers' links are refused or evicted beyond it).</param>
    /// <param name="inUse">The peers whose links carry routes or sessions (never evicted); called on eviction only.</param>
    /// <param name="time">The clock.</param>
    public LinkTable(int maxLinks, Func<IReadOnlySet<PubKey>> inUse, TimeProvider time)
    {
        _maxLinks = maxLinks;
        _inUse = inUse;
        _time = time;
    }

    /// <summary>Links in the table.</summary>
    public int Count => Volatile.Read(ref _count);

    /// <summary>Links evicted to make room since the start.</summary>
    public long Evictions => Interlocked.Read(ref _evictions);

    /// <summary>Entries of the index table (each holds a session's keys).</summary>
    public int IndexCount => _sessions.Count;

    /// <summary>Handshakes this node started and awaits answers to.</summary>
    public int PendingCount => _pending.Count;

    /// <summary>A snapshot of the links.</summary>
    public ICollection<Link> Links => _links.Values;

    /// <summary>The initiator handshakes in flight.</summary>
    public IEnumerable<Link> PendingLinks => _pending.Select(p => p.Value);

    public bool TryGet(PubKey peer, [NotNullWhen(true)] out Link? link) => _links.TryGetValue(peer, out link);

    /// <summary>
    /// The link to <paramref name="peer"/> for this node to open, marked <see cref="Link.Wanted"/>: always admitted (a
    /// stranger's link may be evicted for it; <paramref name="evicted"/> as in <see cref="TryAdmitInbound"/>).
    /// </summary>
    public Link GetOrAddLocal(PubKey peer, out Eviction? evicted)
    {
        evicted = null;
        lock (_admission)
        {
            if (_links.TryGetValue(peer, out var existing))
            {
                lock (existing.Gate)
                {
                    existing.Wanted = true;
                }

                return existing;
            }

            if (_count >= _maxLinks)
            {
                TryEvictLocked(out evicted);
            }

            var link = AddLocked(peer);
            lock (link.Gate)
            {
                link.Wanted = true; // before anyone can see it as a stranger's link and evict it
            }

            return link;
        }
    }

    /// <summary>
    /// The link for a stranger's valid handshake: the existing one, a new one while there is room, a new one in
    /// place of an evicted link (<paramref name="evicted"/>: the caller counts it and raises its LinkDown when due),
    /// or null when the table is full of links that must stay.
    /// </summary>
    public Link? TryAdmitInbound(PubKey peer, out Eviction? evicted)
    {
        evicted = null;
        if (_links.TryGetValue(peer, out var existing))
        {
            return existing;
        }

        lock (_admission)
        {
            if (_links.TryGetValue(peer, out existing))
            {
                return existing;
            }

            if (_count >= _maxLinks && !TryEvictLocked(out evicted))
            {
                return null;
            }

            return AddLocked(peer);
        }
    }

    // ---- Index tables ---------------------------------------------------------------------------

    /// <summary>A random non-zero index used by no session and no pending handshake.</summary>
    public uint AllocateIndex()
    {
        while (true)
        {
            var index = (uint)RandomNumberGenerator.GetInt32(1, int.MaxValue) ^ ((uint)RandomNumberGenerator.GetInt32(0, 2) << 31);
            if (index != 0 && !_sessions.ContainsKey(index) && !_pending.ContainsKey(index))
            {
                return index;
            }
        }
    }

    public bool TryGetSession(uint index, [NotNullWhen(true)] out LinkSession? session) => _sessions.TryGetValue(index, out session);

    public bool TryGetPending(uint index, [NotNullWhen(true)] out Link? link) => _pending.TryGetValue(index, out link);

    public void AddSession(LinkSession session) => _sessions[session.LocalIndex] = session;

    /// <summary>Starts <paramref name="pending"/> as the link's handshake (one at a time: a previous one is dropped).</summary>
    public void SetPendingLocked(Link link, PendingLinkHandshake pending)
    {
        ClearPendingLocked(link);
        link.Pending = pending;
        _pending[pending.LocalIndex] = link;
    }

    /// <summary>Drops the link's handshake in flight, if any.</summary>
    public void ClearPendingLocked(Link link)
    {
        if (link.Pending is { } pending)
        {
            _pending.TryRemove(new KeyValuePair<uint, Link>(pending.LocalIndex, link));
            pending.Dispose();
            link.Pending = null;
        }
    }

    // ---- Lifecycle (under the link's gate) ------------------------------------------------------

    /// <summary>Makes <paramref name="session"/> current; the previous one stays for receiving, the one before is dropped.</summary>
    public void RotateLocked(Link link, LinkSession session)
    {
        _sessions[session.LocalIndex] = session;
        if (link.Previous is { } old)
        {
            DropSession(old);
        }

        link.Previous = link.Current;
        link.Current = session;
    }

    /// <summary>Parks <paramref name="session"/> as the responder's next keys (used for sending once the initiator confirms them).</summary>
    public void SetNextLocked(Link link, LinkSession session)
    {
        _sessions[session.LocalIndex] = session;
        if (link.Next is { } stale)
        {
            DropSession(stale);
        }

        link.Next = session;
    }

    /// <summary>Keys confirmed: the link is Up (waiters released). True when it was not Up before (a LinkUp is due).</summary>
    public bool SetUpLocked(Link link)
    {
        var now = _time.GetTimestamp();
        link.LastReceivedAt = now;
        link.LostAt = 0;
        link.UpSignal?.TrySetResult();
        link.UpSignal = null;
        if (link.State == LinkState.Up)
        {
            return false;
        }

        link.TransitionLocked(LinkState.Up);
        link.UpSinceAt = now;
        link.UpSinceUtc = _time.GetUtcNow();
        link.Probes.NextAt = 0;
        return true;
    }

    /// <summary>
    /// Takes the link to <paramref name="state"/> (Down or Closed): drops its keys and handshake, fails waiters,
    /// and removes a stranger's link that went Down before it was up from the table (one that was up is remembered:
    /// <see cref="Link.LostAt"/>). True when a LinkDown event is due (it was up, or someone waited).
    /// </summary>
    public bool MarkDownLocked(Link link, LinkState state, string reason)
    {
        var wasUp = link.State == LinkState.Up;
        var waited = link.UpSignal is not null;
        if (link.State != state)
        {
            link.TransitionLocked(state);
        }

        ClearPendingLocked(link);
        foreach (var session in new[] { link.Current, link.Previous, link.Next })
        {
            if (session is not null)
            {
                DropSession(session);
            }
        }

        link.Current = null;
        link.Previous = null;
        link.Next = null;
        link.Probes.Reset();
        if (link.UpSignal is { } signal)
        {
            signal.TrySetException(reason.Contains("timed out", StringComparison.Ordinal)
                ? new TimeoutException($"link to {link.Peer}: {reason}")
                : new IOException($"link to {link.Peer}: {reason}"));
            link.UpSignal = null;
        }

        if (state == LinkState.Down && !link.Wanted)
        {
            if (wasUp)
            {
                link.LostAt = Math.Max(1, _time.GetTimestamp());
            }
            else if (link.LostAt == 0)
            {
                RemoveLocked(link);
            }
        }
        else
        {
            link.LostAt = 0;
        }

        return wasUp || waited;
    }

    private void DropSession(LinkSession session)
    {
        _sessions.TryRemove(new KeyValuePair<uint, LinkSession>(session.LocalIndex, session));
        session.Dispose();
    }

    /// <summary>Removes a remembered lost link (<see cref="Link.LostAt"/>) from the table; the caller holds its gate.</summary>
    public void ForgetLocked(Link link)
    {
        if (link.State == LinkState.Down && !link.Wanted && link.LostAt != 0)
        {
            RemoveLocked(link);
        }
    }

    private void RemoveLocked(Link link)
    {
        if (!link.Removed && _links.TryRemove(new KeyValuePair<PubKey, Link>(link.Peer, link)))
        {
            link.Removed = true;
            Interlocked.Decrement(ref _count);
        }
    }

    private Link AddLocked(PubKey peer)
    {
        // Its handshake clock starts now: the maintenance loop must not find it "Connecting for ages" before the
        // caller has even taken its gate.
        var link = new Link(peer) { HandshakeStartedAt = _time.GetTimestamp() };
        _links[peer] = link;
        Interlocked.Increment(ref _count);
        return link;
    }

    // ---- Eviction -------------------------------------------------------------------------------

    /// <summary>
    /// Evicts the least valuable link (under the admission lock); false when every link must stay.
    /// </summary>
    private bool TryEvictLocked(out Eviction? eviction)
    {
        eviction = null;
        var inUse = _inUse();
        Link? victim = null;
        var victimRank = int.MaxValue;
        var victimAge = long.MaxValue;
        foreach (var pair in _links)
        {
            var link = pair.Value;
            if (Rank(link, inUse, out var age) is { } rank && (rank < victimRank || (rank == victimRank && age < victimAge)))
            {
                victim = link;
                victimRank = rank;
                victimAge = age;
            }
        }

        if (victim is null)
        {
            return false;
        }

        lock (victim.Gate)
        {
            if (Rank(victim, inUse, out _) is null)
            {
                return false; // it changed under us (the manager just asked for it): keep it, refuse this time
            }

            var due = victim.State is LinkState.Connecting or LinkState.Up && MarkDownLocked(victim, LinkState.Down, EvictedReason);
            RemoveLocked(victim);
            eviction = new Eviction(victim, due);
        }

        Interlocked.Increment(ref _evictions);
        return true;
    }

    /// <summary>
    /// The eviction rank of <paramref name="link"/> (lower goes first) and its age within the rank (older goes
    /// first); null when it must stay. Reads without the gate: a hint, checked again under it.
    /// </summary>
    private static int? Rank(Link link, IReadOnlySet<PubKey> inUse, out long age)
    {
        age = link.LastReceivedAt;
        if ((link.Wanted && link.State != LinkState.Closed) || inUse.Contains(link.Peer))
        {
            return null;
        }

        switch (link.State)
        {
            case LinkState.Connecting:
                age = link.HandshakeStartedAt;
                return 0;
            case LinkState.Down or LinkState.Closed:
                return 1;
            default:
                return 2;
        }
    }
}

/// <summary>A link evicted from a <see cref="LinkTable"/> to make room.</summary>
/// <param name="Link">The link (no longer in the table).</param>
/// <param name="DownEventDue">True when it was up (or awaited): a LinkDown event is due.</param>
internal readonly record struct Eviction(Link Link, bool DownEventDue);
