using System.Diagnostics.Metrics;
using Skywire.Core.Forwarding;
using Skywire.Core.Sessions.Mux;

namespace Skywire.Core.Node;

/// <summary>
/// The node's instruments (meter <see cref="MeterName"/>, docs/operations.md "Metrics"): per link and per route
/// traffic, link handshakes, sessions, streams, the multiplexers' retransmissions, losses and drops, in-flight packets,
/// installed rules and app API connections. Everything is observed at collection time from state the node keeps
/// anyway, so the data path pays nothing for it; the executable exports the meter (<c>skywire node --metrics</c>).
/// </summary>
/// <remarks>
/// The multiplexer counters are per session and vanish with it, so the totals of ended sessions are kept here and
/// every sum is reported monotonically (a session that left the set a moment before its totals were added must not
/// make a counter go down, which Prometheus would read as a restart).
/// </remarks>
internal sealed class NodeMetrics : IDisposable
{
    /// <summary>The meter's name.</summary>
    public const string MeterName = Diagnostics.SkywireMeters.Node;

    private readonly Meter _meter = new(MeterName);
    private readonly NodeHost _node;
    private readonly NodeSessions _sessions;
    private readonly Func<int> _appConnections;
    private readonly KeyValuePair<string, object?> _tag;
    private readonly Lock _gate = new();
    private readonly Dictionary<string, long> _reported = new(StringComparer.Ordinal);
    private MuxTotals _ended;
    private long _linkHandshakes;
    private long _sessionsEnded;

    public NodeMetrics(NodeHost node, NodeSessions sessions, Func<int> appConnections)
    {
        _node = node;
        _sessions = sessions;
        _appConnections = appConnections;
        _tag = new("node", node.PublicKey.ToShortString(16));
        node.DataPlane.LinkUp += (_, _) => Interlocked.Increment(ref _linkHandshakes);

        _meter.CreateObservableCounter("skywire.link.packets", LinkPackets, "{packet}", "UDP packets per link and direction");
        _meter.CreateObservableCounter("skywire.link.bytes", LinkBytes, "By", "UDP payload bytes per link and direction");
        _meter.CreateObservableGauge("skywire.link.rtt", LinkRtt, "s", "Smoothed round-trip time per link");
        _meter.CreateObservableCounter("skywire.link.handshakes", Handshakes, "{handshake}", "Link handshakes: completed (a link came up) or failed");
        _meter.CreateObservableCounter("skywire.route.packets", () => Routes(r => r.Packets), "{packet}", "Packets per installed route rule (forwarded or delivered)");
        _meter.CreateObservableCounter("skywire.route.bytes", () => Routes(r => r.Bytes), "By", "Bytes per installed route rule");
        _meter.CreateObservableGauge("skywire.rules.installed", () => new Measurement<int>(_node.DataPlane.GetRules().Count, _tag), "{rule}", "Route rules installed by the manager");
        _meter.CreateObservableGauge("skywire.sessions.active", () => new Measurement<int>(_sessions.Active.Count, _tag), "{session}", "End-to-end sessions bound now");
        _meter.CreateObservableCounter("skywire.sessions.ended", () => new Measurement<long>(Interlocked.Read(ref _sessionsEnded), _tag), "{session}", "End-to-end sessions that ended");
        _meter.CreateObservableGauge("skywire.streams.active", () => new Measurement<long>(Live().OpenStreams, _tag), "{stream}", "Streams open over all sessions");
        _meter.CreateObservableGauge("skywire.mux.packets.in_flight", () => new Measurement<long>(Live().InFlight, _tag), "{packet}", "Packets sent and not yet acknowledged, over all sessions (send queue depth)");
        _meter.CreateObservableCounter("skywire.mux.retransmitted.bytes", () => Monotonic("retransmitted", t => t.RetransmittedBytes), "By", "Stream bytes sent again");
        _meter.CreateObservableCounter("skywire.mux.packets.lost", () => Monotonic("lost", t => t.Lost), "{packet}", "Packets declared lost (their contents retransmitted)");
        _meter.CreateObservableCounter("skywire.mux.retransmission_timeouts", () => Monotonic("rto", t => t.Rto), "{timeout}", "Retransmission timeouts that fired");
        _meter.CreateObservableCounter("skywire.mux.packets.dropped", MuxDrops, "{packet}", "Session packets the multiplexers dropped, by reason");
        _meter.CreateObservableCounter("skywire.streams.moved_to_direct", () => new Measurement<long>(node.StreamsMovedToDirect, _tag), "{stream}", "Relayed cross-cluster streams handed over to a direct link");
        _meter.CreateObservableGauge("skywire.app_api.connections", () => new Measurement<int>(_appConnections(), _tag), "{connection}", "App API connections (one per app and per mesh stream)");
    }

    /// <summary>Adds an ended session's final counters to the totals.</summary>
    public void SessionEnded(MeshSession session)
    {
        var totals = MuxTotals.Of(session.Mux.Statistics);
        lock (_gate)
        {
            _ended += totals;
        }

        Interlocked.Increment(ref _sessionsEnded);
    }

    /// <inheritdoc />
    public void Dispose() => _meter.Dispose();

    private IEnumerable<Measurement<long>> LinkPackets()
    {
        foreach (var link in _node.DataPlane.GetLinks())
        {
            var peer = new KeyValuePair<string, object?>("peer", link.Peer.ToShortString(16));
            yield return new(link.PacketsSent, _tag, peer, new("direction", "sent"));
            yield return new(link.PacketsReceived, _tag, peer, new("direction", "received"));
        }
    }

    private IEnumerable<Measurement<long>> LinkBytes()
    {
        foreach (var link in _node.DataPlane.GetLinks())
        {
            var peer = new KeyValuePair<string, object?>("peer", link.Peer.ToShortString(16));
            yield return new(link.BytesSent, _tag, peer, new("direction", "sent"));
            yield return new(link.BytesReceived, _tag, peer, new("direction", "received"));
        }
    }

    private IEnumerable<Measurement<double>> LinkRtt()
    {
        foreach (var link in _node.DataPlane.GetLinks())
        {
            if (link.Rtt is { } rtt)
            {
                yield return new(rtt.TotalSeconds, _tag, new("peer", link.Peer.ToShortString(16)));
            }
        }
    }

    private IEnumerable<Measurement<long>> Handshakes()
    {
        yield return new(Interlocked.Read(ref _linkHandshakes), _tag, new("result", "completed"));
        yield return new(_node.DataPlane.Statistics.HandshakeFailed, _tag, new("result", "failed"));
    }

    private IEnumerable<Measurement<long>> Routes(Func<RouteRuleInfo, long> value)
    {
        foreach (var rule in _node.DataPlane.GetRules())
        {
            yield return new(value(rule), _tag,
                new("route", rule.InRoute.ToString(System.Globalization.CultureInfo.InvariantCulture)),
                new("link", rule.InLink.ToShortString(16)),
                new("action", rule.Action == RouteAction.Forward ? "forward" : "deliver"));
        }
    }

    private IEnumerable<Measurement<long>> MuxDrops()
    {
        yield return Monotonic("duplicate", t => t.Duplicates, new("reason", "duplicate"));
        yield return Monotonic("bad_datagram", t => t.BadDatagrams, new("reason", "malformed"));
        yield return Monotonic("bad_frame", t => t.BadFrames, new("reason", "bad_frame"));
        yield return Monotonic("datagram_queue_full", t => t.DatagramsDropped, new("reason", "datagram_queue_full"));
    }

    private Measurement<long> Monotonic(string series, Func<MuxTotals, long> value, KeyValuePair<string, object?> extra = default)
    {
        var live = Live();
        lock (_gate)
        {
            var now = value(_ended + live);
            var last = _reported.GetValueOrDefault(series);
            if (now < last)
            {
                now = last;
            }

            _reported[series] = now;
            return extra.Key is null ? new(now, _tag) : new(now, _tag, extra);
        }
    }

    private MuxTotals Live()
    {
        var sum = default(MuxTotals);
        foreach (var session in _sessions.Active)
        {
            sum += MuxTotals.Of(session.Mux.Statistics);
        }

        return sum;
    }

    /// <summary>The counters summed over sessions.</summary>
    private readonly record struct MuxTotals(long RetransmittedBytes, long Lost, long Rto, long Duplicates, long BadDatagrams, long BadFrames, long DatagramsDropped, long OpenStreams, long InFlight)
    {
        public static MuxTotals Of(MuxStatistics s) => new(s.RetransmittedBytes, s.PacketsLost, s.RetransmissionTimeouts, s.DuplicatePackets, s.BadDatagrams, s.BadFrames, s.DatagramsDropped, s.OpenStreams, s.PacketsInFlight);

        public static MuxTotals operator +(MuxTotals a, MuxTotals b) => new(
            a.RetransmittedBytes + b.RetransmittedBytes, a.Lost + b.Lost, a.Rto + b.Rto, a.Duplicates + b.Duplicates, a.BadDatagrams + b.BadDatagrams,
            a.BadFrames + b.BadFrames, a.DatagramsDropped + b.DatagramsDropped, a.OpenStreams + b.OpenStreams, a.InFlight + b.InFlight);
    }
}
