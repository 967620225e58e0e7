using Skywire.Protocol.Metering;

namespace Skywire.Core.Metering;

/// <summary>
/// The money rules as pure functions of the evidence (docs/metering.md "Settlement"). Everything is integer:
/// a charge is computed on cumulative totals, so per-epoch amounts telescope to the charge of the total exactly.
/// </summary>
public static class Settlement
{
    /// <summary>Bytes in a GiB: prices are droplets per GiB.</summary>
    public const int GiBShift = 30;

    /// <summary>⌊bytes × price / 2^30⌋ droplets, computed in 128 bits and capped at <see cref="MeteringWire.MaxSpendDroplets"/>.</summary>
    public static long Charge(ulong bytes, ulong pricePerGiB)
    {
        var value = ((UInt128)bytes * pricePerGiB) >> GiBShift;
        return value > MeteringWire.MaxSpendDroplets ? (long)MeteringWire.MaxSpendDroplets : (long)value;
    }

    /// <summary>⌊amount × bps / 10^4⌋.</summary>
    public static long Fee(Int128 amount, ushort feeBps) => (long)(amount * feeBps / 10_000);

    /// <summary>
    /// Paid bytes per hop in one direction: the co-signed bytes of each hop, taken in the direction of travel and
    /// bounded by the cap and by every hop before it (a node cannot be paid for delivering more than it received).
    /// Index = hop.
    /// </summary>
    public static ulong[] Flow(IReadOnlyList<ulong> coSigned, MeteringDirection direction, ulong cap)
    {
        var n = coSigned.Count;
        var flow = new ulong[n];
        var previous = cap;
        for (var step = 0; step < n; step++)
        {
            var hop = direction == MeteringDirection.Forward ? step : n - 1 - step;
            previous = Math.Min(coSigned[hop], previous);
            flow[hop] = previous;
        }

        return flow;
    }

    /// <summary>
    /// What each position has earned in total (index 1..relays+1; 0, the source, earns nothing): a relay at position
    /// j is paid for forward bytes it delivered on hop j and reverse bytes it delivered on hop j−1; the destination for
    /// forward bytes delivered to it (hop k) and reverse bytes that reached the source (hop 0).
    /// </summary>
    public static long[] Earned(RouteTerms terms, ulong[] flowForward, ulong[] flowReverse)
    {
        ArgumentNullException.ThrowIfNull(terms);
        var k = terms.Relays.Count;
        var earned = new long[k + 2];
        for (var j = 1; j <= k; j++)
        {
            var relay = terms.Relays[j - 1];
            earned[j] = Charge(flowForward[j], relay.PriceForward) + Charge(flowReverse[j - 1], relay.PriceReverse);
        }

        // The destination is where reverse traffic enters, so no node before it can bracket a claim it makes with the
        // relay next to it: it is paid for the reverse bytes the source (the payer) confirms it received.
        earned[k + 1] = Charge(flowForward[k], terms.DestinationPriceForward) + Charge(flowReverse[0], terms.DestinationPriceReverse);
        return earned;
    }

    /// <summary>What the source must hold to open a route: the cost of one full window in each direction, fee included.</summary>
    public static long WindowCost(RouteTerms terms)
    {
        ArgumentNullException.ThrowIfNull(terms);
        var w = terms.WindowBytes;
        var flow = Enumerable.Repeat(w, terms.HopCount).ToArray();
        Int128 gross = 0;
        foreach (var e in Earned(terms, flow, flow))
        {
            gross += e;
        }

        var total = gross + Fee(gross, terms.FeeBps);
        return total > MeteringWire.MaxSpendDroplets ? (long)MeteringWire.MaxSpendDroplets + 1 : (long)total;
    }
}
