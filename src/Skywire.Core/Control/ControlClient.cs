using System.Net;
using System.Net.Sockets;
using Microsoft.Extensions.Logging;
using Skywire.Core.Crypto;
using Skywire.Core.Crypto.Noise;
using Skywire.Protocol;
using Skywire.Protocol.Control;
using Skywire.Core.Channels;

namespace Skywire.Core.Control;

/// <summary>A manager address with its pinned key: <c>PUBKEY@host:port</c>, or host:port plus a separate key.</summary>
/// <param name="EndPoint">Where the manager listens.</param>
/// <param name="Key">The manager's pinned static key.</param>
public sealed record ManagerAddress(EndPoint EndPoint, PubKey Key)
{
    /// <summary>Parses <c>host:port</c> (with <paramref name="key"/>) or <c>PUBKEY@host:port</c>.</summary>
    /// <exception cref="FormatException">Malformed address or key, or no key given.</exception>
    public static ManagerAddress Parse(string address, string? key)
    {
        ArgumentNullException.ThrowIfNull(address);
        var at = address.IndexOf('@', StringComparison.Ordinal);
        if (at >= 0)
        {
            key ??= address[..at];
            if (!string.Equals(key, address[..at], StringComparison.OrdinalIgnoreCase))
            {
                throw new FormatException("the key in --manager and --manager-key differ");
            }

            address = address[(at + 1)..];
        }

        if (key is null)
        {
            throw new FormatException("the manager's key is required (--manager-key PUBKEY or --manager PUBKEY@host:port)");
        }

        if (!PubKey.TryParse(key, out var pub))
        {
            throw new FormatException($"'{key}' is not a public key (66 hex characters)");
        }

        return new ManagerAddress(ParseEndPoint(address), pub);
    }

    /// <summary>Parses host:port (IP literal or host name).</summary>
    public static EndPoint ParseEndPoint(string text)
    {
        if (IPEndPoint.TryParse(text, out var ip) && ip.Port != 0)
        {
            return ip;
        }

        var colon = text.LastIndexOf(':');
        if (colon > 0 && int.TryParse(text.AsSpan(colon + 1), out var port) && port is > 0 and < 65536)
        {
            return new DnsEndPoint(text[..colon], port);
        }

        throw new FormatException($"'{text}' is not host:port");
    }
}

/// <summary>Opens an authenticated control connection to a manager (node and cli side).</summary>
public static class ControlClient
{
    /// <summary>
    /// TCP connect, Noise XK against the pinned key, hello signed over the handshake hash, then the frame loop.
    /// </summary>
    /// <exception cref="ControlException">Unavailable (unreachable or wrong key), Forbidden, UnsupportedVersion.</exception>
    public static async Task<(FrameConnection Connection, HelloAckMessage Ack)> ConnectAsync(
        ManagerAddress manager, KeyPair local, string role, string? linkAddress, FrameRequestHandler handler, ILogger logger, TimeSpan timeout, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(manager);
        ArgumentNullException.ThrowIfNull(local);
        using var deadline = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        deadline.CancelAfter(timeout);
        Socket? socket = null;
        NoiseStream secure;
        try
        {
            socket = await ConnectTcpAsync(manager.EndPoint, deadline.Token);
            secure = await NoiseStream.ConnectAsync(new NetworkStream(socket, ownsSocket: true), local, manager.Key, ControlProtocol.Prologue, deadline.Token);
        }
        catch (SocketException ex)
        {
            socket?.Dispose();
            throw new ControlException(ControlErrorCode.Unavailable, $"cannot reach the manager at {manager.EndPoint}: {ex.Message}");
        }
        catch (NoiseException ex)
        {
            socket?.Dispose();
            throw new ControlException(ControlErrorCode.Forbidden, ex.Message, ex);
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            socket?.Dispose();
            throw new ControlException(ControlErrorCode.Unavailable, $"the manager at {manager.EndPoint} did not complete the handshake in time");
        }

        var connection = new FrameConnection(secure, "manager " + manager.Key.ToString()[..12], logger);
        connection.Start(handler);
        var hello = new HelloMessage
        {
            Version = ControlProtocol.Version,
            Role = role,
            LinkAddress = linkAddress,
            Signature = Convert.ToHexStringLower(local.Sign(secure.HelloSigningInput(ControlProtocol.HelloSignatureContext))),
            Agent = "skywire-dotnet",
        };
        try
        {
            var ack = await connection.RequestAsync((byte)ControlOpcode.Hello, hello, ControlJsonContext.Default.HelloMessage, ControlJsonContext.Default.HelloAckMessage, deadline.Token);
            return (connection, ack);
        }
        catch
        {
            await connection.DisposeAsync();
            throw;
        }
    }

    /// <summary>
    /// A TCP connection to <paramref name="endPoint"/>. A host name is resolved at every call and each of its
    /// addresses is tried in turn, each with a socket of its own, until one accepts: one name for several managers (DNS
    /// with several records) reaches whichever of them is up (docs/operations.md "Several managers").
    /// </summary>
    /// <exception cref="SocketException">No address accepted (the last address's error), or the name does not resolve.</exception>
    private static async Task<Socket> ConnectTcpAsync(EndPoint endPoint, CancellationToken cancellationToken)
    {
        IPAddress[] addresses;
        int port;
        if (endPoint is DnsEndPoint dns)
        {
            addresses = await Dns.GetHostAddressesAsync(dns.Host, cancellationToken);
            port = dns.Port;
        }
        else if (endPoint is IPEndPoint ip)
        {
            (addresses, port) = ([ip.Address], ip.Port);
        }
        else
        {
            var other = new Socket(SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
            try
            {
                await other.ConnectAsync(endPoint, cancellationToken);
                return other;
            }
            catch
            {
                other.Dispose();
                throw;
            }
        }

        SocketException? last = null;
        foreach (var address in addresses)
        {
            var socket = new Socket(address.AddressFamily, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
            try
            {
                await socket.ConnectAsync(new IPEndPoint(address, port), cancellationToken);
                return socket;
            }
            catch (SocketException ex)
            {
                socket.Dispose();
                last = ex;
            }
            catch
            {
                socket.Dispose();
                throw;
            }
        }

        throw last ?? new SocketException((int)SocketError.HostNotFound);
    }
}
