using System.IO.Pipelines;
using System.Net;
using System.Net.Sockets;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Connections;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.AspNetCore.Server.Kestrel.Transport.Sockets;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Skywire.Core.Channels;

namespace Skywire.Hosting;

/// <summary>
/// Kestrel for skywire's HTTP listeners (<c>--metrics</c> of node, manager and messenger, <c>chat web</c>, the demo's
/// page) with an accept loop that cannot run the process out of descriptors (issue 12.3). Why not Kestrel's own socket
/// listener: it accepts whatever arrives and retries a failed accept at once, so on EMFILE it spins; the thread pool
/// then injects a thread, the runtime cannot open /proc/self/status for it and aborts the whole process
/// ("Out of memory.") — a flood of idle connections to a node's or manager's <c>--metrics</c> port took the process
/// down that way. So here:
/// <list type="bullet">
/// <item>at most <see cref="ListenerLimits.MaxConnections"/> connections are open; at the cap no accept is attempted
/// (newcomers wait in the kernel's backlog, which costs no descriptor) until Kestrel disposes one (its deadlines cut
/// idle and slow-drip connections: <see cref="Use"/>);</item>
/// <item>no accept either while 12 or fewer descriptors are free (<see cref="TcpConnectionHost.DescriptorsFree"/>):
/// the runtime needs them to start threads;</item>
/// <item>a connection from a source that already holds <see cref="ListenerLimits.MaxConnectionsPerSource"/> is reset
/// at once;</item>
/// <item>an accept that fails (EMFILE, ENFILE, ENOBUFS) waits with backoff (10 ms doubling to 1 s) and accepts again.</item>
/// </list>
/// Accepted sockets become Kestrel connections through Kestrel's own <see cref="SocketConnectionContextFactory"/>.
/// </summary>
internal static partial class GuardedKestrelTransport
{
    /// <summary>
    /// Descriptors left free: no accept while fewer are. Smaller than the TCP listeners' reserve (32), so that a
    /// metrics port still answers when a flood holds the node's own listeners at their cap; enough for the runtime to
    /// start threads.
    /// </summary>
    private const int DescriptorReserve = 12;

    /// <summary>Connections per HTTP listener by default: a scraper or a browser needs a few.</summary>
    public static ListenerLimits DefaultLimits { get; } = new() { MaxConnections = 16, MaxConnectionsPerSource = 16 };

    /// <summary>Uses the guarded listener and HTTP/1.1 deadlines (10 s for a request head, 30 s idle) on <paramref name="builder"/>.</summary>
    public static void Use(WebApplicationBuilder builder, ListenerLimits? limits = null, ILoggerFactory? loggerFactory = null)
    {
        ArgumentNullException.ThrowIfNull(builder);
        var factory = new ListenerFactory(limits ?? DefaultLimits, loggerFactory ?? NullLoggerFactory.Instance);
        builder.Services.RemoveAll<IConnectionListenerFactory>();
        builder.Services.AddSingleton<IConnectionListenerFactory>(factory);
        builder.WebHost.ConfigureKestrel(k =>
        {
            k.AddServerHeader = false;
            k.Limits.RequestHeadersTimeout = TimeSpan.FromSeconds(10);
            k.Limits.KeepAliveTimeout = TimeSpan.FromSeconds(30);
            k.Limits.MinRequestBodyDataRate = new MinDataRate(240, TimeSpan.FromSeconds(5));
            k.ConfigureEndpointDefaults(e => e.Protocols = HttpProtocols.Http1);
        });
    }

    /// <summary>
    /// One complete request to <paramref name="endPoint"/> over a plain socket (no HttpClient: nothing more to load), so
    /// that the code a request runs is loaded (assemblies take descriptors) before any flood can take them.
    /// </summary>
    public static async Task WarmUpAsync(IPEndPoint endPoint, string path, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(endPoint);
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(TimeSpan.FromSeconds(10));
        try
        {
            using var socket = new Socket(endPoint.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
            var target = endPoint.Address.Equals(IPAddress.Any) ? new IPEndPoint(IPAddress.Loopback, endPoint.Port)
                : endPoint.Address.Equals(IPAddress.IPv6Any) ? new IPEndPoint(IPAddress.IPv6Loopback, endPoint.Port) : endPoint;
            await socket.ConnectAsync(target, timeout.Token);
            await socket.SendAsync(System.Text.Encoding.ASCII.GetBytes($"GET {path} HTTP/1.1\r\nHost: {target}\r\nConnection: close\r\n\r\n"), timeout.Token);
            var buffer = new byte[16 * 1024];
            while (await socket.ReceiveAsync(buffer, timeout.Token) > 0)
            {
            }
        }
        catch (Exception ex) when (ex is SocketException or OperationCanceledException)
        {
            // Only a warm-up: the listener serves without it.
        }
    }

    private sealed class ListenerFactory(ListenerLimits limits, ILoggerFactory loggerFactory) : IConnectionListenerFactory
    {
        public ValueTask<IConnectionListener> BindAsync(EndPoint endpoint, CancellationToken cancellationToken = default)
        {
            if (endpoint is not IPEndPoint ip)
            {
                throw new NotSupportedException($"This listener binds IP addresses only, not {endpoint}.");
            }

            var socket = new Socket(ip.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
            try
            {
                if (ip.Address.Equals(IPAddress.IPv6Any))
                {
                    socket.DualMode = true;
                }

                socket.Bind(ip);
                socket.Listen(512);
            }
            catch (SocketException ex) when (ex.SocketErrorCode == SocketError.AddressAlreadyInUse)
            {
                socket.Dispose();
                throw new AddressInUseException(ex.Message, ex);
            }
            catch
            {
                socket.Dispose();
                throw;
            }

            var contexts = new SocketConnectionContextFactory(new SocketConnectionFactoryOptions(), loggerFactory.CreateLogger<SocketConnectionContextFactory>());
            return ValueTask.FromResult<IConnectionListener>(new Listener(socket, contexts, limits, loggerFactory.CreateLogger("Skywire.Hosting.HttpListener")));
        }
    }

    private sealed class Listener(Socket socket, SocketConnectionContextFactory contexts, ListenerLimits limits, ILogger logger) : IConnectionListener
    {
        private readonly SemaphoreSlim _slots = new(limits.MaxConnections, limits.MaxConnections);
        private readonly Dictionary<IPAddress, int> _perSource = [];
        private readonly Lock _sync = new();
        private int _held;
        private long _lastRefusal = long.MinValue;

        public EndPoint EndPoint { get; } = socket.LocalEndPoint!;

        public async ValueTask<ConnectionContext?> AcceptAsync(CancellationToken cancellationToken = default)
        {
            try
            {
                // A slot first: at the cap, connections wait in the backlog instead of taking descriptors.
                await _slots.WaitAsync(cancellationToken);
            }
            catch (Exception ex) when (ex is OperationCanceledException or ObjectDisposedException)
            {
                return null;
            }

            var backoff = new Backoff(limits.AcceptRetryDelay, limits.MaxAcceptRetryDelay);
            while (true)
            {
                Socket accepted;
                try
                {
                    if (TcpConnectionHost.DescriptorsFree() is { } free && free <= DescriptorReserve)
                    {
                        // Short of descriptors (held by the process's other listeners or anything else): wait, do not take one.
                        throw new SocketException((int)SocketError.TooManyOpenSockets);
                    }

                    accepted = await socket.AcceptAsync(cancellationToken);
                }
                catch (Exception ex) when (ex is ObjectDisposedException or OperationCanceledException
                    || (ex is SocketException { SocketErrorCode: SocketError.OperationAborted or SocketError.Interrupted }))
                {
                    _slots.Release();
                    return null; // unbound or disposed
                }
                catch (SocketException ex) when (ex.SocketErrorCode is SocketError.ConnectionReset or SocketError.ConnectionAborted)
                {
                    continue; // the client gave up while in the backlog
                }
                catch (SocketException ex)
                {
                    if (backoff.Attempts == 0)
                    {
                        Log.AcceptBackingOff(logger, ex.SocketErrorCode, Volatile.Read(ref _held));
                    }

                    try
                    {
                        await backoff.DelayAsync(TimeProvider.System, cancellationToken);
                    }
                    catch (OperationCanceledException)
                    {
                        _slots.Release();
                        return null;
                    }

                    continue;
                }

                if (backoff.Attempts > 0)
                {
                    Log.AcceptRecovered(logger, backoff.Attempts);
                    backoff.Reset();
                }

                var source = Source(accepted);
                if (!TryEnter(source))
                {
                    Refuse(accepted, source);
                    continue;
                }

                var released = 0;
                return new CountedConnection(contexts.Create(accepted), () =>
                {
                    if (Interlocked.Exchange(ref released, 1) == 0)
                    {
                        Leave(source);
                        _slots.Release();
                    }
                });
            }
        }

        private static IPAddress Source(Socket accepted)
        {
            var address = (accepted.RemoteEndPoint as IPEndPoint)?.Address ?? IPAddress.None;
            return address.IsIPv4MappedToIPv6 ? address.MapToIPv4() : address;
        }

        private bool TryEnter(IPAddress source)
        {
            lock (_sync)
            {
                var n = _perSource.GetValueOrDefault(source);
                if (n >= limits.MaxConnectionsPerSource)
                {
                    return false;
                }

                _perSource[source] = n + 1;
                _held++;
                return true;
            }
        }

        private void Leave(IPAddress source)
        {
            lock (_sync)
            {
                _held--;
                var n = _perSource.GetValueOrDefault(source) - 1;
                if (n <= 0)
                {
                    _perSource.Remove(source);
                }
                else
                {
                    _perSource[source] = n;
                }
            }
        }

        private void Refuse(Socket accepted, IPAddress source)
        {
            // Reset at once: the descriptor is free again before the next accept.
            accepted.LingerState = new LingerOption(true, 0);
            accepted.Dispose();
            var now = Environment.TickCount64;
            var last = Interlocked.Read(ref _lastRefusal);
            if (last == long.MinValue || now - last > 10_000)
            {
                Interlocked.Exchange(ref _lastRefusal, now);
                Log.PerSourceCapReached(logger, source, limits.MaxConnectionsPerSource);
            }
        }

        public ValueTask UnbindAsync(CancellationToken cancellationToken = default)
        {
            socket.Dispose();
            return ValueTask.CompletedTask;
        }

        public ValueTask DisposeAsync()
        {
            socket.Dispose();
            contexts.Dispose();
            _slots.Dispose();
            return ValueTask.CompletedTask;
        }
    }

    /// <summary>Kestrel's connection; its slot in the host is freed once Kestrel has disposed it (the socket is closed then).</summary>
    private sealed class CountedConnection(ConnectionContext inner, Action release) : ConnectionContext
    {
        public override string ConnectionId { get => inner.ConnectionId; set => inner.ConnectionId = value; }

        public override IFeatureCollection Features => inner.Features;

        public override IDictionary<object, object?> Items { get => inner.Items; set => inner.Items = value; }

        public override IDuplexPipe Transport { get => inner.Transport; set => inner.Transport = value; }

        public override CancellationToken ConnectionClosed { get => inner.ConnectionClosed; set => inner.ConnectionClosed = value; }

        public override EndPoint? LocalEndPoint { get => inner.LocalEndPoint; set => inner.LocalEndPoint = value; }

        public override EndPoint? RemoteEndPoint { get => inner.RemoteEndPoint; set => inner.RemoteEndPoint = value; }

        public override void Abort() => inner.Abort();

        public override void Abort(ConnectionAbortedException abortReason) => inner.Abort(abortReason);

        public override async ValueTask DisposeAsync()
        {
            try
            {
                await inner.DisposeAsync();
            }
            finally
            {
                release();
                await base.DisposeAsync();
            }
        }
    }

    // Event ids 2030-2039: skywire's HTTP listeners (--metrics, chat web, the demo's page).
    private static partial class Log
    {
        [LoggerMessage(EventId = 2030, Level = LogLevel.Warning, Message = "HTTP listener: not accepting ({Error}) with {Held} connections held; backing off, pending connections wait in the backlog")]
        public static partial void AcceptBackingOff(ILogger logger, SocketError error, int held);

        [LoggerMessage(EventId = 2031, Level = LogLevel.Information, Message = "HTTP listener: accepting again after {Attempts} attempts")]
        public static partial void AcceptRecovered(ILogger logger, int attempts);

        [LoggerMessage(EventId = 2032, Level = LogLevel.Warning, Message = "HTTP listener: {Source} holds {Cap} connections, the per-source cap; further ones are reset at once")]
        public static partial void PerSourceCapReached(ILogger logger, IPAddress source, int cap);
    }
}
