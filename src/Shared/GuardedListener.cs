using System.IO.Pipelines;
using System.Net;
using System.Net.Sockets;
using Microsoft.AspNetCore.Connections;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.AspNetCore.Server.Kestrel.Transport.Sockets;
#pragma warning disable IDE0005 // implicit in viscript (Web SDK), needed in skywire: the file is compiled into both
using Microsoft.Extensions.Logging;
#pragma warning restore IDE0005

namespace Shared.Hosting;

/// <summary>Limits and identity of one <see cref="GuardedListenerFactory"/>.</summary>
/// <param name="Name">The listener's name in its log lines ("control listener", "HTTP listener").</param>
/// <param name="LogCategory">The logger category of its log lines.</param>
/// <param name="FirstEventId">Event id of the first of its three log lines (backing off, accepting again, per-source cap).</param>
/// <param name="MaxConnections">Connections open at once; at the cap no accept is attempted.</param>
/// <param name="MaxConnectionsPerSource">Connections one source address may hold; more are reset at once.</param>
internal sealed record GuardedListenerOptions(string Name, string LogCategory, int FirstEventId, int MaxConnections, int MaxConnectionsPerSource)
{
    /// <summary>Descriptors the process can still open (null: cannot tell); with it, no accept while <see cref="DescriptorReserve"/> or fewer are free.</summary>
    public Func<long?>? DescriptorsFree { get; init; }

    /// <summary>Descriptors left to the runtime (it needs some to start threads): see <see cref="DescriptorsFree"/>.</summary>
    public int DescriptorReserve { get; init; }

    /// <summary>First wait after an accept failed (then doubling).</summary>
    public TimeSpan AcceptRetryDelay { get; init; } = TimeSpan.FromMilliseconds(10);

    /// <summary>Longest wait between failed accepts.</summary>
    public TimeSpan MaxAcceptRetryDelay { get; init; } = TimeSpan.FromSeconds(1);

    /// <summary>Clock of the backoff and of the warning's throttle.</summary>
    public TimeProvider TimeProvider { get; init; } = TimeProvider.System;
}

/// <summary>
/// Kestrel's socket transport with an accept loop that cannot run the process out of descriptors (issue 12.3): viscript's
/// control listener and skywire's HTTP listeners (<c>--metrics</c>, <c>chat web</c>, the demo's page) use it; the file
/// is compiled into both executables. Why not Kestrel's own listener: it accepts whatever arrives and retries a failed
/// accept at once whatever the error, so on EMFILE the listening socket stays readable and the loop spins; the thread
/// pool then injects a thread, the runtime cannot open /proc/self/status for it and aborts the process ("Out of
/// memory."). So here:
/// <list type="bullet">
/// <item>no accept is attempted while <see cref="GuardedListenerOptions.MaxConnections"/> connections are open (the rest
/// wait in the kernel's backlog, which costs no descriptor); a connection's slot is freed when Kestrel has disposed it;</item>
/// <item>with <see cref="GuardedListenerOptions.DescriptorsFree"/>, none either while the process is short of descriptors;</item>
/// <item>a connection from a source that already holds <see cref="GuardedListenerOptions.MaxConnectionsPerSource"/> is
/// reset at once, before Kestrel sees it;</item>
/// <item>an accept that fails (EMFILE, ENFILE, ENOBUFS) waits 10 ms, doubling to 1 s, and accepts again.</item>
/// </list>
/// Accepted sockets become Kestrel connections through Kestrel's own <see cref="SocketConnectionContextFactory"/>.
/// </summary>
internal sealed class GuardedListenerFactory(GuardedListenerOptions options, ILoggerFactory loggerFactory) : IConnectionListenerFactory
{
    public ValueTask<IConnectionListener> BindAsync(EndPoint endpoint, CancellationToken cancellationToken = default)
    {
        if (endpoint is not IPEndPoint ip)
        {
            throw new NotSupportedException($"The {options.Name} binds IP addresses only, not {endpoint}.");
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
        return ValueTask.FromResult<IConnectionListener>(new Listener(socket, contexts, options, new Log(loggerFactory.CreateLogger(options.LogCategory), options)));
    }

    private sealed class Listener(Socket socket, SocketConnectionContextFactory contexts, GuardedListenerOptions options, Log log) : IConnectionListener
    {
        private readonly SemaphoreSlim _slots = new(options.MaxConnections, options.MaxConnections);
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

            var delay = TimeSpan.Zero;
            while (true)
            {
                Socket accepted;
                try
                {
                    if (options.DescriptorsFree?.Invoke() is { } free && free <= options.DescriptorReserve)
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
                    // EMFILE/ENFILE (TooManyOpenSockets), ENOBUFS/ENOMEM, or anything else that would fail again at once.
                    if (delay == TimeSpan.Zero)
                    {
                        log.AcceptBackingOff(ex.SocketErrorCode, Volatile.Read(ref _held));
                        delay = options.AcceptRetryDelay;
                    }
                    else
                    {
                        delay = TimeSpan.FromTicks(Math.Min(delay.Ticks * 2, options.MaxAcceptRetryDelay.Ticks));
                    }

                    try
                    {
                        await Task.Delay(delay, options.TimeProvider, cancellationToken);
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
                    log.AcceptRecovered();
                    delay = TimeSpan.Zero;
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
                if (n >= options.MaxConnectionsPerSource)
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
            var now = options.TimeProvider.GetTimestamp();
            var last = Interlocked.Read(ref _lastRefusal);
            if (last == long.MinValue || options.TimeProvider.GetElapsedTime(last, now) > TimeSpan.FromSeconds(10))
            {
                Interlocked.Exchange(ref _lastRefusal, now);
                log.PerSourceCapReached(source);
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

    /// <summary>The listener's three log lines, with the event ids and name of the executable that uses it.</summary>
    private sealed class Log(ILogger logger, GuardedListenerOptions options)
    {
        private readonly Action<ILogger, string, SocketError, int, Exception?> _backingOff = LoggerMessage.Define<string, SocketError, int>(LogLevel.Warning,
            new EventId(options.FirstEventId, "AcceptBackingOff"), "{Listener}: not accepting ({Error}) with {Held} connections held; backing off, pending connections wait in the backlog");

        private readonly Action<ILogger, string, Exception?> _recovered = LoggerMessage.Define<string>(LogLevel.Information,
            new EventId(options.FirstEventId + 1, "AcceptRecovered"), "{Listener}: accepting again");

        private readonly Action<ILogger, string, IPAddress, int, Exception?> _capReached = LoggerMessage.Define<string, IPAddress, int>(LogLevel.Warning,
            new EventId(options.FirstEventId + 2, "PerSourceCapReached"), "{Listener}: {Source} holds {Cap} connections, the per-source cap; further ones are reset at once");

        public void AcceptBackingOff(SocketError error, int held) => _backingOff(logger, options.Name, error, held, null);

        public void AcceptRecovered() => _recovered(logger, options.Name, null);

        public void PerSourceCapReached(IPAddress source) => _capReached(logger, options.Name, source, options.MaxConnectionsPerSource, null);
    }
}
