using System.Text.Json.Serialization;
using Skywire.Apps.Chat;

namespace Skywire.Chat;

/// <summary>An API error: <c>{"error": "..."}</c>.</summary>
internal sealed record ApiError(string Error);

/// <summary><c>PUT /api/contacts/{key}</c>: <c>{"nickname": "..."}</c> (empty removes it).</summary>
internal sealed record ContactRequest(string? Nickname);

/// <summary><c>POST /api/messages</c>: <c>{"to": "PUBKEY", "text": "..."}</c>.</summary>
internal sealed record SendRequest(string? To, string? Text);

[JsonSourceGenerationOptions(PropertyNamingPolicy = JsonKnownNamingPolicy.CamelCase)]
[JsonSerializable(typeof(ApiError))]
[JsonSerializable(typeof(ContactRequest))]
[JsonSerializable(typeof(SendRequest))]
[JsonSerializable(typeof(ChatContact))]
[JsonSerializable(typeof(ChatEntry))]
internal sealed partial class ChatWebJsonContext : JsonSerializerContext;
