using System.Text.Json.Serialization;

namespace Skywire.Core.Metering;

/// <summary>
/// One line of the ledger journal: the raw evidence (signed messages as hex) and the operator's acts, in the order
/// the ledger applied them. Balances, entries, disputes and roots are never stored as truth: they are recomputed
/// from these lines (`skywire ledger verify`).
/// </summary>
public sealed record LedgerRecord
{
    /// <summary>What the line is: grant, terms, receipt, auth, close, export, paid, end, binding.</summary>
    [JsonPropertyName("kind")]
    public required string Kind { get; init; }

    /// <summary>Manager clock when applied (Unix ms).</summary>
    [JsonPropertyName("at")]
    public long AtMs { get; init; }

    /// <summary>A node key (grant).</summary>
    [JsonPropertyName("node")]
    public string? Node { get; init; }

    /// <summary>An amount (grant) or the minimum payout (export), in droplets.</summary>
    [JsonPropertyName("droplets")]
    public long? Droplets { get; init; }

    /// <summary>A signed message as lowercase hex (terms, receipt, auth, binding), or a terms id (end).</summary>
    [JsonPropertyName("data")]
    public string? Data { get; init; }

    /// <summary>Epoch number (close).</summary>
    [JsonPropertyName("epoch")]
    public long? Epoch { get; init; }

    /// <summary>Epoch root, hex (close).</summary>
    [JsonPropertyName("root")]
    public string? Root { get; init; }

    /// <summary>The manager's signature over the root, hex (close).</summary>
    [JsonPropertyName("sig")]
    public string? Signature { get; init; }

    /// <summary>Payout day yyyy-MM-dd (export, paid).</summary>
    [JsonPropertyName("day")]
    public string? Day { get; init; }

    /// <summary>Transaction id the wallet reported (paid).</summary>
    [JsonPropertyName("txid")]
    public string? TxId { get; init; }

    /// <summary>Free text (grant reason).</summary>
    [JsonPropertyName("memo")]
    public string? Memo { get; init; }
}

/// <summary>Record kinds.</summary>
public static class LedgerRecordKind
{
    /// <summary>Operator credit to a consumer.</summary>
    public const string Grant = "grant";

    /// <summary>Route terms (opens a route and reserves funds).</summary>
    public const string Terms = "terms";

    /// <summary>A hop receipt (accepted or kept as dispute evidence).</summary>
    public const string Receipt = "receipt";

    /// <summary>A spend authorization.</summary>
    public const string Auth = "auth";

    /// <summary>Epoch close with its signed root.</summary>
    public const string Close = "close";

    /// <summary>Payout export of a day.</summary>
    public const string Export = "export";

    /// <summary>A day's payout recorded as paid.</summary>
    public const string Paid = "paid";

    /// <summary>The manager ended a route (closed or re-routed): its caps freeze, the reserve beyond them goes back now.</summary>
    public const string End = "end";

    /// <summary>A node's signed payout binding to another Skycoin address.</summary>
    public const string Binding = "binding";
}

[JsonSourceGenerationOptions(DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull, WriteIndented = false)]
[JsonSerializable(typeof(LedgerRecord))]
internal sealed partial class LedgerJsonContext : JsonSerializerContext;
