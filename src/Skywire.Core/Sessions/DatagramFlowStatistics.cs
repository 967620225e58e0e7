namespace Skywire.Core.Sessions;

/// <summary>Counters of datagram flows (one flow's, or a node's sum over all of them). Thread-safe.</summary>
public sealed class DatagramFlowStatistics
{
    internal long SentField;
    internal long SentBytesField;
    internal long ReceivedField;
    internal long ReceivedBytesField;
    internal long TooLargeField;
    internal long ClosedField;
    internal long NoReceiverField;
    internal long UnknownFlowField;
    internal long QueueFullField;
    internal long MalformedField;

    /// <summary>Datagrams handed to the session for sealing (the session counts its own drops after that).</summary>
    public long Sent => Interlocked.Read(ref SentField);

    /// <summary>Payload bytes of <see cref="Sent"/>.</summary>
    public long SentBytes => Interlocked.Read(ref SentBytesField);

    /// <summary>Datagrams received and handed to the receiver.</summary>
    public long Received => Interlocked.Read(ref ReceivedField);

    /// <summary>Payload bytes of <see cref="Received"/>.</summary>
    public long ReceivedBytes => Interlocked.Read(ref ReceivedBytesField);

    /// <summary>Datagrams an app gave that were larger than the flow carries: dropped.</summary>
    public long TooLarge => Interlocked.Read(ref TooLargeField);

    /// <summary>Datagrams sent on a flow that had closed: dropped.</summary>
    public long Closed => Interlocked.Read(ref ClosedField);

    /// <summary>Datagrams that arrived while no receiver was attached (the app not attached yet, or gone): dropped.</summary>
    public long NoReceiver => Interlocked.Read(ref NoReceiverField);

    /// <summary>Flow datagrams for a flow this end does not know (never attached, or already closed): dropped.</summary>
    public long UnknownFlow => Interlocked.Read(ref UnknownFlowField);

    /// <summary>Datagrams dropped because the queue towards the app was full (the app reads too slowly).</summary>
    public long QueueFull => Interlocked.Read(ref QueueFullField);

    /// <summary>Malformed input: a flow datagram too short for its header, or an app's datagram connection that ended inside a record.</summary>
    public long Malformed => Interlocked.Read(ref MalformedField);

    /// <summary>Every datagram dropped, whatever the reason.</summary>
    public long Dropped => TooLarge + Closed + NoReceiver + UnknownFlow + QueueFull + Malformed;
}
