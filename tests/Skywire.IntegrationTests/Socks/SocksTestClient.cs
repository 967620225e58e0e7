using System.Net;
using System.Net.Sockets;
using System.Text;
using Skywire.Apps.Socks;

namespace Skywire.IntegrationTests.Socks;

/// <summary>A minimal SOCKS5 client for tests: raw bytes, so every reply code can be checked.</summary>
internal static class SocksTestClient
{
    public sealed record Result(SocksReplyCode? Reply, byte Method, NetworkStream Stream, IPEndPoint? Bound = null) : IDisposable
    {
        public void Dispose() => Stream.Dispose();
    }

    public static async Task<Result> ConnectAsync(IPEndPoint proxy, SocksEndpoint destination, CancellationToken cancellationToken,
        (string User, string Password)? credentials = null, SocksCommand command = SocksCommand.Connect, byte[]? rawRequest = null)
    {
        var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        await socket.ConnectAsync(proxy, cancellationToken);
        var stream = new NetworkStream(socket, ownsSocket: true);
        var buffer = new byte[600];
        var method = credentials is null ? SocksAuthMethod.NoAuthentication : SocksAuthMethod.UsernamePassword;
        await stream.WriteAsync(buffer.AsMemory(0, SocksCodec.WriteGreeting(buffer, method)), cancellationToken);
        await stream.ReadExactlyAsync(buffer.AsMemory(0, 2), cancellationToken);
        Assert.Equal(5, buffer[0]);
        if (buffer[1] != (byte)method)
        {
            return new Result(null, buffer[1], stream);
        }

        if (credentials is { } c)
        {
            var user = Encoding.UTF8.GetBytes(c.User);
            var pass = Encoding.UTF8.GetBytes(c.Password);
            byte[] auth = [1, (byte)user.Length, .. user, (byte)pass.Length, .. pass];
            await stream.WriteAsync(auth, cancellationToken);
            await stream.ReadExactlyAsync(buffer.AsMemory(0, 2), cancellationToken);
            Assert.Equal(1, buffer[0]);
            if (buffer[1] != 0)
            {
                return new Result(null, buffer[1], stream);
            }
        }

        var request = rawRequest ?? buffer[..SocksCodec.WriteRequest(buffer, command, destination)];
        await stream.WriteAsync(request, cancellationToken);
        await stream.ReadExactlyAsync(buffer.AsMemory(0, 4), cancellationToken);
        Assert.Equal(5, buffer[0]);
        var reply = (SocksReplyCode)buffer[1];
        var rest = buffer[3] switch { 1 => 4 + 2, 4 => 16 + 2, _ => throw new Xunit.Sdk.XunitException($"bad ATYP {buffer[3]} in reply") };
        await stream.ReadExactlyAsync(buffer.AsMemory(0, rest), cancellationToken);
        var bound = new IPEndPoint(new IPAddress(buffer.AsSpan(0, rest - 2)), (buffer[rest - 2] << 8) | buffer[rest - 1]);
        return new Result(reply, (byte)method, stream, bound);
    }

    /// <summary>Sends a GET over an established tunnel and returns the body.</summary>
    public static async Task<byte[]> GetAsync(Stream stream, string path, CancellationToken cancellationToken)
    {
        await stream.WriteAsync(Encoding.ASCII.GetBytes($"GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n"), cancellationToken);
        var all = new MemoryStream();
        await stream.CopyToAsync(all, cancellationToken);
        var bytes = all.ToArray();
        var split = bytes.AsSpan().IndexOf("\r\n\r\n"u8);
        Assert.True(split > 0, "no HTTP header end");
        Assert.StartsWith("HTTP/1.1 200", Encoding.ASCII.GetString(bytes, 0, split), StringComparison.Ordinal);
        return bytes[(split + 4)..];
    }

    /// <summary>A loopback port with nothing listening (bound, then released).</summary>
    public static int FreePort()
    {
        using var listener = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        listener.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        return ((IPEndPoint)listener.LocalEndPoint!).Port;
    }
}
