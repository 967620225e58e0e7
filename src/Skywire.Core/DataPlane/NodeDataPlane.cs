using System.Collections.Concurrent;
using System.Diagnostics.Metrics;
using System.Net;
using System.Net.Sockets;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Skywire.Core.Crypto;
using Skywire.Core.Crypto.Noise;
using Skywire.Core.Diagnostics;
using Skywire.Core.Forwarding;
using Skywire.Core.Links;
using Skywire.Core.Sessions;
using Skywire.Protocol;
using Skywire.Protocol.Links;

namespace Skywire.Core.DataPlane;

/// <summary>
/// The data plane of one node: one UDP bind, encrypted links to peers (Noise IK per link),
/// the label table (forwarding rules from the manager), and the end-to-end sessions that end
/// here. The node process creates one, <see cref="Start"/>s it, and drives it from the control
/// channel: <see cref="OpenLinkAsync"/>, <see cref="InstallRule"/>, <see cref="BindSession"/>.
/// </summary>
/// <remarks>
/// This type is the front: it composes the parts, each a type of its own (wireguard-go's layering):
/// <list type="bullet">
/// <item><see cref="IUdpBind"/> (<see cref="SocketUdpBind"/>): the socket, UDP GSO/GRO batching;</item>
/// <item><see cref="LinkTable"/>: links and index tables, bounded for strangers (<see cref="DataPlaneOptions.MaxLinks"/>);</item>
/// <item><see cref="CookieChecker"/> and <see cref="LinkHandshake"/>: the stateless checks and the handshake messages;</item>
/// <item><see cref="LinkHandshaker"/>: the handshakes of the links; <see cref="LinkTimers"/>: retries, probes, death, rekey;</item>
/// <item><see cref="PacketReceiver"/>: the receive thread; <see cref="Forwarder"/>: label switching and session sends.</item>
/// </list>
/// Threads: one dedicated receive thread (blocking receive, GRO batches on Linux, into a
/// preallocated buffer; verification, forwarding and session delivery run on it without
/// allocating), one maintenance loop (handshake retries, probes, death detection, expiry), and
/// callers' threads for sends. Events are raised on the thread pool, never on the receive thread.
/// </remarks>
public sealed class NodeDataPlane : IAsyncDisposable, ILinkEvents
{
    /// <summary>Most up/down log lines a second for links this node did not open (the rest are counted: <see cref="LogBudget"/>).</summary>
    private const int StrangerLinkLogsPerSecond = 10;

    private readonly KeyPair _identity;
    private readonly NoiseKeyPair _staticKey;
    private readonly DataPlaneOptions _options;
    private readonly ILogger _logger;
    private readonly ILogger _sessionLogger;
    private readonly TimeProvider _time;
    private readonly AeadAlgorithmId _preferred;
    private readonly IUdpBind _bind;
    private readonly LinkTable _links;
    private readonly RuleTable _rules;
    private readonly CookieChecker _cookies;
    private readonly LinkSender _sender;
    private readonly LinkHandshaker _handshaker;
    private readonly LinkTimers _timers;
    private readonly Forwarder _forwarder;
    private readonly PacketReceiver _receiver;
    private readonly ConcurrentDictionary<ulong, SecureSession> _sessions = new();
    private readonly CancellationTokenSource _cts = new();
    private readonly Meter _meter;
    private readonly LogBudget _strangerLinkLogs;
    private Thread? _receiveThread;
    private Task? _maintenance;
    private long _nextSweep;
    private int _started;
    private int _disposed;

    /// <summary>Creates the data plane for <paramref name="identity"/> (not disposed by this object) over a UDP socket.</summary>
    public NodeDataPlane(KeyPair identity, DataPlaneOptions? options = null, ILoggerFactory? loggerFactory = null, TimeProvider? timeProvider = null)
        : this(identity, bind: null, options, loggerFactory, timeProvider)
    {
    }

    /// <summary>
    /// Creates the data plane for <paramref name="identity"/> (not disposed by this object) over <paramref name="bind"/>
    /// (disposed with this object; null: a <see cref="SocketUdpBind"/> with the options' offload and buffer settings).
    /// </summary>
    public NodeDataPlane(KeyPair identity, IUdpBind? bind, DataPlaneOptions? options = null, ILoggerFactory? loggerFactory = null, TimeProvider? timeProvider = null)
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
        _bind = bind ?? new SocketUdpBind(_options.UdpOffload, _options.SocketBufferBytes, (ILogger?)loggerFactory?.CreateLogger<SocketUdpBind>());
        _rules = new RuleTable(_time);
        _links = new LinkTable(_options.MaxLinks, LinksInUse, _time);
        _cookies = new CookieChecker(identity.Public, _options.HandshakesPerSecondBeforeCookies, _time);
        _sender = new LinkSender(_bind, Statistics);
        var messages = new LinkHandshake(_staticKey, identity.Public, _time);
        _handshaker = new LinkHandshaker(_links, messages, _cookies, _sender, _options, Statistics, this, _preferred, _time, _logger);
        _timers = new LinkTimers(_links, _handshaker, _sender, _options, this, _time, _logger) { OnTick = TickSessionsAndRules };
        _forwarder = new Forwarder(_links, _rules, _sender, Statistics, _options.MaxUdpPayload);
        _receiver = new PacketReceiver(_bind, _links, _handshaker, _timers, _forwarder, _sender, Statistics, this, _time, _logger);
        _strangerLinkLogs = new LogBudget(StrangerLinkLogsPerSecond, _time);
        _meter = CreateMeter();
    }

    /// <summary>Name of the <see cref="Meter"/> (System.Diagnostics.Metrics) each data plane publishes its counters on.</summary>
    public const string MeterName = "Skywire.DataPlane";

    /// <summary>This node's key.</summary>
    public PubKey LocalKey => _identity.Public;

    /// <summary>The bound UDP address (after <see cref="Start"/>).</summary>
    public IPEndPoint LocalEndPoint => _bind.LocalEndPoint ?? throw new InvalidOperationException("The data plane is not started.");

    /// <summary>The options in force.</summary>
    public DataPlaneOptions Options => _options;

    /// <summary>Largest datagram a <see cref="SecureSession"/> carries with these options.</summary>
    public int MaxSessionDatagram => Protocol.Sessions.SessionLimits.MaxDatagram(_options.MaxUdpPayload);

    /// <summary>True while sends to a peer go out in GSO batches (Linux, <see cref="DataPlaneOptions.UdpOffload"/>, kernel support).</summary>
    public bool UdpGsoActive => _bind.GsoActive;

    /// <summary>True when the socket receives GRO batches (Linux, <see cref="DataPlaneOptions.UdpOffload"/>, kernel support).</summary>
    public bool UdpGroActive => _bind.GroActive;

    /// <summary>Node-wide counters (drops by reason).</summary>
    public DataPlaneStatistics Statistics { get; } = new();

    /// <summary>A link's keys were confirmed both ways (raised on the thread pool).</summary>
    public event EventHandler<LinkEventArgs>? LinkUp;

    /// <summary>A link that was up (or being opened) went down: timeout, closed, handshake failure (raised on the thread pool).</summary>
    public event EventHandler<LinkEventArgs>? LinkDown;

    /// <summary>A session where this node is the responder was established (raised on the thread pool).</summary>
    public event EventHandler<SecureSession>? SessionAccepted;

    /// <summary>
    /// Binds the UDP bind (port 0 picks a free port; read <see cref="LocalEndPoint"/>) and
    /// starts the receive thread and the maintenance loop.
    /// </summary>
    public IPEndPoint Start(IPEndPoint bindEndPoint)
    {
        ArgumentNullException.ThrowIfNull(bindEndPoint);
        ObjectDisposedException.ThrowIf(_disposed != 0, this);
        if (Interlocked.Exchange(ref _started, 1) != 0)
        {
            throw new InvalidOperationException("The data plane is already started.");
        }

        var local = _bind.Open(bindEndPoint);
        _receiveThread = new Thread(_receiver.Run) { IsBackground = true, Name = "skywire-udp-rx" };
        _receiveThread.Start();
        _maintenance = Task.Run(() => _timers.RunAsync(_cts.Token));
        DataPlaneLog.Started(_logger, LocalKey, local, _preferred);
        DataPlaneLog.Offloads(_logger, _bind.GsoActive, _bind.GroActive);
        return local;
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
        if (_started == 0 || _bind.LocalEndPoint is null)
        {
            throw new InvalidOperationException("The data plane is not started.");
        }

        if (peer.IsEmpty || peer == LocalKey || !KeyPair.IsValidPoint(peer))
        {
            throw new ArgumentException("the peer must be another node's valid public key", nameof(peer));
        }

        if (_bind.DualMode && endPoint.AddressFamily == AddressFamily.InterNetwork)
        {
            endPoint = new IPEndPoint(endPoint.Address.MapToIPv6(), endPoint.Port);
        }
        else if (endPoint.AddressFamily != _bind.AddressFamily)
        {
            throw new ArgumentException($"the data plane is bound to {_bind.AddressFamily} and cannot reach {endPoint}", nameof(endPoint));
        }

        Task wait;
        while (true)
        {
            var link = _links.GetOrAddLocal(peer, out var eviction);
            RaiseEvicted(eviction);
            lock (link.Gate)
            {
                if (link.Removed)
                {
                    continue; // a stranger's link that went down just now: take a new one
                }

                link.Wanted = true;
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
                    if (link.State is LinkState.Down or LinkState.Closed)
                    {
                        link.TransitionLocked(LinkState.Connecting);
                    }

                    link.Attempts = 0;
                    link.HandshakeStartedAt = _time.GetTimestamp();
                    _handshaker.StartLocked(link);
                }
            }

            break;
        }

        await wait.WaitAsync(cancellationToken);
    }

    /// <summary>Closes the link to <paramref name="peer"/> (tells the peer). False when there is none.</summary>
    public bool CloseLink(PubKey peer)
    {
        if (!_links.TryGet(peer, out var link))
        {
            return false;
        }

        bool raise;
        lock (link.Gate)
        {
            if (link.Current is { } session && link.State == LinkState.Up)
            {
                Span<byte> body = [(byte)LinkControlKind.Close];
                _sender.SendControl(link, session, body);
            }

            link.Wanted = false;
            raise = _links.MarkDownLocked(link, LinkState.Closed, "closed locally");
        }

        if (raise)
        {
            RaiseLinkDown(link, "closed locally");
        }

        return true;
    }

    /// <summary>A snapshot of every link this node knows (up, connecting, down).</summary>
    public IReadOnlyList<LinkInfo> GetLinks() => _links.Links.Select(Snapshot).ToList();

    /// <summary>A snapshot of the link to <paramref name="peer"/>, or null.</summary>
    public LinkInfo? GetLink(PubKey peer) => _links.TryGet(peer, out var link) ? Snapshot(link) : null;

    /// <summary>How often the peer's address changed (tests: a stable peer must not count as roaming).</summary>
    internal long RoamsOf(PubKey peer) => _links.TryGet(peer, out var link) ? Interlocked.Read(ref link.Roams) : 0;

    /// <summary>Completed handshakes with the peer (tests: rekeying).</summary>
    internal long HandshakesOf(PubKey peer) => _links.TryGet(peer, out var link) ? Interlocked.Read(ref link.Handshakes) : 0;

    /// <summary>Entries of the index table: every set of link keys the node holds (tests: bounded state).</summary>
    internal int LinkKeyCount => _links.IndexCount;

    /// <summary>Handshakes this node started and awaits answers to (tests: bounded state).</summary>
    internal int PendingHandshakeCount => _links.PendingCount;

    /// <summary>Handles one UDP payload from <paramref name="from"/> as the receive thread does. Tests feed packets without a bind.</summary>
    internal void HandlePacket(Span<byte> packet, SocketAddress from) => _receiver.Handle(packet, from);

    // ---- Rules ------------------------------------------------------------------------------

    /// <summary>Installs or refreshes a forwarding rule (a refresh of the same rule keeps its counters).</summary>
    /// <exception cref="ArgumentException">Empty keys, route id 0, or a non-positive lifetime.</exception>
    public void InstallRule(RouteRule rule)
    {
        ArgumentNullException.ThrowIfNull(rule);
        _rules.Install(rule);
        DataPlaneLog.RuleInstalled(_logger, rule.InLink, rule.InRoute, rule.OutLink, rule.OutRoute, rule.Lifetime);
    }

    /// <summary>Removes the rule for (incoming link, incoming route id). False when there is none.</summary>
    public bool RemoveRule(PubKey inLink, uint inRoute) => _rules.Remove(inLink, inRoute);

    /// <summary>
    /// Keeps every live rule (forwarding and session delivery) for at least <paramref name="atLeast"/> from now; rules
    /// that already lapsed stay gone. The node calls it while its manager is away, so installed routes keep forwarding.
    /// </summary>
    /// <returns>How many rules were held longer.</returns>
    public int HoldRules(TimeSpan atLeast) => _rules.Hold(atLeast);

    /// <summary>The rule table, for the metering agent (counters, caps and send meters of metered routes).</summary>
    internal RuleTable Rules => _rules;

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

        var session = new SecureSession(route, _identity, _forwarder, _preferred, _options.HandshakeTimeout, _time, _sessionLogger);
        if (!_sessions.TryAdd(route.SessionId, session))
        {
            session.Dispose();
            return BindSession(route);
        }

        session.Closed += (_, reason) =>
        {
            _sessions.TryRemove(new KeyValuePair<ulong, SecureSession>(session.SessionId, session));
            _rules.RemoveSession(session);
            DataPlaneLog.SessionClosed(_logger, session.SessionId, reason);
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

        foreach (var link in _links.Links)
        {
            CloseLink(link.Peer);
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

        // Closing the bind ends the receive thread (a blocked receive returns).
        _bind.Dispose();
        _receiveThread?.Join(TimeSpan.FromSeconds(5));
        _cts.Dispose();
        _staticKey.Dispose();
        _cookies.Dispose();
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
        meter.CreateObservableGauge("skywire.dataplane.links.up", () => new Measurement<int>(_links.Links.Count(l => l.State == LinkState.Up), node), "{link}");
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
            ("table_full", s.TableFull), ("rate_limited", s.RateLimited), ("cookie_reply", s.CookieReplies),
            ("capped", s.Capped),
        ];
        foreach (var (reason, value) in drops)
        {
            yield return new Measurement<long>(value, node, new KeyValuePair<string, object?>("reason", reason));
        }
    }

    /// <summary>The peers whose links carry rules or sessions: never evicted.</summary>
    private HashSet<PubKey> LinksInUse()
    {
        var peers = new HashSet<PubKey>();
        _rules.AddLinksInUse(peers);
        foreach (var session in _sessions.Values)
        {
            var route = session.Route;
            peers.Add(route.InLink);
            peers.Add(route.OutLink);
        }

        return peers;
    }

    private void TickSessionsAndRules(long now)
    {
        foreach (var session in _sessions.Values)
        {
            session.Tick(now);
        }

        if (now >= _nextSweep)
        {
            _rules.Sweep();
            _nextSweep = now + _time.TimestampFrequency;
            if (_strangerLinkLogs.DrainSuppressed() is > 0 and var suppressed)
            {
                DataPlaneLog.StrangerLinkEventsSuppressed(_logger, suppressed);
            }
        }
    }

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
                link.Probes.SrttSeconds is { } s ? TimeSpan.FromSeconds(s) : null,
                link.Probes.LastRttSeconds is { } l ? TimeSpan.FromSeconds(l) : null,
                link.Probes.Loss(_time.GetTimestamp(), _options.ProbeWindow, _options.ProbeTimeout, _time),
                Interlocked.Read(ref link.PacketsSent),
                Interlocked.Read(ref link.PacketsReceived),
                Interlocked.Read(ref link.BytesSent),
                Interlocked.Read(ref link.BytesReceived),
                link.State == LinkState.Up ? link.UpSinceUtc : null,
                lastReceived);
        }
    }

    void ILinkEvents.LinkUp(Link link, string reason) => RaiseLinkUp(link, reason);

    void ILinkEvents.LinkDown(Link link, string reason) => RaiseLinkDown(link, reason);

    private void RaiseEvicted(Eviction? eviction)
    {
        if (eviction is { } evicted)
        {
            Interlocked.Increment(ref Statistics.LinksEvictedField);
            DataPlaneLog.LinkEvicted(_logger, evicted.Link.Peer);
            if (evicted.DownEventDue)
            {
                RaiseLinkDown(evicted.Link, LinkTable.EvictedReason);
            }
        }
    }

    private void RaiseLinkUp(Link link, string reason)
    {
        var info = Snapshot(link);
        if (link.Wanted || _strangerLinkLogs.TryTake())
        {
            DataPlaneLog.LinkUp(_logger, link.Peer, info.RemoteEndPoint, reason);
        }

        ThreadPool.QueueUserWorkItem(_ => LinkUp?.Invoke(this, new LinkEventArgs(info, reason)));
    }

    private void RaiseLinkDown(Link link, string reason)
    {
        var info = Snapshot(link);
        if (link.Wanted || _strangerLinkLogs.TryTake())
        {
            DataPlaneLog.LinkDown(_logger, link.Peer, reason);
        }

        ThreadPool.QueueUserWorkItem(_ => LinkDown?.Invoke(this, new LinkEventArgs(info, reason)));
    }
}
