using CsCheck;
using Skywire.Core.Metering;
using Skywire.Protocol.Metering;

namespace Skywire.Tests.Metering;

public sealed class LedgerTests
{
    private const long Funds = 10_000_000_000;

    private static (Ledger Ledger, MemoryLedgerStore Store) Open(MeteringTestData route, long funds = Funds)
    {
        var store = new MemoryLedgerStore();
        var ledger = Ledger.Open(store, route.Manager.Public);
        Assert.Equal(LedgerStatus.Accepted, ledger.Grant(route.Nodes[0].Public, funds, 1_000, "test").Status);
        Assert.Equal(LedgerStatus.Accepted, ledger.OpenRoute(route.Terms.Encode(), 1_000_000).Status);
        return (ledger, store);
    }

    private static long AfterRelease(MeteringTestData route) => route.Terms.ExpiresMs + Ledger.ReleaseGraceMs;

    private static void AssertPaid(Ledger ledger, MeteringTestData route, long[] expected)
    {
        var r = ledger.Routes.Single();
        for (var position = 1; position < expected.Length; position++)
        {
            Assert.Equal(expected[position], r.Paid[position]);
            Assert.Equal(expected[position], ledger.Balance(Ledger.ProviderAccount(route.Terms.NodeAt(position))));
        }

        var gross = expected.Sum();
        Assert.Equal(gross * route.Terms.FeeBps / 10_000, r.FeePaid);
        Assert.Equal(r.FeePaid, ledger.Balance(Ledger.FeeAccount));
        Assert.Equal(Funds - gross - r.FeePaid, ledger.Balance(Ledger.ConsumerAccount(route.Nodes[0].Public)));
        Assert.Equal(0, ledger.Balances.Values.Sum());
    }

    private static void AssertReplays(Ledger ledger, MemoryLedgerStore store)
    {
        var again = Ledger.Open(store, ledger.Manager);
        Assert.Equal(ledger.Balances, again.Balances);
        Assert.Equal(ledger.Roots, again.Roots);
        Assert.Equal(ledger.Disputes.Select(d => d.Reason), again.Disputes.Select(d => d.Reason));
    }

    [Fact]
    public void Property_HonestLossyRuns_SettleExactly_NoFraudFlags_AnyDeliveryOrder()
    {
        // Random routes of 1–5 hops, loss 0–5 %, receipts dropped (not the final ones), duplicated and reordered,
        // epoch cuts anywhere: the settled figures equal the true counters' charges to the droplet.
        var gen = Gen.Select(Gen.Int[0, 4], Gen.Double[0, 0.05], Gen.Int[1, 6], Gen.Int);
        gen.Sample((relays, loss, checkpoints, seed) =>
        {
            var random = new Random(seed);
            using var route = new MeteringTestData(relays, feeBps: (ushort)random.Next(0, 5001));
            var sim = new RouteSimulation(route, random, loss, framesPerDirection: random.Next(1, 400), checkpoints);
            var (ledger, store) = Open(route);
            var deliveries = new List<HopReceipt>();
            foreach (var receipt in sim.Receipts)
            {
                var roll = random.Next(10);
                if (roll == 0 && !receipt.Final)
                {
                    continue;
                }

                deliveries.Add(receipt);
                if (roll == 1)
                {
                    deliveries.Add(receipt);
                }
            }

            deliveries = [.. deliveries.OrderBy(_ => random.Next())];
            var at = 2_000_000L;
            foreach (var receipt in deliveries)
            {
                var outcome = ledger.SubmitReceipt(receipt.Encode(), at);
                Assert.True(outcome.Status is LedgerStatus.Accepted or LedgerStatus.Duplicate, outcome.Message);
                if (random.Next(8) == 0)
                {
                    ledger.CloseEpoch(route.Manager, at);
                }

                at += 10;
            }

            ledger.CloseEpoch(route.Manager, AfterRelease(route));
            AssertPaid(ledger, route, sim.Expected());
            Assert.DoesNotContain(ledger.Disputes, d => d.IsFraud);
            Assert.True(ledger.Routes.Single().Released);
            Assert.Equal(0, ledger.Balance(ledger.Routes.Single().ReserveAccount));
            AssertReplays(ledger, store);
        }, iter: 100, threads: 1);
    }

    [Fact]
    public void EveryOtherReceiptDropped_SettlesTheSame()
    {
        using var route = new MeteringTestData(relays: 3);
        var sim = new RouteSimulation(route, new Random(7), loss: 0.02, framesPerDirection: 500, checkpoints: 8);
        var (ledger, _) = Open(route);
        var i = 0;
        foreach (var receipt in sim.Receipts.Where(r => r.Final || i++ % 2 == 0))
        {
            ledger.SubmitReceipt(receipt.Encode(), 2_000_000);
        }

        ledger.CloseEpoch(route.Manager, AfterRelease(route));
        AssertPaid(ledger, route, sim.Expected());
    }

    [Fact]
    public void OpenRoute_WithoutFunds_Refused()
    {
        using var route = new MeteringTestData(relays: 2, window: 1 << 30);
        var ledger = Ledger.Open(new MemoryLedgerStore(), route.Manager.Public);
        var outcome = ledger.OpenRoute(route.Terms.Encode(), 1_000_000);
        Assert.Equal(LedgerStatus.Refused, outcome.Status);
        Assert.Contains("one window costs", outcome.Message, StringComparison.Ordinal);
        ledger.Grant(route.Nodes[0].Public, Settlement.WindowCost(route.Terms) - 1, 1_000_000);
        Assert.Equal(LedgerStatus.Refused, ledger.OpenRoute(route.Terms.Encode(), 1_000_000).Status);
        ledger.Grant(route.Nodes[0].Public, 1, 1_000_000);
        Assert.Equal(LedgerStatus.Accepted, ledger.OpenRoute(route.Terms.Encode(), 1_000_000).Status);
        Assert.Empty(ledger.Routes.Skip(1));
    }

    [Fact]
    public void SourceStopsAuthorizing_PaidOnlyUpToTheCap()
    {
        // No authorization beyond the window the terms grant: everyone is paid for the window at most, even though
        // more bytes crossed the first hop (the source overran its own cap; D4 shows it).
        const ulong window = 64 * 1024;
        using var route = new MeteringTestData(relays: 2, window: window);
        var (ledger, _) = Open(route);
        var overrun = new RouteSimulation(route, new Random(3), loss: 0, framesPerDirection: 400, checkpoints: 2);
        foreach (var receipt in overrun.Receipts)
        {
            ledger.SubmitReceipt(receipt.Encode(), 2_000_000);
        }

        ledger.CloseEpoch(route.Manager, 3_000_000);
        var r = ledger.Routes.Single();
        var capped = Settlement.Earned(route.Terms, [window, window, window], [window, window, window]);
        for (var position = 1; position <= 3; position++)
        {
            Assert.Equal(capped[position], r.Paid[position]);
        }

        Assert.Contains(ledger.Disputes, d => d.Code == DisputeCode.OverCap);
        Assert.DoesNotContain(ledger.Disputes, d => d.IsFraud);

        // An authorization raises the cap; the next close pays the rest.
        ledger.SubmitAuthorization(route.Auth(1, ulong.MaxValue >> 2, ulong.MaxValue >> 2).Encode(), 3_000_001);
        ledger.CloseEpoch(route.Manager, AfterRelease(route));
        AssertPaid(ledger, route, overrun.Expected());
    }

    [Fact]
    public void LoneInflater_Rejected_Named_PaidHonestly()
    {
        using var route = new MeteringTestData(relays: 3);
        var sim = new RouteSimulation(route, new Random(11), loss: 0, framesPerDirection: 300, checkpoints: 3);
        var (ledger, _) = Open(route);
        foreach (var receipt in sim.Receipts)
        {
            ledger.SubmitReceipt(receipt.Encode(), 2_000_000);
        }

        // Relay 2 (receiver of hop 1 forward) claims ten times the bytes and fakes its sender's countersignature.
        var honest = ledger.Routes.Single().Latest(1, MeteringDirection.Forward)!;
        var inflated = MeteringSigner.SignAsReceiver(honest with { Seq = honest.Seq + 1, Bytes = honest.Bytes * 10, Final = false }, route.Terms, route.Nodes[2]);
        var forged = inflated with { SenderSignature = route.Nodes[2].Sign(inflated.SenderSigningBytes()) };
        var outcome = ledger.SubmitReceipt(forged.Encode(), 2_000_001);
        Assert.Equal(LedgerStatus.Disputed, outcome.Status);
        Assert.Equal(DisputeCode.Forged, outcome.Dispute!.Code);
        Assert.Equal([route.Nodes[2].Public.ToString()], outcome.Dispute.Named);
        ledger.CloseEpoch(route.Manager, AfterRelease(route));
        AssertPaid(ledger, route, sim.Expected());
    }

    [Fact]
    public void CollidingNeighbours_InflateTheirHop_ConservationNamesTheUpstreamOne_PaidNoMoreThanHonest()
    {
        using var route = new MeteringTestData(relays: 3);
        var sim = new RouteSimulation(route, new Random(5), loss: 0, framesPerDirection: 300, checkpoints: 2);
        var (ledger, _) = Open(route);
        foreach (var receipt in sim.Receipts.Where(r => !(r.Hop == 1 && r.Direction == MeteringDirection.Forward && r.Final)))
        {
            ledger.SubmitReceipt(receipt.Encode(), 2_000_000);
        }

        // Relays 1 and 2 co-sign a final hop-1 receipt for twice what relay 1 received.
        var f = sim.Bytes[MeteringDirection.Forward];
        var fake = route.Receipt(1, MeteringDirection.Forward, 2, f[0] * 2, sim.Frames[MeteringDirection.Forward][0] * 2, final: true);
        Assert.Equal(LedgerStatus.Accepted, ledger.SubmitReceipt(fake.Encode(), 2_000_001).Status);
        ledger.CloseEpoch(route.Manager, AfterRelease(route));
        var d3 = Assert.Single(ledger.Disputes, d => d.Code == DisputeCode.Conservation);
        Assert.Equal([route.Nodes[1].Public.ToString()], d3.Named);
        Assert.Equal(2, d3.Evidence.Count);
        AssertPaid(ledger, route, sim.Expected());
    }

    [Fact]
    public void EndpointAndRelay_InflateLastHop_PaidNoMoreThanHonest()
    {
        using var route = new MeteringTestData(relays: 2);
        var sim = new RouteSimulation(route, new Random(9), loss: 0, framesPerDirection: 200, checkpoints: 2);
        var (ledger, _) = Open(route);
        foreach (var receipt in sim.Receipts.Where(r => !(r.Final && (r.Hop == 2 || (r.Hop == 0 && r.Direction == MeteringDirection.Forward)))))
        {
            ledger.SubmitReceipt(receipt.Encode(), 2_000_000);
        }

        // Destination + relay 2 inflate hop 2 both ways; source + relay 1 inflate hop 0 forward.
        var f = sim.Bytes[MeteringDirection.Forward];
        var r = sim.Bytes[MeteringDirection.Reverse];
        var ff = sim.Frames[MeteringDirection.Forward];
        var fr = sim.Frames[MeteringDirection.Reverse];
        Assert.Equal(LedgerStatus.Accepted, ledger.SubmitReceipt(route.Receipt(2, MeteringDirection.Forward, 2, f[2] * 3, ff[2] * 3, final: true).Encode(), 2_000_001).Status);
        Assert.Equal(LedgerStatus.Accepted, ledger.SubmitReceipt(route.Receipt(2, MeteringDirection.Reverse, 2, r[2] * 3, fr[2] * 3, final: true).Encode(), 2_000_001).Status);
        Assert.Equal(LedgerStatus.Accepted, ledger.SubmitReceipt(route.Receipt(0, MeteringDirection.Forward, 2, f[0] * 3, ff[0] * 3, final: true).Encode(), 2_000_001).Status);
        ledger.CloseEpoch(route.Manager, AfterRelease(route));
        Assert.Contains(ledger.Disputes, d => d.Code == DisputeCode.Conservation && d.Named.Single() == route.Nodes[2].Public.ToString());
        var paid = ledger.Routes.Single().Paid;
        var honest = sim.Expected();
        // Relay 1 and relay 2 are bounded by honest co-signatures; the destination's reverse claim is bounded by the
        // source's own receipt of what arrived; its forward claim by what relay 2 received. Loss-free: exactly honest.
        Assert.Equal(honest[1], paid[1]);
        Assert.Equal(honest[2], paid[2]);
        Assert.Equal(honest[3], paid[3]);
    }

    [Fact]
    public void Equivocation_NamesBothSigners_TheyForfeitFurtherCredit()
    {
        using var route = new MeteringTestData(relays: 2, window: 1UL << 30);
        var (ledger, _) = Open(route);
        ledger.SubmitReceipt(route.Receipt(0, MeteringDirection.Forward, 1, 1 << 20, 1000).Encode(), 2_000_000);
        ledger.SubmitReceipt(route.Receipt(1, MeteringDirection.Forward, 1, 1 << 20, 1000).Encode(), 2_000_000);
        ledger.SubmitReceipt(route.Receipt(2, MeteringDirection.Forward, 1, 1 << 20, 1000).Encode(), 2_000_000);
        ledger.CloseEpoch(route.Manager, 2_500_000);
        var paidBefore = (long[])ledger.Routes.Single().Paid.Clone();
        var outcome = ledger.SubmitReceipt(route.Receipt(1, MeteringDirection.Forward, 1, 1 << 21, 1000).Encode(), 2_600_000);
        Assert.Equal(DisputeCode.Equivocation, outcome.Dispute!.Code);
        Assert.Equal(new[] { route.Nodes[2].Public.ToString(), route.Nodes[1].Public.ToString() }, outcome.Dispute.Named);
        // More traffic later: the honest destination keeps earning, the two equivocators do not.
        ledger.SubmitReceipt(route.Receipt(0, MeteringDirection.Forward, 2, 1 << 22, 2000).Encode(), 2_700_000);
        ledger.SubmitReceipt(route.Receipt(1, MeteringDirection.Forward, 2, 1 << 22, 2000).Encode(), 2_700_000);
        ledger.SubmitReceipt(route.Receipt(2, MeteringDirection.Forward, 2, 1 << 22, 2000).Encode(), 2_700_000);
        ledger.CloseEpoch(route.Manager, 2_800_000);
        var paid = ledger.Routes.Single().Paid;
        Assert.Equal(paidBefore[1], paid[1]);
        Assert.Equal(paidBefore[2], paid[2]);
        Assert.True(paid[3] > paidBefore[3]);
        // Counters going down under a higher seq are equivocation too.
        var down = ledger.SubmitReceipt(route.Receipt(0, MeteringDirection.Forward, 3, 1 << 10, 10).Encode(), 2_900_000);
        Assert.Equal(DisputeCode.Equivocation, down.Dispute!.Code);
    }

    [Fact]
    public void MutationCorpus_EveryBitOfAReceipt_NothingAccepted_BalancesUnchanged()
    {
        using var route = new MeteringTestData(relays: 2);
        var (ledger, _) = Open(route);
        var valid = route.Receipt(1, MeteringDirection.Reverse, 4, 5 << 20, 4000).Encode();
        var accepted = 0;
        for (var bit = 0; bit < valid.Length * 8; bit++)
        {
            var mutated = (byte[])valid.Clone();
            mutated[bit / 8] ^= (byte)(1 << (bit % 8));
            if (ledger.SubmitReceipt(mutated, 2_000_000).Status == LedgerStatus.Accepted)
            {
                accepted++;
            }
        }

        Assert.Equal(0, accepted);
        Assert.All(ledger.Routes.Single().Paid, p => Assert.Equal(0, p));
        Assert.Equal(LedgerStatus.Accepted, ledger.SubmitReceipt(valid, 2_000_000).Status);
    }

    [Fact]
    public void Junk_TooLongIsRefusedUnjournaled_ShortJunkIsKeptAsEvidence()
    {
        using var route = new MeteringTestData(relays: 1);
        var (ledger, store) = Open(route);
        var lines = store.ReadAll().Count;
        Assert.Equal(LedgerStatus.Refused, ledger.SubmitReceipt(new byte[5000], 2_000_000).Status);
        Assert.Equal(LedgerStatus.Refused, ledger.SubmitAuthorization(new byte[5000], 2_000_000).Status);
        Assert.Equal(lines, store.ReadAll().Count);
        var junk = ledger.SubmitReceipt(new byte[100], 2_000_000);
        Assert.Equal(DisputeCode.Forged, junk.Dispute!.Code);
        Assert.Equal(lines + 1, store.ReadAll().Count);
        AssertReplays(ledger, store);
    }

    /// <summary>
    /// A route the manager ended (closed or re-routed): the reserve beyond what its frozen caps can still cost goes back
    /// at once, no later authorization raises the caps, late receipts up to the caps are still paid, and the rest is
    /// released a grace period after the end (not after the terms expire). The journal replays to the same.
    /// </summary>
    [Fact]
    public void EndedRoute_RefundsBeyondItsCaps_PaysLateReceipts_ReleasedAfterGrace()
    {
        const ulong window = 1 << 20;
        using var route = new MeteringTestData(relays: 2, window: window);
        var (ledger, store) = Open(route);
        var source = Ledger.ConsumerAccount(route.Nodes[0].Public);
        var reserved = ledger.Routes.Single().Reserved;
        Assert.Equal(LedgerStatus.Accepted, ledger.EndRoute(route.TermsId, 1_500_000).Status);
        Assert.Equal(LedgerStatus.Duplicate, ledger.EndRoute(route.TermsId, 1_500_001).Status);
        var bound = Settlement.WindowCost(route.Terms); // caps = the window: at most one window in each direction
        Assert.Equal(bound, ledger.Balance(ledger.Routes.Single().ReserveAccount));
        Assert.Equal(Funds - bound, ledger.Balance(source));
        Assert.True(reserved > bound);

        Assert.Equal(LedgerStatus.Refused, ledger.SubmitAuthorization(route.Auth(1, 8 * window, 8 * window).Encode(), 1_600_000).Status);
        for (var hop = 0; hop < 3; hop++)
        {
            ledger.SubmitReceipt(route.Receipt(hop, MeteringDirection.Forward, 1, 4 * window, 400, final: true).Encode(), 2_000_000);
        }

        ledger.CloseEpoch(route.Manager, 1_500_000 + Ledger.ReleaseGraceMs - 1);
        var r = ledger.Routes.Single();
        Assert.False(r.Released);
        var capped = Settlement.Earned(route.Terms, [window, window, window], [0, 0, 0]);
        Assert.Equal(capped[1..], r.Paid[1..capped.Length]);
        ledger.CloseEpoch(route.Manager, 1_500_000 + Ledger.ReleaseGraceMs);
        Assert.True(r.Released);
        Assert.Equal(0, ledger.Balance(r.ReserveAccount));
        Assert.Equal(Funds - r.Spent, ledger.Balance(source));
        Assert.Equal(0, ledger.Balances.Values.Sum());
        AssertReplays(ledger, store);
    }

    /// <summary>
    /// Issue 15 (a clean stop): an ended route whose every hop has its final receipt in both directions can receive nothing
    /// more that counts, so it releases at the next close instead of holding the reserve for the grace; a route that has
    /// every final but was not ended keeps its reserve (its source may still authorize).
    /// </summary>
    [Fact]
    public void EndedRoute_EveryFinalIn_ReleasedAtTheNextClose()
    {
        using var route = new MeteringTestData(relays: 1);
        var (ledger, store) = Open(route);
        foreach (var direction in new[] { MeteringDirection.Forward, MeteringDirection.Reverse })
        {
            for (var hop = 0; hop < 2; hop++)
            {
                ledger.SubmitReceipt(route.Receipt(hop, direction, 1, 1 << 19, 100, final: true).Encode(), 2_000_000);
            }
        }

        ledger.CloseEpoch(route.Manager, 2_100_000);
        var r = ledger.Routes.Single();
        Assert.False(r.Released, "not ended: the reserve stays");
        Assert.True(ledger.Balance(r.ReserveAccount) > 0);

        ledger.EndRoute(route.TermsId, 2_200_000);
        ledger.CloseEpoch(route.Manager, 2_300_000);
        Assert.True(r.Released, "ended with every final in: released at once, not 15 min later");
        Assert.Equal(0, ledger.Balance(r.ReserveAccount));
        Assert.Equal(Funds - r.Spent, ledger.Balance(Ledger.ConsumerAccount(route.Nodes[0].Public)));
        Assert.True(r.Spent > 0);
        Assert.Equal(0, ledger.Balances.Values.Sum());
        Assert.DoesNotContain(ledger.Disputes, d => d.Code == DisputeCode.Gap);
        AssertReplays(ledger, store);
    }

    /// <summary>An ended route with a final missing on one hop waits out the grace (its receiver may still upload it).</summary>
    [Fact]
    public void EndedRoute_AFinalMissing_WaitsForTheGrace()
    {
        using var route = new MeteringTestData(relays: 1);
        var (ledger, _) = Open(route);
        foreach (var direction in new[] { MeteringDirection.Forward, MeteringDirection.Reverse })
        {
            ledger.SubmitReceipt(route.Receipt(0, direction, 1, 1 << 19, 100, final: true).Encode(), 2_000_000);
            ledger.SubmitReceipt(route.Receipt(1, direction, 1, 1 << 19, 100, final: direction == MeteringDirection.Forward).Encode(), 2_000_000);
        }

        ledger.EndRoute(route.TermsId, 2_200_000);
        ledger.CloseEpoch(route.Manager, 2_300_000);
        Assert.False(ledger.Routes.Single().Released);
        ledger.CloseEpoch(route.Manager, 2_200_000 + Ledger.ReleaseGraceMs);
        Assert.True(ledger.Routes.Single().Released);
    }

    [Fact]
    public void StaleReceipt_AfterRelease_Void()
    {
        using var route = new MeteringTestData(relays: 1);
        var (ledger, _) = Open(route);
        ledger.CloseEpoch(route.Manager, AfterRelease(route));
        var outcome = ledger.SubmitReceipt(route.Receipt(0, MeteringDirection.Forward, 1, 1000, 1).Encode(), AfterRelease(route) + 1);
        Assert.Equal(DisputeCode.Stale, outcome.Dispute!.Code);
        Assert.All(ledger.Routes.Single().Paid, p => Assert.Equal(0, p));
        Assert.Equal(Funds, ledger.Balance(Ledger.ConsumerAccount(route.Nodes[0].Public)));
    }

    [Fact]
    public void Gap_ReleasedWithAMissingHop_NamesTheHop()
    {
        using var route = new MeteringTestData(relays: 2);
        var (ledger, _) = Open(route);
        ledger.SubmitReceipt(route.Receipt(0, MeteringDirection.Forward, 1, 1 << 20, 100, final: true).Encode(), 2_000_000);
        ledger.SubmitReceipt(route.Receipt(2, MeteringDirection.Forward, 1, 1 << 20, 100, final: true).Encode(), 2_000_000);
        ledger.CloseEpoch(route.Manager, AfterRelease(route));
        var gap = Assert.Single(ledger.Disputes, d => d.Code == DisputeCode.Gap);
        Assert.Contains("hop 1 Forward", gap.Reason, StringComparison.Ordinal);
        // Relay 1 delivered nothing co-signed, so nobody downstream of it is paid forward either.
        Assert.All(ledger.Routes.Single().Paid, p => Assert.Equal(0, p));
    }

    [Fact]
    public void Journal_Tampered_VerifyFails()
    {
        using var route = new MeteringTestData(relays: 1);
        var (ledger, store) = Open(route);
        ledger.SubmitReceipt(route.Receipt(0, MeteringDirection.Forward, 1, 1 << 20, 100).Encode(), 2_000_000);
        ledger.SubmitReceipt(route.Receipt(1, MeteringDirection.Forward, 1, 1 << 20, 100).Encode(), 2_000_000);
        ledger.CloseEpoch(route.Manager, 2_500_000);
        AssertReplays(ledger, store);
        var lines = store.ReadAll();

        // A bigger grant, a dropped receipt, a swapped order, another manager: each is caught.
        IReadOnlyList<string>[] tampered =
        [
            [lines[0].Replace("10000000000", "10000000001", StringComparison.Ordinal), .. lines.Skip(1)],
            [.. lines.Where((_, i) => i != 3)],
            [lines[0], lines[1], lines[3], lines[2], .. lines.Skip(4)],
        ];
        foreach (var variant in tampered)
        {
            var copy = new MemoryLedgerStore();
            foreach (var line in variant)
            {
                copy.Append(line);
            }

            Assert.Throws<LedgerVerificationException>(() => Ledger.Open(copy, route.Manager.Public));
        }

        Assert.ThrowsAny<Exception>(() => Ledger.Open(store, route.Nodes[1].Public));
    }
}
