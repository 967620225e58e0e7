using System.Buffers.Binary;
using System.Net;
using System.Net.Sockets;
using Microsoft.Extensions.Logging;
using Skywire.Core.Crypto;
using Skywire.Core.Forwarding;
using Skywire.Core.Links;
using Skywire.Protocol.Links;

namespace Skywire.Core.DataPlane;

/// <summary>
/// The receive path of a data plane (docs/protocol.md §3.2, §3.4; wireguard-go's receive.go): one dedicated
/// thread receives from the <see cref="IUdpBind"/> into one pinned 64 KiB buffer (a GRO batch is handled datagram
/// by datagram), dispatches on the packet type, and verifies transport packets (index, replay window, tag) before
/// handing them to the <see cref="Forwarder"/> (routed) or handling them (control). Nothing is allocated per
/// packet; a bad packet is dropped and counted under one reason, and never ends the thread.
/// </summary>
internal sealed class PacketReceiver
{
    private const int BufferLength = 65536;

    private readonly IUdpBind _bind;
    private readonly LinkTable _table;
    private readonly LinkHandshaker _handshaker;
    private readonly LinkTimers _timers;
    private readonly Forwarder _forwarder;
    private readonly LinkSender _sender;
    private readonly DataPlaneStatistics _statistics;
    private readonly ILinkEvents _events;
    private readonly TimeProvider _time;
    private readonly ILogger _logger;

    public PacketReceiver(
        IUdpBind bind, LinkTable table, LinkHandshaker handshaker, LinkTimers timers, Forwarder forwarder, LinkSender sender,
        DataPlaneStatistics statistics, ILinkEvents events, TimeProvider time, ILogger logger)
    {
        _bind = bind;
        _table = table;
        _handshaker = handshaker;
        _timers = timers;
        _forwarder = forwarder;
        _sender = sender;
        _statistics = statistics;
        _events = events;
        _time = time;
        _logger = logger;
    }

    /// <summary>The receive loop (a dedicated thread): returns when the bind is closed, or fails for good (logged).</summary>
    public void Run()
    {
        // One preallocated, pinned buffer for the life of the thread: nothing is allocated per packet.
        var buffer = GC.AllocateArray<byte>(BufferLength, pinned: true);
        var from = new SocketAddress(_bind.AddressFamily);
        Sessions.ReceiveBurst.BeginLoop();
        while (true)
        {
            int length;
            int segment;
            try
            {
                if (!_bind.TryReceive(buffer, from, out length, out segment))
                {
                    return;
                }
            }
            catch (SocketException ex)
            {
                DataPlaneLog.ReceiveFailed(_logger, ex);
                return;
            }

            Interlocked.Add(ref _statistics.BytesReceivedField, length);
            var batch = segment > 0 && segment < length;
            if (batch)
            {
                Interlocked.Increment(ref _statistics.GroBatchesField);
                _forwarder.BeginBatch(buffer, segment, (length + segment - 1) / segment);
            }

            var offset = 0;
            do
            {
                var n = Math.Min(segment, length - offset);
                _forwarder.BatchIndex = offset / Math.Max(segment, 1);
                Interlocked.Increment(ref _statistics.PacketsReceivedField);
                try
                {
                    Handle(buffer.AsSpan(offset, n), from);
                }
                catch (Exception ex)
                {
                    // A bug, not bad input: count it, log it, keep the node running.
                    Interlocked.Increment(ref _statistics.InternalErrorField);
                    DataPlaneLog.PacketHandlerFailed(_logger, ex);
                }

                offset += n;
            }
            while (offset < length && segment > 0);

            if (batch)
            {
                _forwarder.EndBatch();
            }

            // Receivers that held datagrams of this receive (the VPN in the node's process) write them out now.
            Sessions.ReceiveBurst.End();
        }
    }

    /// <summary>Handles one UDP payload from <paramref name="from"/>.</summary>
    public void Handle(Span<byte> packet, SocketAddress from)
    {
        if (packet.Length < 4)
        {
            Drop(ref _statistics.MalformedField);
            return;
        }

        switch ((LinkPacketType)packet[0])
        {
            case LinkPacketType.Routed:
            case LinkPacketType.Control:
                OnTransport(packet, from);
                break;
            case LinkPacketType.HandshakeInit:
                _handshaker.OnInit(packet, from);
                break;
            case LinkPacketType.HandshakeResponse:
                _handshaker.OnResponse(packet, from);
                break;
            case LinkPacketType.CookieReply:
                _handshaker.OnCookieReply(packet);
                break;
            default:
                Drop(ref _statistics.MalformedField);
                break;
        }
    }

    private void OnTransport(Span<byte> packet, SocketAddress from)
    {
        if (!LinkTransportHeader.TryRead(packet, out var header))
        {
            Drop(ref _statistics.MalformedField);
            return;
        }

        if (!_table.TryGetSession(header.ReceiverIndex, out var session))
        {
            Drop(ref _statistics.UnknownIndexField);
            return;
        }

        // Cheap replay rejection before any crypto; the window moves only after the tag verifies.
        if (!session.Window.IsAcceptable(header.Counter))
        {
            Drop(ref _statistics.ReplayField);
            return;
        }

        bool authentic;
        var payloadLength = 0;
        if (header.Type == LinkPacketType.Routed)
        {
            if (packet.Length < LinkLimits.RoutedOverhead + LinkLimits.MinRoutedPayload)
            {
                Drop(ref _statistics.MalformedField);
                return;
            }

            payloadLength = packet.Length - LinkLimits.RoutedOverhead;
            authentic = RoutedPacket.VerifyTag(session.ReceiveKey, header.Counter, packet, payloadLength);
        }
        else
        {
            if (packet.Length < LinkLimits.TransportHeaderLength + LinkLimits.TagLength + 1)
            {
                Drop(ref _statistics.MalformedField);
                return;
            }

            authentic = OpenControl(session.ReceiveKey, header.Counter, packet);
        }

        if (!authentic)
        {
            Drop(ref _statistics.BadTagField);
            return;
        }

        if (!session.Window.TryMark(header.Counter))
        {
            Drop(ref _statistics.ReplayField);
            return;
        }

        var link = session.Link;
        link.LastReceivedAt = _time.GetTimestamp();
        Interlocked.Increment(ref link.PacketsReceived);
        Interlocked.Add(ref link.BytesReceived, packet.Length);
        if (link.Remote is not { } remote || !remote.Equals(from))
        {
            Roam(link, from);
        }

        if (!session.Confirmed)
        {
            _handshaker.Confirm(session);
        }

        if (header.Type == LinkPacketType.Routed)
        {
            _forwarder.Route(link, packet, BinaryPrimitives.ReadUInt32BigEndian(packet[LinkLimits.TransportHeaderLength..]), payloadLength);
        }
        else
        {
            OnControl(link, session, packet[LinkLimits.TransportHeaderLength..^LinkLimits.TagLength]);
        }
    }

    private static bool OpenControl(AeadKey key, ulong counter, Span<byte> packet)
    {
        try
        {
            // In place: the body is decrypted over its ciphertext.
            return key.Open(counter, packet[..LinkLimits.TransportHeaderLength], packet[LinkLimits.TransportHeaderLength..], packet[LinkLimits.TransportHeaderLength..^LinkLimits.TagLength]);
        }
        catch (ObjectDisposedException)
        {
            return false;
        }
    }

    private static void Roam(Link link, SocketAddress from)
    {
        // The peer proved its key on this packet: follow it to its new address (NAT rebinding).
        lock (link.Gate)
        {
            link.Roams++;
            link.SetRemoteLocked(from);
        }
    }

    private void OnControl(Link link, LinkSession session, ReadOnlySpan<byte> body)
    {
        switch ((LinkControlKind)body[0])
        {
            case LinkControlKind.Keepalive:
                break;
            case LinkControlKind.Probe when body.Length == 13:
                Span<byte> reply = stackalloc byte[13];
                body.CopyTo(reply);
                reply[0] = (byte)LinkControlKind.ProbeReply;
                _sender.SendControl(link, session, reply);
                break;
            case LinkControlKind.ProbeReply when body.Length == 13:
                _timers.OnProbeReply(link, BinaryPrimitives.ReadUInt32BigEndian(body[1..]));
                break;
            case LinkControlKind.Close:
                bool raise;
                lock (link.Gate)
                {
                    raise = link.State is LinkState.Connecting or LinkState.Up && _table.MarkDownLocked(link, LinkState.Down, "closed by peer");
                }

                if (raise)
                {
                    _events.LinkDown(link, "closed by peer");
                }

                break;
            default:
                Drop(ref _statistics.MalformedField);
                break;
        }
    }

    private static void Drop(ref long counter) => Interlocked.Increment(ref counter);
}
