using BenchmarkDotNet.Attributes;
using Skywire.Core.Crypto;
using Skywire.Core.Metering;
using Skywire.Protocol.Metering;

namespace Skywire.Benchmarks.Metering;

/// <summary>
/// The CPU cost of metering (issue 15 item 8; docs/benchmarks.md "Metering CPU"): one hop receipt built, signed by its
/// receiver, countersigned by its sender and verified (both signatures), next to a bare secp256k1 sign + verify of the
/// same bytes (the floor), and the ledger's ingest rate (decode, two verifications, equivocation/conservation checks,
/// settlement state, one journal line in memory). Run: <c>dotnet bench/Skywire.Benchmarks/bin/Release/net10.0/Skywire.Benchmarks.dll
/// --filter '*MeteringBenchmarks*' --job short</c>.
/// </summary>
[MemoryDiagnoser]
public class MeteringBenchmarks
{
    private const int ReceiptsPerIngest = 1000;
    private const int Relays = 2;

    private readonly KeyPair _manager = KeyPair.Generate();
    private readonly KeyPair[] _nodes = [.. Enumerable.Range(0, Relays + 2).Select(_ => KeyPair.Generate())];
    private RouteTerms _terms = null!;
    private byte[] _termsId = null!;
    private byte[][] _receipts = null!;
    private byte[] _body = null!;
    private ulong _seq;

    [GlobalSetup]
    public void Setup()
    {
        var unsigned = new RouteTerms
        {
            Manager = _manager.Public,
            RouteId = [.. Enumerable.Range(1, 16).Select(i => (byte)i)],
            CreatedMs = 1_000_000,
            ExpiresMs = 100_000_000,
            Source = _nodes[0].Public,
            Destination = _nodes[^1].Public,
            Relays = [.. _nodes[1..^1].Select(n => new RelayPrice(n.Public, 1_000_000, 1_000_000))],
            DestinationPriceForward = 1_000_000,
            DestinationPriceReverse = 1_000_000,
            FeeBps = 100,
            MaxSpend = 1_000_000_000_000,
            WindowBytes = 256UL << 20,
        };
        _terms = MeteringSigner.AcceptAsSource(MeteringSigner.SignAsManager(unsigned, _manager), _nodes[0]);
        _termsId = _terms.TermsId;

        // A route's receipts as they arrive at the ledger: every hop forward, cumulative, 4 MiB apart.
        var hops = _terms.HopCount;
        _receipts = new byte[ReceiptsPerIngest][];
        for (var i = 0; i < ReceiptsPerIngest; i++)
        {
            var hop = i % hops;
            var seq = (ulong)(i / hops) + 1;
            _receipts[i] = Build(hop, seq).Encode();
        }

        _body = Build(0, 1).EncodeBody();
    }

    private HopReceipt Build(int hop, ulong seq)
    {
        var receipt = new HopReceipt
        {
            TermsId = _termsId, Hop = hop, Direction = MeteringDirection.Forward, Seq = seq, EndMs = 2_000_000 + (long)seq,
            Bytes = seq * (4UL << 20), Frames = seq * 3000,
        };
        return MeteringSigner.CountersignAsSender(MeteringSigner.SignAsReceiver(receipt, _terms, _nodes[hop + 1]), _terms, _nodes[hop]);
    }

    /// <summary>The floor: one secp256k1 signature and its verification over a receipt body.</summary>
    [Benchmark(Baseline = true, Description = "bare sign + verify")]
    public bool BareSignVerify() => KeyPair.Verify(_nodes[1].Public, _body, _nodes[1].Sign(_body));

    /// <summary>What a hop costs per receipt, both ends and the checker together: build, sign, countersign, verify both.</summary>
    [Benchmark(Description = "receipt build + sign + countersign + verify")]
    public string? ReceiptBuildSignVerify() => MeteringSigner.VerifyReceipt(Build(0, ++_seq), _terms, _termsId);

    /// <summary>Ledger ingest: <see cref="ReceiptsPerIngest"/> co-signed receipts into a fresh ledger (per receipt).</summary>
    [Benchmark(OperationsPerInvoke = ReceiptsPerIngest, Description = "ledger ingest (per receipt)")]
    public long LedgerIngest()
    {
        var ledger = Ledger.Open(new MemoryLedgerStore(), _manager.Public);
        ledger.Grant(_nodes[0].Public, 1_000_000_000_000, 1_000);
        ledger.OpenRoute(_terms.Encode(), 1_000_000);
        var accepted = 0L;
        foreach (var receipt in _receipts)
        {
            if (ledger.SubmitReceipt(receipt, 3_000_000).Status == LedgerStatus.Accepted)
            {
                accepted++;
            }
        }

        return accepted == ReceiptsPerIngest ? accepted : throw new InvalidOperationException($"only {accepted} receipts accepted");
    }
}
