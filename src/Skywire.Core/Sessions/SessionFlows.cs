using System.Collections.Concurrent;
using Skywire.Protocol.Sessions;

namespace Skywire.Core.Sessions;

/// <summary>
/// The datagram flows of one end-to-end session (docs/protocol.md §6.3): opens a flow for a mux stream, and on the
/// receive thread hands each flow datagram to its flow by reference. A datagram for a flow this end does not know is
/// dropped and counted (<see cref="DatagramFlowStatistics.UnknownFlow"/>), never an error.
/// </summary>
public sealed class SessionFlows
{
    private readonly IDatagramTransport _transport;
    private readonly DatagramFlowStatistics? _total;
    private readonly ConcurrentDictionary<uint, DatagramFlow> _flows = new();
    private int _closed;

    /// <param name="transport">The session the flows send on.</param>
    /// <param name="total">Counters summed over every flow (a node's), or null.</param>
    public SessionFlows(IDatagramTransport transport, DatagramFlowStatistics? total = null)
    {
        ArgumentNullException.ThrowIfNull(transport);
        _transport = transport;
        _total = total;
    }

    /// <summary>Flows open now.</summary>
    public int Count => _flows.Count;

    /// <summary>
    /// Opens the flow of stream <paramref name="streamId"/> (<paramref name="locallyOpened"/>: this side opened the
    /// stream). Null when the session has closed, the id is out of range (2^31 and more) or the flow is already open.
    /// </summary>
    public DatagramFlow? Open(long streamId, bool locallyOpened)
    {
        if (!FlowDatagram.TryGetReference(streamId, locallyOpened, out var send) || !FlowDatagram.TryGetReference(streamId, !locallyOpened, out var receive))
        {
            return null;
        }

        var flow = new DatagramFlow(this, _transport, send, receive, _total);
        if (Volatile.Read(ref _closed) != 0 || !_flows.TryAdd(receive, flow))
        {
            return null;
        }

        if (Volatile.Read(ref _closed) != 0)
        {
            flow.Dispose();
            return null;
        }

        return flow;
    }

    /// <summary>A flow datagram arrived (receive thread): handed to its flow, or dropped and counted.</summary>
    public void Deliver(ReadOnlySpan<byte> datagram)
    {
        if (!FlowDatagram.TryReadHeader(datagram, out var reference))
        {
            if (_total is not null)
            {
                Interlocked.Increment(ref _total.MalformedField);
            }

            return;
        }

        if (!_flows.TryGetValue(reference, out var flow))
        {
            if (_total is not null)
            {
                Interlocked.Increment(ref _total.UnknownFlowField);
            }

            return;
        }

        flow.Deliver(datagram[FlowDatagram.HeaderLength..]);
    }

    /// <summary>Closes every flow (the session ended); flows opened later are refused.</summary>
    public void CloseAll()
    {
        Interlocked.Exchange(ref _closed, 1);
        foreach (var flow in _flows.Values)
        {
            flow.Dispose();
        }
    }

    internal void Remove(DatagramFlow flow) => _flows.TryRemove(new KeyValuePair<uint, DatagramFlow>(flow.ReceiveReference, flow));
}
