using System.Globalization;
using System.Text.Json;
using System.Text.Json.Serialization;
using Skywire.Protocol;

namespace Skywire.Core.Manager.Store;

/// <summary>
/// The key layout of the mesh in a store (docs/architecture.md "Manager state"), relative to the store prefix:
/// <code>
/// managers/&lt;id&gt;                    leased   a manager process is alive (its listener)
/// presence/&lt;node&gt;                  leased   which manager the node is connected to
/// links/&lt;node&gt;                     leased   the node's last link report, written by its manager
/// apps/&lt;node&gt;/&lt;name&gt;              leased   an app in the tracker, written by its node's manager
/// routes/&lt;session&gt;                  -        a live route: owner manager, path, labels
/// labels/&lt;node&gt;/&lt;inLink&gt;/&lt;label&gt;   -        a label in use, claimed create-only in the route's transaction
/// cmd/&lt;node&gt;/&lt;id&gt;                 leased   a command for a node connected to another manager
/// ack/&lt;id&gt;                        leased   that command's answer
/// </code>
/// Every value is a small JSON document naming the manager that wrote it. Values come from a shared store that other
/// clients can write: <see cref="TryDecode{T}"/> and the key parsers return null for anything malformed, never throw.
/// </summary>
public static class MeshStoreCodec
{
    /// <summary>Largest value the manager reads (bigger ones are ignored as hostile).</summary>
    public const int MaxValueBytes = 256 * 1024;

    public const string Managers = "managers/";
    public const string Presence = "presence/";
    public const string Links = "links/";
    public const string Apps = "apps/";
    public const string Routes = "routes/";
    public const string Labels = "labels/";
    public const string Commands = "cmd/";
    public const string Acks = "ack/";

    public static string ManagerKey(string id) => Managers + id;

    public static string PresenceKey(PubKey node) => Presence + node;

    public static string LinksKey(PubKey node) => Links + node;

    public static string AppKey(PubKey node, string name) => Apps + node + "/" + name;

    public static string RouteKey(ulong sessionId) => Routes + sessionId.ToString("x16", CultureInfo.InvariantCulture);

    public static string LabelKey(PubKey node, PubKey inLink, uint label) => $"{Labels}{node}/{inLink}/{label}";

    public static string CommandKey(PubKey node, string id) => Commands + node + "/" + id;

    public static string AckKey(string id) => Acks + id;

    /// <summary>The value as JSON bytes.</summary>
    public static byte[] Encode<T>(T value) => JsonSerializer.SerializeToUtf8Bytes(value, typeof(T), MeshStoreJson.Default);

    /// <summary>The value, or null when it is not a well-formed <typeparamref name="T"/> (too large, bad JSON, wrong shape).</summary>
    public static T? TryDecode<T>(byte[] bytes)
        where T : class
    {
        if (bytes is null || bytes.Length == 0 || bytes.Length > MaxValueBytes)
        {
            return null;
        }

        try
        {
            return JsonSerializer.Deserialize(bytes, typeof(T), MeshStoreJson.Default) as T;
        }
        catch (Exception ex) when (ex is JsonException or NotSupportedException or ArgumentException or InvalidOperationException)
        {
            return null;
        }
    }

    /// <summary>The node of a key <c>&lt;kind&gt;&lt;node&gt;</c>, or null.</summary>
    public static PubKey? NodeOf(string key, string kind) =>
        key.StartsWith(kind, StringComparison.Ordinal) && PubKey.TryParse(key.AsSpan(kind.Length).ToString(), out var node) ? node : null;

    /// <summary>The (node, name) of an app key, or null.</summary>
    public static (PubKey Node, string Name)? AppOf(string key)
    {
        if (!key.StartsWith(Apps, StringComparison.Ordinal))
        {
            return null;
        }

        var rest = key[Apps.Length..];
        var slash = rest.IndexOf('/', StringComparison.Ordinal);
        return slash > 0 && slash < rest.Length - 1 && PubKey.TryParse(rest[..slash], out var node) ? (node, rest[(slash + 1)..]) : null;
    }

    /// <summary>The session id of a route key, or null.</summary>
    public static ulong? RouteOf(string key) =>
        key.StartsWith(Routes, StringComparison.Ordinal) && ulong.TryParse(key.AsSpan(Routes.Length), NumberStyles.AllowHexSpecifier, CultureInfo.InvariantCulture, out var id) && id != 0 ? id : null;

    /// <summary>The (node, inLink, label) of a label key, or null.</summary>
    public static (PubKey Node, PubKey InLink, uint Label)? LabelOf(string key)
    {
        if (!key.StartsWith(Labels, StringComparison.Ordinal))
        {
            return null;
        }

        var parts = key[Labels.Length..].Split('/');
        return parts.Length == 3 && PubKey.TryParse(parts[0], out var node) && PubKey.TryParse(parts[1], out var inLink)
            && uint.TryParse(parts[2], NumberStyles.None, CultureInfo.InvariantCulture, out var label) && label != 0
            ? (node, inLink, label) : null;
    }

    /// <summary>The (node, id) of a command key, or null.</summary>
    public static (PubKey Node, string Id)? CommandOf(string key)
    {
        if (!key.StartsWith(Commands, StringComparison.Ordinal))
        {
            return null;
        }

        var rest = key[Commands.Length..];
        var slash = rest.IndexOf('/', StringComparison.Ordinal);
        return slash > 0 && slash < rest.Length - 1 && PubKey.TryParse(rest[..slash], out var node) ? (node, rest[(slash + 1)..]) : null;
    }
}

/// <summary>managers/&lt;id&gt;: a live manager.</summary>
public sealed class ManagerValue
{
    public string Listen { get; set; } = "";

    public DateTimeOffset Started { get; set; }
}

/// <summary>presence/&lt;node&gt;: the manager a node is connected to, and that registration's time.</summary>
public sealed class PresenceValue
{
    public string Manager { get; set; } = "";

    public string Link { get; set; } = "";

    public DateTimeOffset Since { get; set; }
}

/// <summary>links/&lt;node&gt;: the node's last link report.</summary>
public sealed class LinksValue
{
    public string Manager { get; set; } = "";

    public List<LinkValue> Links { get; set; } = [];
}

/// <summary>One link of a <see cref="LinksValue"/>.</summary>
public sealed class LinkValue
{
    public string Peer { get; set; } = "";

    public bool Up { get; set; }

    public long Rtt { get; set; }

    public double Loss { get; set; }
}

/// <summary>apps/&lt;node&gt;/&lt;name&gt;: an app in the tracker.</summary>
public sealed class AppValue
{
    public string Manager { get; set; } = "";

    public string Type { get; set; } = "";
}

/// <summary>routes/&lt;session&gt;: a live route and the manager that owns it (refreshes, repairs, closes it).</summary>
public sealed class RouteValue
{
    public string Owner { get; set; } = "";

    public string? Requester { get; set; }

    public List<string> Path { get; set; } = [];

    public List<uint> Forward { get; set; } = [];

    public List<uint> Reverse { get; set; } = [];

    public DateTimeOffset Created { get; set; }
}

/// <summary>labels/…: the route a label belongs to.</summary>
public sealed class LabelValue
{
    public string Session { get; set; } = "";
}

/// <summary>cmd/&lt;node&gt;/&lt;id&gt;: a manager command for a node connected to another manager.</summary>
public sealed class CommandValue
{
    public string From { get; set; } = "";

    public string Op { get; set; } = "";

    public JsonElement Message { get; set; }
}

/// <summary>ack/&lt;id&gt;: how the node answered a <see cref="CommandValue"/>.</summary>
public sealed class AckValue
{
    public bool Ok { get; set; }

    public int Code { get; set; }

    public string Message { get; set; } = "";
}

[JsonSourceGenerationOptions(PropertyNamingPolicy = JsonKnownNamingPolicy.CamelCase)]
[JsonSerializable(typeof(ManagerValue))]
[JsonSerializable(typeof(PresenceValue))]
[JsonSerializable(typeof(LinksValue))]
[JsonSerializable(typeof(AppValue))]
[JsonSerializable(typeof(RouteValue))]
[JsonSerializable(typeof(LabelValue))]
[JsonSerializable(typeof(CommandValue))]
[JsonSerializable(typeof(AckValue))]
internal sealed partial class MeshStoreJson : JsonSerializerContext;
