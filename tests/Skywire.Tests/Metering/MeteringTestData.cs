using Skywire.Core.Crypto;
using Skywire.Core.Metering;
using Skywire.Protocol.Metering;

namespace Skywire.Tests.Metering;

/// <summary>Keys and signed messages for a route with a given number of relays.</summary>
internal sealed class MeteringTestData : IDisposable
{
    // Key generation dominates small tests: a fixed pool of keys, reused read-only by every test.
    private static readonly KeyPair[] s_pool = [.. Enumerable.Range(0, 12).Select(_ => KeyPair.Generate())];

    public MeteringTestData(int relays, ulong maxSpend = 1_000_000_000, ulong window = 1UL << 20, ushort feeBps = 250, long createdMs = 1_000_000, long expiresMs = 100_000_000)
    {
        Manager = s_pool[0];
        Nodes = [.. s_pool.Skip(1).Take(relays + 2)];
        var unsigned = new RouteTerms
        {
            Manager = Manager.Public,
            RouteId = [.. Enumerable.Range(1, 16).Select(i => (byte)(i * (relays + 3)))],
            CreatedMs = createdMs,
            ExpiresMs = expiresMs,
            Source = Nodes[0].Public,
            Destination = Nodes[^1].Public,
            Relays = [.. Nodes.Skip(1).Take(relays).Select((n, i) => new RelayPrice(n.Public, 1_000_000UL * (ulong)(i + 1), 500_000UL * (ulong)(i + 1)))],
            DestinationPriceForward = 3_000_000,
            DestinationPriceReverse = 2_000_000,
            FeeBps = feeBps,
            MaxSpend = maxSpend,
            WindowBytes = window,
        };
        Terms = MeteringSigner.AcceptAsSource(MeteringSigner.SignAsManager(unsigned, Manager), Nodes[0]);
        TermsId = Terms.TermsId;
    }

    public KeyPair Manager { get; }

    /// <summary>Position 0 = source, last = destination.</summary>
    public KeyPair[] Nodes { get; }

    public RouteTerms Terms { get; }

    public byte[] TermsId { get; }

    public KeyPair Receiver(int hop, MeteringDirection direction) => direction == MeteringDirection.Forward ? Nodes[hop + 1] : Nodes[hop];

    public KeyPair Sender(int hop, MeteringDirection direction) => direction == MeteringDirection.Forward ? Nodes[hop] : Nodes[hop + 1];

    public HopReceipt Receipt(int hop, MeteringDirection direction, ulong seq, ulong bytes, ulong frames, long endMs = 2_000_000, bool final = false)
    {
        var receipt = new HopReceipt { TermsId = TermsId, Hop = hop, Direction = direction, Seq = seq, EndMs = endMs, Bytes = bytes, Frames = frames, Final = final };
        return MeteringSigner.CountersignAsSender(MeteringSigner.SignAsReceiver(receipt, Terms, Receiver(hop, direction)), Terms, Sender(hop, direction));
    }

    public SpendAuthorization Auth(ulong seq, ulong capForward, ulong capReverse) =>
        MeteringSigner.SignAuthorization(new SpendAuthorization { TermsId = TermsId, Seq = seq, CapForward = capForward, CapReverse = capReverse }, Nodes[0]);

    public void Dispose()
    {
        // The pool outlives every instance.
    }
}
