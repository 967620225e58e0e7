using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using System.Text.Json.Serialization;
using Skywire.Protocol;

namespace Skywire.Apps.Chat;

/// <summary>
/// The plaintext of a Sky-Messenger chat message inside the end-to-end envelope (docs/messenger.md "Sky-Messenger in
/// the browser"): UTF-8 JSON <c>{"type":"skywire-chat/1","kind":"text","id","text","sentAt"}</c>, answered by the
/// recipient with <c>{"type":"skywire-chat/1","kind":"receipt","id"}</c> once it holds the message. Anything else that
/// is not JSON of another known type (e.g. <c>skywire chat send</c>'s bare text) is read as a plain text message.
/// </summary>
public sealed record ChatWireMessage
{
    /// <summary>The <c>type</c> of every chat message.</summary>
    public const string TypeName = "skywire-chat/1";

    /// <summary>Kind of a text message.</summary>
    public const string KindText = "text";

    /// <summary>Kind of a delivery receipt.</summary>
    public const string KindReceipt = "receipt";

    /// <summary>Longest message id accepted.</summary>
    public const int MaxIdLength = 64;

    [JsonPropertyName("type")]
    public string Type { get; init; } = TypeName;

    [JsonPropertyName("kind")]
    public string Kind { get; init; } = KindText;

    [JsonPropertyName("id")]
    public string Id { get; init; } = "";

    [JsonPropertyName("text")]
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public string? Text { get; init; }

    /// <summary>The sender's clock when it was written (Unix ms); shown, never trusted for ordering.</summary>
    [JsonPropertyName("sentAt")]
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingDefault)]
    public long SentAt { get; init; }

    /// <summary>A new random message id (16 hex characters).</summary>
    public static string NewId() => Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(8));

    /// <summary>The UTF-8 JSON bytes.</summary>
    public byte[] Encode() => JsonSerializer.SerializeToUtf8Bytes(this, ChatJsonContext.Default.ChatWireMessage);

    /// <summary>
    /// Reads a received plaintext. A chat message or receipt is returned as it is; text that is not JSON, or JSON without
    /// a <c>type</c>, becomes a text message without an id (a bare <c>skywire chat send</c>); JSON of another type
    /// (e.g. <c>skywire-direct/1</c> brokering, which is meant for nodes) and malformed chat messages give null.
    /// </summary>
    public static ChatWireMessage? Decode(ReadOnlySpan<byte> plaintext)
    {
        string? type = null;
        if (plaintext.Length > 0 && plaintext[0] == (byte)'{')
        {
            try
            {
                using var doc = JsonDocument.Parse(plaintext.ToArray());
                if (doc.RootElement.ValueKind == JsonValueKind.Object && doc.RootElement.TryGetProperty("type", out var t) && t.ValueKind == JsonValueKind.String)
                {
                    type = t.GetString();
                }
            }
            catch (JsonException)
            {
                type = null;
            }
        }

        if (type is null)
        {
            string text;
            try
            {
                text = new UTF8Encoding(false, true).GetString(plaintext);
            }
            catch (DecoderFallbackException)
            {
                return null;
            }

            return new ChatWireMessage { Kind = KindText, Id = "", Text = text };
        }

        if (type != TypeName)
        {
            return null;
        }

        ChatWireMessage? message;
        try
        {
            message = JsonSerializer.Deserialize(plaintext, ChatJsonContext.Default.ChatWireMessage);
        }
        catch (JsonException)
        {
            return null;
        }

        return message switch
        {
            { Id.Length: 0 or > MaxIdLength } => null,
            { Kind: KindText, Text: not null } => message,
            { Kind: KindReceipt } => message with { Text = null },
            _ => null,
        };
    }

    /// <summary>
    /// The fingerprint of a key as people compare it aloud: the first 16 bytes of SHA-256 over the 33-byte key, in 8 groups
    /// of 4 hex digits. Both ends of a conversation show the same words for the same key.
    /// </summary>
    public static string Fingerprint(PubKey key)
    {
        Span<byte> hash = stackalloc byte[32];
        SHA256.HashData(key.ToArray(), hash);
        var hex = Convert.ToHexStringLower(hash[..16]);
        var sb = new StringBuilder(40);
        for (var i = 0; i < hex.Length; i += 4)
        {
            if (i > 0)
            {
                sb.Append(' ');
            }

            sb.Append(hex, i, 4);
        }

        return sb.ToString();
    }
}
