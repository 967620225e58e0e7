using System.Net;
using System.Net.Sockets;

namespace Skywire.TestKit;

/// <summary>
/// A fault-injecting UDP relay on loopback (NATS' NatsProxy idea, for datagrams). A client sends to
/// <see cref="ListenEndPoint"/>; the relay forwards to <see cref="Target"/> from its own upstream socket and sends
/// the target's answers back to the client address it saw last. Both sockets bind port 0.
/// </summary>
public sealed class UdpFaultRelay : IDisposable
{
    private readonly Socket _front;
    private readonly Socket _back;
    private readonly Thread _frontThread;
    private readonly Thread _backThread;
    private volatile IPEndPoint? _client;
    private volatile IPEndPoint _target;
    private volatile FaultInjector _toTarget;
    private volatile FaultInjector _fromTarget;
    private int _disposed;

    /// <summary>Starts a relay towards <paramref name="target"/> with the given faults per direction.</summary>
    public UdpFaultRelay(IPEndPoint target, FaultOptions? toTarget = null, FaultOptions? fromTarget = null, IPAddress? bindAddress = null)
    {
        ArgumentNullException.ThrowIfNull(target);
        _target = target;
        var address = bindAddress ?? (target.AddressFamily == AddressFamily.InterNetworkV6 ? IPAddress.IPv6Loopback : IPAddress.Loopback);
        _front = Bind(address);
        _back = Bind(address);
        ListenEndPoint = (IPEndPoint)_front.LocalEndPoint!;
        UpstreamEndPoint = (IPEndPoint)_back.LocalEndPoint!;
        _toTarget = NewToTarget(toTarget);
        _fromTarget = NewFromTarget(fromTarget);
        _frontThread = new Thread(() => Pump(_front, toTarget: true)) { IsBackground = true, Name = "relay front" };
        _backThread = new Thread(() => Pump(_back, toTarget: false)) { IsBackground = true, Name = "relay back" };
        _frontThread.Start();
        _backThread.Start();
    }

    /// <summary>Where the client sends (read it back: the port was chosen by the OS).</summary>
    public IPEndPoint ListenEndPoint { get; }

    /// <summary>The relay's own address as the target sees it.</summary>
    public IPEndPoint UpstreamEndPoint { get; }

    /// <summary>Where datagrams from the client go; may be changed while running.</summary>
    public IPEndPoint Target
    {
        get => _target;
        set => _target = value ?? throw new ArgumentNullException(nameof(value));
    }

    /// <summary>The client address seen last (answers go there), or null before the first datagram.</summary>
    public IPEndPoint? Client => _client;

    /// <summary>Faults and counters of client -> target.</summary>
    public FaultInjector ToTarget => _toTarget;

    /// <summary>Faults and counters of target -> client.</summary>
    public FaultInjector FromTarget => _fromTarget;

    /// <summary>
    /// Replaces the faults of both directions while running (a benchmark walks a grid of paths without restarting the
    /// nodes behind the relay): new injectors with fresh counters take over; datagrams still queued in the old ones
    /// are discarded, as a router would lose them when its configuration changes.
    /// </summary>
    public void SetFaults(FaultOptions? toTarget, FaultOptions? fromTarget)
    {
        var oldTo = _toTarget;
        var oldFrom = _fromTarget;
        _toTarget = NewToTarget(toTarget);
        _toTarget.Blackhole = oldTo.Blackhole;
        _fromTarget = NewFromTarget(fromTarget);
        _fromTarget.Blackhole = oldFrom.Blackhole;
        oldTo.Dispose();
        oldFrom.Dispose();
    }

    /// <summary>Drops everything in both directions while true (a cut link).</summary>
    public bool Blackhole
    {
        get => ToTarget.Blackhole;
        set
        {
            ToTarget.Blackhole = value;
            FromTarget.Blackhole = value;
        }
    }

    /// <summary>Stops the relay and closes its sockets.</summary>
    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            return;
        }
        _front.Dispose();
        _back.Dispose();
        _frontThread.Join();
        _backThread.Join();
        ToTarget.Dispose();
        FromTarget.Dispose();
    }

    private FaultInjector NewToTarget(FaultOptions? options) =>
        new(options ?? FaultOptions.None, d => SendTo(_back, d, _target), "relay ->target");

    private FaultInjector NewFromTarget(FaultOptions? options) => new(options ?? FaultOptions.None, d =>
    {
        if (_client is { } client)
        {
            SendTo(_front, d, client);
        }
    }, "relay <-target");

    private static Socket Bind(IPAddress address)
    {
        var socket = new Socket(address.AddressFamily, SocketType.Dgram, ProtocolType.Udp);
        socket.Bind(new IPEndPoint(address, 0));
        return socket;
    }

    private static void SendTo(Socket socket, ReadOnlySpan<byte> datagram, IPEndPoint to)
    {
        try
        {
            socket.SendTo(datagram, SocketFlags.None, to);
        }
        catch (SocketException)
        {
            // UDP: an unreachable port (ICMP) or a full buffer loses the datagram, nothing more.
        }
        catch (ObjectDisposedException)
        {
        }
    }

    private void Pump(Socket socket, bool toTarget)
    {
        var buffer = new byte[65536];
        EndPoint any = new IPEndPoint(socket.AddressFamily == AddressFamily.InterNetworkV6 ? IPAddress.IPv6Any : IPAddress.Any, 0);
        while (Volatile.Read(ref _disposed) == 0)
        {
            int n;
            try
            {
                n = socket.ReceiveFrom(buffer, SocketFlags.None, ref any);
            }
            catch (SocketException ex) when (ex.SocketErrorCode == SocketError.ConnectionReset)
            {
                continue; // ICMP port unreachable from an earlier send
            }
            catch (Exception) when (Volatile.Read(ref _disposed) != 0)
            {
                return;
            }
            catch (SocketException)
            {
                continue;
            }
            if (toTarget)
            {
                var from = (IPEndPoint)any;
                if (_client is null || !_client.Equals(from))
                {
                    _client = new IPEndPoint(from.Address, from.Port);
                }
            }
            (toTarget ? _toTarget : _fromTarget).Post(buffer.AsSpan(0, n));
        }
    }
}
