using System.Collections.Concurrent;
using System.Net;
using System.Net.Sockets;
using System.Security.Cryptography;
using System.Text;
using System.Threading.Channels;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Skywire.Core.Channels;
using Skywire.Core.Sessions;
using Skywire.Core.Streams;
using Skywire.Protocol.AppApi;
using Skywire.Protocol.Control;
using Skywire.Protocol.Framing;
using ProtocolViolationException = Skywire.Protocol.Framing.ProtocolViolationException;

namespace Skywire.Core.AppApi;

/// <summary>
/// The node's app API (docs/protocol.md §7): a loopback-only TCP listener. Every connection starts with a hello
/// carrying the node's app token. A connection that registers an app holds the registration for as long as it
/// stays open. Dial and Accept turn their connection into the raw bytes of one mesh stream (one TCP connection
/// per stream), relayed by <see cref="StreamRelay"/>: half-close maps onto the mesh stream's FIN and back, a failure on
/// either side (a dead session, a vanished route, an abort) onto a reset of the other, never a clean end of stream.
/// </summary>
public sealed partial class AppApiServer : IAsyncDisposable
{
    private readonly IAppHost _host;
    private readonly byte[] _token;
    private readonly ILogger _logger;
    private readonly TcpListener _listener;
    private readonly CancellationTokenSource _cts = new();
    private readonly AppRegistry _registry = new();

    /// <summary>
    /// Held while a name changes hands: a claim together with the tracker registration, a release together with the
    /// tracker removal. Without it a new holder could claim a name the old one had just released but not yet removed
    /// from the tracker, and be refused by the host as "already registered" (or have its tracker entry removed).
    /// </summary>
    private readonly SemaphoreSlim _naming = new(1, 1);
    private readonly TcpConnectionHost _connections;
    private readonly ConcurrentDictionary<string, FlowHandle> _flows = new(StringComparer.Ordinal);
    private Task? _acceptLoop;
    private int _pendingAccepts;
    private int _disposed;

    /// <param name="host">The node.</param>
    /// <param name="listen">Must be a loopback address (port 0 picks one).</param>
    /// <param name="token">The app token (compared in constant time).</param>
    /// <param name="logger">Logger.</param>
    /// <param name="limits">Connections held at once (each stream is one); null: <see cref="ListenerLimits.Default"/>.</param>
    public AppApiServer(IAppHost host, IPEndPoint listen, string token, ILogger? logger = null, ListenerLimits? limits = null)
    {
        ArgumentNullException.ThrowIfNull(listen);
        if (!IPAddress.IsLoopback(listen.Address))
        {
            throw new ArgumentException($"the app API listens on loopback only, not {listen}", nameof(listen));
        }

        _host = host;
        _token = Encoding.UTF8.GetBytes(token);
        _logger = logger ?? NullLogger.Instance;
        _listener = new TcpListener(listen);
        _connections = new TcpConnectionHost(limits, _logger);
    }

    /// <summary>The bound address (valid after <see cref="Start"/>).</summary>
    public IPEndPoint LocalEndPoint => (IPEndPoint)_listener.LocalEndpoint;

    /// <summary>App connections held now (control connections and one per mesh stream; metrics).</summary>
    public int ConnectionCount => _connections.Count;

    /// <summary>Binds and starts accepting.</summary>
    public void Start()
    {
        _listener.Start();
        _acceptLoop = Task.Run(() => _connections.AcceptLoopAsync(_listener, ServeAsync, _cts.Token));
        Log.Listening(_logger, LocalEndPoint);
    }

    /// <summary>
    /// Hands an incoming mesh stream to the local app <paramref name="appName"/>. Returns false (the caller aborts
    /// the stream) when no app of that name is registered here or its backlog is full.
    /// </summary>
    public bool TryDeliver(string appName, IncomingStream stream)
    {
        return _registry.TryDeliver(appName, stream);
    }

    /// <summary>Accept requests now waiting for a stream (tests synchronise on it).</summary>
    internal int PendingAccepts => Volatile.Read(ref _pendingAccepts);

    /// <summary>Names registered by connected apps.</summary>
    public IReadOnlyList<string> RegisteredApps() => _registry.Names;

    private async Task ServeAsync(Socket socket)
    {
        var stream = new SocketStream(socket);
        AppRegistry.Registration? registered = null;
        var handedOff = false;
        try
        {
            using var helloTimeout = CancellationTokenSource.CreateLinkedTokenSource(_cts.Token);
            helloTimeout.CancelAfter(TimeSpan.FromSeconds(10));
            var hello = await FrameIo.ReadFrameAsync(stream, AppApiProtocol.MaxFrameSize, helloTimeout.Token);
            if (hello is null)
            {
                return;
            }

            var (op, id, payload) = hello.Value;
            if (op != (byte)AppApiOpcode.Hello)
            {
                throw new ProtocolViolationException($"first frame must be hello, got 0x{op:x2}");
            }

            var helloMessage = FrameIo.Parse(payload, AppApiJsonContext.Default.AppHelloMessage);
            if (helloMessage.Version != AppApiProtocol.Version)
            {
                await ErrorAsync(stream, id, AppApiErrorCode.UnsupportedVersion, $"app API version {helloMessage.Version} not supported (this node speaks {AppApiProtocol.Version})");
                return;
            }

            if (!CryptographicOperations.FixedTimeEquals(Encoding.UTF8.GetBytes(helloMessage.Token), _token))
            {
                Log.BadToken(_logger, socket.RemoteEndPoint);
                await ErrorAsync(stream, id, AppApiErrorCode.Unauthorized, "wrong app token");
                return;
            }

            _connections.Authenticated(socket);
            await FrameIo.WriteFrameAsync(stream, (byte)AppApiOpcode.Hello | FrameCodec.ResponseBit, id,
                new AppHelloAckMessage { Version = AppApiProtocol.Version, Node = _host.NodeKey }, AppApiJsonContext.Default.AppHelloAckMessage, _cts.Token);

            while (true)
            {
                var frame = await FrameIo.ReadFrameAsync(stream, AppApiProtocol.MaxFrameSize, _cts.Token);
                if (frame is null)
                {
                    return;
                }

                (op, id, payload) = frame.Value;
                try
                {
                    switch ((AppApiOpcode)op)
                    {
                        case AppApiOpcode.Ping:
                            await FrameIo.WriteFrameAsync(stream, (byte)(op | FrameCodec.ResponseBit), id, new OkMessage(), AppApiJsonContext.Default.OkMessage, _cts.Token);
                            break;
                        case AppApiOpcode.Register:
                            registered = await RegisterAsync(stream, id, FrameIo.Parse(payload, AppApiJsonContext.Default.AppApiRegisterMessage), registered);
                            break;
                        case AppApiOpcode.ListApps:
                            var list = await _host.ListAppsAsync(FrameIo.Parse(payload, AppApiJsonContext.Default.AppListMessage), _cts.Token);
                            await FrameIo.WriteFrameAsync(stream, (byte)(op | FrameCodec.ResponseBit), id, list, AppApiJsonContext.Default.AppListResultMessage, _cts.Token);
                            break;
                        case AppApiOpcode.Dial:
                            handedOff = await DialAsync(stream, id, FrameIo.Parse(payload, AppApiJsonContext.Default.DialMessage));
                            if (handedOff)
                            {
                                return;
                            }

                            break;
                        case AppApiOpcode.Accept:
                            // Either the connection became a stream, or the app closed it while waiting: done either way.
                            handedOff = await AcceptAsync(stream, id, FrameIo.Parse(payload, AppApiJsonContext.Default.AcceptMessage));
                            return;
                        case AppApiOpcode.Datagrams:
                            handedOff = await AttachDatagramsAsync(stream, id, FrameIo.Parse(payload, AppApiJsonContext.Default.DatagramsMessage));
                            return;
                        case AppApiOpcode.NodeInfo:
                            await FrameIo.WriteFrameAsync(stream, (byte)(op | FrameCodec.ResponseBit), id, _host.GetNodeInfo(), AppApiJsonContext.Default.NodeInfoMessage, _cts.Token);
                            break;
                        default:
                            await ErrorAsync(stream, id, AppApiErrorCode.BadRequest, $"unknown opcode 0x{op:x2}");
                            break;
                    }
                }
                catch (AppApiException ex)
                {
                    await ErrorAsync(stream, id, ex.Code, ex.Message);
                }
                catch (ControlException ex)
                {
                    await ErrorAsync(stream, id, MapCode(ex.Code), ex.Message);
                }
            }
        }
        catch (ProtocolViolationException ex)
        {
            Log.ProtocolViolation(_logger, socket.RemoteEndPoint, ex.Message);
        }
        catch (Exception ex) when (ex is IOException or SocketException or OperationCanceledException or ObjectDisposedException)
        {
        }
        finally
        {
            if (registered is not null)
            {
                await UnregisterAsync(registered);
            }

            if (!handedOff)
            {
                await stream.DisposeAsync();
            }
        }
    }

    private async Task<AppRegistry.Registration> RegisterAsync(SocketStream stream, uint id, AppApiRegisterMessage message, AppRegistry.Registration? already)
    {
        if (already is not null)
        {
            throw new AppApiException(AppApiErrorCode.Conflict, $"this connection already registered '{already.Name}'");
        }

        if (!_naming.Wait(0))
        {
            Log.RegistrationWaits(_logger, message.Name);
            await _naming.WaitAsync(_cts.Token);
        }

        AppRegistry.Registration registration;
        try
        {
            // A name whose connection the app already closed is taken over here, not refused until that connection's
            // serve loop reads the close (a refused client that registers again at once used to get "already registered").
            registration = _registry.Claim(message.Name, stream.Socket, out var reclaimed);
            if (reclaimed is not null)
            {
                Log.AppReclaimed(_logger, message.Name);
                AbortQueued(reclaimed);
                await _host.UnregisterAppAsync(message.Name, _cts.Token);
            }

            try
            {
                await _host.RegisterAppAsync(message.Name, message.Type, _cts.Token);
            }
            catch
            {
                _registry.Release(registration);
                throw;
            }
        }
        finally
        {
            _naming.Release();
        }

        Log.AppRegistered(_logger, message.Name, message.Type);
        await FrameIo.WriteFrameAsync(stream, (byte)AppApiOpcode.Register | FrameCodec.ResponseBit, id, new OkMessage(), AppApiJsonContext.Default.OkMessage, _cts.Token);
        return registration;
    }

    /// <summary>Frees the name unless another connection took it over (then the name and its tracker entry are the new holder's).</summary>
    private async Task UnregisterAsync(AppRegistry.Registration registration)
    {
        AbortQueued(registration);
        await _naming.WaitAsync(CancellationToken.None);
        try
        {
            if (!_registry.Release(registration))
            {
                return;
            }

            Log.AppGone(_logger, registration.Name);
            // The host forgets the name before a new holder may claim it; telling the manager is best effort (its
            // tracker drops the app at the next heartbeat timeout anyway), and ends at once when the server stops.
            await _host.UnregisterAppAsync(registration.Name, _cts.Token);
        }
        catch (Exception ex) when (ex is OperationCanceledException or ControlException or IOException or ObjectDisposedException)
        {
        }
        finally
        {
            _naming.Release();
        }
    }

    private static void AbortQueued(AppRegistry.Registration registration)
    {
        var queue = registration.Queue;
        queue.Writer.TryComplete();
        while (queue.Reader.TryRead(out var pending))
        {
            // Never handed to an app: the dialer must see a failure, not an empty stream that ended cleanly.
            pending.Stream.Abort();
            pending.Stream.Dispose();
        }
    }

    private async Task<bool> DialAsync(SocketStream stream, uint id, DialMessage message)
    {
        var remote = await _host.DialAsync(message.Node, message.App, message.From, _cts.Token);
        var flow = OpenFlow(remote);
        try
        {
            await FrameIo.WriteFrameAsync(stream, (byte)AppApiOpcode.Dial | FrameCodec.ResponseBit, id,
                new StreamReadyMessage { RemoteNode = message.Node, RemoteApp = message.App, LocalApp = message.From ?? "", Datagrams = flow?.Handle },
                AppApiJsonContext.Default.StreamReadyMessage, _cts.Token);
        }
        catch
        {
            CloseFlow(flow);
            remote.Abort();
            await remote.DisposeAsync();
            throw;
        }

        StartPipe(stream, remote, flow);
        return true;
    }

    /// <summary>Waits for a stream for <paramref name="message"/>'s app; false when the app closed the connection first.</summary>
    private async Task<bool> AcceptAsync(SocketStream stream, uint id, AcceptMessage message)
    {
        var queue = _registry.Find(message.Name);
        if (queue is null)
        {
            throw new AppApiException(AppApiErrorCode.NotFound, $"no app named '{message.Name}' is registered on this node");
        }

        IncomingStream incoming;
        using (var watch = CancellationTokenSource.CreateLinkedTokenSource(_cts.Token))
        {
            // The app gives up on an accept by closing the connection: notice that while waiting.
            var closed = WatchForCloseAsync(stream, watch.Token);
            var next = queue.Reader.ReadAsync(watch.Token).AsTask();
            Interlocked.Increment(ref _pendingAccepts);
            var done = await Task.WhenAny(next, closed);
            Interlocked.Decrement(ref _pendingAccepts);
            await watch.CancelAsync();
            if (done != next)
            {
                // A stream taken at the same instant goes back to the queue for the app's next accept.
                try
                {
                    var raced = await next;
                    if (!queue.Writer.TryWrite(raced))
                    {
                        raced.Stream.Abort();
                        await raced.Stream.DisposeAsync();
                    }
                }
                catch (Exception ex) when (ex is OperationCanceledException or ChannelClosedException)
                {
                }

                Log.AcceptWithdrawn(_logger, message.Name);
                return false;
            }

            try
            {
                incoming = await next;
            }
            catch (ChannelClosedException)
            {
                throw new AppApiException(AppApiErrorCode.NotFound, $"app '{message.Name}' unregistered");
            }
        }

        var flow = OpenFlow(incoming.Stream);
        try
        {
            await FrameIo.WriteFrameAsync(stream, (byte)AppApiOpcode.Accept | FrameCodec.ResponseBit, id,
                new StreamReadyMessage { RemoteNode = incoming.RemoteNode, RemoteApp = incoming.RemoteApp, LocalApp = message.Name, Datagrams = flow?.Handle },
                AppApiJsonContext.Default.StreamReadyMessage, _cts.Token);
        }
        catch
        {
            CloseFlow(flow);
            incoming.Stream.Abort();
            await incoming.Stream.DisposeAsync();
            throw;
        }

        StartPipe(stream, incoming.Stream, flow);
        return true;
    }

    /// <summary>
    /// Completes when the app closes (or resets) its connection while its accept waits. An app sends nothing then,
    /// so a zero-byte read wakes us; but on .NET's Unix socket engine a zero-byte read is only a readiness hint: it
    /// completes with 0 on any readiness event, even a stale one for bytes already read (it happened under load and
    /// lost the accept: the app waited forever for its answer). So each wake-up is checked before it counts: end of
    /// stream (or an error) is a readable socket with nothing to read.
    /// </summary>
    private static async Task WatchForCloseAsync(SocketStream stream, CancellationToken cancellationToken)
    {
        var socket = stream.Socket;
        try
        {
            while (true)
            {
                _ = await socket.ReceiveAsync(Memory<byte>.Empty, SocketFlags.None, cancellationToken);
                if (!socket.Poll(0, SelectMode.SelectRead))
                {
                    continue; // a spurious wake-up: nothing happened
                }

                if (socket.Available == 0)
                {
                    return; // end of stream or error: the app gave up
                }

                // The app sent bytes before its answer (they will follow the stream's first bytes): it is not closing,
                // and another zero-byte read would complete at once, so stop watching.
                await Task.Delay(Timeout.Infinite, cancellationToken);
            }
        }
        catch (Exception ex) when (ex is OperationCanceledException or IOException or ObjectDisposedException or SocketException)
        {
        }
    }

    private void StartPipe(SocketStream app, DuplexStream mesh, FlowHandle? flow)
    {
        _connections.Track(Task.Run(async () =>
        {
            try
            {
                await StreamRelay.RunAsync(app, mesh, _cts.Token);
            }
            finally
            {
                // The flow lives as long as its stream.
                CloseFlow(flow);
            }
        }));
    }

    /// <summary>The stream's datagram flow under a fresh handle, or null when the stream cannot carry datagrams.</summary>
    private FlowHandle? OpenFlow(DuplexStream stream)
    {
        if (_host.OpenDatagramFlow(stream) is not { } flow)
        {
            return null;
        }

        var handle = new FlowHandle(Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(16)), flow);
        _flows[handle.Handle] = handle;
        return handle;
    }

    private void CloseFlow(FlowHandle? handle)
    {
        if (handle is not null)
        {
            _flows.TryRemove(handle.Handle, out _);
            handle.Flow.Dispose();
        }
    }

    /// <summary>Turns the connection into the datagram connection of a stream's flow (docs/protocol.md §7.1).</summary>
    private async Task<bool> AttachDatagramsAsync(SocketStream stream, uint id, DatagramsMessage message)
    {
        if (!_flows.TryGetValue(message.Stream, out var handle) || handle.Flow.IsClosed)
        {
            throw new AppApiException(AppApiErrorCode.NotFound, "no open stream has this datagram handle (it ended, or it belongs to another node)");
        }

        if (Interlocked.CompareExchange(ref handle.Attached, 1, 0) != 0)
        {
            throw new AppApiException(AppApiErrorCode.Conflict, "another connection is attached to this stream's datagrams");
        }

        try
        {
            await FrameIo.WriteFrameAsync(stream, (byte)AppApiOpcode.Datagrams | FrameCodec.ResponseBit, id,
                new DatagramsReadyMessage { MaxDatagram = handle.Flow.MaxDatagramSize }, AppApiJsonContext.Default.DatagramsReadyMessage, _cts.Token);
        }
        catch
        {
            Volatile.Write(ref handle.Attached, 0);
            throw;
        }

        var pump = new AppDatagramPump(stream, handle.Flow, _logger);
        pump.Start();
        Log.DatagramsAttached(_logger, handle.Flow.MaxDatagramSize);
        _connections.Track(pump.Completion.ContinueWith(_ => Volatile.Write(ref handle.Attached, 0), TaskScheduler.Default));
        return true;
    }

    /// <summary>
    /// Attaches code running in this node's own process to the datagram flow of a stream handed out under
    /// <paramref name="handle"/> (the in-process form of <see cref="AttachDatagramsAsync"/>: no connection, no
    /// threads; the caller sends with <see cref="DatagramFlow.SendBatch"/> and sets <see cref="DatagramFlow.Receiver"/>).
    /// Null when no open stream has that handle or another attachment holds it. Disposing the lease detaches.
    /// </summary>
    public InProcessDatagrams? AttachInProcess(string handle)
    {
        ArgumentNullException.ThrowIfNull(handle);
        if (!_flows.TryGetValue(handle, out var held) || held.Flow.IsClosed || Interlocked.CompareExchange(ref held.Attached, 1, 0) != 0)
        {
            return null;
        }

        Log.DatagramsAttachedInProcess(_logger, held.Flow.MaxDatagramSize);
        return new InProcessDatagrams(held.Flow, () =>
        {
            held.Flow.Receiver = null;
            Volatile.Write(ref held.Attached, 0);
        });
    }

    /// <summary>A stream's flow and whether a datagram connection is attached to it.</summary>
    private sealed class FlowHandle(string handle, DatagramFlow flow)
    {
        public string Handle { get; } = handle;

        public DatagramFlow Flow { get; } = flow;

        public int Attached;
    }

    private static AppApiErrorCode MapCode(ControlErrorCode code) => code switch
    {
        ControlErrorCode.BadRequest => AppApiErrorCode.BadRequest,
        ControlErrorCode.NotFound => AppApiErrorCode.NotFound,
        ControlErrorCode.Conflict => AppApiErrorCode.Conflict,
        ControlErrorCode.NoRoute or ControlErrorCode.Unavailable => AppApiErrorCode.Unreachable,
        _ => AppApiErrorCode.Internal,
    };

    private async Task ErrorAsync(Stream stream, uint id, AppApiErrorCode code, string message) =>
        await FrameIo.WriteFrameAsync(stream, (byte)AppApiOpcode.Error, id, new AppErrorMessage { Code = code, Message = message }, AppApiJsonContext.Default.AppErrorMessage, _cts.Token);

    /// <inheritdoc />
    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            return;
        }

        await _cts.CancelAsync();
        _listener.Stop();
        _registry.CompleteAll();

        if (_acceptLoop is not null)
        {
            await _acceptLoop;
        }

        foreach (var flow in _flows.Values)
        {
            CloseFlow(flow);
        }

        await _connections.WhenAllAsync(TimeSpan.FromSeconds(5));
        _cts.Dispose();
    }

    private static partial class Log
    {
        [LoggerMessage(EventId = 7100, Level = LogLevel.Information, Message = "App API listening on {EndPoint}")]
        public static partial void Listening(ILogger logger, IPEndPoint endPoint);

        [LoggerMessage(EventId = 7101, Level = LogLevel.Warning, Message = "App API connection from {Remote} presented a wrong token")]
        public static partial void BadToken(ILogger logger, EndPoint? remote);

        [LoggerMessage(EventId = 7102, Level = LogLevel.Warning, Message = "App API connection from {Remote} closed: protocol violation: {Detail}")]
        public static partial void ProtocolViolation(ILogger logger, EndPoint? remote, string detail);

        [LoggerMessage(EventId = 7103, Level = LogLevel.Information, Message = "App {Name} ({Type}) registered")]
        public static partial void AppRegistered(ILogger logger, string name, string type);

        [LoggerMessage(EventId = 7104, Level = LogLevel.Information, Message = "App {Name} disconnected")]
        public static partial void AppGone(ILogger logger, string name);

        [LoggerMessage(EventId = 7105, Level = LogLevel.Debug, Message = "App {Name} closed a pending accept")]
        public static partial void AcceptWithdrawn(ILogger logger, string name);

        [LoggerMessage(EventId = 7106, Level = LogLevel.Debug, Message = "App attached to a stream's datagrams (at most {MaxDatagram} bytes each)")]
        public static partial void DatagramsAttached(ILogger logger, int maxDatagram);

        [LoggerMessage(EventId = 7111, Level = LogLevel.Debug, Message = "Code in the node's process attached to a stream's datagrams (at most {MaxDatagram} bytes each)")]
        public static partial void DatagramsAttachedInProcess(ILogger logger, int maxDatagram);

        [LoggerMessage(EventId = 7107, Level = LogLevel.Information, Message = "App name {Name} taken over from a connection its app had closed")]
        public static partial void AppReclaimed(ILogger logger, string name);

        [LoggerMessage(EventId = 7112, Level = LogLevel.Debug, Message = "Registration of app {Name} waits while another app's name changes hands")]
        public static partial void RegistrationWaits(ILogger logger, string name);
    }
}
