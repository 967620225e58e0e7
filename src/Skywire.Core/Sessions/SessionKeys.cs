using Skywire.Core.Crypto;
using Skywire.Core.Crypto.Noise;
using Skywire.Core.Links;

namespace Skywire.Core.Sessions;

/// <summary>
/// The transport keys one completed handshake of a session produced (one key per direction), named by the two
/// indexes the handshake exchanged (WireGuard's keypair): <see cref="LocalIndex"/> is what the peer writes in the
/// Data packets it seals with them, <see cref="RemoteIndex"/> what this end writes. Also the send counter, the replay
/// window of the receive direction, and whether the peer has proven it holds them.
/// </summary>
internal sealed class SessionKeys : IDisposable
{
    private long _sendCounter = -1;
    private volatile bool _peerConfirmed;

    public SessionKeys(NoiseTransport transport, AeadAlgorithmId aead, uint localIndex, uint remoteIndex, bool initiator, long createdAt)
    {
        Transport = transport;
        Aead = aead;
        LocalIndex = localIndex;
        RemoteIndex = remoteIndex;
        IsInitiator = initiator;
        CreatedAt = createdAt;
    }

    public NoiseTransport Transport { get; }

    public AeadAlgorithmId Aead { get; }

    /// <summary>Our index: the receiver index of Data packets sealed with these keys by the peer.</summary>
    public uint LocalIndex { get; }

    /// <summary>The peer's index: written in Data packets this end seals with these keys.</summary>
    public uint RemoteIndex { get; }

    /// <summary>True when this end sent the init these keys came from.</summary>
    public bool IsInitiator { get; }

    /// <summary>When the handshake completed (a timestamp of the session's clock): the age limits count from here.</summary>
    public long CreatedAt { get; }

    /// <summary>When these keys stopped being current (previous keys expire some time after); set under the session lock.</summary>
    public long RetiredAt { get; set; } = long.MaxValue;

    /// <summary>Counters accepted so far in the receive direction (moves only for authentic packets).</summary>
    public ReplayWindow Window { get; } = new();

    /// <summary>True once an authentic packet sealed with these keys arrived from the peer.</summary>
    public bool PeerConfirmed
    {
        get => _peerConfirmed;
        set => _peerConfirmed = value;
    }

    /// <summary>Data packets sealed with these keys so far.</summary>
    public ulong Sent => (ulong)(Interlocked.Read(ref _sendCounter) + 1);

    /// <summary>The next send counter, which is also the nonce: never reused with these keys.</summary>
    public ulong NextCounter() => (ulong)Interlocked.Increment(ref _sendCounter);

    /// <summary>
    /// Opens a data packet in place: false when the counter is outside the replay window or already seen
    /// (<paramref name="replay"/> set) or the tag does not verify. These are the only keys the packet's receiver
    /// index names, so nothing else is tried with the (then zeroed) buffer.
    /// </summary>
    public bool TryOpen(ulong counter, ReadOnlySpan<byte> ciphertext, Span<byte> plaintext, out bool replay)
    {
        replay = false;
        if (!Window.IsAcceptable(counter))
        {
            replay = true;
            return false;
        }

        try
        {
            if (!Transport.Receive.Open(counter, [], ciphertext, plaintext))
            {
                return false;
            }
        }
        catch (ObjectDisposedException)
        {
            return false;
        }

        // The window moves only for authentic packets.
        lock (Window)
        {
            if (!Window.TryMark(counter))
            {
                replay = true;
                return false;
            }
        }

        return true;
    }

    public void Dispose() => Transport.Dispose();
}

/// <summary>
/// The keys a session holds, each found by its local index (never by trying keys in turn): <see cref="Current"/>
/// (send and receive), <see cref="Previous"/> (receive only, for packets sealed before the last switch, until it
/// expires), and on the responder the <see cref="Next"/> keys of handshakes it answered whose initiator has not yet
/// used them (WireGuard's current/previous/next). The first authentic packet under a next key makes it current
/// (<see cref="Promote"/>); the initiator makes its keys current as soon as the response checks out
/// (<see cref="InstallCurrent"/>).
/// </summary>
/// <remarks>
/// Changes happen under the session's lock; the data path reads the fields without it (a disposed key only makes a
/// seal or an open fail, which is counted).
/// </remarks>
internal sealed class SessionKeyRing
{
    /// <summary>Handshakes the responder answered and keeps keys for until the initiator uses one.</summary>
    public const int MaxNext = 4;

    private volatile SessionKeys? _current;
    private volatile SessionKeys? _previous;
    private volatile SessionKeys[] _next = [];

    /// <summary>The keys datagrams are sealed with; null before the first handshake and after close.</summary>
    public SessionKeys? Current => _current;

    /// <summary>The keys before <see cref="Current"/>, still accepted on receive until they expire.</summary>
    public SessionKeys? Previous => _previous;

    /// <summary>Responder: answered handshakes not yet confirmed by the initiator, oldest first.</summary>
    public IReadOnlyList<SessionKeys> Next => _next;

    /// <summary>The keys whose local index is <paramref name="index"/>, or null.</summary>
    public SessionKeys? Find(uint index)
    {
        if (_current is { } current && current.LocalIndex == index)
        {
            return current;
        }

        if (_previous is { } previous && previous.LocalIndex == index)
        {
            return previous;
        }

        foreach (var keys in _next)
        {
            if (keys.LocalIndex == index)
            {
                return keys;
            }
        }

        return null;
    }

    /// <summary>Whether a local index is taken by any keys held.</summary>
    public bool InUse(uint index) => Find(index) is not null;

    /// <summary>Initiator: makes confirmed <paramref name="keys"/> current; the current ones become the previous ones.</summary>
    public void InstallCurrent(SessionKeys keys, long now)
    {
        Retire(now);
        _current = keys;
    }

    /// <summary>Responder: keeps the keys of an answered handshake until the initiator uses them (the oldest goes beyond <see cref="MaxNext"/>).</summary>
    public void AddNext(SessionKeys keys)
    {
        var next = _next;
        var kept = next.Length >= MaxNext ? next[(next.Length - MaxNext + 1)..] : next;
        if (kept.Length < next.Length)
        {
            next[0].Dispose();
        }

        _next = [.. kept, keys];
    }

    /// <summary>
    /// Responder: the peer used <paramref name="keys"/> (one of <see cref="Next"/>): they become current, the current
    /// ones previous, and the other next keys are dropped (answers to inits the initiator did not complete). False
    /// when <paramref name="keys"/> is no longer held.
    /// </summary>
    public bool Promote(SessionKeys keys, long now)
    {
        var next = _next;
        if (Array.IndexOf(next, keys) < 0)
        {
            return false;
        }

        _next = [];
        foreach (var other in next)
        {
            if (!ReferenceEquals(other, keys))
            {
                other.Dispose();
            }
        }

        Retire(now);
        _current = keys;
        return true;
    }

    /// <summary>Drops previous keys retired more than <paramref name="previousLifetime"/> ago and next keys older than <paramref name="nextLifetime"/>.</summary>
    public void Expire(long now, TimeProvider time, TimeSpan previousLifetime, TimeSpan nextLifetime)
    {
        if (_previous is { } previous && previous.RetiredAt != long.MaxValue && time.GetElapsedTime(previous.RetiredAt, now) > previousLifetime)
        {
            _previous = null;
            previous.Dispose();
        }

        var next = _next;
        if (next.Length > 0 && time.GetElapsedTime(next[0].CreatedAt, now) > nextLifetime)
        {
            var kept = next.Where(k => time.GetElapsedTime(k.CreatedAt, now) <= nextLifetime).ToArray();
            _next = kept;
            foreach (var k in next.Except(kept))
            {
                k.Dispose();
            }
        }
    }

    /// <summary>Drops every key. Caller holds the session lock.</summary>
    public void Clear()
    {
        var next = _next;
        _next = [];
        foreach (var keys in next)
        {
            keys.Dispose();
        }

        _previous?.Dispose();
        _previous = null;
        _current?.Dispose();
        _current = null;
    }

    private void Retire(long now)
    {
        _previous?.Dispose();
        _previous = _current;
        if (_previous is not null)
        {
            _previous.RetiredAt = now;
        }
    }
}
