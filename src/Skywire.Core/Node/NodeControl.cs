using System.Collections.Concurrent;
using System.Net;
using System.Net.Sockets;
using System.Text.Json;
using Microsoft.Extensions.Logging;
using Skywire.Core.AppApi;
using Skywire.Core.Channels;
using Skywire.Core.Control;
using Skywire.Core.Crypto;
using Skywire.Core.DataPlane;
using Skywire.Core.Forwarding;
using Skywire.Core.Metering;
using Skywire.Core.Sessions;
using LinkInfo = Skywire.Core.Links.LinkInfo;
using Skywire.Protocol;
using Skywire.Protocol.AppApi;
using Skywire.Protocol.Control;

namespace Skywire.Core.Node;

/// <summary>
/// The node's side of the control channel (docs/protocol.md §4): registration with the manager, the manager's
/// commands (links, rules, session routes), the report loop (link reports and app heartbeats, each sized to fit its
/// frame), the apps registered with the tracker, and the reconnect loop (capped backoff with jitter) that registers
/// again and re-registers the apps when the manager comes back.
/// </summary>
/// <remarks>
/// A report that cannot be sent while the connection stays up is logged, counted in <see cref="Reports"/> and retried
/// at the next interval: the report loop ends only with its connection, never silently.
/// </remarks>
internal sealed partial class NodeControl : IAsyncDisposable
{
    private readonly KeyPair _key;
    private readonly NodeOptions _options;
    private readonly NodeDataPlane _dataPlane;
    private readonly NodeSessions _sessions;
    private readonly Func<PubKey, bool> _isDirectPeer;
    private readonly ILoggerFactory _loggerFactory;
    private readonly ILogger _logger;
    private readonly CancellationToken _stopping;
    private readonly ConcurrentDictionary<string, AppApiRegisterMessage> _registered = new(StringComparer.Ordinal);
    private readonly Lock _wakeLock = new();
    private readonly ReportCounters _counters = new();
    private readonly MeteringAgent _metering;
    private volatile FrameConnection? _connection;
    private int _managerIndex;
    private TaskCompletionSource? _wake;
    private TimeSpan _reportInterval = TimeSpan.FromSeconds(1);
    private Task? _run;
    private int _linkChanged;

    public NodeControl(KeyPair key, NodeOptions options, NodeDataPlane dataPlane, NodeSessions sessions, Func<PubKey, bool> isDirectPeer, ILoggerFactory loggerFactory, CancellationToken stopping)
    {
        _key = key;
        _options = options;
        _dataPlane = dataPlane;
        _sessions = sessions;
        _isDirectPeer = isDirectPeer;
        _loggerFactory = loggerFactory;
        _logger = loggerFactory.CreateLogger<NodeHost>();
        _stopping = stopping;
        LinkSource = dataPlane.GetLinks;
        _metering = new MeteringAgent(key, options.AllManagers.Select(m => m.Key), dataPlane.Rules, options.Metering, options.TimeProvider, loggerFactory.CreateLogger<MeteringAgent>(),
            (op, message, ct) => Connection.RequestAsync((byte)op, message, ControlJsonContext.Default.MeterMessage, ControlJsonContext.Default.MeterMessage, ct));
    }

    /// <summary>The node's metering agent (metered routes it is on).</summary>
    internal MeteringAgent Metering => _metering;

    /// <summary>Where link reports take their links (the data plane; tests substitute many).</summary>
    internal Func<IReadOnlyList<LinkInfo>> LinkSource { get; set; }

    /// <summary>Completes when the node stops for good (fatal refusal or disposal).</summary>
    public Task Completion => _run ?? Task.CompletedTask;

    /// <summary>What the report loop did so far.</summary>
    public NodeReportStatus Reports => _counters.Snapshot();

    /// <summary>Names of the apps registered with the tracker through this node.</summary>
    public IReadOnlyCollection<string> RegisteredApps => [.. _registered.Keys];

    private FrameConnection Connection => _connection ?? throw new ControlException(ControlErrorCode.Unavailable, "not connected to the manager");

    /// <summary>Whether the node is registered with its manager now.</summary>
    public bool IsConnected => _connection is not null;

    /// <summary>
    /// Tries to register once, then stays connected (reconnecting) in the background. A manager that cannot be reached
    /// yet (not started, restarting) is not an error: the node retries forever with capped backoff and jitter, and works
    /// without it meanwhile. A refusal (node allow-list) or a manager that proves another key is fatal.
    /// </summary>
    /// <exception cref="ControlException">Forbidden: the manager refused this node or is not the pinned key.</exception>
    public async Task StartAsync(CancellationToken cancellationToken)
    {
        FrameConnection? connection = null;
        try
        {
            connection = await ConnectAsync(cancellationToken);
        }
        catch (Exception ex) when (ex is ControlException refusal ? !IsFatal(refusal, 1) : IsTransportFailure(ex))
        {
            Log.ManagerNotYetReachable(_logger, _options.Manager.EndPoint, ex.Message);
        }

        _run = Task.Run(() => RunAsync(connection), CancellationToken.None);
    }

    /// <summary>
    /// A refusal that retrying cannot change: the manager said Forbidden (allow-list) or answered the handshake with
    /// another key. A hang-up during the handshake is what a manager with another key does, but also what a loaded
    /// listener may do (at its connection cap, or evicting unauthenticated connections under a flood): fatal only when
    /// it happens <see cref="HangUpsBeforeFatal"/> times in a row, and never once a handshake with a manager succeeded
    /// (its key was right; a flood at its port must not make this node exit).
    /// </summary>
    private bool IsFatal(ControlException ex, int hangUpsInARow) =>
        ex.Code == ControlErrorCode.Forbidden
        && (!ex.IsHandshakeHangUp || (hangUpsInARow >= HangUpsBeforeFatal && Volatile.Read(ref _handshakeSucceeded) == 0));

    private static bool IsTransportFailure(Exception ex) => ex is IOException or SocketException or EndOfStreamException;

    /// <summary>Consecutive handshake hang-ups after which the pinned key is taken to be wrong.</summary>
    internal const int HangUpsBeforeFatal = 3;

    // 1 once a handshake with a manager succeeded: later hang-ups are load, not a wrong key.
    private int _handshakeSucceeded;

    /// <summary>Something about the links changed: report now.</summary>
    public void LinkChanged()
    {
        Interlocked.Exchange(ref _linkChanged, 1);
        lock (_wakeLock)
        {
            _wake?.TrySetResult();
        }
    }

    // ------------------------------------------------------------------ requests to the manager

    /// <summary>Registers an app with the tracker (and again after each reconnect).</summary>
    /// <exception cref="AppApiException">Conflict: registered already.</exception>
    public async Task RegisterAppAsync(string name, string type, CancellationToken cancellationToken)
    {
        if (!_registered.TryAdd(name, new AppApiRegisterMessage { Name = name, Type = type }))
        {
            throw new AppApiException(AppApiErrorCode.Conflict, $"app '{name}' is already registered here");
        }

        var control = _connection;
        if (control is null)
        {
            // The manager is away: the app is registered with the tracker when the node registers again.
            return;
        }

        try
        {
            await control.RequestAsync((byte)ControlOpcode.AppRegister, new AppRegisterMessage { Name = name, Type = type },
                ControlJsonContext.Default.AppRegisterMessage, ControlJsonContext.Default.OkMessage, cancellationToken);
        }
        catch (ControlException ex) when (ex.Code == ControlErrorCode.Unavailable && control.Closed.IsCompleted)
        {
            // Lost the manager meanwhile: registered again with the others at the reconnect.
        }
        catch
        {
            _registered.TryRemove(name, out _);
            throw;
        }
    }

    /// <summary>Removes an app from the tracker (best effort: the tracker drops it at the next heartbeat timeout anyway).</summary>
    public async Task UnregisterAppAsync(string name, CancellationToken cancellationToken)
    {
        _registered.TryRemove(name, out _);
        var control = _connection;
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
        }
    }

    /// <summary>Queries the tracker.</summary>
    public Task<AppListResultMessage> ListAppsAsync(AppListMessage query, CancellationToken cancellationToken) =>
        Connection.RequestAsync((byte)ControlOpcode.AppList, query, ControlJsonContext.Default.AppListMessage, ControlJsonContext.Default.AppListResultMessage, cancellationToken);

    /// <summary>Asks the manager for a route to <paramref name="peer"/>; the manager binds the session (SessionRoute) before it answers.</summary>
    public Task<RouteResultMessage> RequestRouteAsync(PubKey peer, CancellationToken cancellationToken) =>
        Connection.RequestAsync((byte)ControlOpcode.RouteRequest, new RouteRequestMessage { To = peer.ToString() },
            ControlJsonContext.Default.RouteRequestMessage, ControlJsonContext.Default.RouteResultMessage, cancellationToken);

    /// <summary>Tells the manager that a session we initiated ended (best effort).</summary>
    public void NotifyRouteClosed(ulong sessionId)
    {
        var control = _connection;
        if (control is not null)
        {
            _ = control.NotifyAsync((byte)ControlOpcode.RouteClose, new RouteCloseMessage { SessionId = sessionId }, ControlJsonContext.Default.RouteCloseMessage)
                .ContinueWith(_ => { }, TaskScheduler.Default);
        }
    }

    // ------------------------------------------------------------------ connection and reconnection

    /// <summary>
    /// Registers with the manager in use, or with the next ones of the list when it cannot be reached (several managers
    /// of one mesh): the first that answers is used from then on. A fatal refusal ends the attempt at once.
    /// </summary>
    private async Task<FrameConnection> ConnectAsync(CancellationToken cancellationToken)
    {
        var managers = _options.AllManagers;
        for (var tried = 1; ; tried++)
        {
            var manager = managers[_managerIndex % managers.Count];
            try
            {
                return await ConnectToAsync(manager, cancellationToken);
            }
            catch (ControlException ex) when (tried < managers.Count && ex.Code != ControlErrorCode.Forbidden)
            {
                _managerIndex = (_managerIndex + 1) % managers.Count;
                Log.ManagerFailover(_logger, manager.EndPoint, managers[_managerIndex].EndPoint, ex.Message);
            }
        }
    }

    private async Task<FrameConnection> ConnectToAsync(ManagerAddress manager, CancellationToken cancellationToken)
    {
        var (connection, ack) = await ControlClient.ConnectAsync(manager, _key, "node", FormatEndPoint(_options.AdvertisedLinkAddress ?? _dataPlane.LocalEndPoint), HandleManagerAsync,
            _loggerFactory.CreateLogger<FrameConnection>(), _options.ConnectTimeout, cancellationToken);
        _reportInterval = TimeSpan.FromMilliseconds(Math.Clamp(ack.ReportIntervalMs, 100, 60_000));
        Volatile.Write(ref _handshakeSucceeded, 1);
        _connection = connection;
        Log.Registered(_logger, manager.EndPoint, _key.Public);
        try
        {
            // The sessions first: a manager that restarted adopts them (docs/protocol.md §4.5, "Manager loss").
            await connection.NotifyAsync((byte)ControlOpcode.SessionReport, BuildSessionReport(), ControlJsonContext.Default.SessionReportMessage, cancellationToken);
            foreach (var app in _registered.Values)
            {
                try
                {
                    await connection.RequestAsync((byte)ControlOpcode.AppRegister, new AppRegisterMessage { Name = app.Name, Type = app.Type },
                        ControlJsonContext.Default.AppRegisterMessage, ControlJsonContext.Default.OkMessage, cancellationToken);
                }
                catch (ControlException ex) when (!connection.Closed.IsCompleted)
                {
                    // One app the manager refuses (its limits) does not keep the node from registering.
                    Log.AppNotRegistered(_logger, app.Name, ex.Message);
                }
            }
        }
        catch
        {
            _connection = null;
            await connection.DisposeAsync();
            throw;
        }

        LinkChanged();
        return connection;
    }

    private SessionReportMessage BuildSessionReport() => new()
    {
        Sessions = [.. _sessions.Snapshot()
            .Where(s => !s.IsDirect && s.IsUsable)
            .Take(ControlProtocol.MaxReportedSessions)
            .Select(s => new SessionState { SessionId = s.SessionId, Peer = s.Peer.ToString(), Initiator = s.IsInitiator })],
    };

    internal static string FormatEndPoint(IPEndPoint endPoint) =>
        endPoint.Address.IsIPv4MappedToIPv6 ? new IPEndPoint(endPoint.Address.MapToIPv4(), endPoint.Port).ToString() : endPoint.ToString();

    /// <summary>
    /// Keeps the node registered: runs the report loop while connected, and while the manager is away retries forever
    /// (capped backoff with jitter) and holds the installed rules, so routes keep forwarding until the manager is back
    /// and takes them over. Ends when the node stops, or faults on a fatal refusal.
    /// </summary>
    private async Task RunAsync(FrameConnection? connection)
    {
        var backoff = new Backoff(_options.ReconnectDelay, _options.MaxReconnectDelay);
        var hangUps = 0;
        // Rules must outlive the longest gap between two holds: a delay plus a connect attempt, twice over.
        var hold = (_options.MaxReconnectDelay + _options.ConnectTimeout) * 2;
        while (!_stopping.IsCancellationRequested)
        {
            if (connection is not null)
            {
                hangUps = 0;
                var reports = ReportLoopAsync(connection);
                await connection.Closed.WaitAsync(_stopping).ContinueWith(_ => { }, TaskScheduler.Default);
                await reports;
                _connection = null;
                await connection.DisposeAsync();
                connection = null;
                if (_stopping.IsCancellationRequested)
                {
                    return;
                }

                Log.ManagerLost(_logger);
                backoff.Reset();
            }

            try
            {
                _dataPlane.HoldRules(hold);
                await backoff.DelayAsync(_options.TimeProvider, _stopping);
                _dataPlane.HoldRules(hold);
                connection = await ConnectAsync(_stopping);
            }
            catch (OperationCanceledException)
            {
                return;
            }
            catch (ControlException failure) when (IsFatal(failure, failure.IsHandshakeHangUp ? ++hangUps : hangUps))
            {
                // Refused for good (not in the manager's node allow-list, or a manager with another key):
                // retrying cannot help. Completion faults with the reason; `skywire node` exits 3.
                Log.RefusedByManager(_logger, failure.Message);
                throw;
            }
            catch (Exception failure) when (failure is ControlException || IsTransportFailure(failure))
            {
                // A transport failure the connect did not classify (the connection lost right after the hello) is
                // retried like an unreachable manager: never the end of the node's control loop.
                if (failure is not ControlException { IsHandshakeHangUp: true })
                {
                    hangUps = 0;
                }

                // Logged at the 1st, 2nd, 4th, 8th... failure: a manager down for an hour is not a wall of warnings.
                if ((backoff.Attempts & (backoff.Attempts - 1)) == 0)
                {
                    Log.ReconnectFailed(_logger, backoff.Attempts, failure.Message);
                }
            }
        }
    }

    // ------------------------------------------------------------------ reports

    private async Task ReportLoopAsync(FrameConnection connection)
    {
        var lastHeartbeat = DateTimeOffset.MinValue;
        var lastOmitted = 0;
        while (!connection.Closing.IsCancellationRequested && !_stopping.IsCancellationRequested)
        {
            var wake = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            lock (_wakeLock)
            {
                _wake = wake;
            }

            try
            {
                Interlocked.Exchange(ref _linkChanged, 0);
                var report = NodeReports.BuildLinkReport(LinkSource(), _isDirectPeer, _options.MaxReportedLinks, ControlProtocol.MaxFrameSize, out var omitted);
                if (omitted != lastOmitted)
                {
                    // Logged when the count changes, not at every report.
                    lastOmitted = omitted;
                    if (omitted > 0)
                    {
                        Log.LinksOmitted(_logger, omitted, report.Links.Count);
                    }
                }

                await connection.NotifyAsync((byte)ControlOpcode.LinkReport, report, ControlJsonContext.Default.LinkReportMessage, connection.Closing);
                _counters.LinkReportSent(omitted, _options.TimeProvider.GetUtcNow());
                var now = _options.TimeProvider.GetUtcNow();
                if (now - lastHeartbeat >= _reportInterval && !_registered.IsEmpty)
                {
                    lastHeartbeat = now;
                    foreach (var heartbeat in NodeReports.Heartbeats(RegisteredApps, ControlProtocol.MaxFrameSize))
                    {
                        await connection.NotifyAsync((byte)ControlOpcode.AppHeartbeat, heartbeat, ControlJsonContext.Default.AppHeartbeatMessage, connection.Closing);
                    }

                    _counters.HeartbeatSent();
                }
            }
            catch (Exception ex) when (connection.Closed.IsCompleted || _stopping.IsCancellationRequested)
            {
                // The connection is gone: the run loop reconnects. Anything else must not end the loop.
                Log.ReportLoopEnded(_logger, ex);
                return;
            }
            catch (Exception ex)
            {
                _counters.Failed(ex.Message);
                Log.ReportFailed(_logger, _counters.Snapshot().Failures, ex);
            }

            if (Volatile.Read(ref _linkChanged) == 0)
            {
                await wake.Task.WaitAsync(_reportInterval, _options.TimeProvider, connection.Closing).ContinueWith(_ => { }, TaskScheduler.Default);
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
                await _sessions.CloseRouteAsync(Parse(payload, ControlJsonContext.Default.RouteCloseMessage).SessionId);
                return Ok;
            case ControlOpcode.MeterTerms or ControlOpcode.MeterRoute or ControlOpcode.MeterCountersign or ControlOpcode.MeterCaps:
                return _metering.Handle((ControlOpcode)opcode, payload);
            default:
                throw new ControlException(ControlErrorCode.BadRequest, $"opcode 0x{opcode:x2} is not a manager command");
        }
    }

    private void BindSession(SessionRouteMessage message)
    {
        try
        {
            _sessions.Bind(new SessionRoute(message.SessionId, ParseKey(message.Peer), message.Initiator, ParseKey(message.OutLink), message.OutRoute,
                ParseKey(message.InLink), message.InRoute, message.TtlMs > 0 ? TimeSpan.FromMilliseconds(message.TtlMs) : null), direct: false);
        }
        catch (ArgumentException ex)
        {
            throw new ControlException(ControlErrorCode.BadRequest, ex.Message);
        }
    }

    private static byte[] Ok => JsonSerializer.SerializeToUtf8Bytes(new OkMessage(), ControlJsonContext.Default.OkMessage);

    private static T Parse<T>(ReadOnlyMemory<byte> payload, System.Text.Json.Serialization.Metadata.JsonTypeInfo<T> type) =>
        JsonSerializer.Deserialize(payload.Span, type) ?? throw new JsonException("null payload");

    private static PubKey ParseKey(string hex) =>
        PubKey.TryParse(hex, out var key) ? key : throw new ControlException(ControlErrorCode.BadRequest, $"'{hex}' is not a public key");

    /// <inheritdoc />
    public async ValueTask DisposeAsync()
    {
        await _metering.DisposeAsync();
        var control = _connection;
        if (control is not null)
        {
            await control.DisposeAsync();
        }

        if (_run is not null)
        {
            await _run.ContinueWith(_ => { }, TaskScheduler.Default);
        }
    }

    /// <summary>Counters behind <see cref="Reports"/> (one lock: they change once per report interval).</summary>
    private sealed class ReportCounters
    {
        private readonly Lock _sync = new();
        private NodeReportStatus _status = new();

        public void LinkReportSent(int omitted, DateTimeOffset at)
        {
            lock (_sync)
            {
                _status = _status with { LinkReportsSent = _status.LinkReportsSent + 1, LinksOmitted = omitted, LastReportAt = at };
            }
        }

        public void HeartbeatSent()
        {
            lock (_sync)
            {
                _status = _status with { HeartbeatsSent = _status.HeartbeatsSent + 1 };
            }
        }

        public void Failed(string reason)
        {
            lock (_sync)
            {
                _status = _status with { Failures = _status.Failures + 1, LastFailure = reason };
            }
        }

        public NodeReportStatus Snapshot()
        {
            lock (_sync)
            {
                return _status;
            }
        }
    }

    private static partial class Log
    {
        [LoggerMessage(EventId = 7000, Level = LogLevel.Information, Message = "Registered with the manager at {Manager} as {Key}")]
        public static partial void Registered(ILogger logger, EndPoint manager, PubKey key);

        [LoggerMessage(EventId = 7001, Level = LogLevel.Warning, Message = "Lost the manager connection; reconnecting")]
        public static partial void ManagerLost(ILogger logger);

        [LoggerMessage(EventId = 7002, Level = LogLevel.Warning, Message = "Reconnect to the manager failed (attempt {Attempt}; retrying with backoff): {Reason}")]
        public static partial void ReconnectFailed(ILogger logger, int attempt, string reason);

        [LoggerMessage(EventId = 7026, Level = LogLevel.Warning, Message = "The manager at {Manager} cannot be reached ({Reason}); trying the next one, {Next}")]
        public static partial void ManagerFailover(ILogger logger, EndPoint manager, EndPoint next, string reason);

        [LoggerMessage(EventId = 7024, Level = LogLevel.Warning, Message = "The manager at {Manager} cannot be reached yet ({Reason}); retrying in the background")]
        public static partial void ManagerNotYetReachable(ILogger logger, EndPoint manager, string reason);

        [LoggerMessage(EventId = 7025, Level = LogLevel.Warning, Message = "App {Name} not registered with the manager again: {Reason}")]
        public static partial void AppNotRegistered(ILogger logger, string name, string reason);

        [LoggerMessage(EventId = 7020, Level = LogLevel.Error, Message = "The manager refused this node; giving up: {Reason}")]
        public static partial void RefusedByManager(ILogger logger, string reason);

        [LoggerMessage(EventId = 7003, Level = LogLevel.Information, Message = "Link to {Peer} at {Address} is up")]
        public static partial void LinkOpened(ILogger logger, string peer, IPEndPoint address);

        [LoggerMessage(EventId = 7021, Level = LogLevel.Warning, Message = "Link report to the manager leaves out {Omitted} links (it carries the {Reported} that matter most, to fit its frame)")]
        public static partial void LinksOmitted(ILogger logger, int omitted, int reported);

        [LoggerMessage(EventId = 7022, Level = LogLevel.Warning, Message = "Sending a report to the manager failed ({Failures} so far); retrying at the next interval")]
        public static partial void ReportFailed(ILogger logger, long failures, Exception exception);

        [LoggerMessage(EventId = 7023, Level = LogLevel.Debug, Message = "Report loop ended with its connection")]
        public static partial void ReportLoopEnded(ILogger logger, Exception exception);
    }
}

/// <summary>What a node's report loop did (the node's control-channel health, for status output and tests).</summary>
public sealed record NodeReportStatus
{
    /// <summary>Link reports sent since the start.</summary>
    public long LinkReportsSent { get; init; }

    /// <summary>Rounds of app heartbeats sent since the start.</summary>
    public long HeartbeatsSent { get; init; }

    /// <summary>Reports that could not be sent while the connection stayed up (each logged and retried).</summary>
    public long Failures { get; init; }

    /// <summary>Why the last failure happened, or null.</summary>
    public string? LastFailure { get; init; }

    /// <summary>Reportable links the last link report left out to fit its frame (0: all reported).</summary>
    public int LinksOmitted { get; init; }

    /// <summary>When the last link report was sent.</summary>
    public DateTimeOffset? LastReportAt { get; init; }
}
