using System.Text;
using Skywire.Core.Crypto;
using Skywire.Core.Metering;
using Skywire.Protocol.Metering;

namespace Skywire.Tests.Metering;

public sealed class PayoutExportTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("skywire-payout-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    [Fact]
    public void SkycoinAddress_MatchesSkycoinWalletVector()
    {
        // From skycoin/skycoin's bip44 wallet test data: secret key, its public key and its address.
        using var key = KeyPair.FromSecret(Convert.FromHexString("8e6d170ac29f26b3824428dcbd9849070739a02e6ec4d646a52fd9d48ddae67e"));
        Assert.Equal("02074cad04ddc61c355a2b0faf3099fb6261731eaa5d12fb5ce36cff5829583848", key.Public.ToString());
        Assert.Equal("9BSEAEE3XGtQ2X43BCT2XCYgheGLQQigEG", SkycoinAddress.FromPubKey(key.Public));
    }

    [Fact]
    public void Export_RoundsDown_CarriesTheRest_WritesSignedFiles_VerifyCatchesTampering()
    {
        using var route = new MeteringTestData(relays: 3, window: 1UL << 30);
        var store = new MemoryLedgerStore();
        var ledger = Ledger.Open(store, route.Manager.Public);
        ledger.Grant(route.Nodes[0].Public, 100_000_000_000, 1_000);
        ledger.OpenRoute(route.Terms.Encode(), 1_000_000);
        for (var hop = 0; hop < route.Terms.HopCount; hop++)
        {
            ledger.SubmitReceipt(route.Receipt(hop, MeteringDirection.Forward, 1, 700_000_000, 500_000, final: true).Encode(), 2_000_000);
            ledger.SubmitReceipt(route.Receipt(hop, MeteringDirection.Reverse, 1, 300_000_000, 200_000, final: true).Encode(), 2_000_000);
        }

        ledger.CloseEpoch(route.Manager, route.Terms.ExpiresMs + Ledger.ReleaseGraceMs);
        var providers = ledger.Balances.Where(b => b.Key.StartsWith("provider:", StringComparison.Ordinal)).ToDictionary();
        Assert.Equal(4, providers.Count);
        Assert.Equal(LedgerStatus.Accepted, ledger.Export("2026-12-04", 1000, 3_000_000_000).Status);
        var day = ledger.Days["2026-12-04"];
        Assert.Equal(4, day.Rows.Count);
        foreach (var row in day.Rows)
        {
            Assert.Equal(0, row.Droplets % 1000);
            Assert.Equal(providers[Ledger.ProviderAccount(row.Node)] / 1000 * 1000, row.Droplets);
            Assert.True(SkycoinAddress.IsWellFormed(row.Address));
            Assert.True(SkycoinAddress.Matches(row.Address, row.Node));
        }

        Assert.Equal(providers.Values.Sum(), day.Total + day.Carried);
        Assert.Equal(day.Total, ledger.Balance("payout:2026-12-04"));
        Assert.Equal(LedgerStatus.Refused, ledger.Export("2026-12-04", 1000, 3_000_000_001).Status);

        PayoutExport.Write(_dir, day, route.Manager);
        Assert.Null(PayoutExport.Verify(_dir, day, route.Manager.Public));
        var csv = File.ReadAllLines(Path.Combine(_dir, "payouts-2026-12-04.csv"));
        Assert.Equal(day.Rows.Select(r => $"{r.Address},{r.Droplets}"), csv);
        var sky = File.ReadAllLines(Path.Combine(_dir, "payouts-2026-12-04.sky.csv"));
        Assert.Equal(day.Rows.Select(r => $"{r.Address},{r.Droplets / 1_000_000}.{r.Droplets % 1_000_000 / 1000:D3}"), sky);

        // Byte-identical rerun; a changed amount or a manifest signed by another key is caught.
        var before = File.ReadAllBytes(Path.Combine(_dir, "manifest-2026-12-04.json"));
        PayoutExport.Write(_dir, day, route.Manager);
        Assert.Equal(before, File.ReadAllBytes(Path.Combine(_dir, "manifest-2026-12-04.json")));
        File.WriteAllText(Path.Combine(_dir, "payouts-2026-12-04.csv"), string.Join("\n", csv.Select((l, i) => i == 0 ? l + "0" : l)) + "\n", Encoding.UTF8);
        Assert.Contains("differs", PayoutExport.Verify(_dir, day, route.Manager.Public), StringComparison.Ordinal);
        PayoutExport.Write(_dir, day, route.Nodes[1]);
        Assert.NotNull(PayoutExport.Verify(_dir, day, route.Manager.Public));

        Assert.Equal(LedgerStatus.Refused, ledger.MarkPaid("2026-12-05", "abc", 3_000_000_002).Status);
        Assert.Equal(LedgerStatus.Accepted, ledger.MarkPaid("2026-12-04", "9f2c1e", 3_000_000_002).Status);
        Assert.Equal("9f2c1e", ledger.Days["2026-12-04"].TxId);
        Assert.Equal(LedgerStatus.Refused, ledger.MarkPaid("2026-12-04", "other", 3_000_000_003).Status);
        var again = Ledger.Open(store, route.Manager.Public);
        Assert.Equal("9f2c1e", again.Days["2026-12-04"].TxId);
        Assert.Equal(ledger.Balances, again.Balances);
    }

    [Fact]
    public void FileStore_SurvivesReopen_CutsATornTail_RefusesASecondWriter()
    {
        using var route = new MeteringTestData(relays: 1);
        using (var store = FileLedgerStore.Open(_dir, writable: true))
        {
            var ledger = Ledger.Open(store, route.Manager.Public);
            ledger.Grant(route.Nodes[0].Public, 5_000_000, 1_000);
            Assert.Throws<IOException>(() => FileLedgerStore.Open(_dir, writable: true));
        }

        File.AppendAllText(Path.Combine(_dir, FileLedgerStore.JournalName), "{\"kind\":\"gra");
        using (var store = FileLedgerStore.Open(_dir, writable: true))
        {
            Assert.Equal(12, store.TornTailBytes);
            var ledger = Ledger.Open(store, route.Manager.Public);
            Assert.Equal(5_000_000, ledger.Balance(Ledger.ConsumerAccount(route.Nodes[0].Public)));
            ledger.Grant(route.Nodes[0].Public, 1, 2_000);
        }

        using var reread = FileLedgerStore.Open(_dir, writable: false);
        Assert.Equal(0, reread.TornTailBytes);
        Assert.Equal(5_000_001, Ledger.Open(reread, route.Manager.Public).Balance(Ledger.ConsumerAccount(route.Nodes[0].Public)));
    }
}
