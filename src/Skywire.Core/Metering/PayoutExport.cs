using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using System.Text.Json.Serialization;
using Skywire.Core.Crypto;

namespace Skywire.Core.Metering;

/// <summary>One exported file and its hash.</summary>
/// <param name="Name">File name inside the exports folder.</param>
/// <param name="Sha256">Lowercase hex SHA-256 of its bytes.</param>
/// <param name="Rows">Lines.</param>
/// <param name="Droplets">Sum of its amounts.</param>
public sealed record PayoutFile(
    [property: JsonPropertyName("name")] string Name,
    [property: JsonPropertyName("sha256")] string Sha256,
    [property: JsonPropertyName("rows")] int Rows,
    [property: JsonPropertyName("droplets")] long Droplets);

/// <summary>The signed manifest of a payout day.</summary>
public sealed record PayoutManifest
{
    /// <summary>yyyy-MM-dd.</summary>
    [JsonPropertyName("day")]
    public required string Day { get; init; }

    /// <summary>The latest signed epoch root when exported.</summary>
    [JsonPropertyName("ledger_root")]
    public required string LedgerRoot { get; init; }

    /// <summary>The manager key that signs (hex).</summary>
    [JsonPropertyName("manager")]
    public required string Manager { get; init; }

    /// <summary>Payout lines.</summary>
    [JsonPropertyName("rows")]
    public required int Rows { get; init; }

    /// <summary>Total droplets paid out.</summary>
    [JsonPropertyName("total_droplets")]
    public required long TotalDroplets { get; init; }

    /// <summary>Provider droplets carried to a later day.</summary>
    [JsonPropertyName("carried_droplets")]
    public required long CarriedDroplets { get; init; }

    /// <summary>The files, with hashes.</summary>
    [JsonPropertyName("files")]
    public required IReadOnlyList<PayoutFile> Files { get; init; }

    /// <summary>The manager's signature over the manifest without this field (hex).</summary>
    [JsonPropertyName("signature")]
    public string? Signature { get; init; }
}

[JsonSourceGenerationOptions(WriteIndented = true, DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull)]
[JsonSerializable(typeof(PayoutManifest))]
internal sealed partial class PayoutJsonContext : JsonSerializerContext;

/// <summary>
/// Writes and checks a day's payout files: <c>payouts-DAY.csv</c> (<c>address,droplets</c>), <c>payouts-DAY.sky.csv</c>
/// (<c>address,coins</c>, the shape <c>skycoin-cli createRawTransaction --csv</c> reads), at most
/// <see cref="RowsPerFile"/> lines per file (one transaction each, well under Skycoin's 32 KiB limit), and
/// <c>manifest-DAY.json</c> signed by the manager. No chain access: a wallet pays the file, <c>ledger paid</c> records the txid.
/// </summary>
public static class PayoutExport
{
    /// <summary>Lines per file.</summary>
    public const int RowsPerFile = 200;

    private static readonly byte[] s_domain = "skywire/ledger/v1/manifest\0"u8.ToArray();

    /// <summary>Every file of a day (name → bytes), manifest last, signed with <paramref name="manager"/>.</summary>
    public static IReadOnlyList<KeyValuePair<string, byte[]>> Render(PayoutDay day, KeyPair manager)
    {
        ArgumentNullException.ThrowIfNull(day);
        ArgumentNullException.ThrowIfNull(manager);
        var (files, manifest) = Unsigned(day, manager.Public.ToString());
        var signed = manifest with { Signature = Convert.ToHexStringLower(manager.Sign(SigningBytes(manifest))) };
        return [.. files, KeyValuePair.Create(ManifestName(day.Day), Encoding.UTF8.GetBytes(JsonSerializer.Serialize(signed, PayoutJsonContext.Default.PayoutManifest) + "\n"))];
    }

    /// <summary>Writes the files into <paramref name="directory"/> (each atomically: temporary name, then rename).</summary>
    public static IReadOnlyList<string> Write(string directory, PayoutDay day, KeyPair manager)
    {
        Directory.CreateDirectory(directory);
        var written = new List<string>();
        foreach (var (name, bytes) in Render(day, manager))
        {
            var path = Path.Combine(directory, name);
            var temp = path + ".tmp";
            File.WriteAllBytes(temp, bytes);
            File.Move(temp, path, overwrite: true);
            written.Add(path);
        }

        return written;
    }

    /// <summary>Null when the files in <paramref name="directory"/> are exactly what the ledger says and the manifest is signed by <paramref name="manager"/>; else the problem.</summary>
    public static string? Verify(string directory, PayoutDay day, Protocol.PubKey manager)
    {
        ArgumentNullException.ThrowIfNull(day);
        var manifestPath = Path.Combine(directory, ManifestName(day.Day));
        if (!File.Exists(manifestPath))
        {
            return $"{day.Day}: {ManifestName(day.Day)} is missing";
        }

        PayoutManifest? onDisk;
        try
        {
            onDisk = JsonSerializer.Deserialize(File.ReadAllBytes(manifestPath), PayoutJsonContext.Default.PayoutManifest);
        }
        catch (JsonException e)
        {
            return $"{day.Day}: manifest does not parse ({e.Message})";
        }

        var (files, expected) = Unsigned(day, manager.ToString());
        if (onDisk is null || !Same(onDisk with { Signature = null }, expected))
        {
            return $"{day.Day}: manifest differs from the ledger's figures";
        }

        var sig = onDisk.Signature is { Length: 128 } hex ? Convert.FromHexString(hex) : [];
        if (!KeyPair.Verify(manager, SigningBytes(expected), sig))
        {
            return $"{day.Day}: manifest signature does not verify";
        }

        foreach (var (name, bytes) in files)
        {
            var path = Path.Combine(directory, name);
            if (!File.Exists(path) || !File.ReadAllBytes(path).AsSpan().SequenceEqual(bytes))
            {
                return $"{day.Day}: {name} is missing or differs from the ledger (hash in the manifest: {Hash(bytes)})";
            }
        }

        return null;
    }

    /// <summary>Manifest file name of a day.</summary>
    public static string ManifestName(string day) => $"manifest-{day}.json";

    /// <summary>Droplets as Skycoin coins with 3 decimals (amounts are multiples of 1000 droplets).</summary>
    public static string Coins(long droplets) =>
        (droplets / PayoutDay.DropletsPerSky).ToString(CultureInfo.InvariantCulture) + "." +
        (droplets % PayoutDay.DropletsPerSky / PayoutDay.Precision).ToString("D3", CultureInfo.InvariantCulture);

    private static (List<KeyValuePair<string, byte[]>> Files, PayoutManifest Manifest) Unsigned(PayoutDay day, string manager)
    {
        var files = new List<KeyValuePair<string, byte[]>>();
        var entries = new List<PayoutFile>();
        var chunks = day.Rows.Chunk(RowsPerFile).ToList();
        for (var i = 0; i < Math.Max(1, chunks.Count); i++)
        {
            var rows = i < chunks.Count ? chunks[i] : [];
            var suffix = chunks.Count > 1 ? $"-{i + 1}" : "";
            var droplets = new StringBuilder();
            var coins = new StringBuilder();
            foreach (var row in rows)
            {
                droplets.Append(row.Address).Append(',').Append(row.Droplets.ToString(CultureInfo.InvariantCulture)).Append('\n');
                coins.Append(row.Address).Append(',').Append(Coins(row.Droplets)).Append('\n');
            }

            foreach (var (name, text) in new[] { ($"payouts-{day.Day}{suffix}.csv", droplets), ($"payouts-{day.Day}{suffix}.sky.csv", coins) })
            {
                var bytes = Encoding.UTF8.GetBytes(text.ToString());
                files.Add(KeyValuePair.Create(name, bytes));
                entries.Add(new PayoutFile(name, Hash(bytes), rows.Length, rows.Sum(r => r.Droplets)));
            }
        }

        var manifest = new PayoutManifest
        {
            Day = day.Day,
            LedgerRoot = day.LedgerRoot,
            Manager = manager,
            Rows = day.Rows.Count,
            TotalDroplets = day.Total,
            CarriedDroplets = day.Carried,
            Files = entries,
        };
        return (files, manifest);
    }

    private static bool Same(PayoutManifest a, PayoutManifest b) =>
        JsonSerializer.Serialize(a, PayoutJsonContext.Default.PayoutManifest) == JsonSerializer.Serialize(b, PayoutJsonContext.Default.PayoutManifest);

    private static byte[] SigningBytes(PayoutManifest manifest) =>
        [.. s_domain, .. SHA256.HashData(Encoding.UTF8.GetBytes(JsonSerializer.Serialize(manifest with { Signature = null }, PayoutJsonContext.Default.PayoutManifest)))];

    private static string Hash(byte[] bytes) => Convert.ToHexStringLower(SHA256.HashData(bytes));
}
