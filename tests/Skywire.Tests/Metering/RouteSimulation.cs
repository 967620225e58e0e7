using Skywire.Protocol.Metering;

namespace Skywire.Tests.Metering;

/// <summary>
/// Honest traffic on one route: frames enter at the source (forward) or the destination (reverse), each hop loses
/// each frame with probability <c>loss</c>, and the receiver of every hop counts what arrives. At checkpoints every hop
/// produces the cumulative co-signed receipt an honest pair would; the last one is final.
/// </summary>
internal sealed class RouteSimulation
{
    public RouteSimulation(MeteringTestData route, Random random, double loss, int framesPerDirection, int checkpoints, ulong cap = ulong.MaxValue)
    {
        Route = route;
        var hops = route.Terms.HopCount;
        Bytes = new Dictionary<MeteringDirection, ulong[]>();
        Frames = new Dictionary<MeteringDirection, ulong[]>();
        foreach (var direction in new[] { MeteringDirection.Forward, MeteringDirection.Reverse })
        {
            var bytes = new ulong[hops];
            var frames = new ulong[hops];
            var marks = Enumerable.Range(0, checkpoints - 1).Select(_ => random.Next(framesPerDirection)).Append(framesPerDirection - 1).Order().ToArray();
            var seq = 1UL;
            var mark = 0;
            ulong entered = 0;
            for (var f = 0; f < framesPerDirection; f++)
            {
                var size = (ulong)random.Next(60, 1500);
                // Honest nodes forward only within the cap: the source stops, relays would drop the rest.
                if (entered + size <= cap)
                {
                    entered += size;
                    for (var step = 0; step < hops; step++)
                    {
                        if (random.NextDouble() < loss)
                        {
                            break;
                        }

                        var hop = direction == MeteringDirection.Forward ? step : hops - 1 - step;
                        bytes[hop] += size;
                        frames[hop]++;
                    }
                }

                while (mark < marks.Length && marks[mark] == f)
                {
                    var final = mark == marks.Length - 1;
                    for (var hop = 0; hop < hops; hop++)
                    {
                        Receipts.Add(route.Receipt(hop, direction, seq, bytes[hop], frames[hop], endMs: route.Terms.CreatedMs + 1000 + f, final: final));
                    }

                    seq++;
                    mark++;
                }
            }

            Bytes[direction] = bytes;
            Frames[direction] = frames;
        }
    }

    public MeteringTestData Route { get; }

    /// <summary>True received bytes per hop and direction.</summary>
    public Dictionary<MeteringDirection, ulong[]> Bytes { get; }

    public Dictionary<MeteringDirection, ulong[]> Frames { get; }

    /// <summary>Every receipt an honest run produces, in time order.</summary>
    public List<HopReceipt> Receipts { get; } = [];

    /// <summary>
    /// What each position earns from the true counters, computed apart from the ledger's code (BigInteger): relay j
    /// for forward bytes received on hop j and reverse bytes received on hop j−1, the destination for forward bytes it received (hop k) and
    /// reverse bytes the source received (hop 0).
    /// Honest counters never grow along the route, so no cap or minimum applies.
    /// </summary>
    public long[] Expected()
    {
        static long Charge(ulong bytes, ulong price) => (long)(new System.Numerics.BigInteger(bytes) * price / (1L << 30));
        var terms = Route.Terms;
        var k = terms.Relays.Count;
        var f = Bytes[MeteringDirection.Forward];
        var r = Bytes[MeteringDirection.Reverse];
        var expected = new long[k + 2];
        for (var j = 1; j <= k; j++)
        {
            expected[j] = Charge(f[j], terms.Relays[j - 1].PriceForward) + Charge(r[j - 1], terms.Relays[j - 1].PriceReverse);
        }

        expected[k + 1] = Charge(f[k], terms.DestinationPriceForward) + Charge(r[0], terms.DestinationPriceReverse);
        return expected;
    }
}
