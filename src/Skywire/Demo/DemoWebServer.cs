using System.Buffers.Binary;
using System.Net;
using System.Net.Sockets;
using System.Security.Cryptography;
using System.Text;

namespace Skywire.Demo;

/// <summary>
/// The page the demo fetches through the mesh: a tiny HTTP/1.x server on 127.0.0.1:0 (one request per connection).
/// <c>GET /</c> answers a short text page; <c>GET /bytes/N</c> answers N bytes of a pattern derived from a per-run
/// seed, so a fetch can be checked byte for byte (<see cref="Expected"/>).
/// </summary>
internal sealed class DemoWebServer : IAsyncDisposable
{
    /// <summary>Largest body served by /bytes/N.</summary>
    public const int MaxBytes = 64 << 20;

    private readonly TcpListener _listener = new(IPAddress.Loopback, 0);
    private readonly CancellationTokenSource _stopping = new();
    private readonly byte[] _seed = RandomNumberGenerator.GetBytes(16);
    private readonly Task _accept;
    private int _served;

    public DemoWebServer(string page)
    {
        Page = page;
        _listener.Start();
        EndPoint = (IPEndPoint)_listener.LocalEndpoint;
        _accept = AcceptAsync();
    }

    public IPEndPoint EndPoint { get; }

    /// <summary>Text of <c>GET /</c>.</summary>
    public string Page { get; set; }

    /// <summary>Requests answered so far.</summary>
    public int Served => Volatile.Read(ref _served);

    /// <summary>The body <c>GET /bytes/N</c> answers.</summary>
    public byte[] Expected(int length)
    {
        var body = new byte[length];
        Span<byte> block = stackalloc byte[32];
        Span<byte> input = stackalloc byte[20];
        _seed.CopyTo(input);
        for (var offset = 0; offset < length; offset += block.Length)
        {
            BinaryPrimitives.WriteInt32BigEndian(input[16..], offset / block.Length);
            SHA256.HashData(input, block);
            block[..Math.Min(block.Length, length - offset)].CopyTo(body.AsSpan(offset));
        }

        return body;
    }

    private async Task AcceptAsync()
    {
        while (!_stopping.IsCancellationRequested)
        {
            Socket socket;
            try
            {
                socket = await _listener.AcceptSocketAsync(_stopping.Token);
            }
            catch (Exception ex) when (ex is OperationCanceledException or SocketException or ObjectDisposedException)
            {
                return;
            }

            _ = ServeAsync(socket);
        }
    }

    private async Task ServeAsync(Socket socket)
    {
        using var _ = socket;
        await using var stream = new NetworkStream(socket, ownsSocket: false);
        try
        {
            using var timeout = CancellationTokenSource.CreateLinkedTokenSource(_stopping.Token);
            timeout.CancelAfter(TimeSpan.FromSeconds(30));
            var head = await ReadHeadAsync(stream, timeout.Token);
            var parts = head?.Split(' ', 3);
            byte[] body;
            var status = "200 OK";
            var type = "text/plain; charset=utf-8";
            if (parts is not { Length: 3 } || parts[0] != "GET")
            {
                status = "400 Bad Request";
                body = "bad request\n"u8.ToArray();
            }
            else if (parts[1].StartsWith("/bytes/", StringComparison.Ordinal)
                && int.TryParse(parts[1].AsSpan(7), System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out var n)
                && n <= MaxBytes)
            {
                body = Expected(n);
                type = "application/octet-stream";
            }
            else if (parts[1] == "/")
            {
                body = Encoding.UTF8.GetBytes(Page);
            }
            else
            {
                status = "404 Not Found";
                body = "not found\n"u8.ToArray();
            }

            var header = $"HTTP/1.1 {status}\r\nContent-Type: {type}\r\nContent-Length: {body.Length}\r\nConnection: close\r\n\r\n";
            await stream.WriteAsync(Encoding.ASCII.GetBytes(header), timeout.Token);
            await stream.WriteAsync(body, timeout.Token);
            socket.Shutdown(SocketShutdown.Send);
            Interlocked.Increment(ref _served);
        }
        catch (Exception ex) when (ex is IOException or SocketException or OperationCanceledException)
        {
            // The client went away or was too slow; nothing to keep.
        }
    }

    /// <summary>Reads the request head (up to the blank line, at most 8 KiB); returns its first line.</summary>
    private static async Task<string?> ReadHeadAsync(Stream stream, CancellationToken cancellationToken)
    {
        var buffer = new byte[8192];
        var length = 0;
        while (length < buffer.Length)
        {
            var n = await stream.ReadAsync(buffer.AsMemory(length), cancellationToken);
            if (n == 0)
            {
                return null;
            }

            length += n;
            var text = Encoding.ASCII.GetString(buffer, 0, length);
            var end = text.IndexOf("\r\n\r\n", StringComparison.Ordinal);
            if (end < 0)
            {
                end = text.IndexOf("\n\n", StringComparison.Ordinal);
            }

            if (end >= 0)
            {
                return text[..text.IndexOf('\n', StringComparison.Ordinal)].TrimEnd('\r');
            }
        }

        return null;
    }

    public async ValueTask DisposeAsync()
    {
        await _stopping.CancelAsync();
        _listener.Stop();
        await _accept;
        _stopping.Dispose();
    }
}
