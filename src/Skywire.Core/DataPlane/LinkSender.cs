using System.Net;
using Skywire.Core.Links;
using Skywire.Protocol.Links;

namespace Skywire.Core.DataPlane;

/// <summary>
/// Sends on the data plane's <see cref="IUdpBind"/> and counts: node-wide statistics, and the link's own
/// counters when the datagram belongs to a link. Control messages are sealed here (header as associated data).
/// Any thread; allocation-free.
/// </summary>
internal sealed class LinkSender
{
    private readonly IUdpBind _bind;
    private readonly DataPlaneStatistics _statistics;

    public LinkSender(IUdpBind bind, DataPlaneStatistics statistics)
    {
        _bind = bind;
        _statistics = statistics;
    }

    /// <summary>True while batches leave in one system call each.</summary>
    public bool GsoActive => _bind.GsoActive;

    /// <summary>Sends a datagram that belongs to no link (a cookie reply). False (counted) when it could not be sent.</summary>
    public bool SendTo(ReadOnlySpan<byte> datagram, SocketAddress remote)
    {
        if (!_bind.Send(datagram, remote))
        {
            Interlocked.Increment(ref _statistics.SendFailedField);
            return false;
        }

        Interlocked.Increment(ref _statistics.PacketsSentField);
        Interlocked.Add(ref _statistics.BytesSentField, datagram.Length);
        return true;
    }

    /// <summary>Sends a datagram of <paramref name="link"/> to <paramref name="remote"/>.</summary>
    public bool Send(Link link, ReadOnlySpan<byte> datagram, SocketAddress remote)
    {
        if (!SendTo(datagram, remote))
        {
            return false;
        }

        Interlocked.Increment(ref link.PacketsSent);
        Interlocked.Add(ref link.BytesSent, datagram.Length);
        return true;
    }

    /// <summary>Sends the datagrams <c>slots[(i * stride)..][..lengths[i]]</c> (0: skip) of <paramref name="link"/> in order; returns how many left.</summary>
    public int SendBatch(Link link, SocketAddress remote, ReadOnlySpan<byte> slots, int stride, ReadOnlySpan<int> lengths)
    {
        var result = _bind.SendBatch(remote, slots, stride, lengths);
        if (result.BatchedCalls > 0)
        {
            Interlocked.Add(ref _statistics.GsoSendsField, result.BatchedCalls);
        }

        if (result.Failed > 0)
        {
            Interlocked.Add(ref _statistics.SendFailedField, result.Failed);
        }

        Interlocked.Add(ref _statistics.PacketsSentField, result.Sent);
        Interlocked.Add(ref _statistics.BytesSentField, result.Bytes);
        Interlocked.Add(ref link.PacketsSent, result.Sent);
        Interlocked.Add(ref link.BytesSent, result.Bytes);
        return result.Sent;
    }

    /// <summary>Seals a control message (<paramref name="body"/>: kind and fields) under <paramref name="session"/> and sends it to the link's peer.</summary>
    public void SendControl(Link link, LinkSession session, ReadOnlySpan<byte> body)
    {
        if (link.Remote is not { } remote)
        {
            return;
        }

        Span<byte> packet = stackalloc byte[LinkLimits.TransportHeaderLength + body.Length + LinkLimits.TagLength];
        var counter = session.NextCounter();
        new LinkTransportHeader(LinkPacketType.Control, session.RemoteIndex, counter).WriteTo(packet);
        try
        {
            session.SendKey.Seal(counter, packet[..LinkLimits.TransportHeaderLength], body, packet[LinkLimits.TransportHeaderLength..]);
        }
        catch (ObjectDisposedException)
        {
            return; // the keys were dropped meanwhile (link down)
        }

        Send(link, packet, remote);
    }
}
