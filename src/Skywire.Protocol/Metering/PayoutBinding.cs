using System.Security.Cryptography;
using Skywire.Protocol.Framing;

namespace Skywire.Protocol.Metering;

/// <summary>
/// A node's signed choice of the Skycoin address its earnings are paid to, instead of the address derived from its
/// key (docs/metering.md "Payouts"). The highest <see cref="Seq"/> the ledger has taken wins; the signature proves
/// the node chose it (no unsigned <c>reward.txt</c>).
/// </summary>
/// <remarks>
/// Layout (big-endian): tag 0x54, version, node key (33), seq (u64), address (25: RIPEMD-160 key hash (20), version
/// 0, checksum (4) = first 4 bytes of SHA-256 of the 21 before); node signature (64). 132 bytes.
/// </remarks>
public sealed record PayoutBinding
{
    private const string What = "payout binding";

    /// <summary>Length of a binary Skycoin address.</summary>
    public const int AddressLength = 25;

    /// <summary>Length of the body.</summary>
    public const int BodyLength = 2 + PubKey.Length + 8 + AddressLength;

    /// <summary>Length of the encoded message.</summary>
    public const int Length = BodyLength + MeteringWire.SignatureLength;

    /// <summary>The node whose earnings go to <see cref="Address"/>.</summary>
    public required PubKey Node { get; init; }

    /// <summary>Sequence number, from 1; a binding with a higher seq replaces the node's earlier one.</summary>
    public required ulong Seq { get; init; }

    /// <summary>The Skycoin address, binary (25 bytes; its Base58 text is what wallets show).</summary>
    public required byte[] Address { get; init; }

    /// <summary>The node's signature (64 bytes) or empty.</summary>
    public byte[] NodeSignature { get; init; } = [];

    /// <summary>Checks the fields (including the address's version and checksum).</summary>
    /// <exception cref="ProtocolViolationException">The first problem.</exception>
    public void Validate()
    {
        MeteringWire.Require(Seq >= 1, What, "seq starts at 1");
        MeteringWire.Require(Address is { Length: AddressLength }, What, "the address must be 25 bytes");
        MeteringWire.Require(Address[20] == 0, What, "unknown address version");
        Span<byte> check = stackalloc byte[32];
        SHA256.HashData(Address.AsSpan(0, 21), check);
        MeteringWire.Require(check[..4].SequenceEqual(Address.AsSpan(21, 4)), What, "the address checksum is wrong");
        MeteringWire.Require(NodeSignature.Length is 0 or MeteringWire.SignatureLength, What, "signature must be 64 bytes");
    }

    /// <summary>The body the signature covers.</summary>
    public byte[] EncodeBody()
    {
        Validate();
        var body = new byte[BodyLength];
        var o = 0;
        body[o++] = MeteringWire.BindingTag;
        body[o++] = MeteringWire.Version;
        MeteringWire.Put(body, ref o, Node);
        MeteringWire.Put(body, ref o, Seq);
        MeteringWire.Put(body, ref o, Address);
        return body;
    }

    /// <summary>What the node signs.</summary>
    public byte[] SigningBytes() => MeteringWire.Concat(MeteringWire.DomainBinding, EncodeBody());

    /// <summary>The encoded message; the signature is required.</summary>
    public byte[] Encode()
    {
        MeteringWire.Require(NodeSignature.Length == MeteringWire.SignatureLength, What, "the signature is required to encode");
        return MeteringWire.Concat(EncodeBody(), NodeSignature);
    }

    /// <summary>Decodes (exact length). The signature is not verified here.</summary>
    /// <exception cref="ProtocolViolationException">Any malformed field.</exception>
    public static PayoutBinding Decode(ReadOnlySpan<byte> data)
    {
        MeteringWire.Require(data.Length == Length, What, $"length {data.Length}, expected {Length}");
        MeteringWire.Require(data[0] == MeteringWire.BindingTag, What, "wrong type tag");
        MeteringWire.Require(data[1] == MeteringWire.Version, What, $"unsupported version {data[1]}");
        var o = 2;
        var node = MeteringWire.Key(data, ref o, What, "node");
        var binding = new PayoutBinding
        {
            Node = node,
            Seq = MeteringWire.U64(data, ref o),
            Address = data.Slice(o, AddressLength).ToArray(),
            NodeSignature = data.Slice(BodyLength, MeteringWire.SignatureLength).ToArray(),
        };
        binding.Validate();
        return binding;
    }

    /// <summary>Decodes; false with a reason instead of an exception.</summary>
    public static bool TryDecode(ReadOnlySpan<byte> data, out PayoutBinding? binding, out string? error)
    {
        try
        {
            binding = Decode(data);
            error = null;
            return true;
        }
        catch (ProtocolViolationException e)
        {
            binding = null;
            error = e.Message;
            return false;
        }
    }

    /// <summary>Node and seq; no signature.</summary>
    public override string ToString() => $"PayoutBinding(node {Node.ToShortString()}, seq {Seq})";
}
