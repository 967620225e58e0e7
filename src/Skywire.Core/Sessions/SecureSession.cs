using Microsoft.Extensions.Logging;
using Skywire.Core.Crypto;
using Skywire.Protocol;
using Skywire.Protocol.Links;
using Skywire.Protocol.Sessions;

namespace Skywire.Core.Sessions;

/// <summary>
/// An end-to-end encrypted datagram path between two end nodes over a route (docs/protocol.md §6):
/// Noise IK (secp256k1, AES-256-GCM or ChaCha20-Poly1305, SHA-256) carried in routed packets,
/// then each datagram sealed with the counter as nonce and no associated data, replay window on
/// receive. Relays see only the label; they cannot read or undetectably change a datagram.
/// Handshakes, keys and rekeying follow WireGuard: indexes name inits and keys, retries follow the measured RTT, the
/// initiator rekeys by time and message count, and the keys before the switch still open packets in flight.
/// </summary>
/// <remarks>
/// <para>States (<see cref="SecureSessionState"/>); every change goes through <c>TransitionTo</c>, which enforces this table:</para>
/// <code>
///                     keys confirmed: initiator: a valid HandshakeResponse;
///                     responder: the first authentic Data packet
///   Handshaking ─────────────────────────────────────────────────► Established
///        │                                                              │
///        │ handshake timeout; Close (disposed, route closed,            │ Close (disposed, route closed, multiplexer
///        │ data plane stopped)                                          │ ended, data plane stopped); keys expired
///        ▼                                                              │ (RejectAfterTime without a rekey)
///      Closed ◄─────────────────────────────────────────────────────────┘   (terminal: keys dropped)
/// </code>
/// <para>Rekeys happen inside Established: the initiator starts a new handshake when the current keys reach
/// <see cref="SecureSessionOptions.RekeyAfterTime"/> or <see cref="SecureSessionOptions.RekeyAfterMessages"/> and
/// switches to the new keys when the response arrives; the responder switches at the first packet under them.</para>
/// <para>The pieces: <see cref="SessionHandshake"/> (Noise messages, indexes, retries, replay of inits),
/// <see cref="SessionKeyRing"/> (current, previous and next keys by index), <see cref="SessionDataPath"/> (sealing and
/// opening datagrams), <see cref="SecureSessionStatistics"/> (counters). This type holds the state, the route and the
/// receiver, runs the timers and dispatches packets.</para>
/// <para><see cref="Send"/> may be called from any thread and allocates nothing. Received datagrams are handed to
/// <see cref="Receiver"/> on the node's receive thread: the handler must be quick (the stream multiplexer's
/// <c>Receive</c> is). Datagrams that arrive before a receiver is set are kept (up to a bound) and delivered when it
/// is set.</para>
/// </remarks>
public sealed partial class SecureSession : IDatagramTransport, IDisposable
{
    private const int MaxEarlyDatagrams = 256;
    private const int MaxConfirmations = 8;

    private readonly IRoutedSender _sender;
    private readonly TimeProvider _time;
    private readonly ILogger _logger;
    private readonly TimeSpan _handshakeTimeout;
    private readonly SecureSessionOptions _options;
    private readonly SessionHandshake _handshake;
    private readonly SessionKeyRing _keys = new();
    private readonly SessionDataPath _data;
    private readonly TaskCompletionSource<SecureSession> _established = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly Queue<byte[]> _early = new();
    private readonly object _gate = new();
    private readonly long _startedAt;
    private volatile SessionRoute _route;
    private volatile DatagramHandler? _receiver;
    private volatile SecureSessionState _state = SecureSessionState.Handshaking;
    private int _confirmations;
    private long _confirmAt = long.MaxValue;

    internal SecureSession(SessionRoute route, KeyPair identity, IRoutedSender sender, AeadAlgorithmId preferred, TimeSpan handshakeTimeout, TimeProvider time, ILogger logger,
        SecureSessionOptions? options = null)
    {
        route.Validate();
        _options = options ?? SecureSessionOptions.Default;
        var errors = _options.Validate();
        if (errors.Count > 0)
        {
            throw new ArgumentException("invalid SecureSessionOptions: " + string.Join(" ", errors), nameof(options));
        }

        _route = route;
        _sender = sender;
        _handshakeTimeout = handshakeTimeout;
        _time = time;
        _logger = logger;
        _startedAt = time.GetTimestamp();
        _handshake = new SessionHandshake(identity, route.Peer, route.SessionId, preferred, _options, time);
        _data = new SessionDataPath(sender, _keys, Statistics, _options.RejectAfterMessages);
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
    public AeadAlgorithmId? Aead => _keys.Current?.Aead;

    /// <summary>The smoothed round trip of this session's handshakes (init to response), or null before the first completed.</summary>
    public TimeSpan? HandshakeRtt
    {
        get
        {
            lock (_gate)
            {
                return _handshake.SmoothedRtt;
            }
        }
    }

    /// <summary>Completes when keys are confirmed both ways; faults when the handshake times out or the session closes first.</summary>
    public Task<SecureSession> Established => _established.Task;

    /// <inheritdoc/>
    public int MaxDatagramSize => _data.MaxDatagramSize;

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
        if (_state == SecureSessionState.Closed)
        {
            Interlocked.Increment(ref Statistics.DroppedNotEstablished);
            return;
        }

        _data.Send(_route, datagram);
    }

    /// <summary>
    /// Seals <paramref name="count"/> datagrams into one scratch area and hands them to the data plane in one
    /// call, which sends equal-size runs with UDP GSO when it can. Same semantics per datagram as <see cref="Send"/>.
    /// </summary>
    public void SendBatch(byte[][] buffers, int[] lengths, int count)
    {
        ArgumentNullException.ThrowIfNull(buffers);
        ArgumentNullException.ThrowIfNull(lengths);
        if (_state == SecureSessionState.Closed)
        {
            Interlocked.Add(ref Statistics.DroppedNotEstablished, count);
            return;
        }

        _data.SendBatch(_route, buffers, lengths, count);
    }

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
                if (_state != SecureSessionState.Closed && !_handshake.InProgress)
                {
                    _handshake.Begin();
                    SendInitLocked();
                }
            }
        }
    }

    /// <summary>
    /// Maintenance tick (the data plane's, every TickInterval): the handshake timeout, handshake retries, rekeys,
    /// resending the initiator's key confirmation, and the age limits of keys.
    /// </summary>
    internal void Tick(long now)
    {
        if (_state == SecureSessionState.Closed)
        {
            return;
        }

        string? close = null;
        var confirm = false;
        lock (_gate)
        {
            if (_state == SecureSessionState.Closed)
            {
                return;
            }

            var current = _keys.Current;
            if (_state == SecureSessionState.Handshaking && _time.GetElapsedTime(_startedAt, now) > _handshakeTimeout)
            {
                close = "handshake timed out";
            }
            else if (current is not null && _time.GetElapsedTime(current.CreatedAt, now) > _options.RejectAfterTime)
            {
                close = "session keys expired: no rekey within RejectAfterTime";
            }
            else
            {
                _keys.Expire(now, _time, _options.PreviousKeysLifetime, _handshakeTimeout);
                if (IsInitiator)
                {
                    if (current is not null && !_handshake.InProgress && RekeyDue(current, now))
                    {
                        Log.SessionRekeying(_logger, SessionId, current.Sent, current.Window.Highest);
                        _handshake.Begin();
                    }

                    if (_handshake.InProgress && now >= _handshake.NextAttemptAt)
                    {
                        SendInitLocked();
                    }

                    if (current is not null && !current.PeerConfirmed && now >= _confirmAt && _confirmations < MaxConfirmations)
                    {
                        // Our key confirmation (an empty Data packet) or the responder's answer to it was lost: again,
                        // on the handshake's retry schedule, until a packet under these keys comes back.
                        _confirmations++;
                        _confirmAt = now + ToTicks(_handshake.RetryInterval(_confirmations));
                        confirm = true;
                    }
                }
            }
        }

        if (close is not null)
        {
            Close(close);
        }
        else if (confirm)
        {
            Send([]);
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

            TransitionTo(SecureSessionState.Closed);
            _handshake.Dispose();
            _keys.Clear();
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

    /// <summary>The one place the state changes (caller holds the lock); an illegal change is a bug and throws.</summary>
    private void TransitionTo(SecureSessionState next)
    {
        if (!SecureSessionStates.IsAllowed(_state, next))
        {
            throw new InvalidOperationException($"session {SessionId}: no transition from {_state} to {next}");
        }

        _state = next;
    }

    private void OnData(Span<byte> payload)
    {
        var keys = _data.Open(payload, out var plaintext);
        if (keys is null)
        {
            return;
        }

        if (!keys.PeerConfirmed)
        {
            KeysUsedByPeer(keys);
        }

        if (plaintext.IsEmpty)
        {
            if (!IsInitiator)
            {
                // A key confirmation: answer it (empty too), so the initiator knows its keys are in use and stops
                // sending confirmations. The initiator never answers one, so this does not ping-pong.
                Send([]);
            }

            return;
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

    /// <summary>
    /// The first authentic packet under <paramref name="keys"/> arrived. Responder: the initiator completed the
    /// handshake these keys came from, so they become current (established, or a rekey done). Initiator: the
    /// responder switched to them; no more confirmations are needed.
    /// </summary>
    private void KeysUsedByPeer(SessionKeys keys)
    {
        var established = false;
        lock (_gate)
        {
            if (keys.PeerConfirmed || _state == SecureSessionState.Closed)
            {
                return;
            }

            keys.PeerConfirmed = true;
            if (IsInitiator || !_keys.Promote(keys, _time.GetTimestamp()))
            {
                return;
            }

            Interlocked.Increment(ref Statistics.HandshakesCompleted);
            if (_state == SecureSessionState.Handshaking)
            {
                TransitionTo(SecureSessionState.Established);
                established = true;
            }
        }

        if (established)
        {
            Log.SessionEstablished(_logger, SessionId, Peer, IsInitiator);
            _established.TrySetResult(this);
        }
        else
        {
            Log.SessionRekeyed(_logger, SessionId, keys.LocalIndex);
        }
    }

    private void SendInitLocked()
    {
        Span<byte> packet = stackalloc byte[_sender.MaxUdpPayload];
        var length = _handshake.WriteInit(packet[LinkLimits.RoutedHeaderLength..], _keys.InUse);
        Interlocked.Increment(ref Statistics.InitsSent);
        var route = _route;
        _sender.SendRouted(route.OutLink, route.OutRoute, packet, length);
    }

    private void OnInit(Span<byte> payload)
    {
        if (IsInitiator)
        {
            HandshakeRejected(null);
            return;
        }

        var init = _handshake.ReadInit(payload, out var rejected);
        if (init is null)
        {
            HandshakeRejected(rejected);
            return;
        }

        Span<byte> packet = stackalloc byte[_sender.MaxUdpPayload];
        lock (_gate)
        {
            if (_state == SecureSessionState.Closed)
            {
                init.Dispose();
                return;
            }

            var keys = _handshake.Respond(init, packet[LinkLimits.RoutedHeaderLength..], _keys.InUse, out var length, out rejected);
            if (keys is null)
            {
                HandshakeRejected(rejected);
                return;
            }

            // Held as "next" until the initiator uses them: the keys in use stay current, so nothing in flight is lost.
            _keys.AddNext(keys);
            var route = _route;
            _sender.SendRouted(route.OutLink, route.OutRoute, packet, length);
        }
    }

    private void OnResponse(Span<byte> payload)
    {
        if (!IsInitiator)
        {
            HandshakeRejected(null);
            return;
        }

        bool first;
        lock (_gate)
        {
            if (_state == SecureSessionState.Closed)
            {
                return;
            }

            var keys = _handshake.ReadResponse(payload, out var rejected, out var stale);
            if (keys is null)
            {
                // Late, duplicated or forged: dropped. The pending inits, the keys in use and the retry timer stay as
                // they are (WireGuard receive.go: log and skip).
                if (stale)
                {
                    Interlocked.Increment(ref Statistics.DroppedStaleHandshake);
                }
                else
                {
                    HandshakeRejected(rejected);
                }

                return;
            }

            var now = _time.GetTimestamp();
            _keys.InstallCurrent(keys, now);
            Interlocked.Increment(ref Statistics.HandshakesCompleted);
            _confirmations = 0;
            _confirmAt = now + ToTicks(_handshake.RetryInterval(0));
            first = _state == SecureSessionState.Handshaking;
            if (first)
            {
                TransitionTo(SecureSessionState.Established);
            }
        }

        // Key confirmation for the responder: an empty datagram under the new keys (resent by Tick until answered).
        Send([]);
        if (first)
        {
            Log.SessionEstablished(_logger, SessionId, Peer, IsInitiator);
            _established.TrySetResult(this);
        }
        else
        {
            Log.SessionRekeyed(_logger, SessionId, _keys.Current?.LocalIndex ?? 0);
        }
    }

    private bool RekeyDue(SessionKeys current, long now) =>
        _time.GetElapsedTime(current.CreatedAt, now) >= _options.RekeyAfterTime
        || current.Sent >= _options.RekeyAfterMessages
        || current.Window.Highest >= _options.RekeyAfterMessages;

    private long ToTicks(TimeSpan interval) => (long)(interval.TotalSeconds * _time.TimestampFrequency);

    private void HandshakeRejected(string? reason)
    {
        Interlocked.Increment(ref Statistics.DroppedHandshake);
        if (reason is not null)
        {
            Log.SessionHandshakeRejected(_logger, SessionId, reason);
        }
    }

    private static partial class Log
    {
        [LoggerMessage(EventId = 1080, Level = LogLevel.Information, Message = "Session {SessionId} with {Peer} established (initiator: {Initiator})")]
        public static partial void SessionEstablished(ILogger logger, ulong sessionId, PubKey peer, bool initiator);

        [LoggerMessage(EventId = 1081, Level = LogLevel.Debug, Message = "Session {SessionId}: handshake message rejected: {Reason}")]
        public static partial void SessionHandshakeRejected(ILogger logger, ulong sessionId, string reason);

        [LoggerMessage(EventId = 1082, Level = LogLevel.Warning, Message = "Session {SessionId}: the datagram receiver threw")]
        public static partial void ReceiverFailed(ILogger logger, ulong sessionId, Exception exception);

        [LoggerMessage(EventId = 1085, Level = LogLevel.Debug, Message = "Session {SessionId}: rekeying (packets sent {Sent}, highest received {Received})")]
        public static partial void SessionRekeying(ILogger logger, ulong sessionId, ulong sent, ulong received);

        [LoggerMessage(EventId = 1084, Level = LogLevel.Debug, Message = "Session {SessionId}: new keys in use (index {Index})")]
        public static partial void SessionRekeyed(ILogger logger, ulong sessionId, uint index);
    }
}
