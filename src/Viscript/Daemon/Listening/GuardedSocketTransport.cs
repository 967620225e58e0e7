using System.Collections.Concurrent;
using System.IO.Pipelines;
using System.Net;
using System.Net.Sockets;
using Microsoft.AspNetCore.Connections;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.AspNetCore.Server.Kestrel.Transport.Sockets;

namespace Viscript.Daemon.Listening;

/// <summary>
/// Kestrel's socket transport with an accept loop that never lets the control listener run the process out of
/// descriptors (issue 12.3). Why it matters: when no descriptor is free and the .NET runtime creates a thread (the
/// thread pool injects one when its workers are busy), the runtime reads /proc/self/status, fails with EMFILE and
/// aborts the process with "Out of memory." — and Kestrel's own listener makes that likely, because it retries a failed
/// accept at once whatever the error: on EMFILE the listening socket stays readable, the loop spins, the pool starves
/// and injects a thread. So here:
/// <list type="bullet">
/// <item>no accept is attempted while <c>total</c> connections are open (the rest wait in the kernel's backlog, which
/// costs no descriptor); a connection's slot is freed when Kestrel has disposed it;</item>
/// <item>a connection from a source that already holds <c>perSource</c> is closed at once, before Kestrel sees it;</item>
/// <item>an accept that fails for lack of resources (EMFILE, ENFILE, ENOBUFS) waits 10 ms, doubling to 1 s.</item>
/// </list>
/// Accepted sockets become Kestrel connections through Kestrel's own <see cref="SocketConnectionContextFactory"/>.
/// </summary>
internal sealed partial class GuardedSocketTransportFactory(int total, int perSource, ILoggerFactory loggerFactory, TimeProvider timeProvider) : IConnectionListenerFactory
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
        return ValueTask.FromResult<IConnectionListener>(new Listener(socket, factory, total, perSource, loggerFactory.CreateLogger<GuardedSocketTransportFactory>(), timeProvider));
    }

    private sealed class Listener(Socket socket, SocketConnectionContextFactory factory, int total, int perSource, ILogger logger, TimeProvider timeProvider) : IConnectionListener
    {
        private static readonly TimeSpan MinDelay = TimeSpan.FromMilliseconds(10);
        private static readonly TimeSpan MaxDelay = TimeSpan.FromSeconds(1);
        private readonly SemaphoreSlim _slots = new(total, total);
        private readonly ConcurrentDictionary<IPAddress, int> _perSource = new();
        private long _refused;
        private long _lastWarning = long.MinValue;

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
                    _slots.Release();
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
                        _slots.Release();
                        return null;
                    }
                    continue;
                }
                if (delay != TimeSpan.Zero)
                {
                    Log.AcceptRecovered(logger);
                    delay = TimeSpan.Zero;
                }
                var source = Source(accepted);
                if (_perSource.AddOrUpdate(source, 1, (_, n) => n + 1) > perSource)
                {
                    Leave(source);
                    Refuse(accepted, source);
                    continue;
                }
                var released = 0;
                return new CountedConnection(factory.Create(accepted), () =>
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

        private void Refuse(Socket accepted, IPAddress source)
        {
            // Closed at once (a reset): the descriptor is free again before the next accept.
            accepted.LingerState = new LingerOption(true, 0);
            accepted.Dispose();
            Interlocked.Increment(ref _refused);
            var now = timeProvider.GetTimestamp();
            var last = Interlocked.Read(ref _lastWarning);
            if (last == long.MinValue || timeProvider.GetElapsedTime(last, now) > TimeSpan.FromSeconds(10))
            {
                Interlocked.Exchange(ref _lastWarning, now);
                Log.PerSourceCapReached(logger, source, perSource);
            }
        }

        private void Leave(IPAddress source)
        {
            while (true)
            {
                var n = _perSource[source];
                if (n <= 1 ? ((ICollection<KeyValuePair<IPAddress, int>>)_perSource).Remove(new(source, n)) : _perSource.TryUpdate(source, n - 1, n))
                {
                    return;
                }
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
            _slots.Dispose();
            return ValueTask.CompletedTask;
        }
    }

    /// <summary>Kestrel's connection, with its slot freed once Kestrel has disposed it (its socket is closed then).</summary>
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

    // Event ids 4120-4129: control listener.
    private static partial class Log
    {
        [LoggerMessage(EventId = 4120, Level = LogLevel.Warning, Message = "control listener: accept failed ({Error}: {Message}); backing off, pending connections wait in the backlog")]
        public static partial void AcceptBackingOff(ILogger logger, SocketError error, string message);

        [LoggerMessage(EventId = 4121, Level = LogLevel.Information, Message = "control listener: accepting again")]
        public static partial void AcceptRecovered(ILogger logger);

        [LoggerMessage(EventId = 4122, Level = LogLevel.Warning, Message = "control listener: {Source} holds {Cap} connections, the per-source cap; further ones are closed at once")]
        public static partial void PerSourceCapReached(ILogger logger, IPAddress source, int cap);
    }
}
