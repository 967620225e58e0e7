using System.Buffers;
using System.Net;
using System.Net.Sockets;
using System.Security.Cryptography;
using System.Text;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Skywire.Apps.Socks.Internal;
using Skywire.Core.Streams;

namespace Skywire.Apps.Socks;

/// <summary>Opens the outgoing connection for a tunnel request; throws <see cref="SocksConnectException"/> (or a <see cref="SocketException"/>) on failure.</summary>
public delegate ValueTask<Socket> SocksConnector(SocksEndpoint destination, CancellationToken cancellationToken);

/// <summary>A failed outgoing connect, classified as a SOCKS5 reply code.</summary>
public sealed class SocksConnectException : Exception
{
    /// <summary>Creates the exception.</summary>
    public SocksConnectException(SocksReplyCode reply, string message, Exception? inner = null) : base(message, inner) => Reply = reply;

    /// <summary>Creates a general failure.</summary>
    public SocksConnectException() : this(SocksReplyCode.GeneralFailure, "connect failed") { }

    /// <summary>Creates a general failure.</summary>
    public SocksConnectException(string message) : this(SocksReplyCode.GeneralFailure, message) { }

    /// <summary>Creates a general failure.</summary>
    public SocksConnectException(string message, Exception inner) : this(SocksReplyCode.GeneralFailure, message, inner) { }

    /// <summary>The reply code for the client.</summary>
    public SocksReplyCode Reply { get; }
}

/// <summary>
/// The exit side: serves one mesh stream per proxied connection. Reads the tunnel header,
/// checks the allow-list and passcode, resolves and connects out, answers the result code, then
/// relays both ways with <see cref="StreamRelay"/> until both directions end; a broken side resets
/// the other (docs/socks.md).
/// </summary>
public sealed partial class SocksServer
{
    private readonly SocksServerOptions _options;
    private readonly ILogger _logger;
    private readonly SocksConnector _connector;
    private readonly byte[]? _passcode;
    private int _active;
    private long _served;

    /// <summary>Creates the server. <paramref name="connector"/> replaces DNS + TCP connect (tests).</summary>
    public SocksServer(SocksServerOptions? options = null, ILogger? logger = null, SocksConnector? connector = null)
    {
        _options = options ?? SocksServerOptions.Default;
        _logger = logger ?? NullLogger.Instance;
        _connector = connector ?? ConnectAsync;
        _passcode = _options.Passcode is null ? null : Encoding.UTF8.GetBytes(_options.Passcode);
    }

    /// <summary>Streams being served right now (header, connect or relay phase).</summary>
    public int ActiveConnections => Volatile.Read(ref _active);

    /// <summary>Streams served since start, whatever their outcome.</summary>
    public long ServedConnections => Interlocked.Read(ref _served);

    /// <summary>
    /// Serves one incoming mesh stream and disposes it. <paramref name="remoteNodeKey"/> is the
    /// dialling node's key as the mesh authenticated it (null when unknown: then an allow-list refuses).
    /// Never throws except for cancellation by <paramref name="cancellationToken"/>.
    /// </summary>
    public async Task HandleStreamAsync(DuplexStream stream, string? remoteNodeKey, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(stream);
        Interlocked.Increment(ref _active);
        Interlocked.Increment(ref _served);
        Socket? target = null;
        SocketStream? targetStream = null;
        var peer = remoteNodeKey ?? "unknown";
        try
        {
            using var header = new HandshakeBuffer();
            HandshakeResult<SocksTunnelRequest> parsed;
            using (var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken))
            {
                timeout.CancelAfter(_options.HeaderTimeout);
                try
                {
                    parsed = await header.ReadAsync<SocksTunnelRequest>(stream, SocksTunnelCodec.TryReadRequest, timeout.Token);
                }
                catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
                {
                    Log.HeaderTimeout(_logger, peer);
                    return;
                }
            }

            if (parsed.Status != OperationStatus.Done)
            {
                Log.BadHeader(_logger, peer, parsed.Status);
                if (parsed.Status == OperationStatus.InvalidData)
                {
                    await TryReplyAsync(stream, parsed.Failure, cancellationToken);
                }

                return;
            }

            var request = parsed.Value;
            var refusal = Authorize(remoteNodeKey, request);
            if (refusal is not null)
            {
                Log.Refused(_logger, peer, request.Destination, refusal);
                await TryReplyAsync(stream, SocksReplyCode.NotAllowedByRuleset, cancellationToken);
                return;
            }

            if (request.Command == SocksCommand.UdpAssociate)
            {
                await ServeUdpAsync(stream, header.Leftover, peer, cancellationToken);
                return;
            }

            if (request.Command != SocksCommand.Connect)
            {
                Log.UnsupportedCommand(_logger, peer, (byte)request.Command);
                await TryReplyAsync(stream, SocksReplyCode.CommandNotSupported, cancellationToken);
                return;
            }

            try
            {
                using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
                timeout.CancelAfter(_options.ConnectTimeout);
                try
                {
                    target = await _connector(request.Destination, timeout.Token);
                }
                catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
                {
                    throw new SocksConnectException(SocksReplyCode.TtlExpired, $"no connection within {_options.ConnectTimeout.TotalSeconds:0.#} s");
                }
            }
            catch (Exception ex) when (ex is SocksConnectException or SocketException)
            {
                var code = ex is SocksConnectException sce ? sce.Reply : MapSocketError(((SocketException)ex).SocketErrorCode);
                Log.ConnectFailed(_logger, peer, request.Destination, code, ex.Message);
                await TryReplyAsync(stream, code, cancellationToken);
                return;
            }

            target.NoDelay = true;
            var bound = target.LocalEndPoint is IPEndPoint local ? SocksEndpoint.FromIP(local) : SocksEndpoint.Unspecified;
            if (!await TryReplyAsync(stream, SocksReplyCode.Succeeded, cancellationToken, bound))
            {
                return;
            }

            Log.Connected(_logger, peer, request.Destination);
            targetStream = new SocketStream(target);
            target = null;
            if (!header.Leftover.IsEmpty)
            {
                await targetStream.WriteAsync(header.Leftover, cancellationToken);
            }

            var result = await StreamRelay.RunAsync(stream, targetStream, cancellationToken);
            Log.Closed(_logger, peer, request.Destination, result.BytesAToB, result.BytesBToA, result.Clean);
        }
        catch (Exception ex) when (ex is not OperationCanceledException || !cancellationToken.IsCancellationRequested)
        {
            Log.StreamFailed(_logger, peer, ex.Message);
        }
        finally
        {
            target?.Dispose();
            if (targetStream is not null)
            {
                await QuietClose.DisposeAsync(targetStream);
            }

            await QuietClose.DisposeAsync(stream);
            Interlocked.Decrement(ref _active);
        }
    }

    /// <summary>Maps a socket error of a connect or a name lookup to a SOCKS5 reply code.</summary>
    public static SocksReplyCode MapSocketError(SocketError error) => error switch
    {
        SocketError.ConnectionRefused => SocksReplyCode.ConnectionRefused,
        SocketError.NetworkUnreachable or SocketError.NetworkDown => SocksReplyCode.NetworkUnreachable,
        SocketError.HostUnreachable or SocketError.HostDown or SocketError.HostNotFound
            or SocketError.TryAgain or SocketError.NoData or SocketError.AddressNotAvailable => SocksReplyCode.HostUnreachable,
        SocketError.TimedOut => SocksReplyCode.TtlExpired,
        SocketError.AccessDenied => SocksReplyCode.NotAllowedByRuleset,
        SocketError.AddressFamilyNotSupported => SocksReplyCode.AddressTypeNotSupported,
        _ => SocksReplyCode.GeneralFailure,
    };

    private string? Authorize(string? remoteNodeKey, in SocksTunnelRequest request)
    {
        if (_options.AllowedClients.Count > 0 && (remoteNodeKey is null || !_options.AllowedClients.Contains(remoteNodeKey)))
        {
            return "node not in allow-list";
        }

        if (_passcode is not null)
        {
            var given = Encoding.UTF8.GetBytes(request.Passcode);
            if (!CryptographicOperations.FixedTimeEquals(given, _passcode))
            {
                return "wrong passcode";
            }
        }

        // A UDP association names no destination (0.0.0.0:0): its datagrams are checked one by one.
        if (!_options.AllowLoopbackTargets && request.Command != SocksCommand.UdpAssociate && request.Destination.Address is { } address && IsLocalHost(address))
        {
            return "loopback destination";
        }

        return null;
    }

    private static bool IsLocalHost(IPAddress address)
    {
        if (address.IsIPv4MappedToIPv6)
        {
            address = address.MapToIPv4();
        }

        // Link-local addresses reach only the exit's own link, where a cloud host keeps its metadata service
        // (169.254.169.254, fd00:ec2::254 aside): credentials of the exit's host, not a destination for any mesh peer.
        return IPAddress.IsLoopback(address) || address.Equals(IPAddress.Any) || address.Equals(IPAddress.IPv6Any)
            || address.IsIPv6LinkLocal || IsIPv4LinkLocal(address);
    }

    private static bool IsIPv4LinkLocal(IPAddress address)
    {
        if (address.AddressFamily != System.Net.Sockets.AddressFamily.InterNetwork)
        {
            return false;
        }

        Span<byte> bytes = stackalloc byte[4];
        address.TryWriteBytes(bytes, out _);
        return bytes[0] == 169 && bytes[1] == 254;
    }

    private async ValueTask<Socket> ConnectAsync(SocksEndpoint destination, CancellationToken cancellationToken)
    {
        IPAddress[] addresses;
        if (destination.Type == SocksAddressType.DomainName)
        {
            try
            {
                addresses = await Dns.GetHostAddressesAsync(destination.Host!, cancellationToken);
            }
            catch (SocketException ex)
            {
                throw new SocksConnectException(SocksReplyCode.HostUnreachable, $"name lookup failed: {ex.SocketErrorCode}", ex);
            }

            if (!_options.AllowLoopbackTargets)
            {
                addresses = Array.FindAll(addresses, a => !IsLocalHost(a));
                if (addresses.Length == 0)
                {
                    throw new SocksConnectException(SocksReplyCode.NotAllowedByRuleset, "name resolves to the exit's own host");
                }
            }

            if (addresses.Length == 0)
            {
                throw new SocksConnectException(SocksReplyCode.HostUnreachable, "name has no addresses");
            }
        }
        else
        {
            addresses = [destination.Address!];
        }

        // Try each address in turn (the resolver orders them); report the first address's error,
        // which is the one a user expects for a single-address name.
        SocketException? first = null;
        foreach (var address in addresses)
        {
            var socket = new Socket(address.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
            try
            {
                await socket.ConnectAsync(new IPEndPoint(address, destination.Port), cancellationToken);
                return socket;
            }
            catch (SocketException ex)
            {
                socket.Dispose();
                first ??= ex;
            }
            catch
            {
                socket.Dispose();
                throw;
            }
        }

        throw first!;
    }

    private async ValueTask<bool> TryReplyAsync(Stream stream, SocksReplyCode code, CancellationToken cancellationToken, SocksEndpoint? bound = null)
    {
        var buffer = new byte[SocksLimits.MaxTunnelReplySize];
        var length = SocksTunnelCodec.WriteReply(buffer, new SocksTunnelReply(code, bound ?? SocksEndpoint.Unspecified));
        try
        {
            await stream.WriteAsync(buffer.AsMemory(0, length), cancellationToken);
            await stream.FlushAsync(cancellationToken);
            return true;
        }
        catch (Exception ex) when (ex is IOException or ObjectDisposedException or SocketException)
        {
            Log.StreamFailed(_logger, "reply", ex.Message);
            return false;
        }
    }

    private static partial class Log
    {
        [LoggerMessage(EventId = 6120, Level = LogLevel.Debug, Message = "socks-server: {Peer} -> {Destination} connected")]
        public static partial void Connected(ILogger logger, string peer, SocksEndpoint destination);

        [LoggerMessage(EventId = 6121, Level = LogLevel.Debug, Message = "socks-server: {Peer} -> {Destination} closed, {BytesUp} bytes up, {BytesDown} bytes down, clean {Clean}")]
        public static partial void Closed(ILogger logger, string peer, SocksEndpoint destination, long bytesUp, long bytesDown, bool clean);

        [LoggerMessage(EventId = 6122, Level = LogLevel.Information, Message = "socks-server: {Peer} -> {Destination} failed with {Reply}: {Reason}")]
        public static partial void ConnectFailed(ILogger logger, string peer, SocksEndpoint destination, SocksReplyCode reply, string reason);

        [LoggerMessage(EventId = 6123, Level = LogLevel.Warning, Message = "socks-server: refused {Peer} -> {Destination}: {Reason}")]
        public static partial void Refused(ILogger logger, string peer, SocksEndpoint destination, string reason);

        [LoggerMessage(EventId = 6124, Level = LogLevel.Warning, Message = "socks-server: bad tunnel header from {Peer} ({Status})")]
        public static partial void BadHeader(ILogger logger, string peer, OperationStatus status);

        [LoggerMessage(EventId = 6125, Level = LogLevel.Warning, Message = "socks-server: no tunnel header from {Peer} in time")]
        public static partial void HeaderTimeout(ILogger logger, string peer);

        [LoggerMessage(EventId = 6126, Level = LogLevel.Information, Message = "socks-server: {Peer} asked for unsupported command {Command}")]
        public static partial void UnsupportedCommand(ILogger logger, string peer, byte command);

        [LoggerMessage(EventId = 6127, Level = LogLevel.Debug, Message = "socks-server: stream of {Peer} failed: {Reason}")]
        public static partial void StreamFailed(ILogger logger, string peer, string reason);
    }
}
