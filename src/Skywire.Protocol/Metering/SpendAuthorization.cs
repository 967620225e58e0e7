using Skywire.Protocol.Framing;

namespace Skywire.Protocol.Metering;

/// <summary>
/// The source's signed permission to carry up to <see cref="CapForward"/> and <see cref="CapReverse"/> bytes
/// (cumulative, per direction) on a route. The source raises the caps as its session sees data delivered; relays
/// and the destination forward only up to the latest cap, so nobody works unpaid and the source's exposure is
/// bounded by the window.
/// </summary>
/// <remarks>Layout (big-endian): tag 0x53, version, terms id (16), seq (u64), forward cap (u64), reverse cap (u64); source signature (64).</remarks>
public sealed record SpendAuthorization
{
    private const string What = "spend authorization";

    /// <summary>Length of the body.</summary>
    public const int BodyLength = 2 + MeteringWire.TermsIdLength + 24;

    /// <summary>Length of the encoded message.</summary>
    public const int Length = BodyLength + MeteringWire.SignatureLength;

    /// <summary>The terms this authorization raises the caps of.</summary>
    public required byte[] TermsId { get; init; }

    /// <summary>Sequence number, from 1, strictly increasing.</summary>
    public required ulong Seq { get; init; }

    /// <summary>Cumulative forward bytes authorized.</summary>
    public required ulong CapForward { get; init; }

    /// <summary>Cumulative reverse bytes authorized.</summary>
    public required ulong CapReverse { get; init; }

    /// <summary>The source's signature (64 bytes) or empty.</summary>
    public byte[] SourceSignature { get; init; } = [];

    /// <summary>Checks the fields.</summary>
    /// <exception cref="ProtocolViolationException">The first problem.</exception>
    public void Validate()
    {
        MeteringWire.Require(TermsId is { Length: MeteringWire.TermsIdLength }, What, "terms id must be 16 bytes");
        MeteringWire.Require(Seq >= 1, What, "seq starts at 1");
        MeteringWire.Require(CapForward <= MeteringWire.MaxCounter && CapReverse <= MeteringWire.MaxCounter, What, "cap out of range");
        MeteringWire.Require(SourceSignature.Length is 0 or MeteringWire.SignatureLength, What, "signature must be 64 bytes");
    }

    /// <summary>The body the signature covers.</summary>
    public byte[] EncodeBody()
    {
        var body = new byte[BodyLength];
        var o = 0;
        body[o++] = MeteringWire.AuthTag;
        body[o++] = MeteringWire.Version;
        MeteringWire.Put(body, ref o, TermsId);
        MeteringWire.Put(body, ref o, Seq);
        MeteringWire.Put(body, ref o, CapForward);
        MeteringWire.Put(body, ref o, CapReverse);
        return body;
    }

    /// <summary>What the source signs.</summary>
    public byte[] SigningBytes() => MeteringWire.Concat(MeteringWire.DomainAuth, EncodeBody());

    /// <summary>The encoded message; the signature is required.</summary>
    public byte[] Encode()
    {
        Validate();
        MeteringWire.Require(SourceSignature.Length == MeteringWire.SignatureLength, What, "the signature is required to encode");
        return MeteringWire.Concat(EncodeBody(), SourceSignature);
    }

    /// <summary>Decodes (exact length). The signature is not verified here.</summary>
    /// <exception cref="ProtocolViolationException">Any malformed field.</exception>
    public static SpendAuthorization Decode(ReadOnlySpan<byte> data)
    {
        MeteringWire.Require(data.Length == Length, What, $"length {data.Length}, expected {Length}");
        MeteringWire.Require(data[0] == MeteringWire.AuthTag, What, "wrong type tag");
        MeteringWire.Require(data[1] == MeteringWire.Version, What, $"unsupported version {data[1]}");
        var o = 2;
        var termsId = data.Slice(o, MeteringWire.TermsIdLength).ToArray();
        o += MeteringWire.TermsIdLength;
        var auth = new SpendAuthorization
        {
            TermsId = termsId,
            Seq = MeteringWire.U64(data, ref o),
            CapForward = MeteringWire.U64(data, ref o),
            CapReverse = MeteringWire.U64(data, ref o),
            SourceSignature = data.Slice(BodyLength, MeteringWire.SignatureLength).ToArray(),
        };
        auth.Validate();
        return auth;
    }

    /// <summary>Decodes; false with a reason instead of an exception.</summary>
    public static bool TryDecode(ReadOnlySpan<byte> data, out SpendAuthorization? auth, out string? error)
    {
        try
        {
            auth = Decode(data);
            error = null;
            return true;
        }
        catch (ProtocolViolationException e)
        {
            auth = null;
            error = e.Message;
            return false;
        }
    }

    /// <summary>Caps and seq; no signature.</summary>
    public override string ToString() =>
        $"SpendAuthorization(terms {MeteringWire.Hex(TermsId)}, seq {Seq}, fwd {CapForward} B, rev {CapReverse} B)";
}
