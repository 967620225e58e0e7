using CsCheck;
using Skywire.Core.Metering;
using Skywire.Protocol.Framing;
using Skywire.Protocol.Metering;

namespace Skywire.Tests.Metering;

public sealed class MeteringCodecTests
{
    private static readonly MeteringTestData s_route = new(relays: 3);

    [Fact]
    public void Terms_RoundTrip_AndVerify()
    {
        var bytes = s_route.Terms.Encode();
        var back = RouteTerms.Decode(bytes);
        Assert.Equal(bytes, back.Encode());
        Assert.Equal(s_route.TermsId, back.TermsId);
        Assert.Null(MeteringSigner.VerifyTerms(back, s_route.Manager.Public));
        Assert.Equal("terms issued by another manager", MeteringSigner.VerifyTerms(back, s_route.Nodes[1].Public));
        Assert.Equal(4, back.HopCount);
        Assert.DoesNotContain(Convert.ToHexStringLower(back.ManagerSignature), back.ToString(), StringComparison.Ordinal);
    }

    [Fact]
    public void Receipt_RoundTrip_AndVerify_EveryHopAndDirection()
    {
        for (var hop = 0; hop < s_route.Terms.HopCount; hop++)
        {
            foreach (var direction in new[] { MeteringDirection.Forward, MeteringDirection.Reverse })
            {
                var receipt = s_route.Receipt(hop, direction, seq: 7, bytes: 123_456, frames: 100, final: hop == 1);
                var bytes = receipt.Encode();
                Assert.Equal(HopReceipt.Length, bytes.Length);
                var back = HopReceipt.Decode(bytes);
                Assert.Equal(bytes, back.Encode());
                Assert.Equal(hop == 1, back.Final);
                Assert.Null(MeteringSigner.VerifyReceipt(back, s_route.Terms, s_route.TermsId));
            }
        }
    }

    [Fact]
    public void Auth_RoundTrip_AndVerify()
    {
        var bytes = s_route.Auth(3, 1 << 20, 1 << 21).Encode();
        var back = SpendAuthorization.Decode(bytes);
        Assert.Equal(bytes, back.Encode());
        Assert.Null(MeteringSigner.VerifyAuthorization(back, s_route.Terms, s_route.TermsId));
    }

    [Fact]
    public void Signers_RefuseWrongKeys()
    {
        var unsigned = s_route.Receipt(1, MeteringDirection.Forward, 1, 10, 1) with { ReceiverSignature = [], SenderSignature = [] };
        Assert.Throws<ArgumentException>(() => MeteringSigner.SignAsReceiver(unsigned, s_route.Terms, s_route.Nodes[1]));
        var signed = MeteringSigner.SignAsReceiver(unsigned, s_route.Terms, s_route.Nodes[2]);
        Assert.Throws<ArgumentException>(() => MeteringSigner.CountersignAsSender(signed, s_route.Terms, s_route.Nodes[3]));
        Assert.Throws<ArgumentException>(() => MeteringSigner.SignAsReceiver(unsigned with { Hop = 4 }, s_route.Terms, s_route.Nodes[2]));
        Assert.Throws<ArgumentException>(() => MeteringSigner.AcceptAsSource(s_route.Terms, s_route.Nodes[1]));
    }

    public static TheoryData<string> Kinds => new() { "terms", "receipt", "auth", "binding" };

    [Theory]
    [MemberData(nameof(Kinds))]
    public void Decode_RandomBytes_OnlyProtocolViolation(string kind)
    {
        var valid = Valid(kind);
        // Random data of any length, and random data of the right length behind the right tag and version.
        var gen = Gen.OneOf(
            Gen.Byte.Array[0, RouteTerms.MaxLength + 8],
            Gen.Byte.Array[valid.Length].Select(b => { b[0] = valid[0]; b[1] = valid[1]; return b; }));
        gen.Sample(data => { _ = Accepted(kind, data); }, iter: 3000, threads: 1);
    }

    [Theory]
    [MemberData(nameof(Kinds))]
    public void Decode_TruncatedOrExtended_Rejected(string kind)
    {
        var valid = Valid(kind);
        for (var length = 0; length < valid.Length; length++)
        {
            Assert.False(Accepted(kind, valid.AsSpan(0, length).ToArray()), $"prefix of {length} bytes accepted");
        }

        Assert.False(Accepted(kind, [.. valid, 0]));
        Assert.True(Accepted(kind, valid));
    }

    [Theory]
    [MemberData(nameof(Kinds))]
    public void EveryBitFlipped_Rejected(string kind)
    {
        // The mutation corpus: every bit of every field (tag, version, keys, prices, ids, counters, signatures).
        var valid = Valid(kind);
        var accepted = 0;
        for (var bit = 0; bit < valid.Length * 8; bit++)
        {
            var mutated = (byte[])valid.Clone();
            mutated[bit / 8] ^= (byte)(1 << (bit % 8));
            if (Accepted(kind, mutated))
            {
                accepted++;
            }
        }

        Assert.Equal(0, accepted);
    }

    [Fact]
    public void Receipt_SwappedSignatures_Rejected()
    {
        var r = s_route.Receipt(2, MeteringDirection.Forward, 5, 1000, 10);
        var swapped = r with { ReceiverSignature = r.SenderSignature, SenderSignature = r.ReceiverSignature };
        Assert.NotNull(MeteringSigner.VerifyReceipt(swapped, s_route.Terms, s_route.TermsId));
        var twice = r with { SenderSignature = r.ReceiverSignature };
        Assert.NotNull(MeteringSigner.VerifyReceipt(twice, s_route.Terms, s_route.TermsId));
    }

    [Fact]
    public void Receipt_ReplayedOntoOtherHopDirectionOrTerms_Rejected()
    {
        var r = s_route.Receipt(1, MeteringDirection.Forward, 5, 1000, 10);
        for (var hop = 0; hop < s_route.Terms.HopCount; hop++)
        {
            foreach (var direction in new[] { MeteringDirection.Forward, MeteringDirection.Reverse })
            {
                if (hop == 1 && direction == MeteringDirection.Forward)
                {
                    continue;
                }

                Assert.NotNull(MeteringSigner.VerifyReceipt(r with { Hop = hop, Direction = direction }, s_route.Terms, s_route.TermsId));
            }
        }

        // Same parties, other terms (a later route between the same nodes): the terms id differs.
        using var other = new MeteringTestData(relays: 3, maxSpend: 42);
        Assert.Equal("receipt for other terms", MeteringSigner.VerifyReceipt(r, other.Terms, other.TermsId));
        Assert.NotNull(MeteringSigner.VerifyReceipt(r with { TermsId = other.TermsId }, other.Terms, other.TermsId));
        // An authorization is not a receipt, and terms are not an authorization: tags and domains differ.
        Assert.False(HopReceipt.TryDecode(s_route.Auth(1, 1, 1).Encode(), out _, out _));
        Assert.False(SpendAuthorization.TryDecode(r.Encode(), out _, out _));
    }

    [Fact]
    public void Terms_Invalid_Rejected()
    {
        var t = s_route.Terms;
        Assert.Throws<ProtocolViolationException>(() => (t with { ExpiresMs = t.CreatedMs }).Validate());
        Assert.Throws<ProtocolViolationException>(() => (t with { FeeBps = 5001 }).Validate());
        Assert.Throws<ProtocolViolationException>(() => (t with { MaxSpend = 0 }).Validate());
        Assert.Throws<ProtocolViolationException>(() => (t with { Destination = t.Relays[0].Node }).Validate());
        Assert.Throws<ProtocolViolationException>(() => (t with { Relays = [t.Relays[0], t.Relays[0]] }).Validate());
        Assert.Throws<ProtocolViolationException>(() => (t with { Relays = [.. Enumerable.Repeat(t.Relays[0], 9)] }).Validate());
        Assert.Throws<ProtocolViolationException>(() => (t with { Relays = [t.Relays[0] with { PriceForward = MeteringWire.MaxPricePerGiB + 1 }] }).Validate());
        Assert.Throws<ProtocolViolationException>(() => (t with { ManagerSignature = [] }).Encode());
    }

    [Fact]
    public void Receipt_Invalid_Rejected()
    {
        var r = s_route.Receipt(0, MeteringDirection.Forward, 1, 10, 1);
        Assert.Throws<ProtocolViolationException>(() => (r with { Seq = 0 }).Validate());
        Assert.Throws<ProtocolViolationException>(() => (r with { Frames = 11 }).Validate());
        Assert.Throws<ProtocolViolationException>(() => (r with { Bytes = MeteringWire.MaxCounter + 1, Frames = 0 }).Validate());
        Assert.Throws<ProtocolViolationException>(() => (r with { Direction = (MeteringDirection)3 }).Validate());
        Assert.Throws<ProtocolViolationException>(() => (r with { SenderSignature = [] }).Encode());
    }

    [Fact]
    public void Receipt_RandomValidFields_RoundTrip()
    {
        var gen = Gen.Select(Gen.Int[0, 3], Gen.Bool, Gen.ULong[1, ulong.MaxValue], Gen.Long[0, long.MaxValue], Gen.ULong[0, MeteringWire.MaxCounter], Gen.Bool);
        gen.Sample((hop, fwd, seq, end, bytes, final) =>
        {
            var receipt = new HopReceipt
            {
                TermsId = s_route.TermsId,
                Hop = hop,
                Direction = fwd ? MeteringDirection.Forward : MeteringDirection.Reverse,
                Seq = seq,
                EndMs = end,
                Bytes = bytes,
                Frames = bytes / 1500,
                Final = final,
                ReceiverSignature = new byte[64],
                SenderSignature = new byte[64],
            };
            var encoded = receipt.Encode();
            Assert.Equal(encoded, HopReceipt.Decode(encoded).Encode());
        }, iter: 2000, threads: 1);
    }

    private static byte[] Valid(string kind) => kind switch
    {
        "terms" => s_route.Terms.Encode(),
        "receipt" => s_route.Receipt(2, MeteringDirection.Reverse, 9, 77_000, 70, final: true).Encode(),
        "binding" => MeteringSigner.SignBinding(s_route.Nodes[1], Skywire.Core.Crypto.SkycoinAddress.FromPubKey(s_route.Nodes[2].Public), 5).Encode(),
        _ => s_route.Auth(4, 1 << 22, 1 << 23).Encode(),
    };

    /// <summary>Decode and verify against the route's terms, as the ledger does; any other exception fails the test.</summary>
    private static bool Accepted(string kind, byte[] data)
    {
        switch (kind)
        {
            case "terms":
                return RouteTerms.TryDecode(data, out var t, out _) && MeteringSigner.VerifyTerms(t!, s_route.Manager.Public) is null
                    && t!.TermsId.AsSpan().SequenceEqual(s_route.TermsId);
            case "receipt":
                return HopReceipt.TryDecode(data, out var r, out _) && MeteringSigner.VerifyReceipt(r!, s_route.Terms, s_route.TermsId) is null;
            case "binding":
                return PayoutBinding.TryDecode(data, out var b, out _) && MeteringSigner.VerifyBinding(b!) is null;
            default:
                return SpendAuthorization.TryDecode(data, out var a, out _) && MeteringSigner.VerifyAuthorization(a!, s_route.Terms, s_route.TermsId) is null;
        }
    }
}
