using Skywire.Core.Crypto;
using Skywire.Core.Metering;
using Skywire.Protocol.Framing;
using Skywire.Protocol.Metering;

namespace Skywire.Tests.Metering;

/// <summary>
/// Issue 15 item 5: "Skycoin addresses derived from node keys (or a signed binding to another address)". A node signs
/// a <see cref="PayoutBinding"/>; the ledger takes the highest seq, the export pays the bound address, and nothing
/// unsigned, forged or replayed changes where a node is paid.
/// </summary>
public sealed class PayoutBindingTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("skywire-binding-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private static string AddressOf(KeyPair key) => SkycoinAddress.FromPubKey(key.Public);

    [Fact]
    public void Codec_RoundTrips_AndEveryFlippedBitIsRefused()
    {
        using var route = new MeteringTestData(relays: 1);
        var node = route.Nodes[1];
        var binding = MeteringSigner.SignBinding(node, AddressOf(route.Nodes[2]), seq: 3);
        var encoded = binding.Encode();
        Assert.Equal(PayoutBinding.Length, encoded.Length);
        var decoded = PayoutBinding.Decode(encoded);
        Assert.Equal(encoded, decoded.Encode());
        Assert.Null(MeteringSigner.VerifyBinding(decoded));
        Assert.Equal(AddressOf(route.Nodes[2]), SkycoinAddress.Encode(decoded.Address));

        var accepted = 0;
        for (var bit = 0; bit < encoded.Length * 8; bit++)
        {
            var mutated = (byte[])encoded.Clone();
            mutated[bit / 8] ^= (byte)(1 << (bit % 8));
            if (PayoutBinding.TryDecode(mutated, out var m, out _) && MeteringSigner.VerifyBinding(m!) is null)
            {
                accepted++;
            }
        }

        Assert.Equal(0, accepted);
        Assert.False(PayoutBinding.TryDecode(encoded.AsSpan(0, encoded.Length - 1), out _, out _));
        Assert.Throws<ProtocolViolationException>(() => PayoutBinding.Decode([.. encoded, 0]));
        Assert.Throws<ArgumentException>(() => MeteringSigner.SignBinding(node, "not-an-address", 1));
        var own = AddressOf(node);
        Assert.Throws<ArgumentException>(() => MeteringSigner.SignBinding(node, own[..^1] + (own[^1] == 'x' ? "y" : "x"), 1)); // checksum
    }

    [Fact]
    public void Ledger_PaysTheBoundAddress_HighestSeqWins_ForgedAndStaleRefused_Replays()
    {
        using var route = new MeteringTestData(relays: 1, window: 1UL << 30);
        var store = new MemoryLedgerStore();
        var ledger = Ledger.Open(store, route.Manager.Public);
        ledger.Grant(route.Nodes[0].Public, 100_000_000_000, 1_000);
        ledger.OpenRoute(route.Terms.Encode(), 1_000_000);
        for (var hop = 0; hop < route.Terms.HopCount; hop++)
        {
            ledger.SubmitReceipt(route.Receipt(hop, MeteringDirection.Forward, 1, 700_000_000, 500_000, final: true).Encode(), 2_000_000);
        }

        var relay = route.Nodes[1];
        var wallet = route.Nodes[2]; // any address: here the destination key's
        Assert.Equal(LedgerStatus.Accepted, ledger.SubmitSigned(MeteringSigner.SignBinding(relay, AddressOf(route.Manager), 1).Encode(), 2_000_001).Status);
        Assert.Equal(LedgerStatus.Accepted, ledger.SubmitSigned(MeteringSigner.SignBinding(relay, AddressOf(wallet), 2).Encode(), 2_000_002).Status);
        var latest = MeteringSigner.SignBinding(relay, AddressOf(wallet), 2).Encode();
        Assert.Equal(LedgerStatus.Duplicate, ledger.SubmitSigned(latest, 2_000_003).Status);

        // Replaying the old binding, a same-seq one to another address, and one signed by someone else: all refused.
        Assert.Equal(LedgerStatus.Refused, ledger.SubmitBinding(MeteringSigner.SignBinding(relay, AddressOf(route.Manager), 1).Encode(), 2_000_004).Status);
        Assert.Equal(LedgerStatus.Refused, ledger.SubmitBinding(MeteringSigner.SignBinding(relay, AddressOf(route.Nodes[0]), 2).Encode(), 2_000_005).Status);
        var forged = MeteringSigner.SignBinding(route.Nodes[0], AddressOf(route.Nodes[0]), 9) with { Node = relay.Public };
        Assert.Equal(LedgerStatus.Refused, ledger.SubmitBinding(forged.Encode(), 2_000_006).Status);
        Assert.Equal(AddressOf(wallet), ledger.PayoutAddress(relay.Public));
        Assert.Equal(AddressOf(route.Nodes[2]), ledger.PayoutAddress(route.Nodes[2].Public));

        ledger.CloseEpoch(route.Manager, route.Terms.ExpiresMs + Ledger.ReleaseGraceMs);
        Assert.Equal(LedgerStatus.Accepted, ledger.Export("2026-12-05", 1000, 3_000_000_000).Status);
        var day = ledger.Days["2026-12-05"];
        var relayRow = Assert.Single(day.Rows, r => r.Node == relay.Public);
        Assert.Equal(AddressOf(wallet), relayRow.Address);
        var exitRow = Assert.Single(day.Rows, r => r.Node == route.Nodes[2].Public);
        Assert.Equal(AddressOf(wallet), exitRow.Address); // two nodes, one address: two rows, ordered by node
        Assert.Equal(day.Rows.OrderBy(r => r.Address, StringComparer.Ordinal).ThenBy(r => r.Node.ToString(), StringComparer.Ordinal), day.Rows);

        PayoutExport.Write(_dir, day, route.Manager);
        Assert.Null(PayoutExport.Verify(_dir, day, route.Manager.Public));

        // The journal holds the bindings as raw evidence: a replay pays the same addresses.
        var again = Ledger.Open(store, route.Manager.Public);
        Assert.Equal(AddressOf(wallet), again.PayoutAddress(relay.Public));
        Assert.Equal(day.Rows, again.Days["2026-12-05"].Rows);
    }
}
