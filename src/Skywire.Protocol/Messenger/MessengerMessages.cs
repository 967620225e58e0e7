using System.Text.Json.Serialization;

namespace Skywire.Protocol.Messenger;

// Messenger JSON payloads (docs/protocol.md §8). Keys travel as 66 lowercase hex characters, times as Unix milliseconds.

/// <summary>First frame of a connection (client to messenger).</summary>
public sealed record MessengerHello
{
    /// <summary>Protocol version; see <see cref="MessengerProtocol.Version"/>.</summary>
    public int Version { get; init; }
    /// <summary>Hex 64-byte compact ECDSA signature by the client's key over SHA-256(<c>"skywire-messenger-hello" || handshake hash</c>).</summary>
    public string Signature { get; init; } = "";
    /// <summary>Free-form software identification.</summary>
    public string? Agent { get; init; }
    /// <summary>
    /// Set by a messenger opening a link to another messenger of the same store (docs/protocol.md §8.8): the
    /// acceptor answers only once its own view of the store lists this key as a messenger (or refuses when it does
    /// not within the handshake timeout), so the link's first PeerSend never meets a view that lags behind.
    /// </summary>
    public bool? Peer { get; init; }
}

/// <summary>The messenger's answer to <see cref="MessengerHello"/>: the limits it enforces.</summary>
public sealed record MessengerHelloAck
{
    public int Version { get; init; }
    /// <summary>The client's key as the messenger authenticated it.</summary>
    public string Key { get; init; } = "";
    /// <summary>Largest sealed envelope accepted in a Send.</summary>
    public int MaxEnvelopeSize { get; init; }
    /// <summary>Initial per-direction window of a relayed stream, in record bytes.</summary>
    public int StreamWindow { get; init; }
    /// <summary>Store-and-forward limits for an offline key.</summary>
    public int QueueMaxMessages { get; init; }
    public long QueueMaxBytes { get; init; }
    public long QueueTtlMs { get; init; }
    /// <summary>Sustained messages (and requests) per second allowed per key, and the burst.</summary>
    public double RatePerSecond { get; init; }
    public int RateBurst { get; init; }
    /// <summary>Messages that were waiting for this key and follow this frame.</summary>
    public int Queued { get; init; }
}

/// <summary>Failure answer to a request.</summary>
public sealed record MessengerError
{
    public MessengerErrorCode Code { get; init; }
    public string Message { get; init; } = "";
}

/// <summary>An empty success payload.</summary>
public sealed record OkResult;

/// <summary>Tells a sender that one of its messages was dropped.</summary>
public sealed record DropNotice
{
    /// <summary>The recipient key of the dropped message.</summary>
    public string To { get; init; } = "";
    /// <summary>The request id the sender gave the Send frame.</summary>
    public uint MessageId { get; init; }
    public DropReason Reason { get; init; }
    public string? Detail { get; init; }
}

/// <summary>One service a key offers.</summary>
public sealed record ServiceOffer
{
    /// <summary>Unique per key (1-64 characters).</summary>
    public string Name { get; init; } = "";
    /// <summary>Kind of service, e.g. "chat", "socks", "skywire-node" (1-64 characters).</summary>
    public string Type { get; init; } = "";
    /// <summary>Free attributes (string to string), matched exactly by queries.</summary>
    public Dictionary<string, string>? Attributes { get; init; }
    /// <summary>When set, only these keys (hex) see the entry in query results (the owner always does).</summary>
    public List<string>? AllowKeys { get; init; }
}

/// <summary>Offer or refresh services (replaces entries of the same names).</summary>
public sealed record OfferRequest
{
    public List<ServiceOffer> Services { get; init; } = [];
    /// <summary>How long the entries live unless refreshed; 0 = the messenger's default. Capped by the messenger.</summary>
    public long TtlMs { get; init; }
}

/// <summary>Answer to <see cref="OfferRequest"/>.</summary>
public sealed record OfferResult
{
    /// <summary>When the entries expire (Unix ms) unless offered again.</summary>
    public long ExpiresAtMs { get; init; }
    /// <summary>The TTL the messenger applied.</summary>
    public long TtlMs { get; init; }
}

/// <summary>Withdraw services by name (an empty list withdraws all of the caller's).</summary>
public sealed record WithdrawRequest
{
    public List<string> Names { get; init; } = [];
}

/// <summary>A directory query; every given criterion must match.</summary>
public sealed record ServiceQuery
{
    /// <summary>Only entries of this key (hex).</summary>
    public string? Key { get; init; }
    /// <summary>Only entries of this type.</summary>
    public string? Type { get; init; }
    /// <summary>Only entries of this name.</summary>
    public string? Name { get; init; }
    /// <summary>Only entries having every one of these attributes with equal values.</summary>
    public Dictionary<string, string>? Attributes { get; init; }
    /// <summary>Page size (1-100; 0 = 20).</summary>
    public int Limit { get; init; }
    /// <summary>Cursor: <see cref="ServiceQueryResult.Next"/> of the previous page.</summary>
    public string? After { get; init; }
}

/// <summary>One directory entry in a query result.</summary>
public sealed record ServiceEntry
{
    public string Key { get; init; } = "";
    public string Name { get; init; } = "";
    public string Type { get; init; } = "";
    public Dictionary<string, string>? Attributes { get; init; }
    /// <summary>Whether the key is connected to this messenger now.</summary>
    public bool Online { get; init; }
    public long ExpiresAtMs { get; init; }
}

/// <summary>One page of query results, in (key, name) order.</summary>
public sealed record ServiceQueryResult
{
    public List<ServiceEntry> Entries { get; init; } = [];
    /// <summary>Number of entries matching the query (all pages).</summary>
    public int Total { get; init; }
    /// <summary>Cursor of the next page; null on the last page.</summary>
    public string? Next { get; init; }
}

[JsonSourceGenerationOptions(PropertyNamingPolicy = JsonKnownNamingPolicy.CamelCase, DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull)]
[JsonSerializable(typeof(MessengerHello))]
[JsonSerializable(typeof(MessengerHelloAck))]
[JsonSerializable(typeof(MessengerError))]
[JsonSerializable(typeof(OkResult))]
[JsonSerializable(typeof(DropNotice))]
[JsonSerializable(typeof(OfferRequest))]
[JsonSerializable(typeof(OfferResult))]
[JsonSerializable(typeof(WithdrawRequest))]
[JsonSerializable(typeof(ServiceQuery))]
[JsonSerializable(typeof(ServiceQueryResult))]
public sealed partial class MessengerJsonContext : JsonSerializerContext;
