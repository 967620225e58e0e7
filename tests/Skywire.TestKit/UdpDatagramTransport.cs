using System.Net;
using System.Net.Sockets;
using Skywire.Core.Sessions;

namespace Skywire.TestKit;

/// <summary>
/// A plain (unencrypted) UDP <see cref="IDatagramTransport"/> on loopback for tests: one socket bound to port 0,
/// sending to <see cref="Remote"/>, handing every received datagram to <see cref="Receiver"/> on its own thread.
/// </summary>
public sealed class UdpDatagramTransport : IDatagramTransport, IDisposable
{
    private readonly Socket _socket;
    private readonly Thread _thread;
    private volatile DatagramHandler? _receiver;
    private volatile IPEndPoint? _remote;
    private int _disposed;

    /// <summary>Binds a socket on <paramref name="bindAddress"/> (loopback by default), port 0.</summary>
    public UdpDatagramTransport(int maxDatagramSize = 1400, IPAddress? bindAddress = null)
    {
        MaxDatagramSize = maxDatagramSize;
        var address = bindAddress ?? IPAddress.Loopback;
        _socket = new Socket(address.AddressFamily, SocketType.Dgram, ProtocolType.Udp);
        _socket.Bind(new IPEndPoint(address, 0));
        LocalEndPoint = (IPEndPoint)_socket.LocalEndPoint!;
        _thread = new Thread(Pump) { IsBackground = true, Name = "udp transport" };
        _thread.Start();
    }

    /// <inheritdoc/>
    public int MaxDatagramSize { get; }

    /// <summary>The bound address (the port chosen by the OS).</summary>
    public IPEndPoint LocalEndPoint { get; }

    /// <summary>Where datagrams go; nothing is sent while null.</summary>
    public IPEndPoint? Remote
    {
        get => _remote;
        set => _remote = value;
    }

    /// <summary>Receives every datagram (typically <c>mux.Receive</c>).</summary>
    public DatagramHandler? Receiver
    {
        get => _receiver;
        set => _receiver = value;
    }

    /// <inheritdoc/>
    public void Send(ReadOnlySpan<byte> datagram)
    {
        if (_remote is not { } remote)
        {
            return;
        }
        try
        {
            _socket.SendTo(datagram, SocketFlags.None, remote);
        }
        catch (SocketException)
        {
            // UDP: a full buffer or an ICMP error loses the datagram; the mux retransmits.
        }
    }

    /// <summary>Closes the socket and stops the receive thread.</summary>
    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            return;
        }
        _socket.Dispose();
        _thread.Join();
    }

    private void Pump()
    {
        var buffer = new byte[65536];
        while (Volatile.Read(ref _disposed) == 0)
        {
            int n;
            try
            {
                n = _socket.Receive(buffer);
            }
            catch (Exception) when (Volatile.Read(ref _disposed) != 0)
            {
                return;
            }
            catch (SocketException)
            {
                continue;
            }
            _receiver?.Invoke(buffer.AsSpan(0, n));
        }
    }
}
