using System.Net;
using System.Runtime.CompilerServices;
using System.Text.Json;
using Microsoft.Extensions.Logging;
using Skywire.Core.AppApi;
using Skywire.Core.Channels;
using Skywire.Core.Messenger;
using Skywire.Core.Sessions;
using Skywire.Core.Sessions.Mux;
using Skywire.Core.Streams;
using Skywire.Protocol;
using Skywire.Protocol.AppApi;
using Skywire.Protocol.Control;

namespace Skywire.Core.Node;

/// <summary>
/// The node's app API host (docs/protocol.md §7): owns the <see cref="AppApiServer"/> and answers what it asks of
/// the node. Registrations go to the manager's tracker through <see cref="NodeControl"/>; a dial reuses or asks for
/// a mesh session, else (another cluster) tries a direct link and falls back to a stream relayed by the messenger;
/// incoming streams, from the mesh or the messenger, go to the app registered under the name they ask for.
/// </summary>
internal sealed partial class NodeApps : IAppHost, IAsyncDisposable
{
    private readonly NodeOptions _options;
    private readonly NodeControl _control;
    private readonly NodeSessions _sessions;
    private readonly DirectLinks _direct;
    private readonly MessengerPeering? _messenger;
    private readonly ILogger _logger;
    private readonly CancellationToken _stopping;
    private readonly AppApiServer _server;
    private readonly SemaphoreSlim _dialGate = new(1, 1);
    private readonly ConditionalWeakTable<MuxStream, MeshSession> _streamSessions = new();
    private readonly Func<NodeInfoMessage> _nodeInfo;
    private readonly RelayHandovers _handovers;

    /// <param name="nodeKey">The node's key.</param>
    /// <param name="token">The app token.</param>
    /// <param name="options">Listen address, dial timeout.</param>
    /// <param name="control">The control channel (tracker, route requests).</param>
    /// <param name="sessions">The node's sessions.</param>
    /// <param name="direct">Direct links to other clusters' nodes.</param>
    /// <param name="messenger">The messenger peering, if any.</param>
    /// <param name="loggerFactory">Logging.</param>
    /// <param name="nodeInfo">What <see cref="GetNodeInfo"/> answers (the node's link address and underlay peers).</param>
    /// <param name="stopping">Cancelled when the node stops.</param>
    public NodeApps(PubKey nodeKey, string token, NodeOptions options, NodeControl control, NodeSessions sessions, DirectLinks direct, MessengerPeering? messenger,
        ILoggerFactory loggerFactory, Func<NodeInfoMessage> nodeInfo, CancellationToken stopping)
    {
        _nodeInfo = nodeInfo;
        NodePublicKey = nodeKey;
        _options = options;
        _control = control;
        _sessions = sessions;
        _direct = direct;
        _messenger = messenger;
        _logger = loggerFactory.CreateLogger<NodeHost>();
        _stopping = stopping;
        _handovers = new RelayHandovers(options, sessions, direct, _logger, stopping);
        _server = new AppApiServer(this, options.AppsListen, token, loggerFactory.CreateLogger<AppApiServer>(), options.AppConnections);
    }

    /// <summary>The node's key.</summary>
    public PubKey NodePublicKey { get; }

    /// <inheritdoc />
    public string NodeKey => NodePublicKey.ToString();

    /// <summary>The app API address.</summary>
    public IPEndPoint EndPoint => _server.LocalEndPoint;

    /// <summary>App API connections held now (metrics).</summary>
    public int ConnectionCount => _server.ConnectionCount;

    /// <summary>Binds the app API and starts accepting.</summary>
    public void Start() => _server.Start();

    /// <summary>Relayed cross-cluster streams moved to a direct link since the start (either end).</summary>
    public long StreamsMovedToDirect => _handovers.Moved;

    /// <summary>The datagram flow of a stream handed to an app, for code in this process (<see cref="AppApiServer.AttachInProcess"/>).</summary>
    public InProcessDatagrams? AttachDatagrams(string handle) => _server.AttachInProcess(handle);

    /// <summary>Whether an app of this name is connected and accepting streams here.</summary>
    public bool HasApp(string name) => _server.RegisteredApps().Contains(name);

    /// <inheritdoc />
    public Task RegisterAppAsync(string name, string type, CancellationToken cancellationToken) => _control.RegisterAppAsync(name, type, cancellationToken);

    /// <inheritdoc />
    public Task UnregisterAppAsync(string name, CancellationToken cancellationToken) => _control.UnregisterAppAsync(name, cancellationToken);

    /// <inheritdoc />
    public Task<AppListResultMessage> ListAppsAsync(AppListMessage query, CancellationToken cancellationToken) => _control.ListAppsAsync(query, cancellationToken);

    /// <inheritdoc />
    public async Task<DuplexStream> DialAsync(string node, string app, string? from, CancellationToken cancellationToken)
    {
        if (!PubKey.TryParse(node, out var peer))
        {
            throw new AppApiException(AppApiErrorCode.BadRequest, $"'{node}' is not a node key (66 hex characters)");
        }

        if (peer == NodePublicKey)
        {
            throw new AppApiException(AppApiErrorCode.BadRequest, "dialing an app on this same node is not supported");
        }

        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, _stopping);
        timeout.CancelAfter(_options.DialTimeout);
        try
        {
            var open = new StreamOpenMessage { App = app, From = from };
            MeshSession session;
            try
            {
                session = await SessionToAsync(peer, timeout.Token);
            }
            catch (AppApiException ex) when (_messenger is not null && !timeout.IsCancellationRequested)
            {
                // No route from our manager (the node is in another cluster, or we lost the manager): a direct link
                // brokered by the messenger if one comes up in time, else the messenger relays.
                if (await _direct.TryDirectSessionAsync(peer, app, timeout.Token) is { } direct)
                {
                    return Track(await direct.Mux.OpenStreamAsync(Serialize(open), timeout.Token), direct);
                }

                return await DialThroughMessengerAsync(peer, app, open, ex, timeout.Token);
            }

            return Track(await session.Mux.OpenStreamAsync(Serialize(open), timeout.Token), session);
        }
        catch (MuxException ex) when (ex.Error == MuxError.Refused)
        {
            throw new AppApiException(AppApiErrorCode.Refused, $"node {node[..12]} has no app '{app}' accepting streams");
        }
        catch (MuxException ex)
        {
            throw new AppApiException(AppApiErrorCode.Unreachable, $"session to {node[..12]} failed: {ex.Message}");
        }
        catch (SessionClosedException ex)
        {
            throw new AppApiException(AppApiErrorCode.Unreachable, $"session to {node[..12]} failed: {ex.Reason}");
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            throw new AppApiException(AppApiErrorCode.Unreachable, $"no session to {node[..12]} within {_options.DialTimeout.TotalSeconds:0} s");
        }
    }

    private static byte[] Serialize(StreamOpenMessage open) => JsonSerializer.SerializeToUtf8Bytes(open, AppApiJsonContext.Default.StreamOpenMessage);

    private async Task<DuplexStream> DialThroughMessengerAsync(PubKey peer, string app, StreamOpenMessage open, AppApiException meshError, CancellationToken cancellationToken)
    {
        try
        {
            if (!_handovers.Enabled)
            {
                return await _messenger!.OpenStreamAsync(peer, Serialize(open), cancellationToken);
            }

            // The relayed stream carries a secret token, so that it can move to a direct link when one comes up.
            var token = RelayHandovers.NewToken();
            var relay = await _messenger!.OpenStreamAsync(peer, Serialize(open with { Handover = token }), cancellationToken);
            return _handovers.Dialled(peer, app, relay, token);
        }
        catch (MessengerException ex) when (ex.Code == Protocol.Messenger.MessengerErrorCode.Refused)
        {
            throw new AppApiException(AppApiErrorCode.Refused, $"node {peer.ToShortString(12)} has no app '{app}' accepting streams");
        }
        catch (MessengerException ex)
        {
            throw new AppApiException(AppApiErrorCode.Unreachable, $"{meshError.Message}; through the messenger: {ex.Message}");
        }
    }

    /// <summary>An established session to <paramref name="peer"/>: reuses a live one or asks the manager for a route.</summary>
    private async Task<MeshSession> SessionToAsync(PubKey peer, CancellationToken cancellationToken)
    {
        await _dialGate.WaitAsync(cancellationToken);
        try
        {
            // A direct session counts only once established: one still handshaking may be an offer the dialler gave up on.
            var live = _sessions.FindUsable(peer, s => !s.IsDirect || s.Secure.State == SecureSessionState.Established);
            if (live is null)
            {
                var result = await _control.RequestRouteAsync(peer, cancellationToken);
                live = _sessions.TryGet(result.SessionId, out var bound)
                    ? bound
                    : throw new ControlException(ControlErrorCode.Internal, "the manager built a route but did not bind the session");
            }

            await live.Secure.Established.WaitAsync(cancellationToken);
            return live;
        }
        catch (ControlException ex)
        {
            throw new AppApiException(AppApiErrorCode.Unreachable, ex.Message);
        }
        finally
        {
            _dialGate.Release();
        }
    }

    /// <summary>A mesh stream arrived on <paramref name="session"/>: true when a local app took it.</summary>
    public bool DeliverMesh(MeshSession session, MuxStream stream)
    {
        var open = ParseOpen(stream.OpenData);
        if (open is { App: "", Handover: not null })
        {
            return _handovers.TryAcceptDirect(session, stream, open);
        }

        Track(stream, session);
        if (open is null || !_server.TryDeliver(open.App, new IncomingStream(stream, session.Peer.ToString(), open.From)))
        {
            Log.StreamRefused(_logger, open?.App ?? "?", session.Peer);
            return false;
        }

        return true;
    }

    /// <inheritdoc />
    public DatagramFlow? OpenDatagramFlow(DuplexStream stream) =>
        stream is MuxStream mux && _streamSessions.TryGetValue(mux, out var session) ? session.Flows.Open(mux.Id, mux.IsLocallyOpened) : null;

    /// <inheritdoc />
    public NodeInfoMessage GetNodeInfo() => _nodeInfo();

    private MuxStream Track(MuxStream stream, MeshSession session)
    {
        _streamSessions.AddOrUpdate(stream, session);
        return stream;
    }

    /// <summary>A stream another cluster's node opened to us through the messenger: same open data as a mesh stream.</summary>
    public bool DeliverFromMessenger(MessengerStream stream)
    {
        if (ParseOpen(stream.OpenData) is not { } open)
        {
            return false;
        }

        var incoming = _handovers.Accepted(stream, open);
        if (_server.TryDeliver(open.App, new IncomingStream(incoming, stream.RemoteKey.ToString(), open.From)))
        {
            return true;
        }

        if (incoming is HandoverStream handover)
        {
            handover.Abort();
        }

        return false;
    }

    /// <summary>Whether the open data of a stream arriving through the messenger names an app here (before it is answered).</summary>
    public bool AcceptsFromMessenger(ReadOnlyMemory<byte> openData) => ParseOpen(openData) is { } open && HasApp(open.App);

    private static StreamOpenMessage? ParseOpen(ReadOnlyMemory<byte> data)
    {
        try
        {
            return JsonSerializer.Deserialize(data.Span, AppApiJsonContext.Default.StreamOpenMessage);
        }
        catch (JsonException)
        {
            return null;
        }
    }

    /// <inheritdoc />
    public async ValueTask DisposeAsync()
    {
        await _server.DisposeAsync();
        _dialGate.Dispose();
    }

    private static partial class Log
    {
        [LoggerMessage(EventId = 7008, Level = LogLevel.Information, Message = "Refused a stream from {Peer} for app {App}: not registered here")]
        public static partial void StreamRefused(ILogger logger, string app, PubKey peer);
    }
}
