using System.Diagnostics.CodeAnalysis;
using System.Net;
using Skywire.Core.Forwarding;
using Skywire.Core.Links;
using Skywire.Core.Sessions;
using Skywire.Protocol;
using Skywire.Protocol.Links;

namespace Skywire.Core.DataPlane;

/// <summary>
/// Label switching (docs/protocol.md §3.2, §5): sends the routed packets of local sessions (it is their
/// <see cref="IRoutedSender"/>), and on the receive thread hands each authenticated routed packet to its rule:
/// delivery to a local session, or a rewrite of header, label and link tag in place and a send on the next
/// link. Packets of one receive batch (UDP GRO) that go to the same next hop leave together (UDP GSO).
/// </summary>
internal sealed class Forwarder : IRoutedSender, IHeldPacketSender
{
    private readonly LinkTable _links;
    private readonly RuleTable _rules;
    private readonly LinkSender _sender;
    private readonly DataPlaneStatistics _statistics;
    private readonly int _maxUdpPayload;

    // Forwarding of one receive batch (receive thread only): packets for the same next hop are rewritten in place
    // and sent together when the batch ends or the next hop changes, instead of one send each.
    private bool _batching;
    private byte[]? _batchBuffer;
    private int _batchStride;
    private int _batchIndex;
    private Link? _runLink;
    private SocketAddress? _runRemote;
    private int _runFrom;
    private int _runTo;
    private int[] _runTotals = new int[UdpOffload.MaxSegments];

    public Forwarder(LinkTable links, RuleTable rules, LinkSender sender, DataPlaneStatistics statistics, int maxUdpPayload)
    {
        _links = links;
        _rules = rules;
        _sender = sender;
        _statistics = statistics;
        _maxUdpPayload = maxUdpPayload;
    }

    /// <inheritdoc/>
    public int MaxUdpPayload => _maxUdpPayload;

    // ---- Sending (sessions, any thread) ---------------------------------------------------------

    /// <inheritdoc/>
    public bool SendRouted(PubKey outLink, uint routeId, Span<byte> packet, int payloadLength)
    {
        if (!_links.TryGet(outLink, out var link))
        {
            Interlocked.Increment(ref _statistics.LinkDownField);
            return false;
        }

        // A metered route's end sends only within the source's spend authorization (docs/metering.md "Caps"): beyond
        // it the packet waits (bounded) for the next one, so the session sees back-pressure rather than loss.
        var meter = _rules.FindSendMeter(outLink, routeId);
        if (meter is not null && meter.MustHold(payloadLength))
        {
            return Hold(meter, packet, payloadLength);
        }

        if (!TryFrame(link, routeId, packet, payloadLength, out var remote, out var total) || !_sender.Send(link, packet[..total], remote))
        {
            return false;
        }

        meter?.Count(1, payloadLength);
        return true;
    }

    /// <inheritdoc/>
    public int SendRoutedBatch(PubKey outLink, uint routeId, Span<byte> slots, int stride, ReadOnlySpan<int> payloadLengths, int count)
    {
        if (!_links.TryGet(outLink, out var link))
        {
            Interlocked.Add(ref _statistics.LinkDownField, count);
            return 0;
        }

        var session = link.Current;
        if (session is null || link.State != LinkState.Up || link.Remote is not { } remote)
        {
            Interlocked.Add(ref _statistics.LinkDownField, count);
            return 0;
        }

        var meter = _rules.FindSendMeter(outLink, routeId);
        var metered = 0L;
        var holdFrom = count;
        var all = count;
        Span<int> totals = stackalloc int[count];
        for (var i = 0; i < count; i++)
        {
            var payloadLength = payloadLengths[i];
            if (meter is not null && meter.MustHold(metered + payloadLength))
            {
                // The rest waits for the next authorization, after the ones before it have left (below).
                holdFrom = count = i;
                break;
            }

            metered += payloadLength;
            var total = payloadLength + LinkLimits.RoutedOverhead;
            if (total > _maxUdpPayload || total > stride || payloadLength < LinkLimits.MinRoutedPayload)
            {
                Interlocked.Increment(ref _statistics.TooLargeField);
                continue; // totals[i] stays 0: skipped
            }

            try
            {
                RoutedPacket.Frame(session.SendKey, session.RemoteIndex, session.NextCounter(), routeId, slots.Slice(i * stride, total), payloadLength);
            }
            catch (ObjectDisposedException)
            {
                Interlocked.Add(ref _statistics.LinkDownField, count - i);
                count = i;
                break;
            }

            totals[i] = total;
        }

        var sent = count == 0 ? 0 : _sender.SendBatch(link, remote, slots, stride, totals[..count]);
        if (meter is not null && sent > 0)
        {
            CountSent(meter, totals[..count], payloadLengths, sent);
        }

        for (var i = holdFrom; i < all && meter is not null; i++)
        {
            if (Hold(meter, slots.Slice(i * stride, stride), payloadLengths[i]))
            {
                sent++;
            }
        }

        return sent;
    }

    /// <summary>Holds a packet at its meter's cap; false (dropped, counted) when the hold is full.</summary>
    private bool Hold(SendMeter meter, Span<byte> packet, int payloadLength)
    {
        if (payloadLength + LinkLimits.RoutedOverhead > Math.Min(_maxUdpPayload, packet.Length) || payloadLength < LinkLimits.MinRoutedPayload)
        {
            Interlocked.Increment(ref _statistics.TooLargeField);
            return false;
        }

        if (meter.Hold(this, packet, payloadLength))
        {
            Interlocked.Increment(ref _statistics.HeldField);
            return true;
        }

        Interlocked.Increment(ref _statistics.CappedField);
        return false;
    }

    /// <inheritdoc/>
    bool IHeldPacketSender.SendHeld(PubKey outLink, uint routeId, Span<byte> packet, int payloadLength)
    {
        if (!_links.TryGet(outLink, out var link))
        {
            Interlocked.Increment(ref _statistics.LinkDownField);
            return false;
        }

        return TryFrame(link, routeId, packet, payloadLength, out var remote, out var total) && _sender.Send(link, packet[..total], remote);
    }

    /// <summary>Counts the first <paramref name="sent"/> framed packets of a batch on a send meter.</summary>
    private static void CountSent(SendMeter meter, ReadOnlySpan<int> totals, ReadOnlySpan<int> payloadLengths, int sent)
    {
        var bytes = 0L;
        var packets = 0;
        for (var i = 0; i < totals.Length && packets < sent; i++)
        {
            if (totals[i] != 0)
            {
                bytes += payloadLengths[i];
                packets++;
            }
        }

        meter.Count(packets, bytes);
    }

    // ---- Receiving (receive thread) -------------------------------------------------------------

    /// <summary>Starts a receive batch of datagrams at <paramref name="stride"/>-byte intervals in <paramref name="buffer"/>: forwards are held and sent together.</summary>
    public void BeginBatch(byte[] buffer, int stride, int count)
    {
        _batching = _sender.GsoActive;
        if (!_batching)
        {
            return;
        }

        _batchBuffer = buffer;
        _batchStride = stride;
        if (_runTotals.Length < count)
        {
            _runTotals = new int[count];
        }
    }

    /// <summary>The datagram of the batch being handled (its slot).</summary>
    public int BatchIndex
    {
        set => _batchIndex = value;
    }

    /// <summary>Ends a receive batch: the held forwards leave.</summary>
    public void EndBatch()
    {
        if (_batching)
        {
            Flush();
            _batching = false;
        }
    }

    /// <summary>An authenticated routed packet from <paramref name="inLink"/> with label <paramref name="routeId"/>.</summary>
    public void Route(Link inLink, Span<byte> packet, uint routeId, int payloadLength)
    {
        var rule = _rules.Find(inLink.Peer, routeId, out var expired);
        if (rule is null)
        {
            Interlocked.Increment(ref expired ? ref _statistics.RuleExpiredField : ref _statistics.NoRuleField);
            return;
        }

        if (rule.OverCap(payloadLength))
        {
            // Beyond the source's spend authorization on a metered route: dropped, not carried for free.
            Interlocked.Increment(ref rule.Capped);
            Interlocked.Increment(ref _statistics.CappedField);
            return;
        }

        rule.Count(payloadLength);
        if (rule.Action == RouteAction.Local)
        {
            Interlocked.Increment(ref _statistics.DeliveredField);
            rule.Session!.OnPacket(packet.Slice(LinkLimits.RoutedHeaderLength, payloadLength));
            return;
        }

        if (!_links.TryGet(rule.OutLink, out var outLink))
        {
            Interlocked.Increment(ref _statistics.LinkDownField);
            return;
        }

        // Only the header, label and link tag are rewritten; the payload bytes stay where they are.
        if (_batching)
        {
            Hold(outLink, rule.OutRoute, packet, payloadLength);
            return;
        }

        if (TryFrame(outLink, rule.OutRoute, packet, payloadLength, out var remote, out var total) && _sender.Send(outLink, packet[..total], remote))
        {
            Interlocked.Increment(ref _statistics.ForwardedField);
        }
    }

    /// <summary>
    /// Checks that <paramref name="link"/> can carry the packet, then frames it (header, label, link tag around the
    /// payload at <c>packet[20..]</c>). False, counted as a drop, when the link is not up or the packet does not fit.
    /// </summary>
    private bool TryFrame(Link link, uint routeId, Span<byte> packet, int payloadLength, [NotNullWhen(true)] out SocketAddress? remote, out int total)
    {
        var session = link.Current;
        remote = link.Remote;
        total = payloadLength + LinkLimits.RoutedOverhead;
        if (session is null || link.State != LinkState.Up || remote is null)
        {
            Interlocked.Increment(ref _statistics.LinkDownField);
            return false;
        }

        if (total > _maxUdpPayload || total > packet.Length || payloadLength < LinkLimits.MinRoutedPayload)
        {
            Interlocked.Increment(ref _statistics.TooLargeField);
            return false;
        }

        try
        {
            RoutedPacket.Frame(session.SendKey, session.RemoteIndex, session.NextCounter(), routeId, packet, payloadLength);
        }
        catch (ObjectDisposedException)
        {
            Interlocked.Increment(ref _statistics.LinkDownField);
            return false;
        }

        return true;
    }

    /// <summary>Rewrites the packet in place and adds it to the run for its next hop; a run for another next hop leaves first.</summary>
    private void Hold(Link outLink, uint routeId, Span<byte> packet, int payloadLength)
    {
        if (!TryFrame(outLink, routeId, packet, payloadLength, out var remote, out var total))
        {
            return;
        }

        // Packets already held for another next hop go first (each link's counters stay in order on the wire).
        if (_runLink is not null && (!ReferenceEquals(_runLink, outLink) || !ReferenceEquals(_runRemote, remote)))
        {
            Flush();
        }

        if (_runLink is null)
        {
            _runLink = outLink;
            _runRemote = remote;
            _runFrom = _batchIndex;
        }

        _runTotals[_batchIndex] = total;
        _runTo = _batchIndex + 1;
    }

    private void Flush()
    {
        if (_runLink is not { } link || _runRemote is not { } remote)
        {
            return;
        }

        var totals = _runTotals.AsSpan(_runFrom, _runTo - _runFrom);
        var sent = _sender.SendBatch(link, remote, _batchBuffer.AsSpan(_runFrom * _batchStride), _batchStride, totals);
        Interlocked.Add(ref _statistics.ForwardedField, sent);
        totals.Clear();
        _runLink = null;
        _runRemote = null;
    }
}
