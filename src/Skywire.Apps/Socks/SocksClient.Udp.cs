using System.Net;
using System.Net.Sockets;
using Microsoft.Extensions.Logging;
using Skywire.Apps.Socks.Internal;
using Skywire.Core.Streams;

namespace Skywire.Apps.Socks;

// UDP ASSOCIATE (RFC 1928 §7) on the entry side: a local UDP relay socket per association, whose datagrams
// travel as length-prefixed frames over one mesh stream to the exit (docs/socks.md "UDP ASSOCIATE").
public sealed partial class SocksClient
{
    private async Task ServeUdpAssociationAsync(Socket control, SocketStream local, SocksRequest request, string remote, int id, EarlyDial? early, CancellationToken token)
    {
        var clientAddress = Unmap(((IPEndPoint)control.RemoteEndPoint!).Address);
        var localAddress = ((IPEndPoint)control.LocalEndPoint!).Address;

        // Datagrams are accepted from the address of the TCP connection that asked, and from the port it named
        // (DST.PORT), or else the port of the first well-formed datagram from that address.
        var pinnedPort = request.Destination.Port;
        using var udp = new Socket(localAddress.AddressFamily, SocketType.Dgram, ProtocolType.Udp);
        udp.Bind(new IPEndPoint(localAddress, 0));
        var relay = (IPEndPoint)udp.LocalEndPoint!;

        var (reply, mesh) = await OpenTunnelAsync(new SocksRequest(SocksCommand.UdpAssociate, SocksEndpoint.Unspecified), remote, early, token);
        if (reply.Code != SocksReplyCode.Succeeded || mesh is null)
        {
            await WriteReplyAsync(local, reply.Code, SocksEndpoint.Unspecified, token);
            Log.UdpRefused(_logger, remote, reply.Code);
            return;
        }

        var stats = new UdpStats();
        var meshBroke = false;
        IPEndPoint? client = pinnedPort == 0 ? null : new IPEndPoint(clientAddress, pinnedPort);
        using var done = CancellationTokenSource.CreateLinkedTokenSource(token);
        try
        {
            await WriteReplyAsync(local, SocksReplyCode.Succeeded, SocksEndpoint.FromIP(relay), token);
            Log.UdpAssociated(_logger, id, remote, relay);
            var tasks = new[] { WatchControlAsync(), UpAsync(), DownAsync() };
            await Task.WhenAny(tasks);
            await done.CancelAsync();
            udp.Dispose();
            await QuietClose.DisposeAsync(mesh);
            await Task.WhenAll(tasks);
            if (meshBroke)
            {
                // The association failed, it did not end: the application's connection is reset, not closed.
                local.Abort();
            }

            Log.UdpClosed(_logger, id, stats.Up, stats.Down, stats.Dropped);
        }
        finally
        {
            await QuietClose.DisposeAsync(mesh);
        }

        // The association lives as long as the TCP connection that asked for it (RFC 1928 §7).
        async Task WatchControlAsync()
        {
            var sink = new byte[256];
            try
            {
                while (await local.ReadAsync(sink, done.Token) > 0)
                {
                }
            }
            catch (Exception ex) when (ex is IOException or SocketException or OperationCanceledException or ObjectDisposedException)
            {
            }
        }

        async Task UpAsync()
        {
            var buffer = new byte[SocksUdpCodec.MaxUdpPayload + 1];
            var frame = new byte[2 + SocksUdpCodec.MaxFrameBody];
            EndPoint any = new IPEndPoint(localAddress.AddressFamily == AddressFamily.InterNetwork ? IPAddress.Any : IPAddress.IPv6Any, 0);
            try
            {
                while (true)
                {
                    SocketReceiveFromResult received;
                    try
                    {
                        received = await udp.ReceiveFromAsync(buffer, SocketFlags.None, any, done.Token);
                    }
                    catch (SocketException ex) when (ex.SocketErrorCode is SocketError.ConnectionReset or SocketError.ConnectionRefused or SocketError.MessageSize)
                    {
                        continue;
                    }

                    var from = (IPEndPoint)received.RemoteEndPoint;
                    var datagram = buffer.AsMemory(0, received.ReceivedBytes);
                    var length = 0;
                    var destination = default(SocksEndpoint);
                    var header = 0;
                    var drop = !Unmap(from.Address).Equals(clientAddress) || (client is not null && client.Port != from.Port)
                        ? SocksUdpDrop.WrongSource
                        : SocksUdpCodec.TryReadRequest(datagram, out destination, out header);
                    if (drop == SocksUdpDrop.None)
                    {
                        length = SocksUdpCodec.WriteFrame(frame, destination, datagram.Span[header..]);
                        drop = length == 0 ? SocksUdpDrop.Truncated : SocksUdpDrop.None;
                    }

                    if (drop != SocksUdpDrop.None)
                    {
                        Interlocked.Increment(ref stats.Dropped);
                        Log.UdpDropped(_logger, id, from, drop);
                        continue;
                    }

                    client ??= new IPEndPoint(from.Address, from.Port);
                    await mesh.WriteAsync(frame.AsMemory(0, length), done.Token);
                    stats.Up++;
                }
            }
            catch (Exception ex) when (ex is IOException or SocketException or OperationCanceledException or ObjectDisposedException)
            {
            }
        }

        async Task DownAsync()
        {
            var reader = new SocksUdpFrameReader(mesh);
            var datagram = new byte[SocksUdpCodec.MaxHeaderSize + SocksUdpCodec.MaxFrameBody];
            try
            {
                while (await reader.ReadAsync(done.Token) is { } body)
                {
                    if (SocksUdpCodec.TryReadAddress(body, out var source, out var addressLength) != SocksUdpDrop.None)
                    {
                        Interlocked.Increment(ref stats.Dropped);
                        continue;
                    }

                    var header = SocksUdpCodec.WriteReplyHeader(datagram, source);
                    var data = body[addressLength..];
                    if (client is null || header + data.Length > SocksUdpCodec.MaxUdpPayload)
                    {
                        Interlocked.Increment(ref stats.Dropped);
                        continue;
                    }

                    data.Span.CopyTo(datagram.AsSpan(header));
                    try
                    {
                        await udp.SendToAsync(datagram.AsMemory(0, header + data.Length), SocketFlags.None, client, done.Token);
                        stats.Down++;
                    }
                    catch (SocketException)
                    {
                        // The application's socket is gone or full: UDP loses the datagram, the association stays.
                        Interlocked.Increment(ref stats.Dropped);
                    }
                }
            }
            catch (IOException) when (!done.IsCancellationRequested)
            {
                meshBroke = true;
            }
            catch (Exception ex) when (ex is IOException or SocketException or OperationCanceledException or ObjectDisposedException)
            {
            }
        }
    }

    private static IPAddress Unmap(IPAddress address) => address.IsIPv4MappedToIPv6 ? address.MapToIPv4() : address;

    private sealed class UdpStats
    {
        public long Up;
        public long Down;
        public long Dropped;
    }

    private static partial class Log
    {
        [LoggerMessage(EventId = 6114, Level = LogLevel.Debug, Message = "socks-client: #{Id} UDP association for {Remote} relaying on {Relay}")]
        public static partial void UdpAssociated(ILogger logger, int id, string remote, IPEndPoint relay);

        [LoggerMessage(EventId = 6115, Level = LogLevel.Debug, Message = "socks-client: #{Id} UDP association closed, {Up} datagrams up, {Down} down, {Dropped} dropped")]
        public static partial void UdpClosed(ILogger logger, int id, long up, long down, long dropped);

        [LoggerMessage(EventId = 6116, Level = LogLevel.Debug, Message = "socks-client: #{Id} dropped a datagram from {From}: {Reason}")]
        public static partial void UdpDropped(ILogger logger, int id, IPEndPoint from, SocksUdpDrop reason);

        [LoggerMessage(EventId = 6117, Level = LogLevel.Information, Message = "socks-client: UDP association for {Remote}: exit answered {Reply}")]
        public static partial void UdpRefused(ILogger logger, string remote, SocksReplyCode reply);
    }
}
