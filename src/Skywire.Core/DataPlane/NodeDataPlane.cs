using System.Collections.Concurrent;
using System.Diagnostics.Metrics;
using System.Net;
using System.Net.Sockets;
using System.Security.Cryptography;
using System.Text;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Skywire.Core.Crypto;
using Skywire.Core.Crypto.Noise;
using Skywire.Core.Forwarding;
using Skywire.Core.Links;
using Skywire.Core.Sessions;
using Skywire.Protocol;
using Skywire.Protocol.Links;

namespace Skywire.Core.DataPlane;

/// <summary>
/// The data plane of one node: one UDP socket, encrypted links to peers (Noise IK per link),
/// the label table (forwarding rules from the manager), and the end-to-end sessions that end
/// here. The node process creates one, <see cref="Start"/>s it, and drives it from the control
/// channel: <see cref="OpenLinkAsync"/>, <see cref="InstallRule"/>, <see cref="BindSession"/>.
/// </summary>
/// <remarks>
/// Threads: one dedicated receive thread (blocking receive, GRO batches on Linux, into a
/// preallocated buffer; verification, forwarding and session delivery run on it without
/// allocating), one maintenance loop (handshake retries, probes, death detection, expiry), and
/// callers' threads for sends. Events are raised on the thread pool, never on the receive thread.
/// One socket per node for all peers (simple, NAT-friendly). On Linux it receives with UDP GRO and
/// sends batches with UDP GSO (<see cref="UdpOffload"/>, docs/protocol.md §3.4); connected
/// per-peer sockets are not done.
/// </remarks>
public sealed partial class NodeDataPlane : IRoutedSender, IAsyncDisposable
{
    private readonly KeyPair _identity;
    private readonly NoiseKeyPair _staticKey;
    private readonly DataPlaneOptions _options;
    private readonly ILogger _logger;
    private readonly ILogger _sessionLogger;
    private readonly TimeProvider _time;
    private readonly AeadAlgorithmId _preferred;
    private readonly byte[] _mac1Key;
    private readonly ConcurrentDictionary<PubKey, Link> _links = new();
    private readonly ConcurrentDictionary<uint, LinkSession> _sessionsByIndex = new();
    private readonly ConcurrentDictionary<uint, Link> _pendingByIndex = new();
    private readonly ConcurrentDictionary<ulong, SecureSession> _sessions = new();
    private readonly RuleTable _rules;
    private readonly CancellationTokenSource _cts = new();
    private readonly Meter _meter;
    private Socket? _socket;
    private Thread? _receiveThread;
    private Task? _maintenance;
    private IPEndPoint? _localEndPoint;
    private long _lastHandshakeTimestamp;
    private readonly AeadKey _cookieAead;
    private byte[] _cookieSecret = RandomNumberGenerator.GetBytes(32);
    private byte[] _previousCookieSecret = RandomNumberGenerator.GetBytes(32);
    private long _cookieSecretAt;
    private long _loadWindowStart;
    private int _loadCount;
    private int _disposed;
    private volatile bool _gso;
    private bool _gro;

    /// <summary>Creates the data plane for <paramref name="identity"/> (not disposed by this object).</summary>
    public NodeDataPlane(KeyPair identity, DataPlaneOptions? options = null, ILoggerFactory? loggerFactory = null, TimeProvider? timeProvider = null)
    {
        ArgumentNullException.ThrowIfNull(identity);
        _options = options ?? DataPlaneOptions.Default;
        _options.Validate();
        _identity = identity;
        _staticKey = Secp256k1Dh.FromKeyPair(identity);
        _logger = (ILogger?)loggerFactory?.CreateLogger<NodeDataPlane>() ?? NullLogger.Instance;
        _sessionLogger = (ILogger?)loggerFactory?.CreateLogger<SecureSession>() ?? NullLogger.Instance;
        _time = timeProvider ?? TimeProvider.System;
        _preferred = _options.Aead ?? AeadKey.PreferredAlgorithm;
        _mac1Key = Mac1Key(identity.Public);
        _rules = new RuleTable(_time);
        _cookieAead = AeadKey.Create(AeadAlgorithmId.ChaCha20Poly1305, CookieKey(identity.Public));
        _cookieSecretAt = _time.GetTimestamp();
        _meter = CreateMeter();
    }

    /// <summary>Name of the <see cref="Meter"/> (System.Diagnostics.Metrics) each data plane publishes its counters on.</summary>
    public const string MeterName = "Skywire.DataPlane";

    /// <summary>This node's key.</summary>
    public PubKey LocalKey => _identity.Public;

    /// <summary>The bound UDP address (after <see cref="Start"/>).</summary>
    public IPEndPoint LocalEndPoint => _localEndPoint ?? throw new InvalidOperationException("The data plane is not started.");

    /// <summary>The options in force.</summary>
    public DataPlaneOptions Options => _options;

    /// <summary>Largest datagram a <see cref="SecureSession"/> carries with these options.</summary>
    public int MaxSessionDatagram => Protocol.Sessions.SessionLimits.MaxDatagram(_options.MaxUdpPayload);

    /// <summary>True while sends to a peer go out in GSO batches (Linux, <see cref="DataPlaneOptions.UdpOffload"/>, kernel support).</summary>
    public bool UdpGsoActive => _gso;

    /// <summary>True when the socket receives GRO batches (Linux, <see cref="DataPlaneOptions.UdpOffload"/>, kernel support).</summary>
    public bool UdpGroActive => _gro;

    /// <summary>Node-wide counters (drops by reason).</summary>
    public DataPlaneStatistics Statistics { get; } = new();

    /// <summary>A link's keys were confirmed both ways (raised on the thread pool).</summary>
    public event EventHandler<LinkEventArgs>? LinkUp;

    /// <summary>A link that was up (or being opened) went down: timeout, closed, handshake failure (raised on the thread pool).</summary>
    public event EventHandler<LinkEventArgs>? LinkDown;

    /// <summary>A session where this node is the responder was established (raised on the thread pool).</summary>
    public event EventHandler<SecureSession>? SessionAccepted;

    int IRoutedSender.MaxUdpPayload => _options.MaxUdpPayload;

    /// <summary>
    /// Binds the UDP socket (port 0 picks a free port; read <see cref="LocalEndPoint"/>) and
    /// starts the receive thread and the maintenance loop.
    /// </summary>
    public IPEndPoint Start(IPEndPoint bindEndPoint)
    {
        ArgumentNullException.ThrowIfNull(bindEndPoint);
        ObjectDisposedException.ThrowIf(_disposed != 0, this);
        if (_socket is not null)
        {
            throw new InvalidOperationException("The data plane is already started.");
        }

        var socket = new Socket(bindEndPoint.AddressFamily, SocketType.Dgram, ProtocolType.Udp);
        try
        {
            if (bindEndPoint.AddressFamily == AddressFamily.InterNetworkV6 && bindEndPoint.Address.Equals(IPAddress.IPv6Any))
            {
                socket.DualMode = true;
            }

            socket.ReceiveBufferSize = _options.SocketBufferBytes;
            socket.SendBufferSize = _options.SocketBufferBytes;
            socket.Bind(bindEndPoint);
        }
        catch
        {
            socket.Dispose();
            throw;
        }

        _socket = socket;
        _localEndPoint = (IPEndPoint)socket.LocalEndPoint!;
        if (_options.UdpOffload)
        {
            _gro = UdpOffload.TryEnableGro(socket);
            _gso = UdpOffload.ProbeGso(socket);
        }
        _receiveThread = new Thread(ReceiveLoop) { IsBackground = true, Name = "skywire-udp-rx" };
        _receiveThread.Start();
        _maintenance = Task.Run(() => MaintenanceLoopAsync(_cts.Token));
        Log.Started(_logger, LocalKey, _localEndPoint, _preferred);
        Log.Offloads(_logger, _gso, _gro);
        return _localEndPoint;
    }

    // ---- Links ------------------------------------------------------------------------------

    /// <summary>
    /// Opens (or re-opens) the link to <paramref name="peer"/> at <paramref name="endPoint"/>:
    /// a Noise IK handshake in which the peer must prove it holds <paramref name="peer"/>.
    /// Completes when the link is up; returns at once when it already is (same address).
    /// </summary>
    /// <exception cref="TimeoutException">No valid answer within <see cref="DataPlaneOptions.HandshakeTimeout"/>.</exception>
    public async Task OpenLinkAsync(PubKey peer, IPEndPoint endPoint, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(endPoint);
        var socket = _socket ?? throw new InvalidOperationException("The data plane is not started.");
        if (peer.IsEmpty || peer == LocalKey || !KeyPair.IsValidPoint(peer))
        {
            throw new ArgumentException("the peer must be another node's valid public key", nameof(peer));
        }

        if (socket.DualMode && endPoint.AddressFamily == AddressFamily.InterNetwork)
        {
            endPoint = new IPEndPoint(endPoint.Address.MapToIPv6(), endPoint.Port);
        }
        else if (endPoint.AddressFamily != socket.AddressFamily)
        {
            throw new ArgumentException($"the data plane is bound to {socket.AddressFamily} and cannot reach {endPoint}", nameof(endPoint));
        }

        var link = _links.GetOrAdd(peer, static p => new Link(p));
        Task wait;
        lock (link.Gate)
        {
            var address = endPoint.Serialize();
            if (link.State == LinkState.Up && link.Remote is { } remote && remote.Equals(address))
            {
                return;
            }

            link.Initiator = true;
            link.Remote = address;
            link.RemoteEndPoint = endPoint;
            link.UpSignal ??= new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            wait = link.UpSignal.Task;
            if (link.Pending is null)
            {
                if (link.State != LinkState.Up)
                {
                    link.State = LinkState.Connecting;
                }

                link.Attempts = 0;
                link.HandshakeStartedAt = _time.GetTimestamp();
                SendInitLocked(link);
            }
        }

        await wait.WaitAsync(cancellationToken);
    }

    /// <summary>Closes the link to <paramref name="peer"/> (tells the peer). False when there is none.</summary>
    public bool CloseLink(PubKey peer)
    {
        if (!_links.TryGetValue(peer, out var link))
        {
            return false;
        }

        bool raise;
        lock (link.Gate)
        {
            if (link.Current is { } session && link.State == LinkState.Up)
            {
                Span<byte> body = [(byte)LinkControlKind.Close];
                SendControl(link, session, body);
            }

            raise = MarkDownLocked(link, LinkState.Closed, "closed locally");
        }

        if (raise)
        {
            RaiseLinkDown(link, "closed locally");
        }

        return true;
    }

    /// <summary>A snapshot of every link this node knows (up, connecting, down).</summary>
    public IReadOnlyList<LinkInfo> GetLinks() => _links.Values.Select(Snapshot).ToList();

    /// <summary>A snapshot of the link to <paramref name="peer"/>, or null.</summary>
    public LinkInfo? GetLink(PubKey peer) => _links.TryGetValue(peer, out var link) ? Snapshot(link) : null;

    /// <summary>How often the peer's address changed (tests: a stable peer must not count as roaming).</summary>
    internal long RoamsOf(PubKey peer) => _links.TryGetValue(peer, out var link) ? Interlocked.Read(ref link.Roams) : 0;

    /// <summary>Completed handshakes with the peer (tests: rekeying).</summary>
    internal long HandshakesOf(PubKey peer) => _links.TryGetValue(peer, out var link) ? Interlocked.Read(ref link.Handshakes) : 0;

    // ---- Rules ------------------------------------------------------------------------------

    /// <summary>Installs or refreshes a forwarding rule (a refresh of the same rule keeps its counters).</summary>
    /// <exception cref="ArgumentException">Empty keys, route id 0, or a non-positive lifetime.</exception>
    public void InstallRule(RouteRule rule)
    {
        ArgumentNullException.ThrowIfNull(rule);
        _rules.Install(rule);
        Log.RuleInstalled(_logger, rule.InLink, rule.InRoute, rule.OutLink, rule.OutRoute, rule.Lifetime);
    }

    /// <summary>Removes the rule for (incoming link, incoming route id). False when there is none.</summary>
    public bool RemoveRule(PubKey inLink, uint inRoute) => _rules.Remove(inLink, inRoute);

    /// <summary>
    /// Keeps every live rule (forwarding and session delivery) for at least <paramref name="atLeast"/> from now; rules
    /// that already lapsed stay gone. The node calls it while its manager is away, so installed routes keep forwarding.
    /// </summary>
    /// <returns>How many rules were held longer.</returns>
    public int HoldRules(TimeSpan atLeast) => _rules.Hold(atLeast);

    /// <summary>Every live rule with its metering counters (packets and bytes per route).</summary>
    public IReadOnlyList<RouteRuleInfo> GetRules() => _rules.Snapshot();

    // ---- Sessions ---------------------------------------------------------------------------

    /// <summary>
    /// Binds an end-to-end session to this node as the manager assigned it: installs the local
    /// delivery rule (<see cref="SessionRoute.InLink"/>, <see cref="SessionRoute.InRoute"/>) and,
    /// on the initiator, starts the handshake. Idempotent: for a known session id it applies
    /// the route (a refresh or re-route) and returns the existing session.
    /// Await <see cref="SecureSession.Established"/> before sending.
    /// </summary>
    public SecureSession BindSession(SessionRoute route)
    {
        ArgumentNullException.ThrowIfNull(route);
        ObjectDisposedException.ThrowIf(_disposed != 0, this);
        route.Validate();
        if (route.Peer == LocalKey)
        {
            throw new ArgumentException("a session needs another node as its peer", nameof(route));
        }

        if (_sessions.TryGetValue(route.SessionId, out var existing))
        {
            UpdateSessionRoute(route);
            return existing;
        }

        var session = new SecureSession(route, _identity, this, _preferred, _options.HandshakeTimeout, _time, _sessionLogger);
        if (!_sessions.TryAdd(route.SessionId, session))
        {
            session.Dispose();
            return BindSession(route);
        }

        session.Closed += (_, reason) =>
        {
            _sessions.TryRemove(new KeyValuePair<ulong, SecureSession>(session.SessionId, session));
            _rules.RemoveSession(session);
            Log.SessionClosed(_logger, session.SessionId, reason);
        };
        _rules.InstallLocal(route.InLink, route.InRoute, session, route.Lifetime);
        if (!route.Initiator)
        {
            session.Established.ContinueWith(
                t => SessionAccepted?.Invoke(this, t.Result),
                CancellationToken.None,
                TaskContinuationOptions.OnlyOnRanToCompletion,
                TaskScheduler.Default);
        }

        session.Start();
        return session;
    }

    /// <summary>Binds the session (<see cref="BindSession"/>) and waits until it is established.</summary>
    /// <exception cref="SessionClosedException">The handshake timed out or the session was closed.</exception>
    public async Task<SecureSession> OpenSessionAsync(SessionRoute route, CancellationToken cancellationToken = default)
    {
        var session = BindSession(route);
        try
        {
            return await session.Established.WaitAsync(cancellationToken);
        }
        catch (OperationCanceledException)
        {
            session.Dispose();
            throw;
        }
    }

    /// <summary>Applies a new route (re-route) or refreshes the local rule's lifetime of a bound session.</summary>
    /// <exception cref="KeyNotFoundException">No such session.</exception>
    public void UpdateSessionRoute(SessionRoute route)
    {
        ArgumentNullException.ThrowIfNull(route);
        if (!_sessions.TryGetValue(route.SessionId, out var session))
        {
            throw new KeyNotFoundException($"no session {route.SessionId}");
        }

        session.UpdateRoute(route);
        // The old delivery rule stays until it expires or the session closes, so packets in
        // flight on the old path still arrive.
        _rules.InstallLocal(route.InLink, route.InRoute, session, route.Lifetime);
    }

    /// <summary>The session with this id, or null.</summary>
    public SecureSession? GetSession(ulong sessionId) => _sessions.TryGetValue(sessionId, out var s) ? s : null;

    /// <summary>The sessions bound here.</summary>
    public IReadOnlyList<SecureSession> GetSessions() => _sessions.Values.ToList();

    /// <summary>Closes a session and removes its delivery rules. False when there is none.</summary>
    public bool CloseSession(ulong sessionId)
    {
        if (!_sessions.TryGetValue(sessionId, out var session))
        {
            return false;
        }

        session.Dispose();
        return true;
    }

    bool IRoutedSender.SendRouted(PubKey outLink, uint routeId, Span<byte> packet, int payloadLength)
    {
        if (!_links.TryGetValue(outLink, out var link))
        {
            Interlocked.Increment(ref Statistics.LinkDownField);
            return false;
        }

        return SendRoutedOnLink(link, routeId, packet, payloadLength);
    }

    int IRoutedSender.SendRoutedBatch(PubKey outLink, uint routeId, Span<byte> slots, int stride, ReadOnlySpan<int> payloadLengths, int count)
    {
        if (!_links.TryGetValue(outLink, out var link))
        {
            Interlocked.Add(ref Statistics.LinkDownField, count);
            return 0;
        }

        return SendRoutedBatchOnLink(link, routeId, slots, stride, payloadLengths, count);
    }

    // ---- Lifetime ---------------------------------------------------------------------------

    /// <summary>Stops the threads, closes every session and link (peers are told), and the socket.</summary>
    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            return;
        }

        foreach (var session in _sessions.Values)
        {
            session.Close("data plane stopped");
        }

        foreach (var peer in _links.Keys)
        {
            CloseLink(peer);
        }

        await _cts.CancelAsync();
        if (_maintenance is not null)
        {
            try
            {
                await _maintenance;
            }
            catch (OperationCanceledException)
            {
            }
        }

        if (_socket is { } socket)
        {
            try
            {
                // Wakes a receive blocked in recvmsg (the GRO path), which a close alone does not.
                socket.Shutdown(SocketShutdown.Both);
            }
            catch (SocketException)
            {
                // ENOTCONN on an unconnected socket: the receiver is woken all the same.
            }

            socket.Dispose();
        }

        _receiveThread?.Join(TimeSpan.FromSeconds(5));
        _cts.Dispose();
        _staticKey.Dispose();
        _cookieAead.Dispose();
        _meter.Dispose();
    }

    // ---- Helpers ----------------------------------------------------------------------------

    private Meter CreateMeter()
    {
        // One meter per data plane, disposed with it; the node tag tells nodes of one process apart.
        var meter = new Meter(MeterName);
        var node = new KeyValuePair<string, object?>("node", LocalKey.ToShortString(16));
        var s = Statistics;
        meter.CreateObservableCounter("skywire.dataplane.packets.received", () => new Measurement<long>(s.PacketsReceived, node), "{packet}");
        meter.CreateObservableCounter("skywire.dataplane.packets.sent", () => new Measurement<long>(s.PacketsSent, node), "{packet}");
        meter.CreateObservableCounter("skywire.dataplane.bytes.received", () => new Measurement<long>(s.BytesReceived, node), "By");
        meter.CreateObservableCounter("skywire.dataplane.bytes.sent", () => new Measurement<long>(s.BytesSent, node), "By");
        meter.CreateObservableCounter("skywire.dataplane.packets.forwarded", () => new Measurement<long>(s.Forwarded, node), "{packet}");
        meter.CreateObservableCounter("skywire.dataplane.packets.delivered", () => new Measurement<long>(s.Delivered, node), "{packet}");
        meter.CreateObservableCounter("skywire.dataplane.packets.dropped", () => DropMeasurements(node), "{packet}");
        meter.CreateObservableGauge("skywire.dataplane.links.up", () => new Measurement<int>(_links.Values.Count(l => l.State == LinkState.Up), node), "{link}");
        return meter;
    }

    private IEnumerable<Measurement<long>> DropMeasurements(KeyValuePair<string, object?> node)
    {
        var s = Statistics;
        (string Reason, long Value)[] drops =
        [
            ("malformed", s.Malformed), ("bad_mac", s.BadMac), ("handshake_failed", s.HandshakeFailed),
            ("stale_handshake", s.StaleHandshake), ("refused", s.Refused), ("unknown_index", s.UnknownIndex),
            ("bad_tag", s.BadTag), ("replay", s.Replay), ("no_rule", s.NoRule), ("rule_expired", s.RuleExpired),
            ("link_down", s.LinkDown), ("too_large", s.TooLarge), ("send_failed", s.SendFailed), ("internal_error", s.InternalError),
        ];
        foreach (var (reason, value) in drops)
        {
            yield return new Measurement<long>(value, node, new KeyValuePair<string, object?>("reason", reason));
        }
    }

    private static byte[] Mac1Key(PubKey key)
    {
        Span<byte> input = stackalloc byte[64];
        var n = Encoding.ASCII.GetBytes("skywire-link-mac1/", input);
        key.WriteTo(input[n..]);
        return SHA256.HashData(input[..(n + PubKey.Length)]);
    }

    private static byte[] CookieKey(PubKey key)
    {
        Span<byte> input = stackalloc byte[64];
        var n = Encoding.ASCII.GetBytes("skywire-link-cookie/", input);
        key.WriteTo(input[n..]);
        return SHA256.HashData(input[..(n + PubKey.Length)]);
    }

    private static byte[] LinkPrologue(AeadAlgorithmId aead)
    {
        var prologue = Encoding.ASCII.GetBytes("skywire-link/\0\0");
        prologue[^2] = LinkLimits.Version;
        prologue[^1] = (byte)aead;
        return prologue;
    }

    private static void WriteMac1(ReadOnlySpan<byte> key, ReadOnlySpan<byte> message, Span<byte> mac)
    {
        Span<byte> full = stackalloc byte[32];
        HMACSHA256.HashData(key, message, full);
        full[..LinkLimits.TagLength].CopyTo(mac);
    }

    private static bool CheckMac1(ReadOnlySpan<byte> key, ReadOnlySpan<byte> message, ReadOnlySpan<byte> mac)
    {
        Span<byte> full = stackalloc byte[32];
        HMACSHA256.HashData(key, message, full);
        return CryptographicOperations.FixedTimeEquals(full[..LinkLimits.TagLength], mac);
    }

    private ulong NextHandshakeTimestamp()
    {
        // Microseconds since the epoch, strictly increasing within this process.
        var now = _time.GetUtcNow().ToUnixTimeMilliseconds() * 1000;
        while (true)
        {
            var last = Interlocked.Read(ref _lastHandshakeTimestamp);
            var next = Math.Max(now, last + 1);
            if (Interlocked.CompareExchange(ref _lastHandshakeTimestamp, next, last) == last)
            {
                return (ulong)next;
            }
        }
    }

    private uint AllocateIndex()
    {
        while (true)
        {
            var index = (uint)RandomNumberGenerator.GetInt32(1, int.MaxValue) ^ ((uint)RandomNumberGenerator.GetInt32(0, 2) << 31);
            if (index != 0 && !_sessionsByIndex.ContainsKey(index) && !_pendingByIndex.ContainsKey(index))
            {
                return index;
            }
        }
    }

    private AeadAlgorithmId AeadForAttempt(int attempt) =>
        _preferred == AeadAlgorithmId.ChaCha20Poly1305 || attempt < 2 || attempt % 2 == 0
            ? _preferred
            : AeadAlgorithmId.ChaCha20Poly1305;

    private LinkInfo Snapshot(Link link)
    {
        lock (link.Gate)
        {
            var lastReceived = link.LastReceivedAt == 0
                ? (DateTimeOffset?)null
                : _time.GetUtcNow() - _time.GetElapsedTime(link.LastReceivedAt);
            return new LinkInfo(
                link.Peer,
                link.RemoteEndPoint,
                link.State,
                link.Initiator,
                link.Current?.Aead,
                link.SrttSeconds is { } s ? TimeSpan.FromSeconds(s) : null,
                link.LastRttSeconds is { } l ? TimeSpan.FromSeconds(l) : null,
                LossLocked(link, _time.GetTimestamp()),
                Interlocked.Read(ref link.PacketsSent),
                Interlocked.Read(ref link.PacketsReceived),
                Interlocked.Read(ref link.BytesSent),
                Interlocked.Read(ref link.BytesReceived),
                link.State == LinkState.Up ? link.UpSinceUtc : null,
                lastReceived);
        }
    }

    private void RaiseLinkUp(Link link, string reason)
    {
        var info = Snapshot(link);
        Log.LinkUp(_logger, link.Peer, info.RemoteEndPoint, reason);
        ThreadPool.QueueUserWorkItem(_ => LinkUp?.Invoke(this, new LinkEventArgs(info, reason)));
    }

    private void RaiseLinkDown(Link link, string reason)
    {
        var info = Snapshot(link);
        Log.LinkDown(_logger, link.Peer, reason);
        ThreadPool.QueueUserWorkItem(_ => LinkDown?.Invoke(this, new LinkEventArgs(info, reason)));
    }
}
