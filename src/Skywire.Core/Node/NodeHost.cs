using System.Net;
using System.Security.Cryptography;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Skywire.Core.AppApi;
using Skywire.Core.Crypto;
using Skywire.Core.DataPlane;
using Skywire.Core.Diagnostics;
using Skywire.Core.Links;
using Skywire.Core.Messenger;
using Skywire.Core.Sessions;
using Skywire.Core.Sessions.Mux;
using Skywire.Protocol.AppApi;
using Skywire.Protocol;

namespace Skywire.Core.Node;

/// <summary>
/// A node process, composed: the data plane (links, label forwarding, end-to-end sessions), the node's sessions
/// (<see cref="NodeSessions"/>: one stream multiplexer per session), the control channel to the manager
/// (<see cref="NodeControl"/>: the only source of rules; reports, reconnection), the app API for local apps
/// (<see cref="NodeApps"/>), and, with a messenger, direct links to other clusters' nodes (<see cref="DirectLinks"/>).
/// </summary>
/// <remarks>
/// Threads: the data plane's receive thread feeds <see cref="StreamMultiplexer.Receive"/> directly; each multiplexer
/// has its own send loop; the control channel has one read loop and handles manager commands concurrently; a
/// report loop sends link metrics and app heartbeats every report interval (and at once when a link changes).
/// </remarks>
public sealed partial class NodeHost : IAsyncDisposable
{
    private readonly KeyPair _key;
    private readonly NodeOptions _options;
    private readonly ILogger _logger;

    // A stranger's links come and go at its will (fresh keys): link-down lines are logged within a budget.
    private const int LinkDownLogsPerSecond = 10;
    private readonly LogBudget _linkDownLogs;
    private readonly NodeDataPlane _dataPlane;
    private readonly NodeSessions _sessions;
    private readonly NodeControl _control;
    private readonly DirectLinks _direct;
    private readonly NodeApps _apps;
    private readonly MessengerPeering? _messenger;
    private readonly NodeMetrics _metrics;
    private readonly string _token;
    private readonly CancellationTokenSource _cts = new();
    private int _disposed;

    public NodeHost(KeyPair key, NodeOptions options, ILoggerFactory? loggerFactory = null)
    {
        ArgumentNullException.ThrowIfNull(key);
        ArgumentNullException.ThrowIfNull(options);
        _key = key;
        _options = options;
        var loggers = loggerFactory ?? NullLoggerFactory.Instance;
        _logger = loggers.CreateLogger<NodeHost>();
        _linkDownLogs = new LogBudget(LinkDownLogsPerSecond, options.TimeProvider, "link-down lines");
        _token = Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(32));

        // The parts call each other through these lambdas; every one is assigned before Start lets anything in.
        _dataPlane = new NodeDataPlane(key, options.DataPlane with { AcceptInboundLink = peer => _direct!.AdmitInboundLink(peer) }, loggers, options.TimeProvider);
        _sessions = new NodeSessions(this, _dataPlane, options, loggers, (session, stream) => _apps!.DeliverMesh(session, stream), OnSessionEnded);
        _control = new NodeControl(key, options, _dataPlane, _sessions, peer => _direct!.IsDirectPeer(peer), loggers, _cts.Token);
        _messenger = options.Messenger is { } messenger
            ? new MessengerPeering(messenger, key, stream => _apps!.DeliverFromMessenger(stream), loggers, (_, open) => _apps!.AcceptsFromMessenger(open))
            {
                OnMessage = message => _direct!.OnMessengerMessage(message),
            }
            : null;
        _direct = new DirectLinks(options, _dataPlane, _messenger, _sessions, name => _apps!.HasApp(name), loggers, _cts.Token);
        _apps = new NodeApps(key.Public, _token, options, _control, _sessions, _direct, _messenger, loggers, NodeInfo, _cts.Token);
        _metrics = new NodeMetrics(this, _sessions, () => _apps.ConnectionCount);
        _dataPlane.LinkUp += (_, _) => _control.LinkChanged();
        var stopping = _cts.Token; // cancelled before _cts is disposed: safe in a late link event
        _dataPlane.LinkDown += (_, e) =>
        {
            if (_linkDownLogs.TryTake(_logger))
            {
                Log.LinkDown(_logger, e.Peer, e.Reason);
            }

            _control.LinkChanged();
            _ = _sessions.CloseOverDeadLinkAsync(e.Peer, () => _control.IsConnected, stopping);
        };
    }

    /// <summary>This node's key.</summary>
    public PubKey PublicKey => _key.Public;

    /// <summary>This node's key (66 hex).</summary>
    public string NodeKey => _key.Public.ToString();

    /// <summary>The links' UDP address.</summary>
    public IPEndPoint LinkEndPoint => _dataPlane.LocalEndPoint;

    /// <summary>The app API address.</summary>
    public IPEndPoint AppsEndPoint => _apps.EndPoint;

    /// <summary>The app token (what the token file holds).</summary>
    public string AppToken => _token;

    /// <summary>
    /// Attaches code running in this process (an app started inside the node, e.g. `skywire node --vpn-server`) to the
    /// datagram flow of a stream the app API handed out with this handle (StreamReady's <c>datagrams</c>): the packets
    /// skip the app API connection and its threads. Null when no open stream has it or it is attached already.
    /// </summary>
    public AppApi.InProcessDatagrams? AttachDatagrams(string handle) => _apps.AttachDatagrams(handle);

    /// <summary>The data plane (statistics, rules, links).</summary>
    public NodeDataPlane DataPlane => _dataPlane;

    /// <summary>What the report loop to the manager did (reports sent, failures, links left out to fit a frame).</summary>
    public NodeReportStatus Reports => _control.Reports;

    /// <summary>Whether the node is registered with its manager now (it keeps retrying while not).</summary>
    public bool ManagerConnected => _control.IsConnected;

    /// <summary>Whether the node is registered at its messenger now (false without one).</summary>
    public bool MessengerConnected => _messenger?.IsConnected ?? false;

    /// <summary>Direct sessions to other clusters' nodes that were established (both roles) since the start.</summary>
    public long DirectSessionsEstablished => _direct.SessionsEstablished;

    /// <summary>Relayed cross-cluster streams moved to a direct link since the start (counted at both ends).</summary>
    public long StreamsMovedToDirect => _apps.StreamsMovedToDirect;

    /// <summary>Counters summed over the datagram flows of every session (docs/protocol.md §6.3).</summary>
    public DatagramFlowStatistics FlowStatistics => _sessions.FlowStatistics;

    /// <summary>Completes when the node stops for good (fatal manager refusal or disposal).</summary>
    /// <remarks>Faults with a <see cref="Channels.ControlException"/> (Forbidden) when the manager refuses a reconnect (node allow-list, another manager key).</remarks>
    public Task Completion => _control.Completion;

    /// <summary>The metering agent (metered routes this node is on; docs/metering.md "Live path").</summary>
    internal Metering.MeteringAgent Metering => _control.Metering;

    /// <summary>The app API host (tests reach the node as its apps do).</summary>
    internal IAppHost Apps => _apps;

    /// <summary>Where link reports take their links (tests substitute many).</summary>
    internal Func<IReadOnlyList<LinkInfo>> ReportLinkSource
    {
        get => _control.LinkSource;
        set => _control.LinkSource = value;
    }

    /// <summary>
    /// Binds the data plane and the app API, writes the token file, and registers with the manager (one attempt here).
    /// A manager that cannot be reached yet is retried forever in the background (<see cref="ManagerConnected"/>); the
    /// node stays connected (reconnecting whenever the manager goes away) until disposed.
    /// </summary>
    /// <exception cref="Channels.ControlException">Forbidden when the manager refuses this node or its key is not the pinned key.</exception>
    /// <exception cref="SecretFileException">The token file path holds something that is not a previous token file, or cannot be written.</exception>
    public async Task StartAsync(CancellationToken cancellationToken = default)
    {
        // The token file first: a path that is not ours to replace stops the node before it binds anything.
        if (_options.AppTokenFile is { } path)
        {
            AppTokenFile.Write(path, _token);
        }

        // Both listeners bind before anything talks to the network; a bind error names the listener and its address.
        Channels.ListenerBindException.Bind("links (UDP)", _options.LinkListen, () => _dataPlane.Start(_options.LinkListen));
        Channels.ListenerBindException.Bind("app API (TCP)", _options.AppsListen, _apps.Start);
        _messenger?.Start();
        await _control.StartAsync(cancellationToken);
    }

    /// <summary>The node's link address and the underlay addresses it talks to: link peers, manager, messenger.</summary>
    private NodeInfoMessage NodeInfo()
    {
        var underlay = new SortedSet<string>(StringComparer.Ordinal);
        foreach (var link in _dataPlane.GetLinks())
        {
            if (link.RemoteEndPoint is { } remote)
            {
                underlay.Add(Host(remote));
            }
        }

        foreach (var manager in _options.AllManagers)
        {
            underlay.Add(Host(manager.EndPoint));
        }

        if (_options.Messenger is { } messenger)
        {
            underlay.Add(Host(messenger.EndPoint));
        }

        return new NodeInfoMessage
        {
            Node = NodeKey,
            LinkAddress = NodeControl.FormatEndPoint(_options.AdvertisedLinkAddress ?? _dataPlane.LocalEndPoint),
            Underlay = [.. underlay],
            MaxDatagram = _dataPlane.MaxSessionDatagram - Protocol.Sessions.FlowDatagram.HeaderLength,
        };

        static string Host(EndPoint endPoint) => endPoint switch
        {
            IPEndPoint ip => (ip.Address.IsIPv4MappedToIPv6 ? ip.Address.MapToIPv4() : ip.Address).ToString(),
            DnsEndPoint dns => dns.Host,
            _ => endPoint.ToString() ?? "",
        };
    }

    private void OnSessionEnded(MeshSession session)
    {
        _metrics.SessionEnded(session);
        if (session.IsDirect)
        {
            _direct.ReleaseDirect(session.Peer);
        }
        else if (session.IsInitiator)
        {
            _control.NotifyRouteClosed(session.SessionId);
        }
    }

    // MeshSession calls its node back through these two.
    internal void SessionEnded(MeshSession session, string reason) => _sessions.SessionEnded(session, reason);

    internal void DeliverIncoming(MeshSession session, MuxStream stream) => _sessions.DeliverIncoming(session, stream);

    /// <inheritdoc />
    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            return;
        }

        await DrainMeteringAsync();
        await _cts.CancelAsync();
        await _control.DisposeAsync();
        if (_messenger is not null)
        {
            await _messenger.DisposeAsync();
        }

        await _apps.DisposeAsync();
        await _sessions.DisposeAsync();
        await _dataPlane.DisposeAsync();
        _direct.Dispose();
        _metrics.Dispose();
        _cts.Dispose();
    }

    /// <summary>
    /// A clean stop ends this node's metered routes while the manager still hears it (docs/metering.md "Clean stop"): it
    /// tells the manager every routed session ends (the manager ends their terms and removes the relays' rules, so every
    /// node on them sends its final receipts), closes them, and countersigns its neighbours' finals before disconnecting.
    /// Nothing changes for a node without metered routes.
    /// </summary>
    private async Task DrainMeteringAsync()
    {
        if (_control.Metering.RouteCount == 0)
        {
            return;
        }

        foreach (var session in _sessions.Snapshot().Where(s => !s.IsDirect))
        {
            _control.NotifyRouteClosed(session.SessionId); // either end may close a route; initiators would again on close
        }

        await _sessions.DisposeAsync();
        await _control.Metering.DrainAsync(_options.Metering.DrainTimeout, () => _control.IsConnected);
    }

    private static partial class Log
    {
        [LoggerMessage(EventId = 7004, Level = LogLevel.Information, Message = "Link to {Peer} down: {Reason}")]
        public static partial void LinkDown(ILogger logger, PubKey peer, string reason);
    }
}
