using System.Buffers.Binary;
using System.Text;
using Skywire.Core.Crypto;
using Skywire.Core.Crypto.Noise;
using Skywire.Protocol;
using Skywire.Protocol.Sessions;

namespace Skywire.Core.Sessions;

/// <summary>
/// The Noise IK exchange of one end-to-end session (docs/protocol.md §6.1): writing and reading HandshakeInit and
/// HandshakeResponse packets, the initiator's retries (250 ms doubling to 2 s, alternating to ChaCha20-Poly1305 from
/// the third attempt when AES-GCM is preferred), and the responder's refusal of replayed inits (timestamps must
/// grow). It produces <see cref="SessionKeys"/>; it never sends, counts or logs: <see cref="SecureSession"/> does.
/// </summary>
/// <remarks>
/// Not thread-safe: every member except <see cref="ReadInit"/> (the expensive part of answering, which touches no
/// state of this object) is called under the session's lock. Handshake indexes and rekeying (issue 13) belong here.
/// </remarks>
internal sealed class SessionHandshake : IDisposable
{
    private const int HeaderLength = 4; // type, aead, two reserved zero bytes
    private const int TimestampLength = 8;

    private readonly KeyPair _identity;
    private readonly PubKey _peer;
    private readonly ulong _sessionId;
    private readonly AeadAlgorithmId _preferred;
    private readonly TimeProvider _time;
    private HandshakeState? _pending;
    private AeadAlgorithmId _pendingAead;
    private int _attempts;
    private long _nextAttemptAt;
    private ulong _lastInitTimestamp;

    public SessionHandshake(KeyPair identity, PubKey peer, ulong sessionId, AeadAlgorithmId preferred, TimeProvider time)
    {
        _identity = identity;
        _peer = peer;
        _sessionId = sessionId;
        _preferred = preferred;
        _time = time;
    }

    /// <summary>When the initiator's next attempt is due (timestamp of the session's <see cref="TimeProvider"/>).</summary>
    public long NextAttemptAt => Volatile.Read(ref _nextAttemptAt);

    /// <summary>
    /// Initiator: writes a fresh HandshakeInit into <paramref name="payload"/> (the routed payload area) and schedules
    /// the next attempt. Returns the packet's length. An earlier pending attempt is forgotten.
    /// </summary>
    public int WriteInit(Span<byte> payload)
    {
        _pending?.Dispose();
        var aead = AeadForAttempt(_attempts);
        using var staticKey = Secp256k1Dh.FromKeyPair(_identity);
        var state = new HandshakeState(HandshakePattern.IK, true, Secp256k1Dh.Instance, aead, Prologue(aead), staticKey, _peer.ToArray());
        WriteHeader(payload, SessionPacketType.HandshakeInit, aead);
        Span<byte> body = stackalloc byte[TimestampLength];
        BinaryPrimitives.WriteUInt64BigEndian(body, NextTimestamp());
        var n = state.WriteMessage(body, payload[HeaderLength..]);
        _pending = state;
        _pendingAead = aead;
        var backoff = TimeSpan.FromMilliseconds(Math.Min(2000, 250 << Math.Min(_attempts, 3)));
        _attempts++;
        Volatile.Write(ref _nextAttemptAt, _time.GetTimestamp() + (long)(backoff.TotalSeconds * _time.TimestampFrequency));
        return HeaderLength + n;
    }

    /// <summary>
    /// Initiator: reads a HandshakeResponse to the pending init. Returns the new (confirmed) keys, or null: not an
    /// answer to the pending init (<paramref name="rejected"/> null), or a forged or corrupted one (a reason; the
    /// pending init is dead and the next attempt is due at once).
    /// </summary>
    public SessionKeys? ReadResponse(ReadOnlySpan<byte> payload, out string? rejected)
    {
        rejected = null;
        var state = _pending;
        if (payload.Length != SessionLimits.HandshakeResponseLength || payload[2] != 0 || payload[3] != 0
            || state is null || (byte)_pendingAead != payload[1])
        {
            return null;
        }

        try
        {
            state.ReadMessage(payload[HeaderLength..], stackalloc byte[16]);
        }
        catch (NoiseException ex)
        {
            rejected = ex.Message;
            _pending = null;
            state.Dispose();
            Volatile.Write(ref _nextAttemptAt, 0);
            return null;
        }

        _pending = null;
        var keys = new SessionKeys(state.Split(), _pendingAead, confirmed: true);
        state.Dispose();
        return keys;
    }

    /// <summary>
    /// Responder, first step (without the session's lock: this is the Diffie-Hellman work): checks and reads a
    /// HandshakeInit. Null when it is malformed (<paramref name="rejected"/> null) or its initiator is not the peer
    /// the manager named, or it does not decrypt (a reason).
    /// </summary>
    public InitReceived? ReadInit(ReadOnlySpan<byte> payload, out string? rejected)
    {
        rejected = null;
        if (payload.Length != SessionLimits.HandshakeInitLength || payload[2] != 0 || payload[3] != 0)
        {
            return null;
        }

        var aead = (AeadAlgorithmId)payload[1];
        if (!AeadKey.IsSupported(aead))
        {
            return null;
        }

        using var staticKey = Secp256k1Dh.FromKeyPair(_identity);
        var state = new HandshakeState(HandshakePattern.IK, false, Secp256k1Dh.Instance, aead, Prologue(aead), staticKey, []);
        Span<byte> body = stackalloc byte[64];
        try
        {
            var n = state.ReadMessage(payload[HeaderLength..], body);
            if (n != TimestampLength || !state.RemoteStaticKey.SequenceEqual(_peer.ToArray()))
            {
                throw new NoiseException("unexpected initiator key or payload");
            }
        }
        catch (NoiseException ex)
        {
            state.Dispose();
            rejected = ex.Message;
            return null;
        }

        return new InitReceived(state, aead, BinaryPrimitives.ReadUInt64BigEndian(body));
    }

    /// <summary>
    /// Responder, second step (under the lock): refuses an init whose timestamp is not above the last accepted one (a
    /// replay), else writes the HandshakeResponse into <paramref name="response"/> and returns the new (unconfirmed)
    /// keys. Disposes <paramref name="init"/>.
    /// </summary>
    public SessionKeys? Respond(InitReceived init, Span<byte> response, out int length, out string? rejected)
    {
        using (init)
        {
            length = 0;
            if (init.Timestamp <= _lastInitTimestamp)
            {
                rejected = "stale handshake timestamp (replay)";
                return null;
            }

            rejected = null;
            _lastInitTimestamp = init.Timestamp;
            WriteHeader(response, SessionPacketType.HandshakeResponse, init.Aead);
            length = HeaderLength + init.State.WriteMessage([], response[HeaderLength..]);
            return new SessionKeys(init.State.Split(), init.Aead, confirmed: false);
        }
    }

    public void Dispose()
    {
        _pending?.Dispose();
        _pending = null;
    }

    private static void WriteHeader(Span<byte> payload, SessionPacketType type, AeadAlgorithmId aead)
    {
        payload[0] = (byte)type;
        payload[1] = (byte)aead;
        payload[2] = 0;
        payload[3] = 0;
    }

    private byte[] Prologue(AeadAlgorithmId aead)
    {
        var prologue = new byte[32];
        var n = Encoding.ASCII.GetBytes("skywire-session/", prologue);
        prologue[n++] = SessionLimits.Version;
        BinaryPrimitives.WriteUInt64BigEndian(prologue.AsSpan(n), _sessionId);
        n += 8;
        prologue[n++] = (byte)aead;
        return prologue[..n];
    }

    private AeadAlgorithmId AeadForAttempt(int attempt) =>
        _preferred == AeadAlgorithmId.ChaCha20Poly1305 || attempt < 2 || attempt % 2 == 0
            ? _preferred
            : AeadAlgorithmId.ChaCha20Poly1305;

    private ulong NextTimestamp()
    {
        // Strictly increasing per session even if the clock stalls: the responder refuses an init whose timestamp is
        // not above the last accepted one (replayed inits).
        var now = (ulong)_time.GetUtcNow().ToUnixTimeMilliseconds() * 1000;
        _lastInitTimestamp = Math.Max(now, _lastInitTimestamp + 1);
        return _lastInitTimestamp;
    }

    /// <summary>A HandshakeInit read by the responder, waiting for its answer.</summary>
    internal sealed class InitReceived(HandshakeState state, AeadAlgorithmId aead, ulong timestamp) : IDisposable
    {
        public HandshakeState State { get; } = state;

        public AeadAlgorithmId Aead { get; } = aead;

        public ulong Timestamp { get; } = timestamp;

        public void Dispose() => State.Dispose();
    }
}
