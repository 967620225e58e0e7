using Skywire.Core.Crypto;
using Skywire.Protocol.Metering;

namespace Skywire.Core.Metering;

/// <summary>
/// Runs the metering code (secp256k1 sign and verify, the message codecs) a few dozen times on a throwaway route, once
/// per process, in the background, when metering starts here: the manager's ledger opens, or a node gets its first
/// metering call (terms, a metered route).
/// </summary>
/// <remarks>
/// Why (docs/benchmarks.md "Metering on vs off", session 7): with tiered compilation the first calls of a method run
/// unoptimized code, and the managed secp256k1 arithmetic is a large amount of code that is many times slower before it
/// is optimized. Without this, the first few dozen receipts and authorizations of a process — i.e. the first seconds of
/// the first metered transfer — ran that slow code and paid for its optimization while data flowed, which showed as
/// lower throughput, more CPU per MB and RTT spikes on metered routes. Here the same cost is paid once, while the route
/// is being set up, and the transfer then meets optimized code. Two rounds with a pause between them, because methods are
/// optimized in the background a while after they become hot.
/// </remarks>
internal static class MeteringWarmUp
{
    private const int Rounds = 40;
    private static int s_started;

    /// <summary>The warm-up of this process (completed when it ran; null before <see cref="Start"/>).</summary>
    public static Task? Running { get; private set; }

    /// <summary>Starts the warm-up once per process (later calls do nothing).</summary>
    public static void Start()
    {
        if (Interlocked.Exchange(ref s_started, 1) == 0)
        {
            Running = Task.Run(RunAsync);
        }
    }

    private static async Task RunAsync()
    {
        using var manager = KeyPair.Generate();
        using var source = KeyPair.Generate();
        using var destination = KeyPair.Generate();
        var terms = MeteringSigner.AcceptAsSource(MeteringSigner.SignAsManager(new RouteTerms
        {
            Manager = manager.Public,
            RouteId = new byte[MeteringWire.RouteIdLength],
            CreatedMs = 1,
            ExpiresMs = 2,
            Source = source.Public,
            Destination = destination.Public,
            Relays = [],
            DestinationPriceForward = 1,
            DestinationPriceReverse = 1,
            FeeBps = 0,
            MaxSpend = 1,
            WindowBytes = 1,
        }, manager), source);
        for (var pass = 0; pass < 2; pass++)
        {
            for (var i = 1; i <= Rounds; i++)
            {
                Once(terms, source, destination, (ulong)i);
            }

            await Task.Delay(TimeSpan.FromMilliseconds(250)); // real time: the JIT's, not the caller's clock
        }
    }

    private static void Once(RouteTerms terms, KeyPair source, KeyPair destination, ulong seq)
    {
        var decoded = RouteTerms.TryDecode(terms.Encode(), out var t, out _) ? t! : terms;
        _ = MeteringSigner.VerifyTerms(decoded, terms.Manager);
        var receipt = new HopReceipt { TermsId = terms.TermsId, Hop = 0, Direction = MeteringDirection.Forward, Seq = seq, EndMs = 1, Bytes = seq, Frames = 1 };
        var signed = MeteringSigner.CountersignAsSender(MeteringSigner.SignAsReceiver(receipt, terms, destination), terms, source);
        _ = HopReceipt.TryDecode(signed.Encode(), out var r, out _) ? MeteringSigner.VerifyReceipt(r!, terms, terms.TermsId) : null;
        var auth = MeteringSigner.SignAuthorization(new SpendAuthorization { TermsId = terms.TermsId, Seq = seq, CapForward = seq, CapReverse = seq }, source);
        _ = SpendAuthorization.TryDecode(auth.Encode(), out var a, out _) ? MeteringSigner.VerifyAuthorization(a!, terms, terms.TermsId) : null;
    }
}
