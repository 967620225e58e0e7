using System.Globalization;
using Skywire.Protocol;

namespace Skywire.Core.Metering;

/// <summary>One payout line: a node, its Skycoin address and the droplets it is paid (a multiple of 1000).</summary>
/// <param name="Node">The provider's node key.</param>
/// <param name="Address">Its Skycoin address: its signed binding's, else the one derived from its key.</param>
/// <param name="Droplets">Amount, rounded down to Skycoin's 3-decimal precision.</param>
public sealed record PayoutRow(PubKey Node, string Address, long Droplets);

/// <summary>An exported payout day.</summary>
/// <param name="Day">yyyy-MM-dd.</param>
/// <param name="Epoch">The epoch being filled when it was exported.</param>
/// <param name="Rows">Payout lines sorted by address.</param>
/// <param name="Carried">Provider droplets left in the ledger (below the minimum or the precision) for a later day.</param>
/// <param name="LedgerRoot">The latest signed epoch root at export.</param>
/// <param name="AtMs">When exported.</param>
/// <param name="TxId">The wallet's transaction id once recorded as paid.</param>
public sealed record PayoutDay(string Day, long Epoch, IReadOnlyList<PayoutRow> Rows, long Carried, string LedgerRoot, long AtMs, string? TxId = null)
{
    /// <summary>Skycoin allows 3 decimals of a coin: amounts are multiples of 1000 droplets.</summary>
    public const long Precision = 1000;

    /// <summary>Droplets per SKY.</summary>
    public const long DropletsPerSky = 1_000_000;

    /// <summary>Total paid out.</summary>
    public long Total => Rows.Sum(r => r.Droplets);

    /// <summary>True for a yyyy-MM-dd date.</summary>
    public static bool IsDay(string? day) =>
        day is { Length: 10 } && DateOnly.TryParseExact(day, "yyyy-MM-dd", CultureInfo.InvariantCulture, DateTimeStyles.None, out _);

    /// <summary>Droplets as SKY with 6 decimals ("1.234000").</summary>
    public static string Sky(long droplets) =>
        (droplets / DropletsPerSky).ToString(CultureInfo.InvariantCulture) + "." + (Math.Abs(droplets) % DropletsPerSky).ToString("D6", CultureInfo.InvariantCulture);
}
