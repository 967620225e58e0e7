using Skywire.Protocol.Sessions;

namespace Skywire.Core.Sessions;

/// <summary>
/// Unreliable datagrams of one app pair, tied to one mux stream of an end-to-end session (docs/protocol.md §6.3): each
/// datagram is one session datagram, sealed once end to end, never retransmitted, never reordered on purpose; what
/// cannot be carried is dropped and counted. The stream is the flow's reliable companion (setup, identity, lifetime):
/// the flow is closed when the stream ends.
/// </summary>
/// <remarks>
/// <para>States: open, then closed (terminal: disposed, its stream ended, or its session closed); after that sends
/// are dropped and counted (<see cref="DatagramFlowStatistics.Closed"/>) and nothing is delivered.</para>
/// <para>Threads: <see cref="Send"/> and <see cref="SendBatch"/> from any thread (a batch from one thread at a time);
/// <see cref="Receiver"/> is called on the node's receive thread and must be quick (append to a queue, never block).
/// Nothing is allocated per datagram.</para>
/// </remarks>
public sealed class DatagramFlow : IDisposable
{
    private readonly SessionFlows _owner;
    private readonly IDatagramTransport _transport;
    private readonly DatagramFlowStatistics? _total;
    private readonly TaskCompletionSource _completion = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private volatile DatagramHandler? _receiver;
    private int _closed;

    internal DatagramFlow(SessionFlows owner, IDatagramTransport transport, uint sendReference, uint receiveReference, DatagramFlowStatistics? total)
    {
        _owner = owner;
        _transport = transport;
        _total = total;
        SendReference = sendReference;
        ReceiveReference = receiveReference;
    }

    /// <summary>Largest datagram the flow carries (the session's datagram less the flow header).</summary>
    public int MaxDatagramSize => _transport.MaxDatagramSize - FlowDatagram.HeaderLength;

    /// <summary>This flow's counters.</summary>
    public DatagramFlowStatistics Statistics { get; } = new();

    /// <summary>True once closed.</summary>
    public bool IsClosed => Volatile.Read(ref _closed) != 0;

    /// <summary>Completes when the flow closes.</summary>
    public Task Completion => _completion.Task;

    /// <summary>Where received datagrams go (receive thread; the span is valid only during the call). Null: dropped and counted.</summary>
    public DatagramHandler? Receiver
    {
        get => _receiver;
        set => _receiver = value;
    }

    internal uint SendReference { get; }

    internal uint ReceiveReference { get; }

    /// <summary>Sends one datagram. False (counted) when it is too large or the flow has closed.</summary>
    public bool Send(ReadOnlySpan<byte> datagram)
    {
        if (IsClosed)
        {
            Interlocked.Increment(ref Statistics.ClosedField);
            if (_total is not null)
            {
                Interlocked.Increment(ref _total.ClosedField);
            }

            return false;
        }

        if (datagram.Length > MaxDatagramSize)
        {
            CountTooLarge(1);
            return false;
        }

        Span<byte> packet = stackalloc byte[FlowDatagram.HeaderLength + datagram.Length];
        FlowDatagram.WriteHeader(packet, SendReference);
        datagram.CopyTo(packet[FlowDatagram.HeaderLength..]);
        _transport.Send(packet);
        CountSent(1, datagram.Length);
        return true;
    }

    /// <summary>
    /// Sends every datagram of <paramref name="batch"/> (in order; the session seals them into one scratch area and the
    /// data plane sends runs of equal size with one UDP GSO call) and empties the batch. Returns how many were handed on.
    /// </summary>
    public int SendBatch(DatagramBatch batch)
    {
        ArgumentNullException.ThrowIfNull(batch);
        var count = batch.Count;
        if (count == 0)
        {
            return 0;
        }

        if (IsClosed)
        {
            Interlocked.Add(ref Statistics.ClosedField, count);
            if (_total is not null)
            {
                Interlocked.Add(ref _total.ClosedField, count);
            }

            batch.Clear();
            return 0;
        }

        var buffers = batch.Buffers;
        var lengths = batch.Lengths;
        long bytes = 0;
        for (var i = 0; i < count; i++)
        {
            FlowDatagram.WriteHeader(buffers[i], SendReference);
            bytes += lengths[i] - FlowDatagram.HeaderLength;
        }

        if (count == 1)
        {
            _transport.Send(buffers[0].AsSpan(0, lengths[0]));
        }
        else
        {
            _transport.SendBatch(buffers, lengths, count);
        }

        CountSent(count, bytes);
        batch.Clear();
        return count;
    }

    /// <summary>Counts datagrams an app gave that were larger than the flow carries (dropped before reaching the flow).</summary>
    public void CountTooLarge(int count)
    {
        Interlocked.Add(ref Statistics.TooLargeField, count);
        if (_total is not null)
        {
            Interlocked.Add(ref _total.TooLargeField, count);
        }
    }

    /// <summary>Counts datagrams dropped on the way to the app because its queue was full.</summary>
    public void CountQueueFull()
    {
        Interlocked.Increment(ref Statistics.QueueFullField);
        if (_total is not null)
        {
            Interlocked.Increment(ref _total.QueueFullField);
        }
    }

    /// <summary>Counts malformed input from the app (a datagram connection that ended inside a record).</summary>
    public void CountMalformed()
    {
        Interlocked.Increment(ref Statistics.MalformedField);
        if (_total is not null)
        {
            Interlocked.Increment(ref _total.MalformedField);
        }
    }

    /// <summary>A flow datagram's payload arrived (receive thread).</summary>
    internal void Deliver(ReadOnlySpan<byte> payload)
    {
        var receiver = _receiver;
        if (receiver is null || IsClosed)
        {
            Interlocked.Increment(ref Statistics.NoReceiverField);
            if (_total is not null)
            {
                Interlocked.Increment(ref _total.NoReceiverField);
            }

            return;
        }

        Interlocked.Increment(ref Statistics.ReceivedField);
        Interlocked.Add(ref Statistics.ReceivedBytesField, payload.Length);
        if (_total is not null)
        {
            Interlocked.Increment(ref _total.ReceivedField);
            Interlocked.Add(ref _total.ReceivedBytesField, payload.Length);
        }

        receiver(payload);
    }

    /// <summary>Closes the flow (idempotent): no more sends or deliveries; the session forgets it.</summary>
    public void Dispose()
    {
        if (Interlocked.Exchange(ref _closed, 1) != 0)
        {
            return;
        }

        _receiver = null;
        _owner.Remove(this);
        _completion.TrySetResult();
    }

    private void CountSent(int count, long bytes)
    {
        Interlocked.Add(ref Statistics.SentField, count);
        Interlocked.Add(ref Statistics.SentBytesField, bytes);
        if (_total is not null)
        {
            Interlocked.Add(ref _total.SentField, count);
            Interlocked.Add(ref _total.SentBytesField, bytes);
        }
    }
}
