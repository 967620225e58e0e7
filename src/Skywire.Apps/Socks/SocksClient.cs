using System.Buffers;
using System.Collections.Concurrent;
using System.Net;
using System.Net.Sockets;
using System.Security.Cryptography;
using System.Text;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Skywire.Apps.Socks.Internal;
using Skywire.Core.Streams;

namespace Skywire.Apps.Socks;

/// <summary>
/// The entry side: a local SOCKS5 listener (RFC 1928, RFC 1929). Each accepted connection
/// completes the SOCKS5 handshake locally and gets its own mesh stream from the dial delegate, dialled while the
/// handshake is still in flight (the stream does not depend on the request: after the method selection, or after the
/// credentials were accepted when a username is set; issue 19.1), or the spare stream dialled ahead after the
/// previous connection (<see cref="SocksClientOptions.SpareStreamLifetime"/>), then
/// sends the tunnel header, maps the exit's result code to the SOCKS5 reply and relays both ways with
/// <see cref="StreamRelay"/>: a broken mesh stream resets the local connection (never a clean end that
/// would pass a truncated transfer off as a complete one).
/// </summary>
public sealed partial class SocksClient : IAsyncDisposable
{
    private readonly SocksClientOptions _options;
    private readonly Func<CancellationToken, Task<DuplexStream>> _dial;
    private readonly ILogger _logger;
    private readonly CancellationTokenSource _stopping = new();
    private readonly ConcurrentDictionary<int, Task> _connections = new();
    private readonly Core.Channels.TcpConnectionHost _host;
    private readonly byte[]? _username;
    private readonly byte[]? _password;
    private Socket? _listener;
    private Task? _acceptLoop;
    private EarlyDial? _spare;
    private int _nextId;
    private int _disposed;

    /// <summary>Creates the client; <paramref name="dial"/> opens one fresh mesh stream to the chosen socks-server.</summary>
    public SocksClient(SocksClientOptions options, Func<CancellationToken, Task<DuplexStream>> dial, ILogger? logger = null)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(dial);
        var errors = options.Validate();
        if (errors.Count > 0)
        {
            throw new ArgumentException(string.Join(" ", errors), nameof(options));
        }

        _options = options;
        _dial = dial;
        _logger = logger ?? NullLogger.Instance;
        _host = new Core.Channels.TcpConnectionHost(options.Connections, _logger);
        if (options.Username is not null)
        {
            _username = Encoding.UTF8.GetBytes(options.Username);
            _password = Encoding.UTF8.GetBytes(options.Password!);
        }
    }

    /// <summary>The bound local endpoint (after <see cref="Start"/>).</summary>
    public IPEndPoint LocalEndPoint => (IPEndPoint)(_listener?.LocalEndPoint ?? throw new InvalidOperationException("Not started."));

    /// <summary>Local connections being served right now.</summary>
    public int ActiveConnections => _connections.Count;

    /// <summary>Binds the listener and starts accepting. Returns the bound endpoint (port 0 picks one).</summary>
    public IPEndPoint Start()
    {
        if (_listener is not null)
        {
            throw new InvalidOperationException("Already started.");
        }

        var listener = new Socket(_options.Listen.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
        try
        {
            listener.Bind(_options.Listen);
            listener.Listen(512);
        }
        catch
        {
            listener.Dispose();
            throw;
        }

        _listener = listener;
        _acceptLoop = AcceptLoopAsync(listener);
        Log.Listening(_logger, LocalEndPoint);
        return LocalEndPoint;
    }

    /// <summary>Stops listening, closes every connection and waits for them.</summary>
    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            return;
        }

        await _stopping.CancelAsync();
        _listener?.Dispose();
        if (_acceptLoop is not null)
        {
            await _acceptLoop;
        }

        await Task.WhenAll(_connections.Values);
        if (Interlocked.Exchange(ref _spare, null) is { } spare)
        {
            await spare.DisposeAsync();
        }

        _stopping.Dispose();
    }

    // Caps, eviction of connections still in their handshake, and an accept loop that backs off when descriptors run
    // out and accepts again (issue 12.3): before, a failed accept was retried at once, so EMFILE made it spin until the
    // runtime aborted the process.
    private Task AcceptLoopAsync(Socket listener) =>
        _host.AcceptLoopAsync(listener, socket =>
        {
            var id = Interlocked.Increment(ref _nextId);
            var task = ServeAsync(socket, id);
            _connections[id] = task;
            _ = task.ContinueWith((_, state) => _connections.TryRemove((int)state!, out Task? _), id, CancellationToken.None,
                TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default);
            return task;
        }, _stopping.Token);

    private async Task ServeAsync(Socket socket, int id)
    {
        await Task.Yield();
        socket.NoDelay = true;
        var local = new SocketStream(socket);
        DuplexStream? mesh = null;
        EarlyDial? early = null;
        var remote = socket.RemoteEndPoint?.ToString() ?? "?";
        var token = _stopping.Token;
        try
        {
            using var handshake = new HandshakeBuffer();
            SocksRequest request;
            using (var timeout = CancellationTokenSource.CreateLinkedTokenSource(token))
            {
                timeout.CancelAfter(_options.HandshakeTimeout);
                SocksRequest? negotiated;
                try
                {
                    negotiated = await NegotiateAsync(local, handshake, remote, () => early = DialEarly(), timeout.Token);
                }
                catch (OperationCanceledException) when (!token.IsCancellationRequested)
                {
                    Log.HandshakeTimeout(_logger, remote);
                    return;
                }

                if (negotiated is null)
                {
                    return;
                }

                request = negotiated.Value;
                _host.Authenticated(socket);
            }

            if (request.Command == SocksCommand.UdpAssociate)
            {
                await ServeUdpAssociationAsync(socket, local, request, remote, id, early, token);
                return;
            }

            var (reply, stream) = await OpenTunnelAsync(request, remote, early, token);
            mesh = stream;
            await WriteReplyAsync(local, reply.Code, reply.Bound, token);
            if (reply.Code != SocksReplyCode.Succeeded)
            {
                Log.TunnelRefused(_logger, remote, request.Destination, reply.Code);
                return;
            }

            DialSpare();
            Log.Connected(_logger, id, remote, request.Destination);
            if (!handshake.Leftover.IsEmpty)
            {
                await mesh!.WriteAsync(handshake.Leftover, token);
            }

            var result = await StreamRelay.RunAsync(local, mesh!, token);
            Log.Closed(_logger, id, request.Destination, result.BytesAToB, result.BytesBToA, result.Clean);
        }
        catch (Exception ex) when (ex is not OperationCanceledException || !token.IsCancellationRequested)
        {
            Log.ConnectionFailed(_logger, remote, ex.Message);
        }
        catch (OperationCanceledException)
        {
            // Shutting down.
        }
        finally
        {
            if (early is not null)
            {
                await early.DisposeAsync();
            }

            if (mesh is not null)
            {
                await QuietClose.DisposeAsync(mesh);
            }

            await QuietClose.DisposeAsync(local);
        }
    }

    /// <summary>
    /// Runs method selection, optional RFC 1929 auth and the request; null when the connection must close.
    /// <paramref name="authenticated"/> runs once the client may use the tunnel (before the reply that lets it send its
    /// request), so the mesh stream is dialled while the request is still on its way.
    /// </summary>
    private async Task<SocksRequest?> NegotiateAsync(Stream local, HandshakeBuffer handshake, string remote, Action authenticated, CancellationToken cancellationToken)
    {
        var reply = new byte[SocksLimits.MaxRequestSize];
        var greeting = await handshake.ReadAsync(local, static (ref ReadOnlySequence<byte> b, out SocksGreeting g, out SocksReplyCode f) =>
        {
            f = SocksReplyCode.GeneralFailure;
            return SocksCodec.TryReadGreeting(ref b, out g);
        }, cancellationToken);
        if (greeting.Status != OperationStatus.Done)
        {
            Log.BadHandshake(_logger, remote, "greeting", greeting.Status);
            return null;
        }

        var method = _username is not null
            ? (greeting.Value.OffersUsernamePassword ? SocksAuthMethod.UsernamePassword : SocksAuthMethod.NoAcceptableMethods)
            : (greeting.Value.OffersNoAuthentication ? SocksAuthMethod.NoAuthentication : SocksAuthMethod.NoAcceptableMethods);
        if (method == SocksAuthMethod.NoAuthentication)
        {
            authenticated();
        }

        await local.WriteAsync(reply.AsMemory(0, SocksCodec.WriteMethodSelection(reply, method)), cancellationToken);
        if (method == SocksAuthMethod.NoAcceptableMethods)
        {
            Log.NoAcceptableMethod(_logger, remote);
            return null;
        }

        if (method == SocksAuthMethod.UsernamePassword)
        {
            var credentials = await handshake.ReadAsync(local, static (ref ReadOnlySequence<byte> b, out SocksCredentials c, out SocksReplyCode f) =>
            {
                f = SocksReplyCode.GeneralFailure;
                return SocksCodec.TryReadCredentials(ref b, out c);
            }, cancellationToken);
            if (credentials.Status != OperationStatus.Done)
            {
                Log.BadHandshake(_logger, remote, "credentials", credentials.Status);
                return null;
            }

            // Compare both fields, always, in fixed time, so timing tells nothing about which was wrong.
            var userOk = CryptographicOperations.FixedTimeEquals(Encoding.UTF8.GetBytes(credentials.Value.Username), _username);
            var passOk = CryptographicOperations.FixedTimeEquals(Encoding.UTF8.GetBytes(credentials.Value.Password), _password);
            var ok = userOk & passOk;
            if (ok)
            {
                authenticated();
            }

            await local.WriteAsync(reply.AsMemory(0, SocksCodec.WriteCredentialsStatus(reply, ok)), cancellationToken);
            if (!ok)
            {
                Log.AuthFailed(_logger, remote, credentials.Value.Username);
                return null;
            }
        }

        var request = await handshake.ReadAsync<SocksRequest>(local, SocksCodec.TryReadRequest, cancellationToken);
        if (request.Status == OperationStatus.InvalidData)
        {
            Log.BadHandshake(_logger, remote, "request", request.Status);
            await WriteReplyAsync(local, request.Failure, SocksEndpoint.Unspecified, cancellationToken);
            return null;
        }

        if (request.Status != OperationStatus.Done)
        {
            Log.BadHandshake(_logger, remote, "request", request.Status);
            return null;
        }

        if (request.Value.Command is not (SocksCommand.Connect or SocksCommand.UdpAssociate))
        {
            Log.UnsupportedCommand(_logger, remote, (byte)request.Value.Command);
            await WriteReplyAsync(local, SocksReplyCode.CommandNotSupported, SocksEndpoint.Unspecified, cancellationToken);
            return null;
        }

        return request.Value;
    }

    /// <summary>The mesh stream of a connection that may now use the tunnel: the spare dialled ahead when there is one, else a dial started now.</summary>
    private EarlyDial DialEarly() => Interlocked.Exchange(ref _spare, null) ?? new EarlyDial(_dial, isSpare: false, _stopping.Token);

    /// <summary>
    /// After a connection's tunnel was answered Succeeded, dials the spare for the next connection (with
    /// <see cref="SocksClientOptions.SpareStreamLifetime"/>). Only then: the exit has taken this connection's stream, so
    /// the spare reaches it after it (an exit that accepts one stream at a time serves them in order), and a refusing exit
    /// gets no spare at all.
    /// </summary>
    private void DialSpare()
    {
        if (_options.SpareStreamLifetime <= TimeSpan.Zero || _stopping.IsCancellationRequested || Volatile.Read(ref _spare) is not null)
        {
            return;
        }

        var next = new EarlyDial(_dial, isSpare: true, _stopping.Token);
        if (Interlocked.CompareExchange(ref _spare, next, null) is null)
        {
            _ = ExpireAsync(next);
        }
        else
        {
            _ = next.DisposeAsync().AsTask(); // another connection put its spare there first
        }
    }

    /// <summary>Closes a spare nobody took within its lifetime (before the exit's header timeout would).</summary>
    private async Task ExpireAsync(EarlyDial spare)
    {
        try
        {
            await Task.Delay(_options.SpareStreamLifetime, _stopping.Token);
        }
        catch (OperationCanceledException)
        {
            return; // stopping: DisposeAsync closes the spare
        }

        if (Interlocked.CompareExchange(ref _spare, null, spare) == spare)
        {
            await spare.DisposeAsync();
        }
    }

    /// <summary>
    /// Dials the exit (or takes the stream dialled early), sends the header and reads its answer; a failure becomes a
    /// reply code. A spare that went stale while it waited (its dial failed, or it broke before the exit answered)
    /// is replaced by a fresh dial, once.
    /// </summary>
    private async Task<(SocksTunnelReply Reply, DuplexStream? Stream)> OpenTunnelAsync(SocksRequest request, string remote, EarlyDial? early, CancellationToken cancellationToken)
    {
        if (early is { IsSpare: true })
        {
            var (reply, stream, stale) = await TunnelAsync(request, remote, early, cancellationToken);
            if (!stale)
            {
                return (reply, stream);
            }

            Log.SpareStale(_logger, remote);
            early = null;
        }

        var fresh = await TunnelAsync(request, remote, early, cancellationToken);
        return (fresh.Reply, fresh.Stream);
    }

    /// <summary>One attempt of <see cref="OpenTunnelAsync"/>; Stale: a spare failed before the exit answered (nothing was logged).</summary>
    private async Task<(SocksTunnelReply Reply, DuplexStream? Stream, bool Stale)> TunnelAsync(SocksRequest request, string remote, EarlyDial? early,
        CancellationToken cancellationToken)
    {
        var spare = early is { IsSpare: true };
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(_options.ReplyTimeout);
        DuplexStream? mesh = null;
        try
        {
            try
            {
                mesh = early is not null ? await early.TakeAsync(timeout.Token) : await _dial(timeout.Token);
            }
            catch (Exception ex) when (ex is not OperationCanceledException)
            {
                // The exit cannot be reached over the mesh: the network toward it is unreachable.
                if (!spare)
                {
                    Log.DialFailed(_logger, remote, ex.Message);
                }

                return (new SocksTunnelReply(SocksReplyCode.NetworkUnreachable, SocksEndpoint.Unspecified), null, spare);
            }

            var tunnelRequest = new SocksTunnelRequest(request.Command, request.Destination, _options.Passcode ?? string.Empty);
            var header = new byte[SocksTunnelCodec.GetRequestLength(tunnelRequest)];
            SocksTunnelCodec.WriteRequest(header, tunnelRequest);
            await mesh.WriteAsync(header, timeout.Token);
            await mesh.FlushAsync(timeout.Token);

            using var answer = new HandshakeBuffer();
            var reply = await answer.ReadAsync(mesh, static (ref ReadOnlySequence<byte> b, out SocksTunnelReply r, out SocksReplyCode f) =>
            {
                f = SocksReplyCode.GeneralFailure;
                return SocksTunnelCodec.TryReadReply(ref b, out r);
            }, timeout.Token);
            if (spare && reply.Status == OperationStatus.NeedMoreData)
            {
                // The spare ended before any answer: the exit closed it while it waited.
                await QuietClose.AbortAsync(mesh);
                return (new SocksTunnelReply(SocksReplyCode.GeneralFailure, SocksEndpoint.Unspecified), null, true);
            }

            if (reply.Status != OperationStatus.Done || !answer.Leftover.IsEmpty)
            {
                // The exit writes nothing after its reply until we relay, so extra bytes are a violation too.
                Log.BadTunnelReply(_logger, remote, reply.Status);
                await QuietClose.AbortAsync(mesh);
                return (new SocksTunnelReply(SocksReplyCode.GeneralFailure, SocksEndpoint.Unspecified), null, false);
            }

            return (reply.Value, mesh, false);
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            Log.ReplyTimeout(_logger, remote, request.Destination);
            if (mesh is not null)
            {
                await QuietClose.AbortAsync(mesh);
            }

            return (new SocksTunnelReply(SocksReplyCode.TtlExpired, SocksEndpoint.Unspecified), null, false);
        }
        catch (Exception ex) when (ex is IOException or SocketException or ObjectDisposedException)
        {
            if (!spare)
            {
                Log.DialFailed(_logger, remote, ex.Message);
            }

            if (mesh is not null)
            {
                await QuietClose.AbortAsync(mesh);
            }

            return (new SocksTunnelReply(SocksReplyCode.GeneralFailure, SocksEndpoint.Unspecified), null, spare);
        }
    }

    private static async Task WriteReplyAsync(Stream local, SocksReplyCode code, SocksEndpoint bound, CancellationToken cancellationToken)
    {
        var buffer = new byte[SocksLimits.MaxRequestSize];
        var length = SocksCodec.WriteReply(buffer, code, bound);
        await local.WriteAsync(buffer.AsMemory(0, length), cancellationToken);
    }

    /// <summary>
    /// A mesh stream dialled before it is needed: while the SOCKS handshake is still in flight, or as the spare for the
    /// next connection. <see cref="TakeAsync"/> hands it to the tunnel; a stream nobody took (the handshake failed, the
    /// connection ended, the spare expired) is cancelled or reset when this is disposed.
    /// </summary>
    private sealed class EarlyDial : IAsyncDisposable
    {
        private readonly CancellationTokenSource _cancel;
        private readonly Task<DuplexStream> _dial;
        private bool _taken;

        public EarlyDial(Func<CancellationToken, Task<DuplexStream>> dial, bool isSpare, CancellationToken cancellationToken)
        {
            IsSpare = isSpare;
            _cancel = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
            _dial = dial(_cancel.Token);
        }

        /// <summary>Dialled ahead for whichever connection comes next (it may have gone stale meanwhile).</summary>
        public bool IsSpare { get; }

        /// <summary>The stream, once dialled; its dial's failure is thrown here.</summary>
        public async Task<DuplexStream> TakeAsync(CancellationToken cancellationToken)
        {
            var stream = await _dial.WaitAsync(cancellationToken);
            _taken = true;
            return stream;
        }

        public async ValueTask DisposeAsync()
        {
            if (!_taken)
            {
                await _cancel.CancelAsync();
                try
                {
                    await QuietClose.AbortAsync(await _dial);
                }
#pragma warning disable CA1031 // a dial nobody waits for any more: its failure is nobody's business
                catch (Exception)
#pragma warning restore CA1031
                {
                }
            }

            _cancel.Dispose();
        }
    }

    private static partial class Log
    {
        [LoggerMessage(EventId = 6100, Level = LogLevel.Information, Message = "socks-client: listening on {EndPoint}")]
        public static partial void Listening(ILogger logger, IPEndPoint endPoint);

        [LoggerMessage(EventId = 6101, Level = LogLevel.Debug, Message = "socks-client: #{Id} {Remote} -> {Destination} connected")]
        public static partial void Connected(ILogger logger, int id, string remote, SocksEndpoint destination);

        [LoggerMessage(EventId = 6102, Level = LogLevel.Debug, Message = "socks-client: #{Id} -> {Destination} closed, {BytesUp} bytes up, {BytesDown} bytes down, clean {Clean}")]
        public static partial void Closed(ILogger logger, int id, SocksEndpoint destination, long bytesUp, long bytesDown, bool clean);

        [LoggerMessage(EventId = 6103, Level = LogLevel.Information, Message = "socks-client: {Remote} -> {Destination}: exit answered {Reply}")]
        public static partial void TunnelRefused(ILogger logger, string remote, SocksEndpoint destination, SocksReplyCode reply);

        [LoggerMessage(EventId = 6104, Level = LogLevel.Warning, Message = "socks-client: bad {Phase} from {Remote} ({Status})")]
        public static partial void BadHandshake(ILogger logger, string remote, string phase, OperationStatus status);

        [LoggerMessage(EventId = 6105, Level = LogLevel.Information, Message = "socks-client: {Remote} offered no acceptable authentication method")]
        public static partial void NoAcceptableMethod(ILogger logger, string remote);

        [LoggerMessage(EventId = 6106, Level = LogLevel.Warning, Message = "socks-client: authentication failed for {Remote} (user {Username})")]
        public static partial void AuthFailed(ILogger logger, string remote, string username);

        [LoggerMessage(EventId = 6107, Level = LogLevel.Information, Message = "socks-client: {Remote} asked for unsupported command {Command}")]
        public static partial void UnsupportedCommand(ILogger logger, string remote, byte command);

        [LoggerMessage(EventId = 6108, Level = LogLevel.Warning, Message = "socks-client: cannot open a mesh stream for {Remote}: {Reason}")]
        public static partial void DialFailed(ILogger logger, string remote, string reason);

        [LoggerMessage(EventId = 6109, Level = LogLevel.Warning, Message = "socks-client: bad tunnel reply for {Remote} ({Status})")]
        public static partial void BadTunnelReply(ILogger logger, string remote, OperationStatus status);

        [LoggerMessage(EventId = 6110, Level = LogLevel.Information, Message = "socks-client: no answer from the exit for {Remote} -> {Destination} in time")]
        public static partial void ReplyTimeout(ILogger logger, string remote, SocksEndpoint destination);

        [LoggerMessage(EventId = 6111, Level = LogLevel.Information, Message = "socks-client: {Remote} did not finish the handshake in time")]
        public static partial void HandshakeTimeout(ILogger logger, string remote);

        [LoggerMessage(EventId = 6112, Level = LogLevel.Debug, Message = "socks-client: connection from {Remote} failed: {Reason}")]
        public static partial void ConnectionFailed(ILogger logger, string remote, string reason);

        [LoggerMessage(EventId = 6118, Level = LogLevel.Debug, Message = "socks-client: the spare stream for {Remote} had gone stale; dialling afresh")]
        public static partial void SpareStale(ILogger logger, string remote);
    }
}
