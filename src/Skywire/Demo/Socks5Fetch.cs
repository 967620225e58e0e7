using System.Net;
using System.Net.Sockets;
using System.Text;

namespace Skywire.Demo;

/// <summary>An HTTP/1.0 GET through a SOCKS5 proxy (RFC 1928, no authentication, CONNECT to an IPv4 address): what curl --socks5 does, without needing curl.</summary>
internal static class Socks5Fetch
{
    /// <summary>The answer: HTTP status code and body bytes.</summary>
    public sealed record Result(int Status, byte[] Body);

    /// <exception cref="DemoStepException">The proxy refused (with the SOCKS reply code) or the answer is not HTTP.</exception>
    public static async Task<Result> GetAsync(IPEndPoint proxy, IPEndPoint target, string path, CancellationToken cancellationToken)
    {
        using var socket = new Socket(proxy.AddressFamily, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        try
        {
            await socket.ConnectAsync(proxy, cancellationToken);
        }
        catch (SocketException ex)
        {
            throw new DemoStepException($"cannot connect to the SOCKS proxy {proxy}: {ex.Message}");
        }

        await using var stream = new NetworkStream(socket, ownsSocket: false);
        await stream.WriteAsync(new byte[] { 5, 1, 0 }, cancellationToken);
        var choice = await ReadExactAsync(stream, 2, cancellationToken);
        if (choice[0] != 5 || choice[1] != 0)
        {
            throw new DemoStepException($"the SOCKS proxy refused the no-authentication method (answer {choice[0]:x2} {choice[1]:x2})");
        }

        var request = new byte[10];
        request[0] = 5;
        request[1] = 1;
        request[3] = 1;
        target.Address.MapToIPv4().GetAddressBytes().CopyTo(request, 4);
        request[8] = (byte)(target.Port >> 8);
        request[9] = (byte)target.Port;
        await stream.WriteAsync(request, cancellationToken);
        var reply = await ReadExactAsync(stream, 4, cancellationToken);
        if (reply[1] != 0)
        {
            throw new DemoStepException($"the SOCKS proxy answered reply code 0x{reply[1]:x2} ({ReplyText(reply[1])})");
        }

        var rest = reply[3] switch
        {
            1 => 4 + 2,
            4 => 16 + 2,
            3 => (await ReadExactAsync(stream, 1, cancellationToken))[0] + 2,
            _ => throw new DemoStepException($"the SOCKS proxy answered address type {reply[3]}"),
        };
        await ReadExactAsync(stream, rest, cancellationToken);

        await stream.WriteAsync(Encoding.ASCII.GetBytes($"GET {path} HTTP/1.0\r\nHost: {target}\r\nConnection: close\r\n\r\n"), cancellationToken);
        using var answer = new MemoryStream();
        await stream.CopyToAsync(answer, cancellationToken);
        var bytes = answer.GetBuffer().AsSpan(0, (int)answer.Length);
        var end = bytes.IndexOf("\r\n\r\n"u8);
        if (end < 0)
        {
            throw new DemoStepException($"no HTTP answer through the proxy ({bytes.Length} bytes received)");
        }

        var statusLine = Encoding.ASCII.GetString(bytes[..bytes.IndexOf("\r\n"u8)]).Split(' ');
        if (statusLine.Length < 2 || !int.TryParse(statusLine[1], System.Globalization.CultureInfo.InvariantCulture, out var status))
        {
            throw new DemoStepException("malformed HTTP status line through the proxy");
        }

        return new Result(status, bytes[(end + 4)..].ToArray());
    }

    private static async Task<byte[]> ReadExactAsync(Stream stream, int count, CancellationToken cancellationToken)
    {
        var buffer = new byte[count];
        try
        {
            await stream.ReadExactlyAsync(buffer, cancellationToken);
        }
        catch (EndOfStreamException)
        {
            throw new DemoStepException("the SOCKS proxy closed the connection during the handshake");
        }

        return buffer;
    }

    private static string ReplyText(byte code) => code switch
    {
        1 => "general failure",
        2 => "not allowed by ruleset",
        3 => "network unreachable: no route to the exit",
        4 => "host unreachable",
        5 => "connection refused",
        6 => "TTL expired: timeout",
        7 => "command not supported",
        8 => "address type not supported",
        _ => "unknown",
    };
}
