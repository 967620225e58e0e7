using System.Collections.Concurrent;
using System.Net;
using System.Net.Sockets;

namespace Skywire.TestKit;

/// <summary>
/// A TCP relay on loopback between clients and one target, for tests that must break connections: every accepted
/// connection is piped to a fresh connection to the target, and <see cref="KillAll"/> resets all current ones (both
/// sides see the connection die, as when a NAT or a middlebox drops it) while new connections keep working. With a
/// <c>delay</c>, every chunk is delivered that long after it was read, in order (a slow hop: the round trip grows by
/// twice the delay); TCP itself never loses bytes, so a lossy hop is one whose connections die (<see cref="KillAll"/>).
/// </summary>
public sealed class TcpFaultRelay : IDisposable
{
    private readonly Socket _listener;
    private readonly IPEndPoint _target;
    private readonly TimeSpan _delay;
    private readonly ConcurrentDictionary<int, (Socket Client, Socket Upstream)> _pairs = new();
    private readonly CancellationTokenSource _cts = new();
    private readonly Task _acceptLoop;
    private int _nextId;
    private long _accepted;

    /// <summary>Starts relaying from 127.0.0.1:0 (see <see cref="ListenEndPoint"/>) to <paramref name="target"/>.</summary>
    public TcpFaultRelay(IPEndPoint target)
        : this(target, TimeSpan.Zero)
    {
    }

    /// <summary>Starts relaying to <paramref name="target"/>, each direction delayed by <paramref name="delay"/>.</summary>
    public TcpFaultRelay(IPEndPoint target, TimeSpan delay)
    {
        ArgumentNullException.ThrowIfNull(target);
        ArgumentOutOfRangeException.ThrowIfLessThan(delay, TimeSpan.Zero);
        _target = target;
        _delay = delay;
        _listener = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        _listener.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        _listener.Listen(64);
        ListenEndPoint = (IPEndPoint)_listener.LocalEndPoint!;
        _acceptLoop = Task.Run(AcceptLoopAsync);
    }

    /// <summary>Where clients connect.</summary>
    public IPEndPoint ListenEndPoint { get; }

    /// <summary>Connections accepted so far.</summary>
    public long Accepted => Interlocked.Read(ref _accepted);

    /// <summary>Connections currently relayed.</summary>
    public int Active => _pairs.Count;

    /// <summary>Resets every current connection (RST on both sides). Returns how many were killed.</summary>
    public int KillAll()
    {
        var killed = 0;
        foreach (var id in _pairs.Keys)
        {
            if (_pairs.TryRemove(id, out var pair))
            {
                Reset(pair.Client);
                Reset(pair.Upstream);
                killed++;
            }
        }

        return killed;
    }

    private static void Reset(Socket socket)
    {
        try
        {
            socket.LingerState = new LingerOption(true, 0);
        }
        catch (SocketException)
        {
        }
        catch (ObjectDisposedException)
        {
        }

        socket.Dispose();
    }

    private async Task AcceptLoopAsync()
    {
        while (!_cts.IsCancellationRequested)
        {
            Socket client;
            try
            {
                client = await _listener.AcceptAsync(_cts.Token);
            }
            catch (Exception ex) when (ex is OperationCanceledException or SocketException or ObjectDisposedException)
            {
                return;
            }

            Interlocked.Increment(ref _accepted);
            _ = Task.Run(() => RelayAsync(client));
        }
    }

    private async Task RelayAsync(Socket client)
    {
        var upstream = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        client.NoDelay = true;
        try
        {
            await upstream.ConnectAsync(_target, _cts.Token);
        }
        catch (Exception ex) when (ex is OperationCanceledException or SocketException or ObjectDisposedException)
        {
            Reset(client);
            upstream.Dispose();
            return;
        }

        var id = Interlocked.Increment(ref _nextId);
        _pairs[id] = (client, upstream);
        await (_delay > TimeSpan.Zero
            ? Task.WhenAny(DelayedPumpAsync(client, upstream), DelayedPumpAsync(upstream, client))
            : Task.WhenAny(PumpAsync(client, upstream), PumpAsync(upstream, client)));
        if (_pairs.TryRemove(id, out _))
        {
            Reset(client);
            Reset(upstream);
        }
    }

    private async Task PumpAsync(Socket from, Socket to)
    {
        var buffer = new byte[64 * 1024];
        try
        {
            while (true)
            {
                var n = await from.ReceiveAsync(buffer, SocketFlags.None, _cts.Token);
                if (n == 0)
                {
                    to.Shutdown(SocketShutdown.Send);
                    return;
                }

                await to.SendAsync(buffer.AsMemory(0, n), SocketFlags.None, _cts.Token);
            }
        }
        catch (Exception ex) when (ex is OperationCanceledException or SocketException or ObjectDisposedException)
        {
        }
    }

    /// <summary>Reads chunks as they come and sends each one <see cref="_delay"/> after it was read, in order.</summary>
    private async Task DelayedPumpAsync(Socket from, Socket to)
    {
        var queue = System.Threading.Channels.Channel.CreateBounded<(long Due, byte[]? Data)>(1024);
        var sender = Task.Run(async () =>
        {
            try
            {
                await foreach (var (due, data) in queue.Reader.ReadAllAsync(_cts.Token))
                {
                    var wait = TimeSpan.FromTicks(due - Environment.TickCount64 * TimeSpan.TicksPerMillisecond);
                    if (wait > TimeSpan.Zero)
                    {
                        await Task.Delay(wait, _cts.Token);
                    }

                    if (data is null)
                    {
                        to.Shutdown(SocketShutdown.Send);
                        return;
                    }

                    await to.SendAsync(data, SocketFlags.None, _cts.Token);
                }
            }
            catch (Exception ex) when (ex is OperationCanceledException or SocketException or ObjectDisposedException)
            {
            }
        });
        var buffer = new byte[64 * 1024];
        try
        {
            while (true)
            {
                var n = await from.ReceiveAsync(buffer, SocketFlags.None, _cts.Token);
                var due = (Environment.TickCount64 * TimeSpan.TicksPerMillisecond) + _delay.Ticks;
                await queue.Writer.WriteAsync((due, n == 0 ? null : buffer.AsSpan(0, n).ToArray()), _cts.Token);
                if (n == 0)
                {
                    break;
                }
            }

            await sender;
        }
        catch (Exception ex) when (ex is OperationCanceledException or SocketException or ObjectDisposedException or System.Threading.Channels.ChannelClosedException)
        {
        }
        finally
        {
            queue.Writer.TryComplete();
        }
    }

    /// <inheritdoc />
    public void Dispose()
    {
        _cts.Cancel();
        _listener.Dispose();
        KillAll();
        try
        {
            _acceptLoop.Wait(TimeSpan.FromSeconds(5));
        }
        catch (AggregateException)
        {
        }

        _cts.Dispose();
    }
}
