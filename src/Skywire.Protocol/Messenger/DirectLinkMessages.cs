using System.Text.Json;
using System.Text.Json.Serialization;

namespace Skywire.Protocol.Messenger;

/// <summary>Kinds of <see cref="DirectLinkMessage"/> (docs/protocol.md §8.6).</summary>
public static class DirectLinkKind
{
    /// <summary>The dialler's offer.</summary>
    public const string Offer = "offer";

    /// <summary>The answerer accepts.</summary>
    public const string Answer = "answer";

    /// <summary>The answerer refuses (with a <see cref="DirectLinkRefusal"/> reason).</summary>
    public const string Refuse = "refuse";
}

/// <summary>Stable reasons of a <c>refuse</c> (docs/protocol.md §8.6).</summary>
public static class DirectLinkRefusal
{
    /// <summary>No app of the offered name accepts streams there.</summary>
    public const string NoApp = "no-app";

    /// <summary>The offer is malformed or names a session already in use.</summary>
    public const string BadOffer = "bad-offer";

    /// <summary>Too many offers pending at the answerer.</summary>
    public const string Busy = "busy";

    /// <summary>The answerer does not take direct links.</summary>
    public const string Disabled = "disabled";

    /// <summary>The answerer has no link address to offer.</summary>
    public const string NoAddress = "no-address";
}

/// <summary>
/// The JSON a node seals in a messenger message to broker a direct link (docs/protocol.md §8.6):
/// offer <c>{type, kind:"offer", id, session, route, link, app}</c>, answer <c>{type, kind:"answer", id, route, link}</c>,
/// refusal <c>{type, kind:"refuse", id, reason}</c>.
/// </summary>
public sealed record DirectLinkMessage
{
    /// <summary>The type tag every direct-link message carries (anything else sent to a node key is not one).</summary>
    public const string TypeTag = "skywire-direct/1";

    /// <summary>Longest offer id.</summary>
    public const int MaxIdLength = 64;

    /// <summary><see cref="TypeTag"/> (a message without it is not a direct-link message).</summary>
    [JsonPropertyName("type")]
    public string? Type { get; init; }

    /// <summary>One of <see cref="DirectLinkKind"/>.</summary>
    [JsonPropertyName("kind")]
    public string? Kind { get; init; }

    /// <summary>The offer's id (1-64 characters), echoed by the answer or refusal.</summary>
    [JsonPropertyName("id")]
    public string? Id { get; init; }

    /// <summary>Offer: the end-to-end session id (§6; top bit set).</summary>
    [JsonPropertyName("session")]
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingDefault)]
    public ulong Session { get; init; }

    /// <summary>The route id the other end writes on packets to the sender (non-zero).</summary>
    [JsonPropertyName("route")]
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingDefault)]
    public uint Route { get; init; }

    /// <summary>The sender's link address, <c>ip:port</c>.</summary>
    [JsonPropertyName("link")]
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public string? Link { get; init; }

    /// <summary>Offer: the target app.</summary>
    [JsonPropertyName("app")]
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public string? App { get; init; }

    /// <summary>Refusal: one of <see cref="DirectLinkRefusal"/>.</summary>
    [JsonPropertyName("reason")]
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public string? Reason { get; init; }

    /// <summary>The message as the plaintext of a sealed message.</summary>
    public byte[] Serialize() => JsonSerializer.SerializeToUtf8Bytes(this, DirectLinkJsonContext.Default.DirectLinkMessage);

    /// <summary>Reads a sealed message's plaintext; null when it is not a direct-link message (not JSON, or another type).</summary>
    public static DirectLinkMessage? TryParse(ReadOnlySpan<byte> data)
    {
        try
        {
            var message = JsonSerializer.Deserialize(data, DirectLinkJsonContext.Default.DirectLinkMessage);
            return message is { Type: TypeTag } ? message : null;
        }
        catch (JsonException)
        {
            return null;
        }
    }
}

/// <summary>Source-generated JSON for <see cref="DirectLinkMessage"/>.</summary>
[JsonSerializable(typeof(DirectLinkMessage))]
internal sealed partial class DirectLinkJsonContext : JsonSerializerContext;
