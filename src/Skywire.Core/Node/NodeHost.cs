using System.Collections.Concurrent;
using System.Net;
using System.Security.Cryptography;
using System.Text.Json;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Skywire.Core.AppApi;
using Skywire.Core.Control;
using Skywire.Core.Channels;
using Skywire.Core.Crypto;
using Skywire.Core.DataPlane;
using Skywire.Core.Forwarding;
using Skywire.Core.Messenger;
using Skywire.Core.Sessions;
using Skywire.Core.Sessions.Mux;
using Skywire.Protocol;
using Skywire.Protocol.AppApi;
using Skywire.Protocol.Control;
using LinkState = Skywire.Protocol.Control.LinkState;

namespace Skywire.Core.Node;

/// <summary>
/// A node process, composed: the data plane (links, label forwarding, end-to-end sessions), one stream multiplexer per
/// session, the control channel to the manager (the only source of rules), and the app API for local apps.
/// </summary>
/// <remarks>
/// Threads: the data plane's receive thread feeds <see cref="StreamMultiplexer.Receive"/> directly; each multiplexer
/// has its own send loop; the control channel has one read loop and handles manager commands concurrently; a
/// report loop sends link metrics and app heartbeats every report interval (and at once when a link changes).
/// </remarks>
public sealed partial class NodeHost : IAppHost, IAsyncDisposable
{
    private readonly KeyPair _key;
    private readonly NodeOptions _options;
    private readonly ILoggerFactory _loggerFactory;
    private readonly ILogger _logger;
    private readonly NodeDataPlane _dataPlane;
    private readonly AppApiServer _apps;
    private readonly MessengerPeering? _messenger;
    private readonly string _token;
    private readonly ConcurrentDictionary<ulong, MeshSession> _sessions = new();
    private readonly ConcurrentDictionary<string, AppApiRegisterMessage> _registered = new(StringComparer.Ordinal);
    private readonly SemaphoreSlim _dialGate = new(1, 1);
    private readonly CancellationTokenSource _cts = new();
    private readonly TaskCompletionSource<bool> _reportNow = new();
    private volatile FrameConnection? _control;
    private TimeSpan _reportInterval = TimeSpan.FromSeconds(1);
    private Task? _run;
    private int _linkChanged;
    private int _disposed;

    public NodeHost(KeyPair key, NodeOptions options, ILoggerFactory? loggerFactory = null)
    {
        ArgumentNullException.ThrowIfNull(key);
        ArgumentNullException.ThrowIfNull(options);
        _key = key;
        _options = options;
        _loggerFactory = loggerFactory ?? NullLoggerFactory.Instance;
        _logger = _loggerFactory.CreateLogger<NodeHost>();
        _dataPlane = new NodeDataPlane(key, options.DataPlane with { AcceptInboundLink = AdmitInboundLink }, _loggerFactory, options.TimeProvider);
        _token = Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(32));
        _apps = new AppApiServer(this, options.AppsListen, _token, _loggerFactory.CreateLogger<AppApiServer>());
        _messenger = options.Messenger is { } messenger
            ? new MessengerPeering(messenger, key, DeliverFromMessenger, _loggerFactory, (_, open) => ParseOpen(open) is { } o && _apps.RegisteredApps().Contains(o.App))
            {
                OnMessage = OnMessengerMessage,
            }
            : null;
        _dataPlane.LinkUp += (_, _) => LinkChanged();
        _dataPlane.LinkDown += (_, e) =>
        {
            Log.LinkDown(_logger, e.Peer, e.Reason);
            LinkChanged();
        };
    }

    /// <summary>This node's key.</summary>
    public PubKey PublicKey => _key.Public;

    /// <inheritdoc />
    public string NodeKey => _key.Public.ToString();

    /// <summary>The links' UDP address.</summary>
    public IPEndPoint LinkEndPoint => _dataPlane.LocalEndPoint;

    /// <summary>The app API address.</summary>
    public IPEndPoint AppsEndPoint => _apps.LocalEndPoint;

    /// <summary>The app token (what the token file holds).</summary>
    public string AppToken => _token;

    /// <summary>The data plane (statistics, rules, links).</summary>
    public NodeDataPlane DataPlane => _dataPlane;

    /// <summary>Completes when the node stops for good (fatal manager refusal or disposal).</summary>
    /// <remarks>Faults with a <see cref="ControlException"/> (Forbidden) when the manager refuses a reconnect (node allow-list, another manager key).</remarks>
    public Task Completion => _run ?? Task.CompletedTask;

    /// <summary>
    /// Binds the data plane and the app API, writes the token file, and registers with the manager.
    /// Afterwards the node stays connected (reconnecting when the manager goes away) until disposed.
    /// </summary>
    /// <exception cref="ControlException">Forbidden when the manager's key is not the pinned key; Unavailable when unreachable.</exception>
    public async Task StartAsync(CancellationToken cancellationToken = default)
    {
        _dataPlane.Start(_options.LinkListen);
        _apps.Start();
        _messenger?.Start();
        if (_options.AppTokenFile is { } path)
        {
            WriteTokenFile(path, _token);
        }

        var connection = await ConnectAsync(cancellationToken);
        _run = Task.Run(() => RunAsync(connection), CancellationToken.None);
    }

    private static void WriteTokenFile(string path, string token)
    {
        var full = Path.GetFullPath(path);
        Directory.CreateDirectory(Path.GetDirectoryName(full)!);
        var temp = full + ".tmp";
        var options = new FileStreamOptions { Mode = FileMode.Create, Access = FileAccess.Write };
        if (!OperatingSystem.IsWindows())
        {
            options.UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite;
        }

        File.Delete(temp);
        using (var file = new FileStream(temp, options))
        using (var writer = new StreamWriter(file))
        {
            writer.Write(token);
            writer.Write('\n');
        }

        File.Move(temp, full, overwrite: true);
    }

    private async Task<FrameConnection> ConnectAsync(CancellationToken cancellationToken)
    {
        var (connection, ack) = await ControlClient.ConnectAsync(_options.Manager, _key, "node", FormatEndPoint(_options.AdvertisedLinkAddress ?? LinkEndPoint), HandleManagerAsync,
            _loggerFactory.CreateLogger<FrameConnection>(), _options.ConnectTimeout, cancellationToken);
        _reportInterval = TimeSpan.FromMilliseconds(Math.Clamp(ack.ReportIntervalMs, 100, 60_000));
        _control = connection;
        Log.Registered(_logger, _options.Manager.EndPoint, _key.Public);
        foreach (var app in _registered.Values)
        {
            await connection.RequestAsync((byte)ControlOpcode.AppRegister, new AppRegisterMessage { Name = app.Name, Type = app.Type },
                ControlJsonContext.Default.AppRegisterMessage, ControlJsonContext.Default.OkMessage, cancellationToken);
        }

        LinkChanged();
        return connection;
    }

    private static string FormatEndPoint(IPEndPoint endPoint) =>
        endPoint.Address.IsIPv4MappedToIPv6 ? new IPEndPoint(endPoint.Address.MapToIPv4(), endPoint.Port).ToString() : endPoint.ToString();

    private async Task RunAsync(FrameConnection connection)
    {
        var delay = _options.ReconnectDelay;
        while (!_cts.IsCancellationRequested)
        {
            var reports = ReportLoopAsync(connection);
            await connection.Closed.WaitAsync(_cts.Token).ContinueWith(_ => { }, TaskScheduler.Default);
            await reports;
            _control = null;
            await connection.DisposeAsync();
            if (_cts.IsCancellationRequested)
            {
                return;
            }

            Log.ManagerLost(_logger);
            while (!_cts.IsCancellationRequested)
            {
                try
                {
                    await Task.Delay(delay, _options.TimeProvider, _cts.Token);
                    connection = await ConnectAsync(_cts.Token);
                    delay = _options.ReconnectDelay;
                    break;
                }
                catch (OperationCanceledException)
                {
                    return;
                }
                catch (ControlException ex) when (ex.Code == ControlErrorCode.Forbidden)
                {
                    // Refused for good (not in the manager's node allow-list, or a manager with another key):
                    // retrying cannot help. Completion faults with the reason; `skywire node` exits 3.
                    Log.RefusedByManager(_logger, ex.Message);
                    throw;
                }
                catch (ControlException ex)
                {
                    Log.ReconnectFailed(_logger, ex.Message);
                    delay = TimeSpan.FromTicks(Math.Min(delay.Ticks * 2, TimeSpan.FromSeconds(10).Ticks));
                }
            }
        }
    }

    private void LinkChanged()
    {
        Interlocked.Exchange(ref _linkChanged, 1);
        lock (_reportNow)
        {
            _wake?.TrySetResult();
        }
    }

    private TaskCompletionSource? _wake;

    private async Task ReportLoopAsync(FrameConnection connection)
    {
        var lastHeartbeat = DateTimeOffset.MinValue;
        while (!connection.Closing.IsCancellationRequested && !_cts.IsCancellationRequested)
        {
            var wake = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            lock (_reportNow)
            {
                _wake = wake;
            }

            try
            {
                var links = _dataPlane.GetLinks();
                var report = new LinkReportMessage
                {
                    // Direct links to other clusters' nodes are none of this manager's business.
                    Links = [.. links.Where(l => l.State is Links.LinkState.Up or Links.LinkState.Down && !IsDirectPeer(l.Peer)).Select(l => new LinkState
                    {
                        Peer = l.Peer.ToString(),
                        Up = l.State == Links.LinkState.Up,
                        RttMicros = (long)((l.Rtt ?? TimeSpan.Zero).TotalMicroseconds),
                        Loss = l.Loss,
                        BytesSent = l.BytesSent,
                        BytesReceived = l.BytesReceived,
                    })],
                };
                Interlocked.Exchange(ref _linkChanged, 0);
                await connection.NotifyAsync((byte)ControlOpcode.LinkReport, report, ControlJsonContext.Default.LinkReportMessage, connection.Closing);
                var now = _options.TimeProvider.GetUtcNow();
                if (now - lastHeartbeat >= _reportInterval && !_registered.IsEmpty)
                {
                    lastHeartbeat = now;
                    await connection.NotifyAsync((byte)ControlOpcode.AppHeartbeat, new AppHeartbeatMessage { Names = [.. _registered.Keys] },
                        ControlJsonContext.Default.AppHeartbeatMessage, connection.Closing);
                }

                if (Volatile.Read(ref _linkChanged) == 0)
                {
                    await wake.Task.WaitAsync(_reportInterval, _options.TimeProvider, connection.Closing).ContinueWith(_ => { }, TaskScheduler.Default);
                }
            }
            catch (Exception ex) when (ex is ControlException or OperationCanceledException)
            {
                return;
            }
        }
    }

    // ------------------------------------------------------------------ manager commands

    private async ValueTask<byte[]> HandleManagerAsync(byte opcode, ReadOnlyMemory<byte> payload, CancellationToken cancellationToken)
    {
        switch ((ControlOpcode)opcode)
        {
            case ControlOpcode.Ping:
                return Ok;
            case ControlOpcode.OpenLink:
                var open = Parse(payload, ControlJsonContext.Default.OpenLinkMessage);
                if (!IPEndPoint.TryParse(open.Address, out var address))
                {
                    throw new ControlException(ControlErrorCode.BadRequest, $"'{open.Address}' is not ip:port");
                }

                try
                {
                    await _dataPlane.OpenLinkAsync(ParseKey(open.Peer), address, cancellationToken);
                }
                catch (TimeoutException ex)
                {
                    throw new ControlException(ControlErrorCode.Unavailable, $"link to {open.Peer[..12]} at {address}: {ex.Message}");
                }

                Log.LinkOpened(_logger, open.Peer, address);
                return Ok;
            case ControlOpcode.CloseLink:
                _dataPlane.CloseLink(ParseKey(Parse(payload, ControlJsonContext.Default.CloseLinkMessage).Peer));
                return Ok;
            case ControlOpcode.InstallRules:
                foreach (var rule in Parse(payload, ControlJsonContext.Default.InstallRulesMessage).Rules)
                {
                    _dataPlane.InstallRule(new RouteRule(ParseKey(rule.InLink), rule.InRoute, ParseKey(rule.OutLink), rule.OutRoute, TimeSpan.FromMilliseconds(rule.TtlMs)));
                }

                return Ok;
            case ControlOpcode.RemoveRules:
                foreach (var rule in Parse(payload, ControlJsonContext.Default.RemoveRulesMessage).Rules)
                {
                    _dataPlane.RemoveRule(ParseKey(rule.InLink), rule.InRoute);
                }

                return Ok;
            case ControlOpcode.SessionRoute:
                BindSession(Parse(payload, ControlJsonContext.Default.SessionRouteMessage));
                return Ok;
            case ControlOpcode.RouteClose:
                var close = Parse(payload, ControlJsonContext.Default.RouteCloseMessage);
                if (_sessions.TryGetValue(close.SessionId, out var gone))
                {
                    Log.SessionRouteGone(_logger, close.SessionId);
                    await gone.DisposeAsync();
                }

                return Ok;
            default:
                throw new ControlException(ControlErrorCode.BadRequest, $"opcode 0x{opcode:x2} is not a manager command");
        }
    }

    private static byte[] Ok => JsonSerializer.SerializeToUtf8Bytes(new OkMessage(), ControlJsonContext.Default.OkMessage);

    private static T Parse<T>(ReadOnlyMemory<byte> payload, System.Text.Json.Serialization.Metadata.JsonTypeInfo<T> type) =>
        JsonSerializer.Deserialize(payload.Span, type) ?? throw new JsonException("null payload");

    private static PubKey ParseKey(string hex) =>
        PubKey.TryParse(hex, out var key) ? key : throw new ControlException(ControlErrorCode.BadRequest, $"'{hex}' is not a public key");

    private MeshSession BindSession(SessionRouteMessage message)
    {
        try
        {
            return BindMeshSession(new SessionRoute(message.SessionId, ParseKey(message.Peer), message.Initiator, ParseKey(message.OutLink), message.OutRoute,
                ParseKey(message.InLink), message.InRoute, message.TtlMs > 0 ? TimeSpan.FromMilliseconds(message.TtlMs) : null), direct: false);
        }
        catch (ArgumentException ex)
        {
            throw new ControlException(ControlErrorCode.BadRequest, ex.Message);
        }
    }

    /// <summary>Binds the session in the data plane and wraps it in a multiplexer (idempotent per session id).</summary>
    /// <exception cref="ArgumentException">An invalid route.</exception>
    private MeshSession BindMeshSession(SessionRoute route, bool direct)
    {
        var secure = _dataPlane.BindSession(route);
        if (_sessions.TryGetValue(route.SessionId, out var existing))
        {
            return existing;
        }

        var session = new MeshSession(this, secure, _options.Mux, _loggerFactory, _options.TimeProvider, direct);
        if (!_sessions.TryAdd(route.SessionId, session))
        {
            _ = session.DisposeAsync().AsTask();
            return _sessions[route.SessionId];
        }

        Log.SessionBound(_logger, route.SessionId, route.Peer, route.Initiator);
        return session;
    }

    internal void SessionEnded(MeshSession session, string reason)
    {
        if (_sessions.TryRemove(new KeyValuePair<ulong, MeshSession>(session.SessionId, session)))
        {
            Log.SessionEnded(_logger, session.SessionId, reason);
            if (session.IsDirect)
            {
                DirectSessionEnded(session);
                return;
            }

            var control = _control;
            if (control is not null && session.IsInitiator)
            {
                _ = control.NotifyAsync((byte)ControlOpcode.RouteClose, new RouteCloseMessage { SessionId = session.SessionId }, ControlJsonContext.Default.RouteCloseMessage)
                    .ContinueWith(_ => { }, TaskScheduler.Default);
            }
        }
    }

    internal void DeliverIncoming(MeshSession session, MuxStream stream)
    {
        StreamOpenMessage? open = null;
        try
        {
            open = JsonSerializer.Deserialize(stream.OpenData.Span, AppApiJsonContext.Default.StreamOpenMessage);
        }
        catch (JsonException)
        {
        }

        if (open is null || !_apps.TryDeliver(open.App, new IncomingStream(stream, session.Peer.ToString(), open.From)))
        {
            Log.StreamRefused(_logger, open?.App ?? "?", session.Peer);
            stream.Refuse();
            return;
        }

        stream.Accept();
    }

    // ------------------------------------------------------------------ app API host

    private FrameConnection Control => _control ?? throw new ControlException(ControlErrorCode.Unavailable, "not connected to the manager");

    /// <inheritdoc />
    public async Task RegisterAppAsync(string name, string type, CancellationToken cancellationToken)
    {
        if (!_registered.TryAdd(name, new AppApiRegisterMessage { Name = name, Type = type }))
        {
            throw new AppApiException(AppApiErrorCode.Conflict, $"app '{name}' is already registered here");
        }

        try
        {
            await Control.RequestAsync((byte)ControlOpcode.AppRegister, new AppRegisterMessage { Name = name, Type = type },
                ControlJsonContext.Default.AppRegisterMessage, ControlJsonContext.Default.OkMessage, cancellationToken);
        }
        catch
        {
            _registered.TryRemove(name, out _);
            throw;
        }
    }

    /// <inheritdoc />
    public async Task UnregisterAppAsync(string name, CancellationToken cancellationToken)
    {
        _registered.TryRemove(name, out _);
        var control = _control;
        if (control is null)
        {
            return;
        }

        try
        {
            await control.RequestAsync((byte)ControlOpcode.AppUnregister, new AppUnregisterMessage { Name = name },
                ControlJsonContext.Default.AppUnregisterMessage, ControlJsonContext.Default.OkMessage, cancellationToken);
        }
        catch (ControlException)
        {
            // The tracker drops it at the next heartbeat timeout anyway.
        }
    }

    /// <inheritdoc />
    public Task<AppListResultMessage> ListAppsAsync(AppListMessage query, CancellationToken cancellationToken) =>
        Control.RequestAsync((byte)ControlOpcode.AppList, query, ControlJsonContext.Default.AppListMessage, ControlJsonContext.Default.AppListResultMessage, cancellationToken);

    /// <inheritdoc />
    public async Task<Stream> DialAsync(string node, string app, string? from, CancellationToken cancellationToken)
    {
        if (!PubKey.TryParse(node, out var peer))
        {
            throw new AppApiException(AppApiErrorCode.BadRequest, $"'{node}' is not a node key (66 hex characters)");
        }

        if (peer == _key.Public)
        {
            throw new AppApiException(AppApiErrorCode.BadRequest, "dialing an app on this same node is not supported");
        }

        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, _cts.Token);
        timeout.CancelAfter(_options.DialTimeout);
        try
        {
            var open = JsonSerializer.SerializeToUtf8Bytes(new StreamOpenMessage { App = app, From = from }, AppApiJsonContext.Default.StreamOpenMessage);
            MeshSession session;
            try
            {
                session = await SessionToAsync(peer, timeout.Token);
            }
            catch (AppApiException ex) when (_messenger is not null && !timeout.IsCancellationRequested)
            {
                // No route from our manager (the node is in another cluster, or we lost the manager): a direct link
                // brokered by the messenger if one comes up in time, else the messenger relays.
                if (await TryDirectSessionAsync(peer, app, timeout.Token) is { } direct)
                {
                    return await direct.Mux.OpenStreamAsync(open, timeout.Token);
                }

                return await DialThroughMessengerAsync(peer, app, open, ex, timeout.Token);
            }

            return await session.Mux.OpenStreamAsync(open, timeout.Token);
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

    private async Task<Stream> DialThroughMessengerAsync(PubKey peer, string app, byte[] open, AppApiException meshError, CancellationToken cancellationToken)
    {
        try
        {
            return await _messenger!.OpenStreamAsync(peer, open, cancellationToken);
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

    /// <summary>A stream another cluster's node opened to us through the messenger: same open data as a mesh stream.</summary>
    private bool DeliverFromMessenger(MessengerStream stream) =>
        ParseOpen(stream.OpenData) is { } open && _apps.TryDeliver(open.App, new IncomingStream(stream, stream.RemoteKey.ToString(), open.From));

    /// <summary>An established session to <paramref name="peer"/>: reuses a live one or asks the manager for a route.</summary>
    private async Task<MeshSession> SessionToAsync(PubKey peer, CancellationToken cancellationToken)
    {
        await _dialGate.WaitAsync(cancellationToken);
        try
        {
            // A direct session counts only once established: one still handshaking may be an offer the dialler gave up on.
            var live = _sessions.Values.FirstOrDefault(s => s.Peer == peer && s.IsUsable && (!s.IsDirect || s.Secure.State == SecureSessionState.Established));
            if (live is null)
            {
                var result = await Control.RequestAsync((byte)ControlOpcode.RouteRequest, new RouteRequestMessage { To = peer.ToString() },
                    ControlJsonContext.Default.RouteRequestMessage, ControlJsonContext.Default.RouteResultMessage, cancellationToken);
                live = _sessions.TryGetValue(result.SessionId, out var bound)
                    ? bound
                    : throw new ControlException(ControlErrorCode.Internal, "the manager built a route but did not bind the session");
            }

            await live.Secure.Established.WaitAsync(cancellationToken);
            return live;
        }
        catch (ControlException ex)
        {
            throw new AppApiException(ex.Code == ControlErrorCode.NoRoute ? AppApiErrorCode.Unreachable : AppApiErrorCode.Unreachable, ex.Message);
        }
        finally
        {
            _dialGate.Release();
        }
    }

    /// <inheritdoc />
    public ValueTask CompleteWritesAsync(Stream stream, CancellationToken cancellationToken) => stream switch
    {
        MuxStream mux => mux.CompleteWritesAsync(cancellationToken),
        MessengerStream relayed => relayed.CompleteWritesAsync(cancellationToken),
        _ => ValueTask.CompletedTask,
    };

    /// <inheritdoc />
    public void AbortStream(Stream stream)
    {
        if (stream is MuxStream mux)
        {
            mux.Abort();
        }
        else if (stream is MessengerStream relayed)
        {
            relayed.Abort();
        }
    }

    /// <inheritdoc />
    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            return;
        }

        await _cts.CancelAsync();
        var control = _control;
        if (control is not null)
        {
            await control.DisposeAsync();
        }

        if (_run is not null)
        {
            await _run.ContinueWith(_ => { }, TaskScheduler.Default);
        }

        if (_messenger is not null)
        {
            await _messenger.DisposeAsync();
        }

        await _apps.DisposeAsync();
        foreach (var session in _sessions.Values)
        {
            await session.DisposeAsync();
        }

        await _dataPlane.DisposeAsync();
        _cts.Dispose();
        _dialGate.Dispose();
        _directGate.Dispose();
    }

    private static partial class Log
    {
        [LoggerMessage(EventId = 7000, Level = LogLevel.Information, Message = "Registered with the manager at {Manager} as {Key}")]
        public static partial void Registered(ILogger logger, EndPoint manager, PubKey key);

        [LoggerMessage(EventId = 7001, Level = LogLevel.Warning, Message = "Lost the manager connection; reconnecting")]
        public static partial void ManagerLost(ILogger logger);

        [LoggerMessage(EventId = 7002, Level = LogLevel.Warning, Message = "Reconnect to the manager failed: {Reason}")]
        public static partial void ReconnectFailed(ILogger logger, string reason);

        [LoggerMessage(EventId = 7020, Level = LogLevel.Error, Message = "The manager refused this node; giving up: {Reason}")]
        public static partial void RefusedByManager(ILogger logger, string reason);

        [LoggerMessage(EventId = 7003, Level = LogLevel.Information, Message = "Link to {Peer} at {Address} is up")]
        public static partial void LinkOpened(ILogger logger, string peer, IPEndPoint address);

        [LoggerMessage(EventId = 7004, Level = LogLevel.Information, Message = "Link to {Peer} down: {Reason}")]
        public static partial void LinkDown(ILogger logger, PubKey peer, string reason);

        [LoggerMessage(EventId = 7005, Level = LogLevel.Information, Message = "Session {SessionId} with {Peer} bound (initiator: {Initiator})")]
        public static partial void SessionBound(ILogger logger, ulong sessionId, PubKey peer, bool initiator);

        [LoggerMessage(EventId = 7006, Level = LogLevel.Information, Message = "Session {SessionId} ended: {Reason}")]
        public static partial void SessionEnded(ILogger logger, ulong sessionId, string reason);

        [LoggerMessage(EventId = 7007, Level = LogLevel.Warning, Message = "Session {SessionId}: the manager closed its route")]
        public static partial void SessionRouteGone(ILogger logger, ulong sessionId);

        [LoggerMessage(EventId = 7010, Level = LogLevel.Information, Message = "Direct link to {Peer} at {Address} carries our session (we dialled: {Dialler})")]
        public static partial void DirectUp(ILogger logger, PubKey peer, IPEndPoint address, bool dialler);

        [LoggerMessage(EventId = 7011, Level = LogLevel.Information, Message = "No direct link to {Peer}: {Reason}")]
        public static partial void DirectFailed(ILogger logger, PubKey peer, string reason);

        [LoggerMessage(EventId = 7015, Level = LogLevel.Information, Message = "No direct link to {Peer} within {Timeout}; relaying")]
        public static partial void DirectTimedOut(ILogger logger, PubKey peer, TimeSpan timeout);

        [LoggerMessage(EventId = 7016, Level = LogLevel.Warning, Message = "Answering a direct link offer from {Peer} failed")]
        public static partial void AnswerFailed(ILogger logger, PubKey peer, Exception exception);

        [LoggerMessage(EventId = 7012, Level = LogLevel.Information, Message = "{Peer} refused a direct link: {Reason}")]
        public static partial void DirectRefused(ILogger logger, PubKey peer, string reason);

        [LoggerMessage(EventId = 7013, Level = LogLevel.Information, Message = "Refused a direct link offer from {Peer}: {Reason}")]
        public static partial void DirectOfferRefused(ILogger logger, PubKey peer, string reason);

        [LoggerMessage(EventId = 7014, Level = LogLevel.Debug, Message = "Ignored a messenger message from {Peer}: not a direct-link message")]
        public static partial void MessageIgnored(ILogger logger, PubKey peer);

        [LoggerMessage(EventId = 7008, Level = LogLevel.Information, Message = "Refused a stream from {Peer} for app {App}: not registered here")]
        public static partial void StreamRefused(ILogger logger, string app, PubKey peer);
    }
}
