namespace Skywire.Protocol.Messenger;

/// <summary>
/// Opcodes of the messenger protocol (docs/protocol.md §8). Frames use the shared stream frame shape
/// (<see cref="Framing.FrameCodec"/>); a response carries the request's opcode with the high bit set and echoes its
/// request id, and <see cref="Error"/> answers any request that failed. Never renumber: these values are on the wire.
/// </summary>
public enum MessengerOpcode : byte
{
    /// <summary>First frame of every connection, client to messenger (JSON <see cref="MessengerHello"/>).</summary>
    Hello = 0x01,
    /// <summary>Liveness request, either direction; the response has an empty payload.</summary>
    Ping = 0x02,

    /// <summary>Client to messenger: relay a sealed envelope to a key (binary <c>to | envelope</c>; request id = message id, no response).</summary>
    Send = 0x10,
    /// <summary>Messenger to client: a relayed envelope (binary <c>from | flags | envelope</c>, notification).</summary>
    Deliver = 0x11,
    /// <summary>Messenger to client: a message it sent was dropped (JSON <see cref="DropNotice"/>, notification).</summary>
    Dropped = 0x12,

    /// <summary>Client to messenger: open a relayed stream to a key (binary <c>to | handshake</c>); response: <c>circuit | handshake</c>.</summary>
    StreamOpen = 0x20,
    /// <summary>Messenger to client: a peer wants a stream (binary <c>circuit | from | handshake</c>); response: <c>handshake</c>, or Error to refuse.</summary>
    StreamIncoming = 0x21,
    /// <summary>Either direction: stream bytes (binary <c>circuit | AEAD record</c>, notification).</summary>
    StreamData = 0x22,
    /// <summary>Either direction: the receiver grants more window (binary <c>circuit | u32 bytes</c>, notification).</summary>
    StreamCredit = 0x23,
    /// <summary>Either direction: the circuit is gone (binary <c>circuit | u8 reason</c>, notification).</summary>
    StreamClose = 0x24,

    /// <summary>Client to messenger: offer (or refresh) services (JSON <see cref="OfferRequest"/>; response <see cref="OfferResult"/>).</summary>
    Offer = 0x30,
    /// <summary>Client to messenger: withdraw services by name (JSON <see cref="WithdrawRequest"/>; response <see cref="OkResult"/>).</summary>
    Withdraw = 0x31,
    /// <summary>Anyone: query the directory (JSON <see cref="ServiceQuery"/>; response <see cref="ServiceQueryResult"/>).</summary>
    Query = 0x32,

    /// <summary>
    /// Messenger to messenger (several messengers on one store, docs/protocol.md §8.8): relay a sealed envelope from a key
    /// connected to the sender to a key connected to the receiver (binary <c>from | to | envelope</c>; request id = the
    /// original message id, no response). Accepted only from a messenger listed in the shared store.
    /// </summary>
    PeerSend = 0x40,
    /// <summary>Messenger to messenger: a message a key of the receiver sent was dropped (binary <c>sender | DropNotice JSON</c>, notification).</summary>
    PeerDropped = 0x41,

    /// <summary>Failure answer to any request (JSON <see cref="MessengerError"/>; always a response).</summary>
    Error = 0xFF,
}

/// <summary>Stable error codes in <see cref="MessengerError"/>. Never renumber.</summary>
public enum MessengerErrorCode
{
    /// <summary>Malformed request or invalid arguments.</summary>
    BadRequest = 10,
    /// <summary>Authentication failed, or the caller may not do this.</summary>
    Forbidden = 20,
    /// <summary>The key is not connected (streams) or the thing does not exist.</summary>
    NotFound = 30,
    /// <summary>The key already has a live registration.</summary>
    Conflict = 40,
    /// <summary>The peer refused a stream.</summary>
    Refused = 50,
    /// <summary>The peer did not answer in time, or a limit of the messenger was reached.</summary>
    Unavailable = 60,
    /// <summary>Protocol version not supported.</summary>
    UnsupportedVersion = 70,
    /// <summary>The caller exceeded its rate limit.</summary>
    RateLimited = 80,
    /// <summary>Anything else.</summary>
    Internal = 90,
}

/// <summary>Why the messenger dropped a message (in <see cref="DropNotice"/>). Never renumber.</summary>
public enum DropReason
{
    /// <summary>The recipient is offline and its queue is at its message or byte limit.</summary>
    QueueFull = 10,
    /// <summary>The message waited longer than the queue TTL.</summary>
    Expired = 20,
    /// <summary>The sender exceeded its rate limit.</summary>
    RateLimited = 30,
    /// <summary>The recipient is online but not reading (its outbound queue is full).</summary>
    RecipientBusy = 40,
    /// <summary>The envelope is larger than <see cref="MessengerProtocol.MaxEnvelopeSize"/>.</summary>
    TooLarge = 50,
    /// <summary>The messenger's global store limits are reached (too many queued bytes or keys).</summary>
    StoreFull = 60,
}

/// <summary>Why a relayed stream circuit ended (<see cref="MessengerOpcode.StreamClose"/>). Never renumber.</summary>
public enum StreamCloseReason : byte
{
    /// <summary>The peer closed its end (after its authenticated end-of-stream, if any).</summary>
    Closed = 0,
    /// <summary>The peer aborted the stream.</summary>
    Aborted = 1,
    /// <summary>The peer's connection to the messenger was lost.</summary>
    PeerGone = 2,
    /// <summary>The circuit id is unknown to the messenger (late frame after a close).</summary>
    Unknown = 3,
}
