using System.Buffers;
using System.Text.Json;

namespace Viscript.Signal.Internal;

/// <summary>JSON helpers that read the way Go's encoding/json does: field names case-insensitive, unknown fields ignored.</summary>
internal static class SignalJson
{
    public static readonly byte[] Null = "null"u8.ToArray();

    /// <summary>Parses a whole JSON value; throws <see cref="JsonException"/> on anything else (trailing bytes included).</summary>
    public static JsonElement Parse(ReadOnlySequence<byte> json)
    {
        var reader = new Utf8JsonReader(json, new JsonReaderOptions { AllowTrailingCommas = false, CommentHandling = JsonCommentHandling.Disallow });
        var element = JsonElement.ParseValue(ref reader);
        if (reader.Read())
        {
            throw new JsonException("trailing data after the JSON value");
        }

        return element;
    }

    public static bool TryParse(ReadOnlySequence<byte> json, out JsonElement element)
    {
        try
        {
            element = Parse(json);
            return true;
        }
        catch (JsonException)
        {
            element = default;
            return false;
        }
    }

    /// <summary>Finds a property by name, exact match first, then case-insensitive (Go's rule).</summary>
    public static bool TryGetProperty(JsonElement obj, string name, out JsonElement value)
    {
        if (obj.ValueKind != JsonValueKind.Object)
        {
            value = default;
            return false;
        }

        if (obj.TryGetProperty(name, out value))
        {
            return true;
        }

        foreach (var property in obj.EnumerateObject())
        {
            if (string.Equals(property.Name, name, StringComparison.OrdinalIgnoreCase))
            {
                value = property.Value;
                return true;
            }
        }

        value = default;
        return false;
    }

    /// <summary>Reads an optional unsigned field; false when present but not a uint64 number.</summary>
    public static bool TryGetUInt64(JsonElement obj, string name, out ulong? value)
    {
        value = null;
        if (!TryGetProperty(obj, name, out var element) || element.ValueKind == JsonValueKind.Null)
        {
            return true;
        }

        if (element.ValueKind == JsonValueKind.Number && element.TryGetUInt64(out var v))
        {
            value = v;
            return true;
        }

        return false;
    }

    public static bool TryGetInt64(JsonElement obj, string name, out long? value)
    {
        value = null;
        if (!TryGetProperty(obj, name, out var element) || element.ValueKind == JsonValueKind.Null)
        {
            return true;
        }

        if (element.ValueKind == JsonValueKind.Number && element.TryGetInt64(out var v))
        {
            value = v;
            return true;
        }

        return false;
    }

    public static string? GetString(JsonElement obj, string name) =>
        TryGetProperty(obj, name, out var element) && element.ValueKind == JsonValueKind.String ? element.GetString() : null;

    /// <summary>Request id of our extension, when a request or reply carries one.</summary>
    public static ulong? GetRid(JsonElement element) =>
        TryGetUInt64(element, "Rid", out var rid) ? rid : null;

    public static byte[] Write(Action<Utf8JsonWriter> body)
    {
        var buffer = new ArrayBufferWriter<byte>(64);
        using (var writer = new Utf8JsonWriter(buffer))
        {
            body(writer);
        }

        return buffer.WrittenSpan.ToArray();
    }
}
