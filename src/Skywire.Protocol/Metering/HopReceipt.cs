using Skywire.Protocol.Framing;

namespace Skywire.Protocol.Metering;

/// <summary>
/// A co-signed, cumulative counter of one hop in one direction of a metered route: the bytes and frames the
/// receiver of the hop has received since the route started, as the receiver counted them. The receiver signs
/// first; the sender countersigns only when the figure is within its loss bound of what it sent (docs/metering.md).
/// </summary>
/// <remarks>
/// Layout (big-endian): tag 0x52, version, terms id (16), hop (1), direction (1), flags (1, bit 0 = final),
/// seq (u64), end time ms (i64), bytes (u64), frames (u64); receiver signature (64), sender signature (64).
/// Rules: seq ≥ 1 and strictly increasing per (terms, hop, direction); counters never decrease; frames ≤ bytes.
/// </remarks>
public sealed record HopReceipt
{
    private const string What = "hop receipt";

    /// <summary>Flag: the last receipt of the hop and direction (sent at route close).</summary>
    public const byte FinalFlag = 0x01;

    /// <summary>Length of the body (what both signatures cover).</summary>
    public const int BodyLength = 2 + MeteringWire.TermsIdLength + 3 + 8 * 4;

    /// <summary>Length of the encoded receipt.</summary>
    public const int Length = BodyLength + 2 * MeteringWire.SignatureLength;

    /// <summary>The terms this receipt belongs to.</summary>
    public required byte[] TermsId { get; init; }

    /// <summary>Hop index: 0 joins the source and the first node after it.</summary>
    public required int Hop { get; init; }

    /// <summary>Direction of the counted traffic.</summary>
    public required MeteringDirection Direction { get; init; }

    /// <summary>True for the receipt sent at route close.</summary>
    public bool Final { get; init; }

    /// <summary>Sequence number, from 1, strictly increasing.</summary>
    public required ulong Seq { get; init; }

    /// <summary>When the counters were read (receiver's clock, Unix ms).</summary>
    public required long EndMs { get; init; }

    /// <summary>Cumulative bytes received on the hop in this direction (route frames as they travel).</summary>
    public required ulong Bytes { get; init; }

    /// <summary>Cumulative frames received.</summary>
    public required ulong Frames { get; init; }

    /// <summary>Receiver's signature (64 bytes) or empty.</summary>
    public byte[] ReceiverSignature { get; init; } = [];

    /// <summary>Sender's countersignature (64 bytes) or empty.</summary>
    public byte[] SenderSignature { get; init; } = [];

    /// <summary>Checks the fields.</summary>
    /// <exception cref="ProtocolViolationException">The first problem.</exception>
    public void Validate()
    {
        MeteringWire.Require(TermsId is { Length: MeteringWire.TermsIdLength }, What, "terms id must be 16 bytes");
        MeteringWire.Require(Hop is >= 0 and <= MeteringWire.MaxRelays, What, $"hop {Hop} out of range");
        MeteringWire.Require(Direction is MeteringDirection.Forward or MeteringDirection.Reverse, What, "unknown direction");
        MeteringWire.Require(Seq >= 1, What, "seq starts at 1");
        MeteringWire.Require(EndMs >= 0, What, "negative end time");
        MeteringWire.Require(Bytes <= MeteringWire.MaxCounter, What, "byte counter out of range");
        MeteringWire.Require(Frames <= Bytes, What, "more frames than bytes");
        MeteringWire.Require(ReceiverSignature.Length is 0 or MeteringWire.SignatureLength, What, "receiver signature must be 64 bytes");
        MeteringWire.Require(SenderSignature.Length is 0 or MeteringWire.SignatureLength, What, "sender signature must be 64 bytes");
    }

    /// <summary>The body both signatures cover.</summary>
    public byte[] EncodeBody()
    {
        var body = new byte[BodyLength];
        var o = 0;
        body[o++] = MeteringWire.ReceiptTag;
        body[o++] = MeteringWire.Version;
        MeteringWire.Put(body, ref o, TermsId);
        body[o++] = (byte)Hop;
        body[o++] = (byte)Direction;
        body[o++] = Final ? FinalFlag : (byte)0;
        MeteringWire.Put(body, ref o, Seq);
        MeteringWire.Put(body, ref o, EndMs);
        MeteringWire.Put(body, ref o, Bytes);
        MeteringWire.Put(body, ref o, Frames);
        return body;
    }

    /// <summary>What the receiver signs.</summary>
    public byte[] ReceiverSigningBytes() => MeteringWire.Concat(MeteringWire.DomainReceiptReceiver, EncodeBody());

    /// <summary>What the sender signs: the body and the receiver's signature (it countersigns that exact receipt).</summary>
    public byte[] SenderSigningBytes() => MeteringWire.Concat(MeteringWire.DomainReceiptSender, EncodeBody(), ReceiverSignature);

    /// <summary>The encoded receipt; both signatures are required.</summary>
    public byte[] Encode()
    {
        Validate();
        MeteringWire.Require(ReceiverSignature.Length == MeteringWire.SignatureLength && SenderSignature.Length == MeteringWire.SignatureLength, What, "both signatures are required to encode");
        return MeteringWire.Concat(EncodeBody(), ReceiverSignature, SenderSignature);
    }

    /// <summary>Decodes a receipt (exact length). Signatures are not verified here.</summary>
    /// <exception cref="ProtocolViolationException">Any malformed field.</exception>
    public static HopReceipt Decode(ReadOnlySpan<byte> data)
    {
        MeteringWire.Require(data.Length == Length, What, $"length {data.Length}, expected {Length}");
        MeteringWire.Require(data[0] == MeteringWire.ReceiptTag, What, "wrong type tag");
        MeteringWire.Require(data[1] == MeteringWire.Version, What, $"unsupported version {data[1]}");
        var o = 2;
        var termsId = data.Slice(o, MeteringWire.TermsIdLength).ToArray();
        o += MeteringWire.TermsIdLength;
        int hop = data[o++];
        var direction = (MeteringDirection)data[o++];
        var flags = data[o++];
        MeteringWire.Require((flags & ~FinalFlag) == 0, What, $"unknown flags 0x{flags:x2}");
        var receipt = new HopReceipt
        {
            TermsId = termsId,
            Hop = hop,
            Direction = direction,
            Final = (flags & FinalFlag) != 0,
            Seq = MeteringWire.U64(data, ref o),
            EndMs = MeteringWire.I64(data, ref o),
            Bytes = MeteringWire.U64(data, ref o),
            Frames = MeteringWire.U64(data, ref o),
            ReceiverSignature = data.Slice(BodyLength, MeteringWire.SignatureLength).ToArray(),
            SenderSignature = data.Slice(BodyLength + MeteringWire.SignatureLength, MeteringWire.SignatureLength).ToArray(),
        };
        receipt.Validate();
        return receipt;
    }

    /// <summary>Decodes; false with a reason instead of an exception.</summary>
    public static bool TryDecode(ReadOnlySpan<byte> data, out HopReceipt? receipt, out string? error)
    {
        try
        {
            receipt = Decode(data);
            error = null;
            return true;
        }
        catch (ProtocolViolationException e)
        {
            receipt = null;
            error = e.Message;
            return false;
        }
    }

    /// <summary>Counters and position; no signatures.</summary>
    public override string ToString() =>
        $"HopReceipt(terms {MeteringWire.Hex(TermsId)}, hop {Hop} {Direction}, seq {Seq}{(Final ? " final" : "")}, {Bytes} B, {Frames} frames)";
}
