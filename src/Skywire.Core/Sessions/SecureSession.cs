using System.Buffers.Binary;
using System.Text;
using Microsoft.Extensions.Logging;
using Skywire.Core.Crypto;
using Skywire.Core.Crypto.Noise;
using Skywire.Core.Links;
using Skywire.Protocol;
using Skywire.Protocol.Links;
using Skywire.Protocol.Sessions;

namespace Skywire.Core.Sessions;

/// <summary>Counters of one session.</summary>
public sealed class SecureSessionStatistics
{
    internal long DatagramsSent;
    internal long DatagramsReceived;
    internal long BytesSent;
    internal long BytesReceived;
    internal long DroppedNotEstablished;
    internal long DroppedBadTag;
    internal long DroppedReplay;
    internal long DroppedMalformed;
    internal long DroppedHandshake;
    internal long DroppedSendFailed;
    internal long DroppedTooLarge;
    internal long DroppedReceiverQueueFull;

    /// <summary>Datagrams sealed and handed to the first hop.</summary>
    public long Sent => Interlocked.Read(ref DatagramsSent);

    /// <summary>Datagrams opened and delivered (excluding empty key-confirmation packets).</summary>
    public long Received => Interlocked.Read(ref DatagramsReceived);

    /// <summary>Plaintext bytes sent.</summary>
    public long SentBytes => Interlocked.Read(ref BytesSent);

    /// <summary>Plaintext bytes delivered.</summary>
    public long ReceivedBytes => Interlocked.Read(ref BytesReceived);

    /// <summary>Packets whose tag did not verify (tampered on the way, or not ours).</summary>
    public long BadTag => Interlocked.Read(ref DroppedBadTag);

    /// <summary>Packets refused by the replay window (duplicates or too old).</summary>
    public long Replayed => Interlocked.Read(ref DroppedReplay);

    /// <summary>Malformed packets.</summary>
    public long Malformed => Interlocked.Read(ref DroppedMalformed);

    /// <summary>Handshake messages refused (wrong key, stale, bad tag, unexpected).</summary>
    public long HandshakeRejected => Interlocked.Read(ref DroppedHandshake);

    /// <summary>Datagrams not sent: session not established, too large, or first hop down.</summary>
    public long SendDropped => Interlocked.Read(ref DroppedNotEstablished) + Interlocked.Read(ref DroppedSendFailed) + Interlocked.Read(ref DroppedTooLarge);

    /// <summary>Datagrams dropped because no receiver was set and the early queue was full.</summary>
    public long ReceiverQueueFull => Interlocked.Read(ref DroppedReceiverQueueFull);
}

/// <summary>
/// An end-to-end encrypted datagram path between two end nodes over a route (docs/protocol.md §6):
/// Noise IK (secp256k1, AES-256-GCM or ChaCha20-Poly1305, SHA-256) carried in routed packets,
/// then each datagram sealed with the counter as nonce and no associated data, replay window on
/// receive. Relays see only the label; they cannot read or undetectably change a datagram.
/// </summary>
/// <remarks>
/// <see cref="Send"/> may be called from any thread and allocates nothing. Received datagrams
/// are handed to <see cref="Receiver"/> on the node's receive thread: the handler must be quick
/// (the stream multiplexer's <c>Receive</c> is). Datagrams that arrive before a receiver is set
/// are kept (up to a bound) and delivered when it is set.
/// </remarks>
public sealed partial class SecureSession : IDatagramTransport, IDisposable
{
    private const int MaxEarlyDatagrams = 256;

    private readonly KeyPair _identity;
    private readonly IRoutedSender _sender;
    private readonly TimeProvider _time;
    private readonly ILogger _logger;
    private readonly AeadAlgorithmId _preferred;
    private readonly TimeSpan _handshakeTimeout;
    private readonly TaskCompletionSource<SecureSession> _established = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly Queue<byte[]> _early = new();
    private readonly object _gate = new();
    private volatile SessionRoute _route;
    private volatile SessionKeys? _keys;
    private SessionKeys? _previousKeys;
    private volatile DatagramHandler? _receiver;
    private HandshakeState? _pending;
    private AeadAlgorithmId _pendingAead;
    private int _attempts;
    private long _startedAt;
    private long _nextAttemptAt;
    private ulong _lastInitTimestamp;
    private volatile SecureSessionState _state = SecureSessionState.Handshaking;

    internal SecureSession(SessionRoute route, KeyPair identity, IRoutedSender sender, AeadAlgorithmId preferred, TimeSpan handshakeTimeout, TimeProvider time, ILogger logger)
    {
        route.Validate();
        _route = route;
        _identity = identity;
        _sender = sender;
        _preferred = preferred;
        _handshakeTimeout = handshakeTimeout;
        _time = time;
        _logger = logger;
        _startedAt = time.GetTimestamp();
        MaxDatagramSize = SessionLimits.MaxDatagram(sender.MaxUdpPayload);
    }

    /// <summary>The manager's session id.</summary>
    public ulong SessionId => _route.SessionId;

    /// <summary>The other end node.</summary>
    public PubKey Peer => _route.Peer;

    /// <summary>True on the end that starts the handshake.</summary>
    public bool IsInitiator => _route.Initiator;

    /// <summary>The current route (changes on a re-route).</summary>
    public SessionRoute Route => _route;

    /// <summary>State.</summary>
    public SecureSessionState State => _state;

    /// <summary>The AEAD in use, once keys exist.</summary>
    public AeadAlgorithmId? Aead => _keys?.Aead;

    /// <summary>Completes when keys are confirmed both ways; faults when the handshake times out or the session closes first.</summary>
    public Task<SecureSession> Established => _established.Task;

    /// <inheritdoc/>
    public int MaxDatagramSize { get; }

    /// <summary>Counters.</summary>
    public SecureSessionStatistics Statistics { get; } = new();

    /// <summary>Where received plaintext datagrams go (for example <c>StreamMultiplexer.Receive</c>).</summary>
    public DatagramHandler? Receiver
    {
        get => _receiver;
        set
        {
            lock (_gate)
            {
                _receiver = value;
                if (value is null)
                {
                    return;
                }

                while (_early.TryDequeue(out var datagram))
                {
                    Deliver(value, datagram);
                }
            }
        }
    }

    /// <summary>Raised once when the session closes or fails, with the reason.</summary>
    public event EventHandler<string>? Closed;

    /// <summary>Seals and sends one datagram. Dropped (and counted) when not established, too large, or the first hop is down.</summary>
    public void Send(ReadOnlySpan<byte> datagram)
    {
        var keys = _keys;
        if (keys is null || _state == SecureSessionState.Closed)
        {
            Interlocked.Increment(ref Statistics.DroppedNotEstablished);
            return;
        }

        if (datagram.Length > MaxDatagramSize)
        {
            Interlocked.Increment(ref Statistics.DroppedTooLarge);
            return;
        }

        Span<byte> packet = stackalloc byte[_sender.MaxUdpPayload];
        var payload = packet[LinkLimits.RoutedHeaderLength..];
        var counter = keys.NextCounter();
        SessionLimits.WriteDataHeader(payload, counter);
        try
        {
            keys.Transport.Send.Seal(counter, [], datagram, payload[SessionLimits.DataHeaderLength..]);
        }
        catch (ObjectDisposedException)
        {
            Interlocked.Increment(ref Statistics.DroppedNotEstablished);
            return;
        }

        var route = _route;
        if (_sender.SendRouted(route.OutLink, route.OutRoute, packet, datagram.Length + SessionLimits.DataOverhead))
        {
            Interlocked.Increment(ref Statistics.DatagramsSent);
            Interlocked.Add(ref Statistics.BytesSent, datagram.Length);
        }
        else
        {
            Interlocked.Increment(ref Statistics.DroppedSendFailed);
        }
    }

    /// <summary>
    /// Seals <paramref name="count"/> datagrams into one scratch area and hands them to the data plane in one
    /// call, which sends equal-size runs with UDP GSO when it can. Same semantics per datagram as <see cref="Send"/>.
    /// </summary>
    public void SendBatch(byte[][] buffers, int[] lengths, int count)
    {
        ArgumentNullException.ThrowIfNull(buffers);
        ArgumentNullException.ThrowIfNull(lengths);
        var keys = _keys;
        if (keys is null || _state == SecureSessionState.Closed)
        {
            Interlocked.Add(ref Statistics.DroppedNotEstablished, count);
            return;
        }

        var stride = _sender.MaxUdpPayload;
        var scratch = t_batch is { } b && b.Length >= stride * count ? b : (t_batch = new byte[stride * Math.Max(count, BatchSlots)]);
        Span<int> payloadLengths = stackalloc int[count];
        var sealedCount = 0;
        long bytes = 0;
        for (var i = 0; i < count; i++)
        {
            var datagram = buffers[i].AsSpan(0, lengths[i]);
            if (datagram.Length > MaxDatagramSize)
            {
                Interlocked.Increment(ref Statistics.DroppedTooLarge);
                continue;
            }

            var payload = scratch.AsSpan((sealedCount * stride) + LinkLimits.RoutedHeaderLength, stride - LinkLimits.RoutedHeaderLength);
            var counter = keys.NextCounter();
            SessionLimits.WriteDataHeader(payload, counter);
            try
            {
                keys.Transport.Send.Seal(counter, [], datagram, payload[SessionLimits.DataHeaderLength..]);
            }
            catch (ObjectDisposedException)
            {
                Interlocked.Add(ref Statistics.DroppedNotEstablished, count - i);
                break;
            }

            payloadLengths[sealedCount++] = datagram.Length + SessionLimits.DataOverhead;
            bytes += datagram.Length;
        }

        if (sealedCount == 0)
        {
            return;
        }

        var route = _route;
        var sent = _sender.SendRoutedBatch(route.OutLink, route.OutRoute, scratch, stride, payloadLengths[..sealedCount], sealedCount);
        Interlocked.Add(ref Statistics.DatagramsSent, sent);
        Interlocked.Add(ref Statistics.BytesSent, sent == sealedCount ? bytes : bytes * sent / sealedCount);
        Interlocked.Add(ref Statistics.DroppedSendFailed, sealedCount - sent);
    }

    private const int BatchSlots = 16;

    // One scratch area per thread: a session's batch is sealed and sent within one call on one thread.
    [ThreadStatic]
    private static byte[]? t_batch;

    /// <summary>Closes the session (keys dropped; pending waiters fail).</summary>
    public void Dispose() => Close("closed");

    internal void UpdateRoute(SessionRoute route)
    {
        route.Validate();
        if (route.SessionId != SessionId || route.Peer != Peer || route.Initiator != IsInitiator)
        {
            throw new ArgumentException("a re-route may change only links, route ids and lifetime");
        }

        _route = route;
    }

    /// <summary>Starts (initiator) the handshake. Called once by the data plane after the local rule is installed.</summary>
    internal void Start()
    {
        if (IsInitiator)
        {
            lock (_gate)
            {
                SendInitLocked();
            }
        }
    }

    /// <summary>Maintenance tick: handshake retries and timeout.</summary>
    internal void Tick(long now)
    {
        if (_state != SecureSessionState.Handshaking)
        {
            return;
        }

        if (_time.GetElapsedTime(_startedAt, now) > _handshakeTimeout)
        {
            Close("handshake timed out");
            return;
        }

        if (IsInitiator && now >= Volatile.Read(ref _nextAttemptAt))
        {
            lock (_gate)
            {
                if (_state == SecureSessionState.Handshaking && _keys is null)
                {
                    SendInitLocked();
                }
            }
        }
    }

    internal void Close(string reason)
    {
        lock (_gate)
        {
            if (_state == SecureSessionState.Closed)
            {
                return;
            }

            _state = SecureSessionState.Closed;
            _pending?.Dispose();
            _pending = null;
            _previousKeys?.Dispose();
            _previousKeys = null;
            _keys?.Dispose();
            _keys = null;
            _early.Clear();
        }

        _established.TrySetException(new SessionClosedException(SessionId, reason));
        _ = _established.Task.Exception; // observed: nobody may be waiting
        Closed?.Invoke(this, reason);
    }

    /// <summary>A routed payload for this session arrived (receive thread). The span may be decrypted in place.</summary>
    internal void OnPacket(Span<byte> payload)
    {
        if (payload.Length < 4 || _state == SecureSessionState.Closed)
        {
            Interlocked.Increment(ref Statistics.DroppedMalformed);
            return;
        }

        switch ((SessionPacketType)payload[0])
        {
            case SessionPacketType.Data:
                OnData(payload);
                break;
            case SessionPacketType.HandshakeInit:
                OnInit(payload);
                break;
            case SessionPacketType.HandshakeResponse:
                OnResponse(payload);
                break;
            default:
                Interlocked.Increment(ref Statistics.DroppedMalformed);
                break;
        }
    }

    private void OnData(Span<byte> payload)
    {
        if (!SessionLimits.TryReadDataCounter(payload, out var counter))
        {
            Interlocked.Increment(ref Statistics.DroppedMalformed);
            return;
        }

        var ciphertext = payload[SessionLimits.DataHeaderLength..];
        var plaintext = ciphertext[..^SessionLimits.TagLength];
        var keys = _keys;
        var used = keys;
        var replay = false;
        if (keys is null || !TryOpen(keys, counter, ciphertext, plaintext, out replay))
        {
            var previous = _previousKeys;
            var previousReplay = false;
            if (previous is null || !TryOpen(previous, counter, ciphertext, plaintext, out previousReplay))
            {
                Interlocked.Increment(ref replay || previousReplay ? ref Statistics.DroppedReplay : ref Statistics.DroppedBadTag);
                return;
            }

            used = previous;
        }

        if (!used!.Confirmed)
        {
            ConfirmKeys(used);
        }

        if (plaintext.IsEmpty)
        {
            return; // key confirmation
        }

        Interlocked.Increment(ref Statistics.DatagramsReceived);
        Interlocked.Add(ref Statistics.BytesReceived, plaintext.Length);
        var receiver = _receiver;
        if (receiver is not null)
        {
            Deliver(receiver, plaintext);
            return;
        }

        lock (_gate)
        {
            receiver = _receiver;
            if (receiver is not null)
            {
                Deliver(receiver, plaintext);
            }
            else if (_early.Count < MaxEarlyDatagrams)
            {
                _early.Enqueue(plaintext.ToArray());
            }
            else
            {
                Interlocked.Increment(ref Statistics.DroppedReceiverQueueFull);
            }
        }
    }

    private static bool TryOpen(SessionKeys keys, ulong counter, ReadOnlySpan<byte> ciphertext, Span<byte> plaintext, out bool replay)
    {
        replay = false;
        if (!keys.Window.IsAcceptable(counter))
        {
            replay = true;
            return false;
        }

        try
        {
            if (!keys.Transport.Receive.Open(counter, [], ciphertext, plaintext))
            {
                return false;
            }
        }
        catch (ObjectDisposedException)
        {
            return false;
        }

        // The window moves only for authentic packets.
        lock (keys.Window)
        {
            if (!keys.Window.TryMark(counter))
            {
                replay = true;
                return false;
            }
        }

        return true;
    }

    private void Deliver(DatagramHandler receiver, ReadOnlySpan<byte> datagram)
    {
        try
        {
            receiver(datagram);
        }
        catch (Exception ex)
        {
            Log.ReceiverFailed(_logger, SessionId, ex);
        }
    }

    private void ConfirmKeys(SessionKeys keys)
    {
        lock (_gate)
        {
            if (keys.Confirmed || _state == SecureSessionState.Closed)
            {
                return;
            }

            keys.Confirmed = true;
            _state = SecureSessionState.Established;
        }

        Log.SessionEstablished(_logger, SessionId, Peer, IsInitiator);
        _established.TrySetResult(this);
    }

    // ---- Handshake -------------------------------------------------------------------------

    private byte[] Prologue(AeadAlgorithmId aead)
    {
        var prologue = new byte[32];
        var n = Encoding.ASCII.GetBytes("skywire-session/", prologue);
        prologue[n++] = SessionLimits.Version;
        BinaryPrimitives.WriteUInt64BigEndian(prologue.AsSpan(n), SessionId);
        n += 8;
        prologue[n++] = (byte)aead;
        return prologue[..n];
    }

    private AeadAlgorithmId AeadForAttempt(int attempt) =>
        _preferred == AeadAlgorithmId.ChaCha20Poly1305 || attempt < 2 || attempt % 2 == 0
            ? _preferred
            : AeadAlgorithmId.ChaCha20Poly1305;

    private void SendInitLocked()
    {
        _pending?.Dispose();
        var aead = AeadForAttempt(_attempts);
        using var staticKey = Secp256k1Dh.FromKeyPair(_identity);
        var state = new HandshakeState(HandshakePattern.IK, true, Secp256k1Dh.Instance, aead, Prologue(aead), staticKey, Peer.ToArray());
        Span<byte> packet = stackalloc byte[_sender.MaxUdpPayload];
        var payload = packet[LinkLimits.RoutedHeaderLength..];
        payload[0] = (byte)SessionPacketType.HandshakeInit;
        payload[1] = (byte)aead;
        payload[2] = 0;
        payload[3] = 0;
        Span<byte> body = stackalloc byte[8];
        BinaryPrimitives.WriteUInt64BigEndian(body, HandshakeTimestamp());
        var n = state.WriteMessage(body, payload[4..]);
        _pending = state;
        _pendingAead = aead;
        var backoff = TimeSpan.FromMilliseconds(Math.Min(2000, 250 << Math.Min(_attempts, 3)));
        _attempts++;
        Volatile.Write(ref _nextAttemptAt, _time.GetTimestamp() + (long)(backoff.TotalSeconds * _time.TimestampFrequency));
        var route = _route;
        _sender.SendRouted(route.OutLink, route.OutRoute, packet, 4 + n);
    }

    private ulong HandshakeTimestamp()
    {
        // Strictly increasing per session even if the clock stalls: the responder refuses an init
        // whose timestamp is not above the last accepted one (replayed inits).
        var now = (ulong)_time.GetUtcNow().ToUnixTimeMilliseconds() * 1000;
        _lastInitTimestamp = Math.Max(now, _lastInitTimestamp + 1);
        return _lastInitTimestamp;
    }

    private void OnInit(Span<byte> payload)
    {
        if (IsInitiator || payload.Length != SessionLimits.HandshakeInitLength || payload[2] != 0 || payload[3] != 0)
        {
            Interlocked.Increment(ref Statistics.DroppedHandshake);
            return;
        }

        var aead = (AeadAlgorithmId)payload[1];
        if (!AeadKey.IsSupported(aead))
        {
            Interlocked.Increment(ref Statistics.DroppedHandshake);
            return;
        }

        using var staticKey = Secp256k1Dh.FromKeyPair(_identity);
        using var state = new HandshakeState(HandshakePattern.IK, false, Secp256k1Dh.Instance, aead, Prologue(aead), staticKey, []);
        Span<byte> body = stackalloc byte[64];
        try
        {
            var n = state.ReadMessage(payload[4..], body);
            if (n != 8 || !state.RemoteStaticKey.SequenceEqual(Peer.ToArray()))
            {
                throw new NoiseException("unexpected initiator key or payload");
            }
        }
        catch (NoiseException ex)
        {
            Interlocked.Increment(ref Statistics.DroppedHandshake);
            Log.SessionHandshakeRejected(_logger, SessionId, ex.Message);
            return;
        }

        var timestamp = BinaryPrimitives.ReadUInt64BigEndian(body);
        Span<byte> packet = stackalloc byte[_sender.MaxUdpPayload];
        var response = packet[LinkLimits.RoutedHeaderLength..];
        lock (_gate)
        {
            if (_state == SecureSessionState.Closed)
            {
                return;
            }

            if (timestamp <= _lastInitTimestamp)
            {
                Interlocked.Increment(ref Statistics.DroppedHandshake);
                Log.SessionHandshakeRejected(_logger, SessionId, "stale handshake timestamp (replay)");
                return;
            }

            _lastInitTimestamp = timestamp;
            response[0] = (byte)SessionPacketType.HandshakeResponse;
            response[1] = (byte)aead;
            response[2] = 0;
            response[3] = 0;
            var n = state.WriteMessage([], response[4..]);
            InstallKeysLocked(new SessionKeys(state.Split(), aead, confirmed: false));
            var route = _route;
            _sender.SendRouted(route.OutLink, route.OutRoute, packet, 4 + n);
        }
    }

    private void OnResponse(Span<byte> payload)
    {
        if (!IsInitiator || payload.Length != SessionLimits.HandshakeResponseLength || payload[2] != 0 || payload[3] != 0)
        {
            Interlocked.Increment(ref Statistics.DroppedHandshake);
            return;
        }

        lock (_gate)
        {
            var state = _pending;
            if (state is null || (byte)_pendingAead != payload[1])
            {
                Interlocked.Increment(ref Statistics.DroppedHandshake);
                return;
            }

            try
            {
                state.ReadMessage(payload[4..], stackalloc byte[16]);
            }
            catch (NoiseException ex)
            {
                // A forged or corrupted response: the pending handshake is dead; the next retry starts a new one.
                Interlocked.Increment(ref Statistics.DroppedHandshake);
                Log.SessionHandshakeRejected(_logger, SessionId, ex.Message);
                _pending = null;
                state.Dispose();
                Volatile.Write(ref _nextAttemptAt, 0);
                return;
            }

            _pending = null;
            var keys = new SessionKeys(state.Split(), _pendingAead, confirmed: true);
            state.Dispose();
            InstallKeysLocked(keys);
            _state = SecureSessionState.Established;
        }

        // Key confirmation for the responder: an empty datagram.
        Send([]);
        Log.SessionEstablished(_logger, SessionId, Peer, IsInitiator);
        _established.TrySetResult(this);
    }

    private void InstallKeysLocked(SessionKeys keys)
    {
        _previousKeys?.Dispose();
        _previousKeys = _keys;
        _keys = keys;
    }

    private sealed class SessionKeys : IDisposable
    {
        private long _sendCounter = -1;

        public SessionKeys(NoiseTransport transport, AeadAlgorithmId aead, bool confirmed)
        {
            Transport = transport;
            Aead = aead;
            Confirmed = confirmed;
        }

        public NoiseTransport Transport { get; }

        public AeadAlgorithmId Aead { get; }

        public ReplayWindow Window { get; } = new();

        public volatile bool Confirmed;

        public ulong NextCounter() => (ulong)Interlocked.Increment(ref _sendCounter);

        public void Dispose() => Transport.Dispose();
    }

    private static partial class Log
    {
        [LoggerMessage(EventId = 1080, Level = LogLevel.Information, Message = "Session {SessionId} with {Peer} established (initiator: {Initiator})")]
        public static partial void SessionEstablished(ILogger logger, ulong sessionId, PubKey peer, bool initiator);

        [LoggerMessage(EventId = 1081, Level = LogLevel.Debug, Message = "Session {SessionId}: handshake message rejected: {Reason}")]
        public static partial void SessionHandshakeRejected(ILogger logger, ulong sessionId, string reason);

        [LoggerMessage(EventId = 1082, Level = LogLevel.Warning, Message = "Session {SessionId}: the datagram receiver threw")]
        public static partial void ReceiverFailed(ILogger logger, ulong sessionId, Exception exception);
    }
}

/// <summary>The session closed or its handshake failed before it was established.</summary>
public sealed class SessionClosedException : Exception
{
    /// <summary>Creates the exception.</summary>
    public SessionClosedException(ulong sessionId, string reason)
        : base($"session {sessionId}: {reason}")
    {
        SessionId = sessionId;
        Reason = reason;
    }

    /// <summary>The session.</summary>
    public ulong SessionId { get; }

    /// <summary>Why.</summary>
    public string Reason { get; }
}
