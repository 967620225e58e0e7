using System.Net;
using System.Net.Sockets;
using System.Text.Json;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Skywire.Core.Channels;
using Skywire.Core.Crypto;
using Skywire.Core.Crypto.Noise;
using Skywire.Core.Diagnostics;
using Skywire.Protocol;
using Skywire.Protocol.Control;
using Skywire.Protocol.Framing;
using ProtocolViolationException = Skywire.Protocol.Framing.ProtocolViolationException;

namespace Skywire.Core.Manager;

/// <summary>
/// The manager process's network side: accepts control connections, authenticates them (Noise XK, hello signed over
/// the handshake hash), and hands their requests to the <see cref="ManagerRequestHandler"/>, which acts on the
/// <see cref="MeshController"/> for the connection's proven key. Nodes may only use node opcodes; cli calls are
/// allowed for the manager's own key and the admin keys.
/// </summary>
public sealed partial class ManagerServer : IAsyncDisposable
{
    private readonly KeyPair _key;
    private readonly ManagerOptions _options;
    private readonly ILogger _logger;
    private readonly ILoggerFactory _loggerFactory;

    // Lines about control connections refused before their hello: anyone who reaches the port causes them at will.
    private const int RejectedLogsPerSecond = 10;
    private readonly LogBudget _rejectedLogs;
    private readonly TcpListener _listener;
    private readonly HashSet<PubKey> _admins;
    private readonly CancellationTokenSource _cts = new();
    private readonly TcpConnectionHost _connections;
    private readonly ManagerMetrics _metrics;
    private readonly object _sync = new();
    private readonly Dictionary<PubKey, FrameConnection> _nodes = [];
    private readonly ManagerRequestHandler _requests;
    private FileSystemWatcher? _watcher;
    private Timer? _reloadTimer;
    private Task? _acceptLoop;
    private int _disposed;

    public ManagerServer(KeyPair key, ManagerOptions options, ILoggerFactory? loggerFactory = null)
    {
        ArgumentNullException.ThrowIfNull(key);
        ArgumentNullException.ThrowIfNull(options);
        _key = key;
        _options = options;
        _loggerFactory = loggerFactory ?? NullLoggerFactory.Instance;
        _logger = _loggerFactory.CreateLogger<ManagerServer>();
        _rejectedLogs = new LogBudget(RejectedLogsPerSecond, options.TimeProvider, "lines about control connections rejected before their hello");
        _admins = [key.Public];
        foreach (var admin in options.Admins)
        {
            _admins.Add(PubKey.Parse(admin));
        }

        Controller = new MeshController(options, _loggerFactory.CreateLogger<MeshController>());
        if (options.Metering is { } metering)
        {
            Controller.Metering = new Metering.MeteringHub(key, metering, options.TimeProvider, _loggerFactory.CreateLogger<Metering.MeteringHub>());
        }

        if (options.Store is { } store)
        {
            Controller.UseStore(store, options.Listen.ToString());
        }

        _requests = new ManagerRequestHandler(Controller, options.Limits, _logger);
        _listener = new TcpListener(options.Listen);
        _connections = new TcpConnectionHost(options.Connections, _logger);
        _metrics = new ManagerMetrics(Controller, () => _connections.Count, key.Public.ToShortString(16));
    }

    /// <summary>The manager's logic (registry, routes, tracker).</summary>
    public MeshController Controller { get; }

    /// <summary>The manager's public key.</summary>
    public PubKey PublicKey => _key.Public;

    /// <summary>Bound address (after <see cref="Start"/>).</summary>
    public IPEndPoint LocalEndPoint => (IPEndPoint)_listener.LocalEndpoint;

    /// <summary>After each <see cref="ReloadAllowedNodes"/> (by call or file change): the keys in force, or the error that kept the old list.</summary>
    public event EventHandler<NodeAllowListReloadedEventArgs>? AllowedNodesReloaded;

    /// <summary>
    /// True when a manager on <paramref name="listen"/> without an allow-list can be joined from other hosts
    /// by any key (it then logs a warning at start).
    /// </summary>
    public static bool IsOpenToAnyNode(IPEndPoint listen, NodeAllowList? allowedNodes)
    {
        ArgumentNullException.ThrowIfNull(listen);
        return allowedNodes is null && !IPAddress.IsLoopback(listen.Address);
    }

    /// <summary>Binds and starts serving.</summary>
    public void Start()
    {
        _listener.Start();
        if (Controller.Shared is { } shared)
        {
            shared.Listen = LocalEndPoint.ToString();
        }

        Controller.Start();
        Controller.Metering?.Start();
        _acceptLoop = Task.Run(() => _connections.AcceptLoopAsync(_listener, ServeAsync, _cts.Token));
        Log.Listening(_logger, LocalEndPoint, _key.Public);
        if (_options.AllowedNodes is { } list)
        {
            Log.AllowListInForce(_logger, list.Count, list.FilePath ?? "command line");
            if (list.FilePath is { } file && _options.WatchAllowedNodesFile)
            {
                WatchFile(file);
            }
        }
        else if (IsOpenToAnyNode(LocalEndPoint, null))
        {
            Log.OpenToAnyNode(_logger, LocalEndPoint);
        }
    }

    /// <summary>
    /// Re-reads the allow-list file and disconnects every connected node whose key is no longer listed. A file
    /// that does not parse leaves the current list in force (logged). Returns the number of keys in force.
    /// </summary>
    /// <exception cref="NodeAllowListException">The file does not parse (the old list stays).</exception>
    public int ReloadAllowedNodes()
    {
        var list = _options.AllowedNodes ?? throw new InvalidOperationException("this manager has no node allow-list");
        int count;
        try
        {
            count = list.Reload();
        }
        catch (NodeAllowListException ex)
        {
            Log.AllowListReloadFailed(_logger, ex.Message);
            AllowedNodesReloaded?.Invoke(this, new NodeAllowListReloadedEventArgs(list.Count, ex));
            throw;
        }

        List<(PubKey Key, FrameConnection Connection)> revoked = [];
        lock (_sync)
        {
            foreach (var (key, connection) in _nodes)
            {
                if (!list.Contains(key))
                {
                    revoked.Add((key, connection));
                }
            }
        }

        foreach (var (key, connection) in revoked)
        {
            Log.NodeRevoked(_logger, key);
            _ = connection.DisposeAsync().AsTask();
        }

        Log.AllowListReloaded(_logger, count, list.FilePath ?? "command line", revoked.Count);
        AllowedNodesReloaded?.Invoke(this, new NodeAllowListReloadedEventArgs(count, null));
        return count;
    }

    private void WatchFile(string file)
    {
        // Editors write in several steps (truncate, write, rename): reload once things have been quiet for a moment.
        _reloadTimer = new Timer(_ =>
        {
            try
            {
                ReloadAllowedNodes();
            }
            catch (NodeAllowListException)
            {
                // Logged; the old list stays.
            }
        });
        _watcher = new FileSystemWatcher(Path.GetDirectoryName(file)!, Path.GetFileName(file))
        {
            NotifyFilter = NotifyFilters.LastWrite | NotifyFilters.FileName | NotifyFilters.Size | NotifyFilters.CreationTime,
        };
        FileSystemEventHandler changed = (_, _) => _reloadTimer?.Change(TimeSpan.FromMilliseconds(300), Timeout.InfiniteTimeSpan);
        _watcher.Changed += changed;
        _watcher.Created += changed;
        _watcher.Renamed += (_, _) => _reloadTimer?.Change(TimeSpan.FromMilliseconds(300), Timeout.InfiniteTimeSpan);
        _watcher.EnableRaisingEvents = true;
    }

    private async Task ServeAsync(Socket socket)
    {
        var remote = socket.RemoteEndPoint;
        FrameConnection? connection = null;
        try
        {
            using var helloTimeout = CancellationTokenSource.CreateLinkedTokenSource(_cts.Token);
            helloTimeout.CancelAfter(_options.HelloTimeout);
            var secure = await NoiseStream.AcceptAsync(new NetworkStream(socket, ownsSocket: true), _key, ControlProtocol.Prologue, helloTimeout.Token);
            var peer = secure.RemoteKey;
            connection = new FrameConnection(secure, peer.ToShortString(12), _logger) { RequestTimeout = _options.CommandTimeout };
            var (op, id, payload) = await connection.ReadFirstFrameAsync(helloTimeout.Token);
            if (op != (byte)ControlOpcode.Hello)
            {
                throw new ProtocolViolationException($"first frame must be hello, got 0x{op:x2}");
            }

            HelloMessage hello;
            try
            {
                hello = JsonSerializer.Deserialize(payload, ControlJsonContext.Default.HelloMessage) ?? throw new JsonException("null");
            }
            catch (JsonException ex)
            {
                throw new ProtocolViolationException("malformed hello: " + ex.Message);
            }

            var refusal = CheckHello(hello, secure, peer);
            if (refusal is not null)
            {
                Log.Refused(_logger, peer, remote, refusal.Message);
                await SendErrorAsync(connection, id, refusal.Code, refusal.Message);
                return;
            }

            _connections.Authenticated(socket);
            var ack = new HelloAckMessage
            {
                Version = ControlProtocol.Version,
                RuleLifetimeMs = (int)_options.RuleLifetime.TotalMilliseconds,
                ReportIntervalMs = (int)_options.ReportInterval.TotalMilliseconds,
            };
            var ackBytes = JsonSerializer.SerializeToUtf8Bytes(ack, ControlJsonContext.Default.HelloAckMessage);
            if (hello.Role == "node")
            {
                // Registered before the answer: once a node's StartAsync returns, the manager knows it.
                var channel = new NodeChannel(connection);
                connection.Start((o, p, ct) => _requests.HandleNodeAsync(peer, o, p, ct));
                Controller.NodeConnected(peer, hello.LinkAddress!, channel);
                lock (_sync)
                {
                    _nodes[peer] = connection;
                }

                try
                {
                    // A reload may have revoked the key between the check and the registration above.
                    if (_options.AllowedNodes is { } list && !list.Contains(peer))
                    {
                        await connection.DisposeAsync();
                    }

                    await connection.SendAsync((byte)ControlOpcode.Hello | FrameCodec.ResponseBit, id, ackBytes, _cts.Token);
                    await connection.Closed.WaitAsync(_cts.Token);
                }
                finally
                {
                    lock (_sync)
                    {
                        if (_nodes.TryGetValue(peer, out var current) && current == connection)
                        {
                            _nodes.Remove(peer);
                        }
                    }

                    Controller.NodeDisconnected(peer, channel);
                }
            }
            else
            {
                Log.CliConnected(_logger, peer);
                connection.Start((o, p, ct) => _requests.HandleCliAsync(peer, o, p, ct));
                await connection.SendAsync((byte)ControlOpcode.Hello | FrameCodec.ResponseBit, id, ackBytes, _cts.Token);
                await connection.Closed.WaitAsync(_cts.Token);
            }
        }
        catch (ProtocolViolationException ex)
        {
            LogRejected(remote, "protocol violation: " + ex.Message);
        }
        catch (NoiseException ex)
        {
            LogRejected(remote, "handshake failed: " + ex.Message);
        }
        catch (OperationCanceledException) when (!_cts.IsCancellationRequested)
        {
            LogRejected(remote, "no hello in time");
        }
        catch (Exception ex) when (ex is IOException or SocketException or EndOfStreamException or OperationCanceledException or ObjectDisposedException or ControlException)
        {
        }
        finally
        {
            if (connection is not null)
            {
                await connection.DisposeAsync();
            }
            else
            {
                socket.Dispose();
            }
        }
    }

    private ControlException? CheckHello(HelloMessage hello, NoiseStream secure, PubKey peer)
    {
        if (hello.Version != ControlProtocol.Version)
        {
            return new ControlException(ControlErrorCode.UnsupportedVersion, $"control protocol version {hello.Version} is not supported (manager speaks {ControlProtocol.Version})");
        }

        byte[] signature;
        try
        {
            signature = Convert.FromHexString(hello.Signature);
        }
        catch (FormatException)
        {
            return new ControlException(ControlErrorCode.Forbidden, "hello signature is not hex");
        }

        if (!KeyPair.Verify(peer, secure.HelloSigningInput(ControlProtocol.HelloSignatureContext), signature))
        {
            return new ControlException(ControlErrorCode.Forbidden, "hello signature does not match the handshake");
        }

        switch (hello.Role)
        {
            case "node":
                if (hello.LinkAddress is null || !IPEndPoint.TryParse(hello.LinkAddress, out var ep) || ep.Port == 0)
                {
                    return new ControlException(ControlErrorCode.BadRequest, $"node hello needs a link address ip:port, got '{hello.LinkAddress}'");
                }

                if (_options.AllowedNodes is { } allowed && !allowed.Contains(peer))
                {
                    return new ControlException(ControlErrorCode.Forbidden, $"node key {peer} is not in this manager's node allow-list (add it with --allow-node or to the --allow-nodes file)");
                }

                return null;
            case "cli":
                return _admins.Contains(peer) ? null : new ControlException(ControlErrorCode.Forbidden, $"key {peer} is not an admin of this manager (start it with --admin {peer})");
            default:
                return new ControlException(ControlErrorCode.BadRequest, $"unknown role '{hello.Role}'");
        }
    }

    private static Task SendErrorAsync(FrameConnection connection, uint id, ControlErrorCode code, string message) =>
        connection.SendAsync((byte)ControlOpcode.Error, id, JsonSerializer.SerializeToUtf8Bytes(new ErrorMessage { Code = code, Message = message }, ControlJsonContext.Default.ErrorMessage));

    /// <inheritdoc />
    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            return;
        }

        Controller.BeginShutdown();
        await _cts.CancelAsync();
        _metrics.Dispose();
        _watcher?.Dispose();
        if (_reloadTimer is not null)
        {
            await _reloadTimer.DisposeAsync();
        }

        _listener.Stop();
        if (_acceptLoop is not null)
        {
            await _acceptLoop;
        }

        // Connections end on the cancellation above; the controller goes last, when no request can reach it any more.
        await _connections.WhenAllAsync(TimeSpan.FromSeconds(10));
        await Controller.DisposeAsync();
        if (Controller.Metering is { } hub)
        {
            await hub.DisposeAsync(); // closes a last epoch: the ledger shows what was settled
        }

        _cts.Dispose();
    }

    /// <summary>The control connection of a node, as the controller uses it.</summary>
    private sealed class NodeChannel(FrameConnection connection) : INodeChannel
    {
        public Task OpenLinkAsync(OpenLinkMessage message, CancellationToken cancellationToken) =>
            connection.RequestAsync((byte)ControlOpcode.OpenLink, message, ControlJsonContext.Default.OpenLinkMessage, ControlJsonContext.Default.OkMessage, cancellationToken);

        public Task CloseLinkAsync(CloseLinkMessage message, CancellationToken cancellationToken) =>
            connection.RequestAsync((byte)ControlOpcode.CloseLink, message, ControlJsonContext.Default.CloseLinkMessage, ControlJsonContext.Default.OkMessage, cancellationToken);

        public Task InstallRulesAsync(InstallRulesMessage message, CancellationToken cancellationToken) =>
            connection.RequestAsync((byte)ControlOpcode.InstallRules, message, ControlJsonContext.Default.InstallRulesMessage, ControlJsonContext.Default.OkMessage, cancellationToken);

        public Task RemoveRulesAsync(RemoveRulesMessage message, CancellationToken cancellationToken) =>
            connection.RequestAsync((byte)ControlOpcode.RemoveRules, message, ControlJsonContext.Default.RemoveRulesMessage, ControlJsonContext.Default.OkMessage, cancellationToken);

        public Task SessionRouteAsync(SessionRouteMessage message, CancellationToken cancellationToken) =>
            connection.RequestAsync((byte)ControlOpcode.SessionRoute, message, ControlJsonContext.Default.SessionRouteMessage, ControlJsonContext.Default.OkMessage, cancellationToken);

        public Task RouteClosedAsync(RouteCloseMessage message, CancellationToken cancellationToken) =>
            connection.NotifyAsync((byte)ControlOpcode.RouteClose, message, ControlJsonContext.Default.RouteCloseMessage, cancellationToken);

        public Task<MeterMessage> MeterAsync(ControlOpcode opcode, MeterMessage message, CancellationToken cancellationToken) =>
            connection.RequestAsync((byte)opcode, message, ControlJsonContext.Default.MeterMessage, ControlJsonContext.Default.MeterMessage, cancellationToken);
    }

    private void LogRejected(EndPoint? remote, string reason)
    {
        if (_rejectedLogs.TryTake(_logger))
        {
            Log.ConnectionRejected(_logger, remote, reason);
        }
    }

    private static partial class Log
    {
        [LoggerMessage(EventId = 2200, Level = LogLevel.Information, Message = "Manager listening on {EndPoint} with key {Key}")]
        public static partial void Listening(ILogger logger, IPEndPoint endPoint, PubKey key);

        [LoggerMessage(EventId = 2201, Level = LogLevel.Warning, Message = "Refused {Key} from {Remote}: {Reason}")]
        public static partial void Refused(ILogger logger, PubKey key, EndPoint? remote, string reason);

        [LoggerMessage(EventId = 2202, Level = LogLevel.Warning, Message = "Control connection from {Remote} rejected: {Reason}")]
        public static partial void ConnectionRejected(ILogger logger, EndPoint? remote, string reason);

        [LoggerMessage(EventId = 2204, Level = LogLevel.Information, Message = "Cli {Key} connected")]
        public static partial void CliConnected(ILogger logger, PubKey key);

        [LoggerMessage(EventId = 2205, Level = LogLevel.Warning, Message = "Manager listens on {EndPoint}, which is not loopback, without a node allow-list: any host that reaches it can join as a node with any key. Give --allow-node/--allow-nodes, or firewall the port")]
        public static partial void OpenToAnyNode(ILogger logger, IPEndPoint endPoint);

        [LoggerMessage(EventId = 2206, Level = LogLevel.Information, Message = "Node allow-list in force: {Count} keys from {Source}")]
        public static partial void AllowListInForce(ILogger logger, int count, string source);

        [LoggerMessage(EventId = 2207, Level = LogLevel.Information, Message = "Node allow-list reloaded: {Count} keys from {Source}; {Revoked} connected nodes no longer listed were disconnected")]
        public static partial void AllowListReloaded(ILogger logger, int count, string source, int revoked);

        [LoggerMessage(EventId = 2208, Level = LogLevel.Error, Message = "Node allow-list not reloaded, the previous list stays in force: {Reason}")]
        public static partial void AllowListReloadFailed(ILogger logger, string reason);

        [LoggerMessage(EventId = 2209, Level = LogLevel.Warning, Message = "Node {Key} disconnected: its key is no longer in the node allow-list")]
        public static partial void NodeRevoked(ILogger logger, PubKey key);
    }
}

/// <summary>Outcome of a node allow-list reload.</summary>
/// <param name="count">Keys in force after the reload.</param>
/// <param name="error">Why the file was not taken (the previous list stays), or null.</param>
public sealed class NodeAllowListReloadedEventArgs(int count, Exception? error) : EventArgs
{
    /// <summary>Keys in force after the reload.</summary>
    public int Count { get; } = count;

    /// <summary>Why the file was not taken (the previous list stays), or null.</summary>
    public Exception? Error { get; } = error;
}
