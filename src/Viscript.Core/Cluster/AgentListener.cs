using System.Net;
using System.Net.Security;
using System.Net.Sockets;
using System.Security.Authentication;
using System.Text.Json;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace Viscript.Core.Cluster;

/// <summary>Settings of a primary's agent port. <see cref="ToString"/> shows the public key only.</summary>
public sealed record AgentListenerOptions
{
    /// <summary>Listen address (the agent port).</summary>
    public required IPEndPoint Listen { get; init; }

    /// <summary>This primary's key (its certificate is what agents pin).</summary>
    public required ClusterKey Key { get; init; }

    /// <summary>TLS handshake plus hello must complete within this time from accept (slow-drip and silent clients are cut).</summary>
    public TimeSpan HandshakeTimeout { get; init; } = TimeSpan.FromSeconds(10);

    /// <summary>Connections at once (authenticated or not); beyond it a new connection is closed at once.</summary>
    public int MaxConnections { get; init; } = 256;

    /// <summary>Connections at once from one address.</summary>
    public int MaxConnectionsPerAddress { get; init; } = 16;

    /// <summary>Timings of established connections.</summary>
    public AgentChannelOptions Channel { get; init; } = AgentChannelOptions.Default;

    /// <summary>Diagnostics.</summary>
    public ILoggerFactory LoggerFactory { get; init; } = NullLoggerFactory.Instance;

    /// <inheritdoc/>
    public override string ToString() =>
        $"AgentListenerOptions {{ Listen = {Listen}, Key = {Key.PublicKey}, HandshakeTimeout = {HandshakeTimeout}, MaxConnections = {MaxConnections}, MaxConnectionsPerAddress = {MaxConnectionsPerAddress} }}";
}

/// <summary>
/// A primary's agent port: TLS 1.3 with a client certificate required on both sides, each side pinning the other's key
/// (docs/viscript.md "Cluster"). Only an agent whose key is on the allow-list (<see cref="ClusterDirectory"/>) gets past
/// the hello; nothing before that is interpreted beyond the TLS record layer and one bounded hello frame, all within
/// <see cref="AgentListenerOptions.HandshakeTimeout"/>. Connection counts are capped in total and per address.
/// </summary>
public sealed partial class AgentListener : IAsyncDisposable
{
    private readonly AgentListenerOptions _options;
    private readonly ClusterDirectory _directory;
    private readonly ILogger _logger;
    private readonly Socket _socket;
    private readonly CancellationTokenSource _stop = new();
    private readonly SslStreamCertificateContext _certificate;
    private readonly Lock _gate = new();
    private readonly Dictionary<IPAddress, int> _perAddress = [];
    private readonly List<Task> _connections = [];
    private readonly RateLimitedLog _refusals;
    private int _count;
    private Task? _acceptLoop;
    private int _disposed;

    /// <summary>Binds the agent port (not yet accepting: <see cref="Start"/>).</summary>
    public AgentListener(AgentListenerOptions options, ClusterDirectory directory)
    {
        _options = options;
        _directory = directory;
        _logger = options.LoggerFactory.CreateLogger("Viscript.Cluster.AgentListener");
        _refusals = new RateLimitedLog(options.Channel.TimeProvider);
        _certificate = SslStreamCertificateContext.Create(options.Key.Certificate, null, offline: true);
        _socket = new Socket(options.Listen.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
        _socket.Bind(options.Listen);
        _socket.Listen(128);
        LocalEndPoint = (IPEndPoint)_socket.LocalEndPoint!;
        // Never the last descriptors (issue 12.3): at most half of those free now, less the reserve, as the signal server.
        MaxConnections = Math.Min(options.MaxConnections, Viscript.Signal.Internal.DescriptorBudget.ConnectionsAllowed() ?? options.MaxConnections);
    }

    /// <summary>The connection cap in effect: <see cref="AgentListenerOptions.MaxConnections"/>, lowered by the descriptor limit.</summary>
    public int MaxConnections { get; }

    /// <summary>The bound address.</summary>
    public IPEndPoint LocalEndPoint { get; }

    /// <summary>Connections open now (any stage).</summary>
    public int ConnectionCount => Volatile.Read(ref _count);

    /// <summary>Starts accepting.</summary>
    public void Start() => _acceptLoop ??= AcceptLoopAsync(_stop.Token);

    private async Task AcceptLoopAsync(CancellationToken cancellationToken)
    {
        var failures = 0;
        while (!cancellationToken.IsCancellationRequested)
        {
            Socket socket;
            try
            {
                if (Viscript.Signal.Internal.DescriptorBudget.Free() is { } free && free <= Viscript.Signal.Internal.DescriptorBudget.Reserve)
                {
                    // Short of descriptors (whoever holds them): do not take one; pending connections wait in the backlog.
                    throw new SocketException((int)SocketError.TooManyOpenSockets);
                }

                socket = await _socket.AcceptAsync(cancellationToken);
                if (failures > 0)
                {
                    Log.AcceptRecovered(_logger, failures);
                }

                failures = 0;
            }
            catch (OperationCanceledException)
            {
                return;
            }
            catch (ObjectDisposedException)
            {
                return;
            }
            catch (SocketException ex)
            {
                // Out of descriptors or buffers: back off instead of spinning (logged once per episode).
                if (failures++ == 0)
                {
                    Log.AcceptFailed(_logger, ex.SocketErrorCode.ToString());
                }

                await Task.Delay(TimeSpan.FromMilliseconds(Math.Min(1000, 10 << Math.Min(failures, 7))), _options.Channel.TimeProvider, CancellationToken.None);
                continue;
            }
            var address = (socket.RemoteEndPoint as IPEndPoint)?.Address ?? IPAddress.None;
            if (!TryAdmit(address))
            {
                if (_refusals.ShouldLog(out var held))
                {
                    Log.ConnectionRefused(_logger, socket.RemoteEndPoint, held);
                }
                socket.LingerState = new LingerOption(true, 0);
                socket.Dispose();
                continue;
            }
            var task = HandleAsync(socket, address);
            lock (_gate)
            {
                _connections.RemoveAll(t => t.IsCompleted);
                _connections.Add(task);
            }
        }
    }

    private bool TryAdmit(IPAddress address)
    {
        lock (_gate)
        {
            var mine = _perAddress.GetValueOrDefault(address);
            if (_count >= MaxConnections || mine >= _options.MaxConnectionsPerAddress)
            {
                return false;
            }
            _perAddress[address] = mine + 1;
            _count++;
            return true;
        }
    }

    private void Release(IPAddress address)
    {
        lock (_gate)
        {
            _count--;
            if (_perAddress.TryGetValue(address, out var n) && n > 1)
            {
                _perAddress[address] = n - 1;
            }
            else
            {
                _perAddress.Remove(address);
            }
        }
    }

    private async Task HandleAsync(Socket socket, IPAddress address)
    {
        await Task.Yield();
        var remote = socket.RemoteEndPoint;
        socket.NoDelay = true;
        var ssl = new SslStream(new NetworkStream(socket, ownsSocket: true), leaveInnerStreamOpen: false);
        AgentChannel? channel = null;
        try
        {
            using var handshake = CancellationTokenSource.CreateLinkedTokenSource(_stop.Token);
            handshake.CancelAfter(_options.HandshakeTimeout);
            await ssl.AuthenticateAsServerAsync(new SslServerAuthenticationOptions
            {
                ServerCertificateContext = _certificate,
                ClientCertificateRequired = true,
                EnabledSslProtocols = SslProtocols.Tls13,
                CertificateRevocationCheckMode = System.Security.Cryptography.X509Certificates.X509RevocationMode.NoCheck,
                // Any certificate gets through TLS; the key is checked against the allow-list below (self-signed by design).
                RemoteCertificateValidationCallback = (_, certificate, _, _) => certificate is not null,
            }, handshake.Token);
            var key = ClusterKey.Fingerprint(ssl.RemoteCertificate!);
            channel = new AgentChannel(ssl, _options.Channel);
            var hello = await channel.ReadOneAsync(AgentProtocol.MaxHelloSize, frame =>
            {
                if (frame.Op != AgentOp.Hello)
                {
                    throw new AgentProtocolException($"expected a hello, got {frame.Op}");
                }
                var reader = new Utf8JsonReader(frame.Body);
                return JsonSerializer.Deserialize(ref reader, AgentJsonContext.Default.AgentHello) ?? throw new AgentProtocolException("empty hello");
            }, handshake.Token);
            var host = _directory.FindByKey(key);
            if (host is null || hello.Protocol != AgentProtocol.Version)
            {
                var reason = host is null
                    ? $"this agent's key {key} is not on the primary's allow-list"
                    : $"protocol {hello.Protocol} is not supported (this primary speaks {AgentProtocol.Version})";
                if (_refusals.ShouldLog(out var held))
                {
                    Log.AgentRefused(_logger, remote, reason, held);
                }
                await channel.SendAsync(AgentOp.Refused, new AgentRefusal(reason), AgentJsonContext.Default.AgentRefusal, handshake.Token);
                return;
            }
            if (!await channel.SendAsync(AgentOp.Welcome, new AgentWelcome(AgentProtocol.Version, host.Name, _directory.Local.Name), AgentJsonContext.Default.AgentWelcome, handshake.Token))
            {
                return;
            }
            await host.RunAsync(channel, hello, remote, _stop.Token);
        }
        catch (Exception ex) when (ex is AuthenticationException or IOException or OperationCanceledException or AgentProtocolException or JsonException or ObjectDisposedException)
        {
            if (!_stop.IsCancellationRequested && _refusals.ShouldLog(out var held))
            {
                Log.HandshakeFailed(_logger, remote, ex is OperationCanceledException ? $"no TLS handshake and hello within {_options.HandshakeTimeout.TotalSeconds:0} s" : ex.Message, held);
            }
        }
        finally
        {
            if (channel is not null)
            {
                await channel.DisposeAsync();
            }
            else
            {
                await ssl.DisposeAsync();
            }
            Release(address);
        }
    }

    /// <inheritdoc/>
    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            return;
        }
        await _stop.CancelAsync();
        _socket.Dispose();
        if (_acceptLoop is not null)
        {
            await _acceptLoop;
        }
        Task[] open;
        lock (_gate)
        {
            open = [.. _connections];
        }
        await Task.WhenAll(open);
        _stop.Dispose();
    }

    // Event ids 4330-4339: the agent port.
    private static partial class Log
    {
        [LoggerMessage(EventId = 4330, Level = LogLevel.Warning, Message = "agent port: refused {Remote}: {Reason} ({Held} more not logged)")]
        public static partial void AgentRefused(ILogger logger, EndPoint? remote, string reason, int held);

        [LoggerMessage(EventId = 4331, Level = LogLevel.Information, Message = "agent port: connection from {Remote} closed before it was an agent: {Reason} ({Held} more not logged)")]
        public static partial void HandshakeFailed(ILogger logger, EndPoint? remote, string reason, int held);

        [LoggerMessage(EventId = 4332, Level = LogLevel.Warning, Message = "agent port: connection from {Remote} refused: too many connections ({Held} more not logged)")]
        public static partial void ConnectionRefused(ILogger logger, EndPoint? remote, int held);

        [LoggerMessage(EventId = 4333, Level = LogLevel.Warning, Message = "agent port: not accepting ({Error}); backing off, pending connections wait in the backlog")]
        public static partial void AcceptFailed(ILogger logger, string error);

        [LoggerMessage(EventId = 4334, Level = LogLevel.Information, Message = "agent port: accepting again after {Failures} attempts")]
        public static partial void AcceptRecovered(ILogger logger, int failures);
    }
}

/// <summary>At most one log line a second for a kind of event; the rest are counted and reported with the next line.</summary>
internal sealed class RateLimitedLog(TimeProvider time)
{
    private readonly Lock _gate = new();
    private long _last = long.MinValue;
    private int _held;

    public bool ShouldLog(out int held)
    {
        lock (_gate)
        {
            var now = time.GetTimestamp();
            if (_last != long.MinValue && time.GetElapsedTime(_last, now) < TimeSpan.FromSeconds(1))
            {
                _held++;
                held = 0;
                return false;
            }
            _last = now;
            held = _held;
            _held = 0;
            return true;
        }
    }
}
