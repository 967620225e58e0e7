using System.Text.Json;
using Skywire.Core.Crypto;
using Skywire.Core.Metering;
using Skywire.IntegrationTests.EndToEnd;
using Skywire.Protocol.Metering;

namespace Skywire.IntegrationTests.Metering;

/// <summary>`skywire ledger` through the built executable: a 3-hop route's signed evidence in, balances, verify, export, paid out.</summary>
public sealed class LedgerCommandTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("skywire-ledger-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private static async Task<(int Code, string Out, string Err)> Run(params string[] args)
    {
        await using var process = SkywireProcess.Start(null, ["ledger", .. args]);
        var code = await process.WaitForExitAsync(TimeSpan.FromMinutes(2));
        return (code, process.StdoutText, process.Stderr);
    }

    [Fact]
    public async Task ThreeHopRoute_EvidenceIn_BalancesMatchTerms_VerifyExportPaid()
    {
        using var manager = KeyPair.Generate();
        KeyPair[] nodes = [KeyPair.Generate(), KeyPair.Generate(), KeyPair.Generate(), KeyPair.Generate()];
        var keyFile = Path.Combine(_dir, "manager.key");
        KeyFile.Save(keyFile, manager);
        var ledgerDir = Path.Combine(_dir, "ledger");
        var now = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds();
        var terms = MeteringSigner.AcceptAsSource(MeteringSigner.SignAsManager(new RouteTerms
        {
            Manager = manager.Public,
            RouteId = [.. Enumerable.Range(0, 16).Select(i => (byte)i)],
            CreatedMs = now - 60_000,
            ExpiresMs = now + 3_600_000,
            Source = nodes[0].Public,
            Destination = nodes[3].Public,
            Relays = [new RelayPrice(nodes[1].Public, 1_000_000, 1_000_000), new RelayPrice(nodes[2].Public, 2_000_000, 2_000_000)],
            DestinationPriceForward = 5_000_000,
            DestinationPriceReverse = 5_000_000,
            FeeBps = 100,
            MaxSpend = 50_000_000,
            WindowBytes = 1UL << 30,
        }, manager), nodes[0]);
        var termsId = terms.TermsId;
        const ulong gib = 1UL << 30;
        var lines = new List<string> { Convert.ToHexStringLower(terms.Encode()) };
        for (var hop = 0; hop < 3; hop++)
        {
            foreach (var direction in new[] { MeteringDirection.Forward, MeteringDirection.Reverse })
            {
                var rx = direction == MeteringDirection.Forward ? nodes[hop + 1] : nodes[hop];
                var tx = direction == MeteringDirection.Forward ? nodes[hop] : nodes[hop + 1];
                var receipt = new HopReceipt { TermsId = termsId, Hop = hop, Direction = direction, Seq = 1, EndMs = now, Bytes = direction == MeteringDirection.Forward ? gib : gib / 4, Frames = 1000, Final = true };
                receipt = MeteringSigner.CountersignAsSender(MeteringSigner.SignAsReceiver(receipt, terms, rx), terms, tx);
                lines.Add(Convert.ToHexStringLower(receipt.Encode()));
            }
        }

        var evidence = Path.Combine(_dir, "evidence.hex");
        File.WriteAllLines(evidence, lines);

        Assert.Equal(0, (await Run("grant", ledgerDir, nodes[0].Public.ToString(), "100000000", "--key", keyFile)).Code);
        var submit = await Run("submit", ledgerDir, evidence, "--key", keyFile);
        Assert.True(submit.Code == 0, submit.Err);
        Assert.Contains("7 accepted", submit.Out, StringComparison.Ordinal);
        Assert.Equal(0, (await Run("close", ledgerDir, "--key", keyFile)).Code);

        var balances = await Run("balances", ledgerDir, "--json");
        Assert.True(balances.Code == 0, balances.Err);
        var accounts = JsonDocument.Parse(balances.Out).RootElement.GetProperty("accounts").EnumerateArray()
            .ToDictionary(a => a.GetProperty("account").GetString()!, a => a.GetProperty("droplets").GetInt64());
        // 1 GiB forward, 0.25 GiB reverse at every hop; prices per GiB as signed: relay 1: 1+0.25, relay 2: 2+0.5,
        // destination 5+1.25 (SKY scale 10^6 droplets), fee 1 % of the sum; the source is charged exactly that.
        Assert.Equal(1_250_000, accounts[Ledger.ProviderAccount(nodes[1].Public)]);
        Assert.Equal(2_500_000, accounts[Ledger.ProviderAccount(nodes[2].Public)]);
        Assert.Equal(6_250_000, accounts[Ledger.ProviderAccount(nodes[3].Public)]);
        Assert.Equal(100_000, accounts[Ledger.FeeAccount]);
        Assert.Equal(50_000_000 - 10_100_000, accounts["reserve:" + Convert.ToHexStringLower(terms.RouteId)]);
        Assert.Equal(0, accounts.Values.Sum());
        // Per node and epoch (the GUI's chart): what each provider earned, what the source spent (providers + fee).
        var epochs = await Run("epochs", ledgerDir, "--json");
        Assert.True(epochs.Code == 0, epochs.Err);
        var epoch = Assert.Single(JsonDocument.Parse(epochs.Out).RootElement.GetProperty("epochs").EnumerateArray());
        var perNode = epoch.GetProperty("nodes").EnumerateArray()
            .ToDictionary(n => n.GetProperty("node").GetString()!, n => (n.GetProperty("earned").GetInt64(), n.GetProperty("spent").GetInt64()));
        Assert.Equal((0L, 10_100_000L), perNode[nodes[0].Public.ToString()]);
        Assert.Equal((1_250_000L, 0L), perNode[nodes[1].Public.ToString()]);
        Assert.Equal((2_500_000L, 0L), perNode[nodes[2].Public.ToString()]);
        Assert.Equal((6_250_000L, 0L), perNode[nodes[3].Public.ToString()]);
        var table = await Run("routes", ledgerDir);
        Assert.Contains("1073741824 1073741824 1073741824", table.Out, StringComparison.Ordinal);

        var verify = await Run("verify", ledgerDir, "--manager", manager.Public.ToString());
        Assert.True(verify.Code == 0, verify.Err);
        Assert.Contains("ok:", verify.Out, StringComparison.Ordinal);
        Assert.Equal(1, (await Run("verify", ledgerDir, "--manager", nodes[0].Public.ToString())).Code);

        var export = await Run("export", ledgerDir, "--key", keyFile, "--day", "2026-12-04", "--min", "1000");
        Assert.True(export.Code == 0, export.Err);
        var csv = File.ReadAllLines(Path.Combine(ledgerDir, "exports", "payouts-2026-12-04.csv"));
        Assert.Equal(3, csv.Length);
        Assert.Contains($"{nodes[3].SkycoinAddress},6250000", csv);
        Assert.Contains($"{nodes[3].SkycoinAddress},6.250", File.ReadAllLines(Path.Combine(ledgerDir, "exports", "payouts-2026-12-04.sky.csv")));
        Assert.True(File.Exists(Path.Combine(ledgerDir, "exports", "manifest-2026-12-04.json")));
        Assert.Equal(0, (await Run("verify", ledgerDir)).Code);
        Assert.Equal(0, (await Run("paid", ledgerDir, "2026-12-04", "4f1e9a", "--key", keyFile)).Code);

        // Tampering with the journal or the export is caught.
        File.WriteAllLines(Path.Combine(ledgerDir, "exports", "payouts-2026-12-04.csv"), csv.Select(l => l.Replace("6250000", "9250000", StringComparison.Ordinal)));
        var tampered = await Run("verify", ledgerDir, "--json");
        Assert.Equal(1, tampered.Code);
        Assert.False(JsonDocument.Parse(tampered.Out).RootElement.GetProperty("ok").GetBoolean());
        var journal = Path.Combine(ledgerDir, FileLedgerStore.JournalName);
        File.WriteAllText(journal, File.ReadAllText(journal).Replace("100000000", "900000000", StringComparison.Ordinal));
        Assert.Equal(1, (await Run("verify", ledgerDir)).Code);
        foreach (var n in nodes)
        {
            n.Dispose();
        }
    }
}
