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
/// completes the SOCKS5 handshake locally, then gets its own mesh stream from the dial delegate,
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
    private readonly byte[]? _username;
    private readonly byte[]? _password;
    private Socket? _listener;
    private Task? _acceptLoop;
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
        _stopping.Dispose();
    }

    private async Task AcceptLoopAsync(Socket listener)
    {
        while (!_stopping.IsCancellationRequested)
        {
            Socket socket;
            try
            {
                socket = await listener.AcceptAsync(_stopping.Token);
            }
            catch (Exception ex) when (ex is OperationCanceledException or ObjectDisposedException)
            {
                return;
            }
            catch (SocketException ex)
            {
                // Per-connection accept errors (aborted before accept, fd pressure) must not stop the listener.
                Log.AcceptFailed(_logger, ex.SocketErrorCode);
                continue;
            }

            var id = Interlocked.Increment(ref _nextId);
            var task = ServeAsync(socket, id);
            _connections[id] = task;
            _ = task.ContinueWith((_, state) => _connections.TryRemove((int)state!, out Task? _), id, CancellationToken.None,
                TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default);
        }
    }

    private async Task ServeAsync(Socket socket, int id)
    {
        await Task.Yield();
        socket.NoDelay = true;
        var local = new SocketStream(socket);
        DuplexStream? mesh = null;
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
                    negotiated = await NegotiateAsync(local, handshake, remote, timeout.Token);
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
            }

            if (request.Command == SocksCommand.UdpAssociate)
            {
                await ServeUdpAssociationAsync(socket, local, request, remote, id, token);
                return;
            }

            var (reply, stream) = await OpenTunnelAsync(request, remote, token);
            mesh = stream;
            await WriteReplyAsync(local, reply.Code, reply.Bound, token);
            if (reply.Code != SocksReplyCode.Succeeded)
            {
                Log.TunnelRefused(_logger, remote, request.Destination, reply.Code);
                return;
            }

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
            if (mesh is not null)
            {
                await QuietClose.DisposeAsync(mesh);
            }

            await QuietClose.DisposeAsync(local);
        }
    }

    /// <summary>Runs method selection, optional RFC 1929 auth and the request; null when the connection must close.</summary>
    private async Task<SocksRequest?> NegotiateAsync(Stream local, HandshakeBuffer handshake, string remote, CancellationToken cancellationToken)
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

    /// <summary>Dials the exit, sends the header and reads its answer; a failure becomes a reply code.</summary>
    private async Task<(SocksTunnelReply Reply, DuplexStream? Stream)> OpenTunnelAsync(SocksRequest request, string remote, CancellationToken cancellationToken)
    {
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(_options.ReplyTimeout);
        DuplexStream? mesh = null;
        try
        {
            try
            {
                mesh = await _dial(timeout.Token);
            }
            catch (Exception ex) when (ex is not OperationCanceledException)
            {
                // The exit cannot be reached over the mesh: the network toward it is unreachable.
                Log.DialFailed(_logger, remote, ex.Message);
                return (new SocksTunnelReply(SocksReplyCode.NetworkUnreachable, SocksEndpoint.Unspecified), null);
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
            if (reply.Status != OperationStatus.Done || !answer.Leftover.IsEmpty)
            {
                // The exit writes nothing after its reply until we relay, so extra bytes are a violation too.
                Log.BadTunnelReply(_logger, remote, reply.Status);
                await QuietClose.AbortAsync(mesh);
                return (new SocksTunnelReply(SocksReplyCode.GeneralFailure, SocksEndpoint.Unspecified), null);
            }

            return (reply.Value, mesh);
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            Log.ReplyTimeout(_logger, remote, request.Destination);
            if (mesh is not null)
            {
                await QuietClose.AbortAsync(mesh);
            }

            return (new SocksTunnelReply(SocksReplyCode.TtlExpired, SocksEndpoint.Unspecified), null);
        }
        catch (Exception ex) when (ex is IOException or SocketException or ObjectDisposedException)
        {
            Log.DialFailed(_logger, remote, ex.Message);
            if (mesh is not null)
            {
                await QuietClose.AbortAsync(mesh);
            }

            return (new SocksTunnelReply(SocksReplyCode.GeneralFailure, SocksEndpoint.Unspecified), null);
        }
    }

    private static async Task WriteReplyAsync(Stream local, SocksReplyCode code, SocksEndpoint bound, CancellationToken cancellationToken)
    {
        var buffer = new byte[SocksLimits.MaxRequestSize];
        var length = SocksCodec.WriteReply(buffer, code, bound);
        await local.WriteAsync(buffer.AsMemory(0, length), cancellationToken);
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

        [LoggerMessage(EventId = 6113, Level = LogLevel.Warning, Message = "socks-client: accept failed ({Error})")]
        public static partial void AcceptFailed(ILogger logger, SocketError error);
    }
}
