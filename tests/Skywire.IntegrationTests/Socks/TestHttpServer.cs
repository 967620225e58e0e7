using System.Collections.Concurrent;
using System.Net;
using System.Net.Sockets;
using System.Security.Cryptography;
using System.Text;

namespace Skywire.IntegrationTests.Socks;

/// <summary>
/// A tiny HTTP/1.1 responder on 127.0.0.1:0. <c>GET /bytes/N</c> answers N bytes of a fixed
/// pseudo-random pattern (<see cref="ExpectedHash"/> gives its SHA-256), anything else answers "hello".
/// One request per connection.
/// </summary>
internal sealed class TestHttpServer : IAsyncDisposable
{
    public const string Hello = "hello through the mesh\n";
    private const int BlockSize = 1 << 20;
    private static readonly byte[] Block = MakeBlock();

    private readonly TcpListener _listener = new(IPAddress.Loopback, 0);
    private readonly CancellationTokenSource _stopping = new();
    private readonly ConcurrentDictionary<int, Task> _connections = new();
    private readonly Task _acceptLoop;
    private int _nextId;

    public TestHttpServer()
    {
        _listener.Start(512);
        Port = ((IPEndPoint)_listener.LocalEndpoint).Port;
        _acceptLoop = AcceptLoopAsync();
    }

    public int Port { get; }

    /// <summary>Completes when a connection has been served or failed; one task per accepted connection.</summary>
    public ICollection<Task> Connections => _connections.Values;

    /// <summary>Connections accepted so far.</summary>
    public int Accepted => Volatile.Read(ref _nextId);

    /// <summary>Connections whose handler has not finished.</summary>
    public int Active => _connections.Values.Count(t => !t.IsCompleted);

    public static byte[] ExpectedHash(long length)
    {
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        for (long sent = 0; sent < length; sent += BlockSize)
        {
            hash.AppendData(Block, 0, (int)Math.Min(BlockSize, length - sent));
        }

        return hash.GetHashAndReset();
    }

    public static byte[] ExpectedBody(int length)
    {
        var body = new byte[length];
        for (var offset = 0; offset < length; offset += BlockSize)
        {
            Block.AsSpan(0, Math.Min(BlockSize, length - offset)).CopyTo(body.AsSpan(offset));
        }

        return body;
    }

    private static byte[] MakeBlock()
    {
        var block = new byte[BlockSize];
        new Random(4242).NextBytes(block);
        return block;
    }

    private async Task AcceptLoopAsync()
    {
        while (true)
        {
            TcpClient client;
            try
            {
                client = await _listener.AcceptTcpClientAsync(_stopping.Token);
            }
            catch (Exception ex) when (ex is OperationCanceledException or ObjectDisposedException)
            {
                return; // stopping; any other failure faults the loop, and DisposeAsync reports it
            }

            var id = Interlocked.Increment(ref _nextId);
            _connections[id] = ServeAsync(client);
        }
    }

    private async Task ServeAsync(TcpClient client)
    {
        using var _ = client;
        var stream = client.GetStream();
        try
        {
            var request = new StringBuilder();
            var buffer = new byte[4096];
            while (!request.ToString().Contains("\r\n\r\n", StringComparison.Ordinal))
            {
                var read = await stream.ReadAsync(buffer, _stopping.Token);
                if (read == 0)
                {
                    return;
                }

                request.Append(Encoding.ASCII.GetString(buffer, 0, read));
            }

            var path = request.ToString().Split(' ')[1];
            if (path.StartsWith("/bytes/", StringComparison.Ordinal))
            {
                var length = long.Parse(path["/bytes/".Length..]);
                await stream.WriteAsync(Encoding.ASCII.GetBytes($"HTTP/1.1 200 OK\r\nContent-Length: {length}\r\nConnection: close\r\n\r\n"), _stopping.Token);
                for (long sent = 0; sent < length; sent += BlockSize)
                {
                    await stream.WriteAsync(Block.AsMemory(0, (int)Math.Min(BlockSize, length - sent)), _stopping.Token);
                }
            }
            else
            {
                await stream.WriteAsync(Encoding.ASCII.GetBytes($"HTTP/1.1 200 OK\r\nContent-Length: {Hello.Length}\r\nConnection: close\r\n\r\n{Hello}"), _stopping.Token);
            }

            client.Client.Shutdown(SocketShutdown.Send);
            // Wait for the client's close so the connection ends cleanly rather than with an RST.
            while (await stream.ReadAsync(buffer, _stopping.Token) > 0)
            {
            }
        }
        catch (Exception ex) when (ex is IOException or SocketException or OperationCanceledException)
        {
            // The peer went away mid-response: the case the disconnect test provokes.
        }
    }

    public async ValueTask DisposeAsync()
    {
        await _stopping.CancelAsync();
        _listener.Stop();
        await _acceptLoop;
        await Task.WhenAll(_connections.Values);
        _stopping.Dispose();
    }
}
