namespace Skywire.Core.DataPlane;

/// <summary>Node-wide data plane counters. Every dropped packet is counted under one reason.</summary>
public sealed class DataPlaneStatistics
{
    internal long PacketsReceivedField;
    internal long BytesReceivedField;
    internal long PacketsSentField;
    internal long BytesSentField;
    internal long ForwardedField;
    internal long DeliveredField;
    internal long MalformedField;
    internal long BadMacField;
    internal long HandshakeFailedField;
    internal long StaleHandshakeField;
    internal long RefusedField;
    internal long UnknownIndexField;
    internal long BadTagField;
    internal long ReplayField;
    internal long NoRuleField;
    internal long RuleExpiredField;
    internal long LinkDownField;
    internal long TooLargeField;
    internal long SendFailedField;
    internal long InternalErrorField;
    internal long CookieRepliesField;
    internal long TableFullField;
    internal long RateLimitedField;
    internal long LinksEvictedField;
    internal long GsoSendsField;
    internal long GroBatchesField;
    internal long CappedField;
    internal long HeldField;

    /// <summary>System calls that sent more than one datagram (UDP GSO).</summary>
    public long GsoSends => Interlocked.Read(ref GsoSendsField);

    /// <summary>Receives that returned more than one datagram (UDP GRO).</summary>
    public long GroBatches => Interlocked.Read(ref GroBatchesField);

    /// <summary>UDP datagrams received (any content).</summary>
    public long PacketsReceived => Interlocked.Read(ref PacketsReceivedField);

    /// <summary>UDP payload bytes received.</summary>
    public long BytesReceived => Interlocked.Read(ref BytesReceivedField);

    /// <summary>UDP datagrams sent.</summary>
    public long PacketsSent => Interlocked.Read(ref PacketsSentField);

    /// <summary>UDP payload bytes sent.</summary>
    public long BytesSent => Interlocked.Read(ref BytesSentField);

    /// <summary>Routed packets relayed to another link.</summary>
    public long Forwarded => Interlocked.Read(ref ForwardedField);

    /// <summary>Routed packets handed to a local session.</summary>
    public long Delivered => Interlocked.Read(ref DeliveredField);

    /// <summary>Dropped: too short, unknown type, bad lengths or reserved bits.</summary>
    public long Malformed => Interlocked.Read(ref MalformedField);

    /// <summary>Dropped: handshake with a wrong mac1 (random or misdirected packets; costs no DH).</summary>
    public long BadMac => Interlocked.Read(ref BadMacField);

    /// <summary>Dropped: handshake that failed Noise (wrong key, tampered, unsupported AEAD).</summary>
    public long HandshakeFailed => Interlocked.Read(ref HandshakeFailedField);

    /// <summary>Dropped: handshake init with a timestamp not above the last accepted one (replay).</summary>
    public long StaleHandshake => Interlocked.Read(ref StaleHandshakeField);

    /// <summary>Dropped: authenticated peer refused by policy.</summary>
    public long Refused => Interlocked.Read(ref RefusedField);

    /// <summary>Dropped: transport packet for no known link session.</summary>
    public long UnknownIndex => Interlocked.Read(ref UnknownIndexField);

    /// <summary>Dropped: link tag did not verify (forged or altered header/label/end-to-end tag).</summary>
    public long BadTag => Interlocked.Read(ref BadTagField);

    /// <summary>Dropped: counter replayed or too old for the window.</summary>
    public long Replay => Interlocked.Read(ref ReplayField);

    /// <summary>Dropped: no rule for (link, route id).</summary>
    public long NoRule => Interlocked.Read(ref NoRuleField);

    /// <summary>Dropped: the rule had expired.</summary>
    public long RuleExpired => Interlocked.Read(ref RuleExpiredField);

    /// <summary>Dropped: a metered route's packet beyond the source's spend authorization (docs/metering.md).</summary>
    public long Capped => Interlocked.Read(ref CappedField);

    /// <summary>Not dropped: a metered route's packets held at the cap until the source's next authorization (docs/metering.md "Caps").</summary>
    public long Held => Interlocked.Read(ref HeldField);

    /// <summary>Dropped: the outgoing link is not up.</summary>
    public long LinkDown => Interlocked.Read(ref LinkDownField);

    /// <summary>Dropped: the packet would exceed the maximum UDP payload.</summary>
    public long TooLarge => Interlocked.Read(ref TooLargeField);

    /// <summary>Dropped: the socket refused the send.</summary>
    public long SendFailed => Interlocked.Read(ref SendFailedField);

    /// <summary>Handshake inits answered with a cookie instead of being processed (under load, no valid mac2).</summary>
    public long CookieReplies => Interlocked.Read(ref CookieRepliesField);

    /// <summary>Dropped: a valid handshake from a new peer while the link table was full of links that must stay (<see cref="DataPlaneOptions.MaxLinks"/>).</summary>
    public long TableFull => Interlocked.Read(ref TableFullField);

    /// <summary>Dropped: a handshake init from an address that proved itself (mac2) but sent more than 20 a second while the node was under load.</summary>
    public long RateLimited => Interlocked.Read(ref RateLimitedField);

    /// <summary>Links evicted to make room for a new peer's link (<see cref="DataPlaneOptions.MaxLinks"/>).</summary>
    public long LinksEvicted => Interlocked.Read(ref LinksEvictedField);

    /// <summary>Dropped: an unexpected exception while handling the packet (a bug; logged).</summary>
    public long InternalError => Interlocked.Read(ref InternalErrorField);
}
