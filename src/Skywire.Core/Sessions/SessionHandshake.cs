using System.Buffers.Binary;
using System.Security.Cryptography;
using System.Text;
using Skywire.Core.Crypto;
using Skywire.Core.Crypto.Noise;
using Skywire.Protocol;
using Skywire.Protocol.Sessions;

namespace Skywire.Core.Sessions;

/// <summary>
/// The Noise IK exchange of one end-to-end session, the WireGuard way (docs/protocol.md §6.1): every init carries a
/// fresh random sender index and every response names the init it answers by that index, so a response is matched to
/// its own init and never read against another. The initiator keeps its last few inits open at once: an answer to
/// any of them completes the handshake; a late answer (to an init already superseded by a completed handshake), a
/// duplicate, or a forgery is dropped and changes nothing (the pending state is rebuilt from its ephemeral key for
/// each answer, so a bad answer cannot spoil it). Retries follow the measured round trip (RFC 9002's PTO: smoothed
/// RTT + 4 RTT variance, doubled per attempt, with jitter), alternating to ChaCha20-Poly1305 from the third attempt
/// when AES-GCM is preferred. The responder refuses replayed inits (timestamps must grow).
/// It produces <see cref="SessionKeys"/>; it never sends, counts or logs: <see cref="SecureSession"/> does.
/// </summary>
/// <remarks>
/// Not thread-safe: every member except <see cref="ReadInit"/> (the expensive part of answering, which touches no
/// state of this object) is called under the session's lock.
/// </remarks>
internal sealed class SessionHandshake : IDisposable
{
    /// <summary>Inits the initiator keeps answerable at once (a retry does not forget the previous attempts).</summary>
    public const int MaxPending = 4;

    private const int TimestampLength = 8;
    private static readonly TimeSpan ResponderAllowance = TimeSpan.FromMilliseconds(5); // the responder's DH work

    private readonly KeyPair _identity;
    private readonly PubKey _peer;
    private readonly ulong _sessionId;
    private readonly AeadAlgorithmId _preferred;
    private readonly SecureSessionOptions _options;
    private readonly TimeProvider _time;
    private readonly List<PendingInit> _pending = [];
    private int _attempts;
    private long _nextAttemptAt = long.MaxValue;
    private ulong _lastInitTimestamp;
    private TimeSpan _srtt;
    private TimeSpan _rttvar;
    private bool _hasRtt;

    public SessionHandshake(KeyPair identity, PubKey peer, ulong sessionId, AeadAlgorithmId preferred, SecureSessionOptions options, TimeProvider time)
    {
        _identity = identity;
        _peer = peer;
        _sessionId = sessionId;
        _preferred = preferred;
        _options = options;
        _time = time;
    }

    /// <summary>True while the initiator is running a handshake (first one or a rekey) that has not completed.</summary>
    public bool InProgress { get; private set; }

    /// <summary>When the initiator's next attempt is due (timestamp of the session's clock; long.MaxValue when none is).</summary>
    public long NextAttemptAt => Volatile.Read(ref _nextAttemptAt);

    /// <summary>Inits sent in the handshake in progress.</summary>
    public int Attempts => _attempts;

    /// <summary>The smoothed handshake round trip (init sent to its response), or null before the first one.</summary>
    public TimeSpan? SmoothedRtt => _hasRtt ? _srtt : null;

    /// <summary>Initiator: starts a handshake; the first init is due at once.</summary>
    public void Begin()
    {
        InProgress = true;
        _attempts = 0;
        Volatile.Write(ref _nextAttemptAt, _time.GetTimestamp());
    }

    /// <summary>
    /// RFC 9002's probe timeout for the handshake: smoothed RTT + max(4 × RTT variance, 1 ms) (+ the responder's
    /// work), from <see cref="SecureSessionOptions.InitialRtt"/> (variance half of it) before any sample, doubled per
    /// attempt up to <see cref="SecureSessionOptions.MaxRetryInterval"/> (or twice the base on a slower path).
    /// </summary>
    public TimeSpan RetryInterval(int attempt)
    {
        var srtt = _hasRtt ? _srtt : _options.InitialRtt;
        var rttvar = _hasRtt ? _rttvar : _options.InitialRtt / 2;
        var pto = srtt + TimeSpan.FromTicks(Math.Max(4 * rttvar.Ticks, TimeSpan.TicksPerMillisecond)) + ResponderAllowance;
        var cap = TimeSpan.FromTicks(Math.Max(_options.MaxRetryInterval.Ticks, 2 * pto.Ticks));
        return TimeSpan.FromTicks(Math.Min(pto.Ticks << Math.Min(attempt, 16), cap.Ticks));
    }

    /// <summary>
    /// Initiator: writes a fresh HandshakeInit (new ephemeral key, new sender index not in <paramref name="inUse"/>)
    /// into <paramref name="payload"/> and schedules the next attempt. Returns the packet's length. Earlier inits of
    /// this handshake stay answerable (at most <see cref="MaxPending"/>).
    /// </summary>
    public int WriteInit(Span<byte> payload, Func<uint, bool> inUse)
    {
        var aead = AeadForAttempt(_attempts);
        var index = NewIndex(inUse);
        var ephemeral = Secp256k1Dh.Instance.GenerateKeyPair();
        var pending = new PendingInit(index, ephemeral, NextTimestamp(), aead, _time.GetTimestamp());
        SessionLimits.WriteHandshakeHeader(payload, SessionPacketType.HandshakeInit, (byte)aead);
        BinaryPrimitives.WriteUInt32BigEndian(payload[SessionLimits.HandshakeHeaderLength..], index);
        pending.Replay(this, payload[(SessionLimits.HandshakeHeaderLength + SessionLimits.IndexLength)..], out _).Dispose();

        if (_pending.Count >= MaxPending)
        {
            _pending[0].Dispose();
            _pending.RemoveAt(0);
        }

        _pending.Add(pending);
        var interval = RetryInterval(_attempts);
        // Jitter (up to a quarter of the interval, at most WireGuard's 334 ms) keeps many sessions from retrying in step.
        var jitter = TimeSpan.FromTicks((long)(Random.Shared.NextDouble() * Math.Min(interval.Ticks / 4, TimeSpan.FromMilliseconds(334).Ticks)));
        _attempts++;
        Volatile.Write(ref _nextAttemptAt, pending.SentAt + (long)((interval + jitter).TotalSeconds * _time.TimestampFrequency));
        return SessionLimits.HandshakeInitLength;
    }

    /// <summary>
    /// Initiator: reads a HandshakeResponse. Returns the new keys (the handshake is complete, every pending init is
    /// forgotten), or null: <paramref name="stale"/> when it names no pending init (late, duplicate, or not ours),
    /// else <paramref name="rejected"/> says why it failed. Nothing pending changes on a failure.
    /// </summary>
    public SessionKeys? ReadResponse(ReadOnlySpan<byte> payload, out string? rejected, out bool stale)
    {
        rejected = null;
        stale = false;
        var aead = SessionLimits.ReadHandshakeHeader(payload, SessionPacketType.HandshakeResponse);
        if (aead == 0)
        {
            rejected = "malformed handshake response";
            return null;
        }

        var sender = BinaryPrimitives.ReadUInt32BigEndian(payload[SessionLimits.HandshakeHeaderLength..]);
        var receiver = BinaryPrimitives.ReadUInt32BigEndian(payload[(SessionLimits.HandshakeHeaderLength + SessionLimits.IndexLength)..]);
        var pending = _pending.Find(p => p.Index == receiver);
        if (pending is null || (byte)pending.Aead != aead)
        {
            stale = true;
            return null;
        }

        Span<byte> scratch = stackalloc byte[SessionLimits.HandshakeInitLength];
        var state = pending.Replay(this, scratch, out _);
        try
        {
            Span<byte> body = stackalloc byte[SessionLimits.ResponsePayloadLength + 16];
            var n = state.ReadMessage(payload[(SessionLimits.HandshakeHeaderLength + (2 * SessionLimits.IndexLength))..], body);
            if (n != SessionLimits.ResponsePayloadLength || BinaryPrimitives.ReadUInt32BigEndian(body) != sender || sender == 0)
            {
                rejected = "response payload does not match its sender index";
                return null;
            }

            var now = _time.GetTimestamp();
            UpdateRtt(_time.GetElapsedTime(pending.SentAt, now));
            var keys = new SessionKeys(state.Split(), pending.Aead, pending.Index, sender, initiator: true, now);
            foreach (var p in _pending)
            {
                p.Dispose();
            }

            _pending.Clear();
            InProgress = false;
            _attempts = 0;
            Volatile.Write(ref _nextAttemptAt, long.MaxValue);
            return keys;
        }
        catch (NoiseException ex)
        {
            rejected = ex.Message;
            return null;
        }
        finally
        {
            state.Dispose();
        }
    }

    /// <summary>
    /// Responder, first step (without the session's lock: this is the Diffie-Hellman work): checks and reads a
    /// HandshakeInit. Null when it is malformed, or its initiator is not the peer the manager named, or it does not
    /// decrypt (<paramref name="rejected"/> says which).
    /// </summary>
    public InitReceived? ReadInit(ReadOnlySpan<byte> payload, out string? rejected)
    {
        rejected = null;
        var aead = (AeadAlgorithmId)SessionLimits.ReadHandshakeHeader(payload, SessionPacketType.HandshakeInit);
        if (aead == 0)
        {
            rejected = "malformed handshake init";
            return null;
        }

        if (!AeadKey.IsSupported(aead))
        {
            rejected = $"unsupported aead {(byte)aead}";
            return null;
        }

        var sender = BinaryPrimitives.ReadUInt32BigEndian(payload[SessionLimits.HandshakeHeaderLength..]);
        using var staticKey = Secp256k1Dh.FromKeyPair(_identity);
        var state = new HandshakeState(HandshakePattern.IK, false, Secp256k1Dh.Instance, aead, Prologue(aead), staticKey, []);
        Span<byte> body = stackalloc byte[64];
        try
        {
            var n = state.ReadMessage(payload[(SessionLimits.HandshakeHeaderLength + SessionLimits.IndexLength)..], body);
            if (n != SessionLimits.InitPayloadLength || !state.RemoteStaticKey.SequenceEqual(_peer.ToArray()))
            {
                throw new NoiseException("unexpected initiator key or payload");
            }

            if (BinaryPrimitives.ReadUInt32BigEndian(body[TimestampLength..]) != sender || sender == 0)
            {
                throw new NoiseException("init payload does not match its sender index");
            }
        }
        catch (NoiseException ex)
        {
            state.Dispose();
            rejected = ex.Message;
            return null;
        }

        return new InitReceived(state, aead, BinaryPrimitives.ReadUInt64BigEndian(body), sender);
    }

    /// <summary>
    /// Responder, second step (under the lock): refuses an init whose timestamp is not above the last accepted one (a
    /// replay), else writes the HandshakeResponse (with a fresh index not in <paramref name="inUse"/>) into
    /// <paramref name="response"/> and returns the new keys, which the initiator has yet to use. Disposes
    /// <paramref name="init"/>.
    /// </summary>
    public SessionKeys? Respond(InitReceived init, Span<byte> response, Func<uint, bool> inUse, out int length, out string? rejected)
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
            var index = NewIndex(inUse);
            SessionLimits.WriteHandshakeHeader(response, SessionPacketType.HandshakeResponse, (byte)init.Aead);
            BinaryPrimitives.WriteUInt32BigEndian(response[SessionLimits.HandshakeHeaderLength..], index);
            BinaryPrimitives.WriteUInt32BigEndian(response[(SessionLimits.HandshakeHeaderLength + SessionLimits.IndexLength)..], init.Sender);
            Span<byte> body = stackalloc byte[SessionLimits.ResponsePayloadLength];
            BinaryPrimitives.WriteUInt32BigEndian(body, index);
            var offset = SessionLimits.HandshakeHeaderLength + (2 * SessionLimits.IndexLength);
            length = offset + init.State.WriteMessage(body, response[offset..]);
            return new SessionKeys(init.State.Split(), init.Aead, index, init.Sender, initiator: false, _time.GetTimestamp());
        }
    }

    public void Dispose()
    {
        foreach (var p in _pending)
        {
            p.Dispose();
        }

        _pending.Clear();
        InProgress = false;
        Volatile.Write(ref _nextAttemptAt, long.MaxValue);
    }

    private static uint NewIndex(Func<uint, bool> inUse)
    {
        // Random, non-zero, unused (WireGuard indextable.go): 2^32 values against a handful in use.
        Span<byte> bytes = stackalloc byte[4];
        while (true)
        {
            RandomNumberGenerator.Fill(bytes);
            var index = BinaryPrimitives.ReadUInt32BigEndian(bytes);
            if (index != 0 && !inUse(index))
            {
                return index;
            }
        }
    }

    private void UpdateRtt(TimeSpan sample)
    {
        // RFC 6298 §2.2-2.3 (alpha 1/8, beta 1/4), as RFC 9002 §5.3.
        if (!_hasRtt)
        {
            _srtt = sample;
            _rttvar = sample / 2;
            _hasRtt = true;
            return;
        }

        _rttvar = ((3 * _rttvar) + (_srtt - sample).Duration()) / 4;
        _srtt = ((7 * _srtt) + sample) / 8;
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

    /// <summary>
    /// An init the initiator sent and may still get an answer to. It keeps only what the init was made of (index,
    /// ephemeral key, timestamp, aead); the Noise state is rebuilt from them for every answer, so a forged or broken
    /// answer, which spoils the state it is read with, spoils nothing kept.
    /// </summary>
    private sealed class PendingInit(uint index, NoiseKeyPair ephemeral, ulong timestamp, AeadAlgorithmId aead, long sentAt) : IDisposable
    {
        public uint Index { get; } = index;

        public AeadAlgorithmId Aead { get; } = aead;

        public long SentAt { get; } = sentAt;

        /// <summary>A Noise state that has written this init's message 1 (the same bytes each time) into <paramref name="message"/>.</summary>
        public HandshakeState Replay(SessionHandshake owner, Span<byte> message, out int length)
        {
            using var staticKey = Secp256k1Dh.FromKeyPair(owner._identity);
            var state = new HandshakeState(HandshakePattern.IK, true, Secp256k1Dh.Instance, Aead, owner.Prologue(Aead), staticKey, owner._peer.ToArray(), ephemeral);
            Span<byte> body = stackalloc byte[SessionLimits.InitPayloadLength];
            BinaryPrimitives.WriteUInt64BigEndian(body, timestamp);
            BinaryPrimitives.WriteUInt32BigEndian(body[TimestampLength..], Index);
            length = state.WriteMessage(body, message);
            return state;
        }

        public void Dispose() => ephemeral.Dispose();
    }

    /// <summary>A HandshakeInit read by the responder, waiting for its answer.</summary>
    internal sealed class InitReceived(HandshakeState state, AeadAlgorithmId aead, ulong timestamp, uint sender) : IDisposable
    {
        public HandshakeState State { get; } = state;

        public AeadAlgorithmId Aead { get; } = aead;

        public ulong Timestamp { get; } = timestamp;

        public uint Sender { get; } = sender;

        public void Dispose() => State.Dispose();
    }
}
