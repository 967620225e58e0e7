using System.Net;
using System.Net.Sockets;
using Microsoft.Extensions.Logging;
using Skywire.Core.Streams;

namespace Skywire.Apps.Socks;

// UDP ASSOCIATE on the exit side: datagram frames from the stream go out of one UDP socket per address family;
// answers from the endpoints this association sent to come back as frames (docs/socks.md "UDP ASSOCIATE").
public sealed partial class SocksServer
{
    /// <summary>Distinct endpoints one association may send to (and so hear from).</summary>
    public const int MaxUdpPeers = 4096;

    /// <summary>Names one association keeps resolved.</summary>
    private const int MaxUdpNames = 256;

    private async Task ServeUdpAsync(DuplexStream stream, ReadOnlyMemory<byte> leftover, string peer, CancellationToken cancellationToken)
    {
        if (!await TryReplyAsync(stream, SocksReplyCode.Succeeded, cancellationToken))
        {
            return;
        }

        Log.UdpAssociated(_logger, peer);
        using var done = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        var association = new UdpExit(this, stream, peer, done.Token);
        try
        {
            await association.RunAsync(new SocksUdpFrameReader(stream, leftover.Span));
        }
        finally
        {
            await done.CancelAsync();
            await association.DisposeAsync();
            Log.UdpClosed(_logger, peer, association.Up, association.Down, association.Dropped);
        }
    }

    private sealed class UdpExit(SocksServer server, DuplexStream stream, string peer, CancellationToken cancellationToken) : IAsyncDisposable
    {
        private readonly SemaphoreSlim _writeLock = new(1, 1);
        private readonly HashSet<IPEndPoint> _peers = [];
        private readonly Dictionary<string, IPAddress> _names = new(StringComparer.OrdinalIgnoreCase);
        private readonly List<Task> _receivers = [];
        private Socket? _v4;
        private Socket? _v6;
        private long _up;
        private long _down;
        private long _dropped;

        public long Up => Interlocked.Read(ref _up);

        public long Down => Interlocked.Read(ref _down);

        public long Dropped => Interlocked.Read(ref _dropped);

        /// <summary>Sends every frame of the stream until it ends (the client closed the association).</summary>
        public async Task RunAsync(SocksUdpFrameReader reader)
        {
            try
            {
                while (await reader.ReadAsync(cancellationToken) is { } body)
                {
                    if (SocksUdpCodec.TryReadAddress(body, out var destination, out var addressLength) != SocksUdpDrop.None)
                    {
                        Drop(destination, SocksUdpDrop.BadAddress);
                        continue;
                    }

                    var (target, drop) = await ResolveAsync(destination);
                    if (target is null)
                    {
                        Drop(destination, drop);
                        continue;
                    }

                    var socket = SocketFor(target.AddressFamily);
                    lock (_peers)
                    {
                        if (_peers.Count >= MaxUdpPeers && !_peers.Contains(target))
                        {
                            target = null;
                        }
                        else
                        {
                            _peers.Add(target);
                        }
                    }

                    if (target is null || socket is null)
                    {
                        Drop(destination, SocksUdpDrop.NotAllowed);
                        continue;
                    }

                    try
                    {
                        await socket.SendToAsync(body[addressLength..], SocketFlags.None, target, cancellationToken);
                        Interlocked.Increment(ref _up);
                    }
                    catch (SocketException ex) when (ex.SocketErrorCode is not SocketError.OperationAborted)
                    {
                        // Unreachable network, full buffer, datagram too large: lost, as UDP would lose it.
                        Drop(destination, SocksUdpDrop.NotAllowed);
                    }
                }
            }
            catch (Exception ex) when (ex is IOException or SocketException or OperationCanceledException or ObjectDisposedException)
            {
                Log.UdpStreamEnded(server._logger, peer, ex.Message);
            }
        }

        private void Drop(SocksEndpoint destination, SocksUdpDrop reason)
        {
            Interlocked.Increment(ref _dropped);
            Log.UdpDropped(server._logger, peer, destination, reason);
        }

        private async ValueTask<(IPEndPoint? Target, SocksUdpDrop Drop)> ResolveAsync(SocksEndpoint destination)
        {
            IPAddress address;
            if (destination.Type != SocksAddressType.DomainName)
            {
                address = destination.Address!.IsIPv4MappedToIPv6 ? destination.Address.MapToIPv4() : destination.Address;
            }
            else if (!_names.TryGetValue(destination.Host!, out address!))
            {
                IPAddress[] addresses;
                try
                {
                    using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
                    timeout.CancelAfter(server._options.ConnectTimeout);
                    addresses = await Dns.GetHostAddressesAsync(destination.Host!, timeout.Token);
                }
                catch (Exception ex) when (ex is SocketException || (ex is OperationCanceledException && !cancellationToken.IsCancellationRequested))
                {
                    return (null, SocksUdpDrop.Unresolved);
                }

                if (!server._options.AllowLoopbackTargets)
                {
                    addresses = Array.FindAll(addresses, a => !IsLocalHost(a));
                }

                // The resolver's order, IPv4 first when there is one: a datagram has no connect to fall back with.
                var pick = Array.Find(addresses, a => a.AddressFamily == AddressFamily.InterNetwork) ?? addresses.FirstOrDefault();
                if (pick is null)
                {
                    return (null, server._options.AllowLoopbackTargets ? SocksUdpDrop.Unresolved : SocksUdpDrop.NotAllowed);
                }

                if (_names.Count >= MaxUdpNames)
                {
                    _names.Clear();
                }

                _names[destination.Host!] = address = pick.IsIPv4MappedToIPv6 ? pick.MapToIPv4() : pick;
            }

            if (!server._options.AllowLoopbackTargets && IsLocalHost(address))
            {
                return (null, SocksUdpDrop.NotAllowed);
            }

            return (new IPEndPoint(address, destination.Port), SocksUdpDrop.None);
        }

        private Socket? SocketFor(AddressFamily family)
        {
            ref var slot = ref family == AddressFamily.InterNetwork ? ref _v4 : ref _v6;
            if (slot is not null)
            {
                return slot;
            }

            Socket socket;
            try
            {
                socket = new Socket(family, SocketType.Dgram, ProtocolType.Udp);
                if (family == AddressFamily.InterNetworkV6)
                {
                    socket.DualMode = false;
                }

                socket.Bind(new IPEndPoint(family == AddressFamily.InterNetwork ? IPAddress.Any : IPAddress.IPv6Any, 0));
            }
            catch (SocketException)
            {
                // No IPv6 (or IPv4) on this host: datagrams for that family are dropped.
                return null;
            }

            slot = socket;
            lock (_receivers)
            {
                _receivers.Add(ReceiveAsync(socket));
            }

            return socket;
        }

        private async Task ReceiveAsync(Socket socket)
        {
            var buffer = new byte[SocksUdpCodec.MaxUdpPayload + 1];
            var frame = new byte[2 + SocksUdpCodec.MaxFrameBody];
            EndPoint any = new IPEndPoint(socket.AddressFamily == AddressFamily.InterNetwork ? IPAddress.Any : IPAddress.IPv6Any, 0);
            try
            {
                while (true)
                {
                    SocketReceiveFromResult received;
                    try
                    {
                        received = await socket.ReceiveFromAsync(buffer, SocketFlags.None, any, cancellationToken);
                    }
                    catch (SocketException ex) when (ex.SocketErrorCode is SocketError.ConnectionReset or SocketError.ConnectionRefused or SocketError.MessageSize)
                    {
                        continue;
                    }

                    var from = (IPEndPoint)received.RemoteEndPoint;
                    var source = SocksEndpoint.FromIP(from);
                    bool known;
                    lock (_peers)
                    {
                        known = _peers.Contains(new IPEndPoint(source.Address!, from.Port));
                    }

                    var length = known ? SocksUdpCodec.WriteFrame(frame, source, buffer.AsSpan(0, received.ReceivedBytes)) : 0;
                    if (length == 0)
                    {
                        Drop(source, known ? SocksUdpDrop.Truncated : SocksUdpDrop.Unsolicited);
                        continue;
                    }

                    await _writeLock.WaitAsync(cancellationToken);
                    try
                    {
                        await stream.WriteAsync(frame.AsMemory(0, length), cancellationToken);
                    }
                    finally
                    {
                        _writeLock.Release();
                    }

                    Interlocked.Increment(ref _down);
                }
            }
            catch (Exception ex) when (ex is IOException or SocketException or OperationCanceledException or ObjectDisposedException)
            {
            }
        }

        public async ValueTask DisposeAsync()
        {
            _v4?.Dispose();
            _v6?.Dispose();
            Task[] receivers;
            lock (_receivers)
            {
                receivers = [.. _receivers];
            }

            await Task.WhenAll(receivers);
            _writeLock.Dispose();
        }
    }

    private static partial class Log
    {
        [LoggerMessage(EventId = 6128, Level = LogLevel.Debug, Message = "socks-server: {Peer} UDP association open")]
        public static partial void UdpAssociated(ILogger logger, string peer);

        [LoggerMessage(EventId = 6129, Level = LogLevel.Debug, Message = "socks-server: {Peer} UDP association closed, {Up} datagrams out, {Down} back, {Dropped} dropped")]
        public static partial void UdpClosed(ILogger logger, string peer, long up, long down, long dropped);

        [LoggerMessage(EventId = 6130, Level = LogLevel.Debug, Message = "socks-server: {Peer} dropped a datagram for {Destination}: {Reason}")]
        public static partial void UdpDropped(ILogger logger, string peer, SocksEndpoint destination, SocksUdpDrop reason);

        [LoggerMessage(EventId = 6131, Level = LogLevel.Debug, Message = "socks-server: {Peer} UDP association stream ended: {Reason}")]
        public static partial void UdpStreamEnded(ILogger logger, string peer, string reason);
    }
}
