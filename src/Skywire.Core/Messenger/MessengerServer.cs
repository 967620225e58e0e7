using System.Collections.Concurrent;
using System.Net;
using System.Net.Sockets;
using System.Text.Json;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Skywire.Core.Channels;
using Skywire.Core.Crypto;
using Skywire.Core.Crypto.Noise;
using Skywire.Core.Diagnostics;
using Skywire.Core.Messenger.Internal;
using Skywire.Protocol;
using Skywire.Protocol.Messenger;
using ProtocolViolationException = Skywire.Protocol.Framing.ProtocolViolationException;

namespace Skywire.Core.Messenger;

/// <summary>
/// The messenger (docs/messenger.md): clients connect over Noise XK (they pin this server's key; the handshake proves
/// theirs, and the hello signature is bound to the handshake hash); one key may hold several authenticated connections
/// (<see cref="MessengerServerOptions.MaxConnectionsPerKey"/>), and each of them receives the key's messages. It relays sealed
/// envelopes between keys without being able to open them, keeps bounded queues for offline keys and tells senders
/// about drops, rate-limits each key, relays end-to-end encrypted streams with per-circuit windows, and keeps the
/// discovery directory. A client that breaks the protocol loses its own connection only.
/// </summary>
public sealed partial class MessengerServer : IAsyncDisposable
{
    private readonly KeyPair _key;
    private readonly ILogger _logger;
    private readonly ILoggerFactory _loggerFactory;
    private readonly TimeProvider _time;

    // Lines about connections that fail or are refused before they register: anyone can cause them at will.
    private const int StrangerLogsPerSecond = 10;
    private readonly LogBudget _strangerLogs;
    private readonly Lock _registryLock = new();
    private readonly Dictionary<PubKey, List<ServerConnection>> _registry = [];
    private int _registered;
    private readonly ConcurrentDictionary<ServerConnection, byte> _connections = new();

    /// <summary>The links of the connected clients and peer messengers (tests: what is queued toward each).</summary>
    internal IEnumerable<MessengerLink> ConnectionLinks => _connections.Keys.Select(c => c.Link);
    private readonly CancellationTokenSource _cts = new();
    private readonly Lock _circuitLock = new();
    private Socket? _listener;
    private Task? _acceptLoop;
    private ITimer? _sweepTimer;
    private readonly TcpConnectionHost _connectionHost;
    private int _disposed;

    private long _streamsRelayed;
    private long _streamBytesRelayed;

    /// <param name="key">The messenger's key pair (clients pin its public key).</param>
    /// <param name="options">Limits and timeouts.</param>
    /// <param name="loggerFactory">Logging.</param>
    /// <param name="timeProvider">Clock.</param>
    /// <param name="store">
    /// The store several messengers share (etcd; owned by the caller): presence and offers are published there, and a
    /// message for a key connected to another messenger of the store is forwarded to it. Null: this messenger alone.
    /// </param>
    public MessengerServer(KeyPair key, MessengerServerOptions? options = null, ILoggerFactory? loggerFactory = null, TimeProvider? timeProvider = null, Manager.Store.IMeshStore? store = null)
    {
        ArgumentNullException.ThrowIfNull(key);
        _key = key;
        Options = options ?? MessengerServerOptions.Default;
        var errors = Options.Validate();
        if (errors.Count > 0)
        {
            throw new ArgumentException("invalid messenger options: " + string.Join("; ", errors), nameof(options));
        }

        _loggerFactory = loggerFactory ?? NullLoggerFactory.Instance;
        _logger = _loggerFactory.CreateLogger<MessengerServer>();
        _time = timeProvider ?? TimeProvider.System;
        _strangerLogs = new LogBudget(StrangerLogsPerSecond, _time, "lines about connections that failed or were refused before registering");
        _connectionHost = new TcpConnectionHost(
            new ListenerLimits { MaxConnections = Options.MaxConnections, MaxConnectionsPerSource = Options.MaxConnectionsPerSource }, _logger, _time);
        Store = new OfflineStore(Options, _time);
        Directory = new ServiceDirectory(_time, Options.DirectoryDefaultTtl, Options.DirectoryMaxTtl, Options.DirectoryMaxEntries);
        Metrics = new MessengerMetrics(this, Store, () => _connectionHost.Count);
        Presence = store is null ? null : new MessengerPresence(store, key.Public, _loggerFactory, _time);
    }

    /// <summary>The messenger's public key (clients pin it).</summary>
    public PubKey Key => _key.Public;

    /// <summary>The options in force.</summary>
    public MessengerServerOptions Options { get; }

    /// <summary>Where the server listens (after <see cref="Start"/>).</summary>
    public IPEndPoint LocalEndPoint => (IPEndPoint)(_listener?.LocalEndPoint ?? throw new InvalidOperationException("not started"));

    /// <summary>The discovery directory.</summary>
    public ServiceDirectory Directory { get; }

    /// <summary>Relayed streams accepted by their target since the start (both ends answered).</summary>
    public long StreamsRelayed => Interlocked.Read(ref _streamsRelayed);

    /// <summary>Stream record bytes (ciphertext) relayed since the start, both directions.</summary>
    public long StreamBytesRelayed => Interlocked.Read(ref _streamBytesRelayed);

    /// <summary>Registered (authenticated) connections.</summary>
    public int RegisteredCount => Volatile.Read(ref _registered);

    internal OfflineStore Store { get; }

    /// <summary>The instruments (meter Skywire.Messenger).</summary>
    internal MessengerMetrics Metrics { get; }

    /// <summary>Observes every frame a registered client sends, decrypted from the channel (tests: what the messenger can see).</summary>
    internal Action<PubKey, byte, ReadOnlyMemory<byte>>? Tap { get; set; }

    /// <summary>Whether <paramref name="key"/> is connected now.</summary>
    public bool IsOnline(PubKey key)
    {
        lock (_registryLock)
        {
            return _registry.ContainsKey(key);
        }
    }

    /// <summary>The live connections of <paramref name="key"/>, oldest first.</summary>
    private ServerConnection[] ConnectionsOf(PubKey key)
    {
        lock (_registryLock)
        {
            return _registry.TryGetValue(key, out var list) ? [.. list] : [];
        }
    }

    /// <summary>The connection of <paramref name="key"/> that takes streams: the newest one other than <paramref name="except"/> (when there is another).</summary>
    private ServerConnection? StreamTargetOf(PubKey key, ServerConnection? except)
    {
        var all = ConnectionsOf(key);
        return all.LastOrDefault(c => c != except) ?? all.LastOrDefault();
    }

    /// <summary>Binds <paramref name="endPoint"/> (port 0 picks one) and starts accepting.</summary>
    /// <param name="endPoint">Where to listen.</param>
    /// <param name="advertise">With a store: where other messengers reach this one (default: the bound address).</param>
    public void Start(IPEndPoint endPoint, IPEndPoint? advertise = null)
    {
        ArgumentNullException.ThrowIfNull(endPoint);
        var listener = new Socket(endPoint.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
        try
        {
            listener.Bind(endPoint);
            listener.Listen(512);
        }
        catch
        {
            listener.Dispose();
            throw;
        }

        _listener = listener;
        _sweepTimer = _time.CreateTimer(_ => Sweep(), null, Options.SweepInterval, Options.SweepInterval);
        _acceptLoop = Task.Run(() => _connectionHost.AcceptLoopAsync(listener, RunConnectionAsync, _cts.Token));
        Log.Listening(_logger, LocalEndPoint, Key);
        StartPresence(advertise ?? LocalEndPoint);
    }

    private async Task RunConnectionAsync(Socket socket)
    {
        var remote = socket.RemoteEndPoint?.ToString() ?? "?";
        ServerConnection? connection = null;
        try
        {
            connection = await AuthenticateAsync(socket, remote);
            if (connection is null)
            {
                return;
            }

            _connectionHost.Authenticated(socket);

            await connection.Link.Closed;
        }
        finally
        {
            if (connection is not null)
            {
                await CleanupAsync(connection);
            }
            else
            {
                socket.Dispose();
            }
        }
    }

    private async Task<ServerConnection?> AuthenticateAsync(Socket socket, string remote)
    {
        using var deadline = CancellationTokenSource.CreateLinkedTokenSource(_cts.Token);
        deadline.CancelAfter(Options.HandshakeTimeout);
        NoiseStream secure;
        try
        {
            secure = await NoiseStream.AcceptAsync(new NetworkStream(socket, ownsSocket: true), _key, MessengerProtocol.Prologue, deadline.Token);
        }
        catch (Exception ex) when (ex is NoiseException or ProtocolViolationException or IOException or SocketException or OperationCanceledException or EndOfStreamException)
        {
            if (_strangerLogs.TryTake(_logger))
            {
                Log.HandshakeFailed(_logger, remote, ex.Message);
            }

            return null;
        }

        var key = secure.RemoteKey;
        var link = new MessengerLink(secure, key.ToShortString(12), _loggerFactory.CreateLogger<MessengerLink>())
        {
            // A client that pipelines requests without reading the answers stops being read (issue 12.7).
            PauseReadingAboveBytes = Options.OutboundQueueLimit,
            PauseReadingAboveFrames = Options.OutboundQueueFrames,
        };
        (byte Opcode, uint RequestId, byte[] Payload) hello;
        MessengerHello? message;
        try
        {
            hello = await link.ReadFirstFrameAsync(deadline.Token);
            message = hello.Opcode == (byte)MessengerOpcode.Hello ? JsonSerializer.Deserialize(hello.Payload, MessengerJsonContext.Default.MessengerHello) : null;
        }
        catch (Exception ex) when (ex is ProtocolViolationException or JsonException or IOException or OperationCanceledException or EndOfStreamException)
        {
            if (_strangerLogs.TryTake(_logger))
            {
                Log.HandshakeFailed(_logger, remote, "no valid hello: " + ex.Message);
            }

            await link.DisposeAsync();
            return null;
        }

        if (message is null)
        {
            if (_strangerLogs.TryTake(_logger))
            {
                Log.HandshakeFailed(_logger, remote, "the first frame was not a hello");
            }

            await link.DisposeAsync();
            return null;
        }

        async Task<ServerConnection?> RefuseAsync(MessengerErrorCode code, string reason)
        {
            if (_strangerLogs.TryTake(_logger))
            {
                Log.Refused(_logger, key, remote, reason);
            }

            link.RespondError(hello.RequestId, code, reason);
            link.Start((_, _, _) => { });
            await link.DrainAndCloseAsync(TimeSpan.FromSeconds(2), "refused: " + reason);
            await link.DisposeAsync();
            return null;
        }

        if (message.Version != MessengerProtocol.Version)
        {
            return await RefuseAsync(MessengerErrorCode.UnsupportedVersion, $"messenger protocol version {message.Version} is not supported (this messenger speaks {MessengerProtocol.Version}: end-to-end session envelopes, docs/protocol.md 8.4); upgrade the client");
        }

        byte[] signature;
        try
        {
            signature = Convert.FromHexString(message.Signature);
        }
        catch (FormatException)
        {
            signature = [];
        }

        if (signature.Length != KeyPair.SignatureLength || !KeyPair.Verify(key, secure.HelloSigningInput(MessengerProtocol.HelloSignatureContext), signature))
        {
            return await RefuseAsync(MessengerErrorCode.Forbidden, "the hello signature does not prove the key of this channel");
        }

        // Another messenger of the store linking to this one: answer once this messenger's view lists it, so the
        // PeerSend frames it sends next are taken (a view that lagged used to close the link on the first one and
        // lose what it carried).
        if (message.Peer == true && !await WaitUntilPeerAsync(key, deadline.Token))
        {
            return await RefuseAsync(MessengerErrorCode.Forbidden, "a messenger link from a key that is not a messenger of this store");
        }

        var connection = new ServerConnection(this, key, link, new TokenBucket(Options.RatePerSecond, Options.RateBurst, _time));
        if (Tap is { } tap)
        {
            link.Tap = (op, payload) => tap(key, op, payload);
        }

        // Several connections per key, each proving the key; beyond the cap a newcomer takes the place of a holder that
        // fails a liveness check, or is refused.
        var first = false;
        while (true)
        {
            ServerConnection[] holders;
            lock (_registryLock)
            {
                if (!_registry.TryGetValue(key, out var list))
                {
                    _registry[key] = list = [];
                }

                if (list.Count < Options.MaxConnectionsPerKey)
                {
                    list.Add(connection);
                    _registered++;
                    first = list.Count == 1;
                    break;
                }

                holders = [.. list];
            }

            var alive = await Task.WhenAll(holders.Select(h => h.IsAliveAsync(Options.LivenessTimeout)));
            var dead = holders.Where((_, i) => !alive[i]).FirstOrDefault();
            if (dead is null)
            {
                return await RefuseAsync(MessengerErrorCode.Conflict, $"this key already has {holders.Length} live connections to the messenger, the most one key may have");
            }

            bool replaced;
            lock (_registryLock)
            {
                replaced = _registry.TryGetValue(key, out var list) && list.Remove(dead);
                if (replaced)
                {
                    list!.Add(connection);
                }
            }

            if (replaced)
            {
                Log.Replaced(_logger, key);
                dead.Link.Fail(ConnectionCloseReason.Timeout, "replaced by a new connection with the same key after failing a liveness check");
                break;
            }
        }

        _connections[connection] = 0;
        if (first && Presence is not null && !IsPeer(key))
        {
            Presence.UserOnline(key);
        }

        var expired = new List<(PubKey, DropNotice)>();
        var (messages, notices) = Store.TakeAll(key, expired);
        link.Respond(hello.Opcode, hello.RequestId, new MessengerHelloAck
        {
            Version = MessengerProtocol.Version,
            Key = key.ToString(),
            MaxEnvelopeSize = MessengerProtocol.MaxEnvelopeSize,
            StreamWindow = Options.StreamWindow,
            QueueMaxMessages = Options.QueueMaxMessages,
            QueueMaxBytes = Options.QueueMaxBytes,
            QueueTtlMs = (long)Options.QueueTtl.TotalMilliseconds,
            RatePerSecond = Options.RatePerSecond,
            RateBurst = Options.RateBurst,
            Queued = messages.Count,
        }, MessengerJsonContext.Default.MessengerHelloAck);
        foreach (var stored in messages)
        {
            connection.Deliver(stored.From, MessengerProtocol.DeliverFlagQueued, stored.Envelope, bounded: false);
        }

        foreach (var notice in notices)
        {
            connection.Link.Enqueue((byte)MessengerOpcode.Dropped, 0, JsonSerializer.SerializeToUtf8Bytes(notice, MessengerJsonContext.Default.DropNotice));
        }

        NotifyDrops(expired);
        link.Start(connection.Handle);
        Log.Registered(_logger, key, remote, messages.Count);
        return connection;
    }

    private async Task CleanupAsync(ServerConnection connection)
    {
        lock (_registryLock)
        {
            if (_registry.TryGetValue(connection.Key, out var list) && list.Remove(connection))
            {
                _registered--;
                if (list.Count == 0)
                {
                    _registry.Remove(connection.Key);
                    Presence?.UserOffline(connection.Key);
                }
            }
        }

        _connections.TryRemove(connection, out _);
        CloseCircuitsOf(connection);
        await connection.Link.DisposeAsync();
    }

    /// <summary>
    /// Routes a sealed envelope from <paramref name="from"/>; returns why it was dropped, or null. With
    /// <paramref name="fromPeer"/> it came from another messenger of the store: delivered or queued here, never forwarded again.
    /// </summary>
    private DropReason? Route(PubKey from, PubKey to, uint messageId, ReadOnlySpan<byte> envelope, bool fromPeer = false)
    {
        // Every live connection of the key gets it, here and at the other messengers of the store it is connected to;
        // dropped only when none of them is reading. A key held by a messenger no link is up to yet waits here and is
        // handed over when the link comes up.
        var targets = ConnectionsOf(to);
        var delivered = false;
        foreach (var connection in targets)
        {
            delivered |= connection.Deliver(from, 0, envelope, bounded: true);
        }

        var waiting = false;
        if (!fromPeer)
        {
            delivered |= ForwardToPeers(from, to, messageId, envelope, out waiting);
        }

        if (delivered)
        {
            Metrics.Delivered();
            return null;
        }

        if (targets.Length > 0 || (Presence?.ServersOf(to).Length > 0 && !waiting && !fromPeer))
        {
            return DropReason.RecipientBusy;
        }

        var expired = new List<(PubKey, DropNotice)>();
        var refused = Store.TryStore(to, from, messageId, envelope, expired);
        if (refused is null)
        {
            Metrics.Queued();
        }

        NotifyDrops(expired);
        if (refused is null && StreamTargetOf(to, except: null) is { } target)
        {
            // The recipient registered while we stored: hand it what is waiting.
            FlushStoreTo(target);
        }

        return refused;
    }

    private void FlushStoreTo(ServerConnection target)
    {
        var expired = new List<(PubKey, DropNotice)>();
        var (messages, notices) = Store.TakeAll(target.Key, expired);
        foreach (var stored in messages)
        {
            target.Deliver(stored.From, MessengerProtocol.DeliverFlagQueued, stored.Envelope, bounded: false);
        }

        foreach (var notice in notices)
        {
            target.Link.Enqueue((byte)MessengerOpcode.Dropped, 0, JsonSerializer.SerializeToUtf8Bytes(notice, MessengerJsonContext.Default.DropNotice));
        }

        NotifyDrops(expired);
    }

    private void NotifyDrops(List<(PubKey Sender, DropNotice Notice)> drops)
    {
        foreach (var (sender, notice) in drops)
        {
            NotifyDrop(sender, notice);
        }
    }

    /// <summary>Tells <paramref name="sender"/> a message was dropped: the connection that sent it, else every connection of the key, else later.</summary>
    private void NotifyDrop(PubKey sender, DropNotice notice, ServerConnection? origin = null)
    {
        Log.Dropped(_logger, sender, notice.MessageId, notice.Reason);
        Metrics.Dropped(notice.Reason);
        ServerConnection[] targets = origin is not null ? [origin] : ConnectionsOf(sender);
        if (targets.Length == 0)
        {
            if (!TryNotifyPeer(sender, notice))
            {
                Store.StoreNotice(sender, notice);
            }

            return;
        }

        var payload = JsonSerializer.SerializeToUtf8Bytes(notice, MessengerJsonContext.Default.DropNotice);
        foreach (var connection in targets)
        {
            connection.Link.TryEnqueueBounded((byte)MessengerOpcode.Dropped, 0, payload, [], Options.OutboundQueueLimit);
        }
    }

    private void Sweep()
    {
        try
        {
            NotifyDrops(Store.Sweep());
            PingPeers();
            var idleMs = (long)Options.IdleTimeout.TotalMilliseconds;
            var now = Environment.TickCount64;
            foreach (var connection in _connections.Keys)
            {
                if (now - connection.Link.LastReadTick > idleMs)
                {
                    connection.Link.Fail(ConnectionCloseReason.Timeout, $"nothing received for {Options.IdleTimeout.TotalSeconds:0} s");
                }
            }
        }
        catch (Exception ex)
        {
            Log.SweepFailed(_logger, ex);
        }
    }

    /// <summary>Stops accepting and closes every connection.</summary>
    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            return;
        }

        await _cts.CancelAsync();
        Metrics.Dispose();
        _listener?.Dispose();
        if (_sweepTimer is not null)
        {
            await _sweepTimer.DisposeAsync();
        }

        if (_acceptLoop is not null)
        {
            await _acceptLoop;
        }

        foreach (var connection in _connections.Keys)
        {
            connection.Link.Fail(ConnectionCloseReason.LocalClosed, "messenger shutting down");
        }

        foreach (var connection in _connections.Keys)
        {
            await connection.Link.DisposeAsync();
        }

        await DisposePeersAsync();

        _cts.Dispose();
    }

    private static partial class Log
    {
        [LoggerMessage(EventId = 3010, Level = LogLevel.Information, Message = "Messenger {Key} listening on {EndPoint}")]
        public static partial void Listening(ILogger logger, EndPoint endPoint, PubKey key);

        [LoggerMessage(EventId = 3011, Level = LogLevel.Information, Message = "Client {Key} registered from {Remote} ({Queued} queued messages delivered)")]
        public static partial void Registered(ILogger logger, PubKey key, string remote, int queued);

        [LoggerMessage(EventId = 3012, Level = LogLevel.Information, Message = "Connection from {Remote} failed before registration: {Reason}")]
        public static partial void HandshakeFailed(ILogger logger, string remote, string reason);

        [LoggerMessage(EventId = 3013, Level = LogLevel.Warning, Message = "Registration of {Key} from {Remote} refused: {Reason}")]
        public static partial void Refused(ILogger logger, PubKey key, string remote, string reason);

        [LoggerMessage(EventId = 3014, Level = LogLevel.Information, Message = "Key {Key} re-registered; the previous connection failed its liveness check and was closed")]
        public static partial void Replaced(ILogger logger, PubKey key);

        [LoggerMessage(EventId = 3015, Level = LogLevel.Debug, Message = "Message {MessageId} from {Sender} dropped: {Reason}")]
        public static partial void Dropped(ILogger logger, PubKey sender, uint messageId, DropReason reason);

        [LoggerMessage(EventId = 3017, Level = LogLevel.Error, Message = "Messenger sweep failed")]
        public static partial void SweepFailed(ILogger logger, Exception exception);

        [LoggerMessage(EventId = 3018, Level = LogLevel.Debug, Message = "Client {Key} is over its rate limit")]
        public static partial void RateLimited(ILogger logger, PubKey key);

        [LoggerMessage(EventId = 3053, Level = LogLevel.Information, Message = "Link to messenger {Server} up (messages for its keys go through it)")]
        public static partial void PeerConnected(ILogger logger, PubKey server);

        [LoggerMessage(EventId = 3054, Level = LogLevel.Warning, Message = "Cannot reach messenger {Server} (messages for its keys wait here; retried): {Reason}")]
        public static partial void PeerUnreachable(ILogger logger, PubKey server, string reason);

        [LoggerMessage(EventId = 3055, Level = LogLevel.Information, Message = "Link to messenger {Server} closed")]
        public static partial void PeerClosed(ILogger logger, PubKey server);
    }
}
