namespace Skywire.Core.Sessions;

/// <summary>Counters of one session.</summary>
public sealed class SecureSessionStatistics
{
    internal long DatagramsSent;
    internal long DatagramsReceived;
    internal long BytesSent;
    internal long BytesReceived;
    internal long DroppedNotEstablished;
    internal long DroppedBadTag;
    internal long DroppedReplay;
    internal long DroppedMalformed;
    internal long DroppedHandshake;
    internal long DroppedSendFailed;
    internal long DroppedTooLarge;
    internal long DroppedReceiverQueueFull;
    internal long DroppedUnknownIndex;
    internal long DroppedStaleHandshake;
    internal long DroppedKeysExhausted;
    internal long InitsSent;
    internal long HandshakesCompleted;

    /// <summary>Datagrams sealed and handed to the first hop.</summary>
    public long Sent => Interlocked.Read(ref DatagramsSent);

    /// <summary>Datagrams opened and delivered (excluding empty key-confirmation packets).</summary>
    public long Received => Interlocked.Read(ref DatagramsReceived);

    /// <summary>Plaintext bytes sent.</summary>
    public long SentBytes => Interlocked.Read(ref BytesSent);

    /// <summary>Plaintext bytes delivered.</summary>
    public long ReceivedBytes => Interlocked.Read(ref BytesReceived);

    /// <summary>Packets whose tag did not verify (tampered on the way, or not ours).</summary>
    public long BadTag => Interlocked.Read(ref DroppedBadTag);

    /// <summary>Packets refused by the replay window (duplicates or too old).</summary>
    public long Replayed => Interlocked.Read(ref DroppedReplay);

    /// <summary>Malformed packets.</summary>
    public long Malformed => Interlocked.Read(ref DroppedMalformed);

    /// <summary>Handshake messages refused (wrong key, stale, bad tag, unexpected).</summary>
    public long HandshakeRejected => Interlocked.Read(ref DroppedHandshake);

    /// <summary>Data packets whose receiver index names no keys this session holds (expired, never ours, or altered).</summary>
    public long UnknownIndex => Interlocked.Read(ref DroppedUnknownIndex);

    /// <summary>Handshake responses that name no pending init (late, duplicated, or answering an init already superseded): dropped, nothing reset.</summary>
    public long StaleHandshakes => Interlocked.Read(ref DroppedStaleHandshake);

    /// <summary>Handshake inits sent (first handshake, retries and rekeys).</summary>
    public long HandshakeInitsSent => Interlocked.Read(ref InitsSent);

    /// <summary>Handshakes completed: 1 after the first, one more per rekey.</summary>
    public long Handshakes => Interlocked.Read(ref HandshakesCompleted);

    /// <summary>Datagrams not sent: session not established, too large, first hop down, or keys used up.</summary>
    public long SendDropped => Interlocked.Read(ref DroppedNotEstablished) + Interlocked.Read(ref DroppedSendFailed) + Interlocked.Read(ref DroppedTooLarge)
        + Interlocked.Read(ref DroppedKeysExhausted);

    /// <summary>Datagrams dropped because no receiver was set and the early queue was full.</summary>
    public long ReceiverQueueFull => Interlocked.Read(ref DroppedReceiverQueueFull);
}
