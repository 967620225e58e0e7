using System.Collections.Concurrent;
using System.Net;
using System.Net.Sockets;
using Microsoft.AspNetCore.Connections;
using Microsoft.AspNetCore.Server.Kestrel.Transport.Sockets;

namespace Viscript.Daemon.Listening;

/// <summary>
/// Kestrel's socket transport with an accept loop that backs off when the process is out of descriptors or buffers.
/// Kestrel's own listener retries a failed accept at once whatever the error; on EMFILE the listening socket stays
/// readable, so that loop spins, starves the thread pool, the pool injects threads, and the runtime aborts
/// ("Out of memory.") because creating a thread needs a descriptor (it reads /proc/self/status). Here an accept that
/// fails for lack of resources waits 10 ms, doubling to 1 s, and tries again; the connections wait in the backlog.
/// Accepted sockets become Kestrel connections through Kestrel's own <see cref="SocketConnectionContextFactory"/>.
/// </summary>
internal sealed partial class GuardedSocketTransportFactory(ILoggerFactory loggerFactory, TimeProvider timeProvider) : IConnectionListenerFactory
{
    public ValueTask<IConnectionListener> BindAsync(EndPoint endpoint, CancellationToken cancellationToken = default)
    {
        if (endpoint is not IPEndPoint ip)
        {
            throw new NotSupportedException($"The control listener binds IP addresses only, not {endpoint}.");
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
        var factory = new SocketConnectionContextFactory(new SocketConnectionFactoryOptions(), loggerFactory.CreateLogger<SocketConnectionContextFactory>());
        return ValueTask.FromResult<IConnectionListener>(new Listener(socket, factory, loggerFactory.CreateLogger<GuardedSocketTransportFactory>(), timeProvider));
    }

    private sealed class Listener(Socket socket, SocketConnectionContextFactory factory, ILogger logger, TimeProvider timeProvider) : IConnectionListener
    {
        private static readonly TimeSpan MinDelay = TimeSpan.FromMilliseconds(10);
        private static readonly TimeSpan MaxDelay = TimeSpan.FromSeconds(1);

        public EndPoint EndPoint { get; } = socket.LocalEndPoint!;

        public async ValueTask<ConnectionContext?> AcceptAsync(CancellationToken cancellationToken = default)
        {
            var delay = TimeSpan.Zero;
            while (true)
            {
                Socket accepted;
                try
                {
                    accepted = await socket.AcceptAsync(cancellationToken);
                }
                catch (Exception ex) when (ex is ObjectDisposedException or OperationCanceledException
                    || (ex is SocketException { SocketErrorCode: SocketError.OperationAborted or SocketError.Interrupted }))
                {
                    return null; // unbound or disposed
                }
                catch (SocketException ex) when (ex.SocketErrorCode is SocketError.ConnectionReset or SocketError.ConnectionAborted)
                {
                    continue; // the client gave up while in the backlog
                }
                catch (SocketException ex)
                {
                    // EMFILE/ENFILE (TooManyOpenSockets), ENOBUFS/ENOMEM, or anything else that would fail again at once.
                    delay = delay == TimeSpan.Zero ? MinDelay : TimeSpan.FromTicks(Math.Min(delay.Ticks * 2, MaxDelay.Ticks));
                    if (delay == MinDelay)
                    {
                        Log.AcceptBackingOff(logger, ex.SocketErrorCode, ex.Message);
                    }
                    try
                    {
                        await Task.Delay(delay, timeProvider, cancellationToken);
                    }
                    catch (OperationCanceledException)
                    {
                        return null;
                    }
                    continue;
                }
                if (delay != TimeSpan.Zero)
                {
                    Log.AcceptRecovered(logger);
                    delay = TimeSpan.Zero;
                }
                return factory.Create(accepted);
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
            factory.Dispose();
            return ValueTask.CompletedTask;
        }
    }

    // Event ids 4120-4129: control listener.
    private static partial class Log
    {
        [LoggerMessage(EventId = 4120, Level = LogLevel.Warning, Message = "control listener: accept failed ({Error}: {Message}); backing off, pending connections wait in the backlog")]
        public static partial void AcceptBackingOff(ILogger logger, SocketError error, string message);

        [LoggerMessage(EventId = 4121, Level = LogLevel.Information, Message = "control listener: accepting again")]
        public static partial void AcceptRecovered(ILogger logger);
    }
}

/// <summary>
/// Kestrel connection middleware that caps open connections per source address (Kestrel caps the total): a
/// connection over the cap is closed at once, before any byte of it is read.
/// </summary>
internal sealed partial class ConnectionGate(int perSource, ILogger logger, TimeProvider timeProvider)
{
    private readonly ConcurrentDictionary<IPAddress, int> _open = new();
    private long _lastWarning = long.MinValue;
    private long _refused;

    /// <summary>Connections open per source now (tests).</summary>
    public int OpenFrom(IPAddress address) => _open.TryGetValue(address, out var n) ? n : 0;

    /// <summary>Refused so far.</summary>
    public long Refused => Interlocked.Read(ref _refused);

    public ConnectionDelegate Wrap(ConnectionDelegate next) => async connection =>
    {
        var source = (connection.RemoteEndPoint as IPEndPoint)?.Address ?? IPAddress.None;
        if (source.IsIPv4MappedToIPv6)
        {
            source = source.MapToIPv4();
        }
        if (_open.AddOrUpdate(source, 1, (_, n) => n + 1) > perSource)
        {
            Release(source);
            Interlocked.Increment(ref _refused);
            var now = timeProvider.GetTimestamp();
            var last = Interlocked.Read(ref _lastWarning);
            if (last == long.MinValue || timeProvider.GetElapsedTime(last, now) > TimeSpan.FromSeconds(10))
            {
                Interlocked.Exchange(ref _lastWarning, now);
                Log.PerSourceCapReached(logger, source, perSource);
            }
            return;
        }
        try
        {
            await next(connection);
        }
        finally
        {
            Release(source);
        }
    };

    private void Release(IPAddress source)
    {
        while (true)
        {
            var n = _open[source];
            if (n <= 1 ? ((ICollection<KeyValuePair<IPAddress, int>>)_open).Remove(new(source, n)) : _open.TryUpdate(source, n - 1, n))
            {
                return;
            }
        }
    }

    private static partial class Log
    {
        [LoggerMessage(EventId = 4122, Level = LogLevel.Warning, Message = "control listener: {Source} holds {Cap} connections, the per-source cap; further ones are closed at once")]
        public static partial void PerSourceCapReached(ILogger logger, IPAddress source, int cap);
    }
}
