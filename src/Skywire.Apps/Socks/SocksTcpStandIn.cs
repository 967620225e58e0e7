using System.Net;
using System.Net.Sockets;
using Skywire.Core.Streams;

namespace Skywire.Apps.Socks;

/// <summary>
/// Carries socks tunnel streams over plain TCP instead of the mesh: a development and benchmark
/// stand-in (the SOCKS layer alone, without routing or encryption). Binds loopback unless told
/// otherwise; it has no authentication of its own, so never expose it.
/// </summary>
public sealed class SocksTcpStandIn : IAsyncDisposable
{
    private readonly SocksServer _server;
    private readonly Socket _listener;
    private readonly CancellationTokenSource _stopping = new();
    private readonly List<Task> _streams = [];
    private readonly Task _acceptLoop;
    private int _disposed;

    /// <summary>Starts listening on <paramref name="listen"/> (default 127.0.0.1:0) and serves each connection with <paramref name="server"/>.</summary>
    public SocksTcpStandIn(SocksServer server, IPEndPoint? listen = null)
    {
        ArgumentNullException.ThrowIfNull(server);
        _server = server;
        listen ??= new IPEndPoint(IPAddress.Loopback, 0);
        _listener = new Socket(listen.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
        try
        {
            _listener.Bind(listen);
            _listener.Listen(512);
        }
        catch
        {
            _listener.Dispose();
            throw;
        }

        EndPoint = (IPEndPoint)_listener.LocalEndPoint!;
        _acceptLoop = AcceptLoopAsync();
    }

    /// <summary>The bound endpoint.</summary>
    public IPEndPoint EndPoint { get; }

    /// <summary>A dial delegate for <see cref="SocksClient"/>: one TCP connection per tunnel.</summary>
    public async Task<DuplexStream> DialAsync(CancellationToken cancellationToken)
    {
        var socket = new Socket(EndPoint.AddressFamily, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        try
        {
            await socket.ConnectAsync(EndPoint, cancellationToken);
            return new SocketStream(socket);
        }
        catch
        {
            socket.Dispose();
            throw;
        }
    }

    /// <summary>Stops accepting, ends every stream and waits for them.</summary>
    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            return;
        }

        await _stopping.CancelAsync();
        _listener.Dispose();
        await _acceptLoop;
        Task[] pending;
        lock (_streams)
        {
            pending = [.. _streams];
        }

        await Task.WhenAll(pending);
        _stopping.Dispose();
    }

    private async Task AcceptLoopAsync()
    {
        while (true)
        {
            Socket socket;
            try
            {
                socket = await _listener.AcceptAsync(_stopping.Token);
            }
            catch (Exception ex) when (ex is OperationCanceledException or ObjectDisposedException)
            {
                return;
            }
            catch (SocketException)
            {
                continue;
            }

            socket.NoDelay = true;
            var peer = "tcp:" + socket.RemoteEndPoint;
            var task = ServeAsync(new SocketStream(socket), peer);
            lock (_streams)
            {
                _streams.RemoveAll(t => t.IsCompleted);
                _streams.Add(task);
            }
        }
    }

    private async Task ServeAsync(DuplexStream stream, string peer)
    {
        try
        {
            await _server.HandleStreamAsync(stream, peer, _stopping.Token);
        }
        catch (OperationCanceledException)
        {
            // Stopping.
        }
    }
}
