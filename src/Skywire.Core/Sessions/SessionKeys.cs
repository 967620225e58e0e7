using Skywire.Core.Crypto;
using Skywire.Core.Crypto.Noise;
using Skywire.Core.Links;

namespace Skywire.Core.Sessions;

/// <summary>
/// The transport keys one completed handshake of a session produced (one key per direction), with the send counter,
/// the replay window of the receive direction, and whether the peer has proven it holds them (key confirmation).
/// </summary>
internal sealed class SessionKeys : IDisposable
{
    private long _sendCounter = -1;
    private volatile bool _confirmed;

    public SessionKeys(NoiseTransport transport, AeadAlgorithmId aead, bool confirmed)
    {
        Transport = transport;
        Aead = aead;
        _confirmed = confirmed;
    }

    public NoiseTransport Transport { get; }

    public AeadAlgorithmId Aead { get; }

    /// <summary>Counters accepted so far in the receive direction (moves only for authentic packets).</summary>
    public ReplayWindow Window { get; } = new();

    /// <summary>True once a packet sealed with these keys arrived from the peer (or, on the initiator, from the start).</summary>
    public bool Confirmed
    {
        get => _confirmed;
        set => _confirmed = value;
    }

    /// <summary>The next send counter, which is also the nonce: never reused with these keys.</summary>
    public ulong NextCounter() => (ulong)Interlocked.Increment(ref _sendCounter);

    /// <summary>
    /// Opens a data packet in place: false when the counter is outside the replay window or already seen
    /// (<paramref name="replay"/> set) or the tag does not verify.
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
/// The keys a session holds: the current ones (send and receive) and the previous ones (receive only, so packets
/// sealed before a new handshake completed still open). Installing new keys retires the previous ones.
/// </summary>
/// <remarks>
/// Installs and clears happen under the session's lock; the data path reads <see cref="Current"/> and
/// <see cref="Previous"/> without it (a disposed key only makes a seal or an open fail, which is counted). This is the
/// place where rekeying (issue 13) adds keys chosen by index.
/// </remarks>
internal sealed class SessionKeyRing
{
    private volatile SessionKeys? _current;
    private volatile SessionKeys? _previous;

    /// <summary>The keys datagrams are sealed with; null before the first handshake and after close.</summary>
    public SessionKeys? Current => _current;

    /// <summary>The keys before <see cref="Current"/>, still accepted on receive.</summary>
    public SessionKeys? Previous => _previous;

    /// <summary>Makes <paramref name="keys"/> current; the current keys become the previous ones. Caller holds the session lock.</summary>
    public void Install(SessionKeys keys)
    {
        _previous?.Dispose();
        _previous = _current;
        _current = keys;
    }

    /// <summary>
    /// Opens a data packet with the current keys, else the previous ones. Returns the keys that opened it, or null:
    /// then <paramref name="replay"/> tells a replay from a bad tag.
    /// </summary>
    public SessionKeys? TryOpen(ulong counter, ReadOnlySpan<byte> ciphertext, Span<byte> plaintext, out bool replay)
    {
        var current = _current;
        var currentReplay = false;
        if (current is not null && current.TryOpen(counter, ciphertext, plaintext, out currentReplay))
        {
            replay = false;
            return current;
        }

        var previous = _previous;
        var previousReplay = false;
        if (previous is not null && previous.TryOpen(counter, ciphertext, plaintext, out previousReplay))
        {
            replay = false;
            return previous;
        }

        replay = currentReplay || previousReplay;
        return null;
    }

    /// <summary>Drops every key. Caller holds the session lock.</summary>
    public void Clear()
    {
        _previous?.Dispose();
        _previous = null;
        _current?.Dispose();
        _current = null;
    }
}
