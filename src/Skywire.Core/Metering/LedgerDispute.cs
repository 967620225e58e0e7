namespace Skywire.Core.Metering;

/// <summary>The deterministic dispute rules (docs/metering.md "Disputes"). Numbers are stable: they appear in --json output.</summary>
public enum DisputeCode
{
    /// <summary>D1: bad encoding or signature, unknown terms, wrong key for the hop. Rejected.</summary>
    Forged = 1,

    /// <summary>D2: two signed messages that cannot both be true (same seq, different content; or counters that go down). The signers forfeit further credit on the route.</summary>
    Equivocation = 2,

    /// <summary>D3: a node delivered more than it received (final receipts). The node is paid at most what it received.</summary>
    Conservation = 3,

    /// <summary>D4: more bytes entered the route than the source authorized. The excess is unpaid.</summary>
    OverCap = 4,

    /// <summary>D5: claims exceed the source's reservation. Paid up to the reservation.</summary>
    OverBudget = 5,

    /// <summary>D6: a receipt ends outside the terms' validity or arrives after the route was released. Void.</summary>
    Stale = 6,

    /// <summary>D7: a hop lost more than the bound. Not fraud: a visible loss status.</summary>
    Loss = 7,

    /// <summary>D8: the route was released with a hop that never produced a co-signed receipt. Unpaid, with the reason.</summary>
    Gap = 8,
}

/// <summary>A dispute with its evidence (the raw signed messages, hex) and the nodes it names.</summary>
/// <param name="Epoch">The epoch it was found in (the next close).</param>
/// <param name="Code">The rule.</param>
/// <param name="Route">Route id (hex), or empty when the message could not be tied to a route.</param>
/// <param name="Named">Nodes the rule names as at fault (hex keys); empty for informational codes.</param>
/// <param name="Reason">A sentence for the operator.</param>
/// <param name="Evidence">The signed messages (hex) that prove it.</param>
public sealed record LedgerDispute(long Epoch, DisputeCode Code, string Route, IReadOnlyList<string> Named, string Reason, IReadOnlyList<string> Evidence)
{
    /// <summary>True for the rules that say someone cheated (D1 forged, D2 equivocation, D3 conservation); the others are statuses.</summary>
    public bool IsFraud => Code is DisputeCode.Forged or DisputeCode.Equivocation or DisputeCode.Conservation;

    /// <summary>"D3 conservation" style label.</summary>
    public string Label => $"D{(int)Code} {Code.ToString().ToLowerInvariant()}";
}
