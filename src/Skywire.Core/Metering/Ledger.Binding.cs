using Skywire.Core.Crypto;
using Skywire.Protocol;
using Skywire.Protocol.Metering;

namespace Skywire.Core.Metering;

/// <summary>Payout bindings (docs/metering.md "Payouts"): where a node's earnings are paid when not to its key's address.</summary>
public sealed partial class Ledger
{
    private readonly Dictionary<PubKey, PayoutBinding> _bindings = [];

    /// <summary>The latest binding of each node that has one.</summary>
    public IReadOnlyDictionary<PubKey, PayoutBinding> Bindings => _bindings;

    /// <summary>Takes a node's signed payout binding (replaces one with a lower seq).</summary>
    public LedgerOutcome SubmitBinding(ReadOnlySpan<byte> binding, long atMs) =>
        Submit(new LedgerRecord { Kind = LedgerRecordKind.Binding, AtMs = atMs, Data = Convert.ToHexStringLower(binding) });

    /// <summary>Takes one signed message of any kind nodes upload (terms, receipt, authorization, binding), by its type tag.</summary>
    public LedgerOutcome SubmitSigned(ReadOnlySpan<byte> message, long atMs) => message.IsEmpty
        ? new LedgerOutcome(LedgerStatus.Refused, "empty message")
        : message[0] switch
        {
            MeteringWire.TermsTag => OpenRoute(message, atMs),
            MeteringWire.AuthTag => SubmitAuthorization(message, atMs),
            MeteringWire.BindingTag => SubmitBinding(message, atMs),
            _ => SubmitReceipt(message, atMs),
        };

    /// <summary>The address <paramref name="node"/>'s earnings are paid to: its binding's, else the one derived from its key.</summary>
    public string PayoutAddress(PubKey node) =>
        _bindings.TryGetValue(node, out var binding) ? SkycoinAddress.Encode(binding.Address) : SkycoinAddress.FromPubKey(node);

    private LedgerOutcome ApplyBinding(LedgerRecord record)
    {
        string? error = null;
        if (!TryHex(record.Data, out var bytes) || !PayoutBinding.TryDecode(bytes, out var binding, out error))
        {
            return new(LedgerStatus.Refused, "binding does not decode: " + (error ?? "not hex"));
        }

        if (MeteringSigner.VerifyBinding(binding!) is { } problem)
        {
            return new(LedgerStatus.Refused, "binding refused: " + problem);
        }

        if (_bindings.TryGetValue(binding!.Node, out var current))
        {
            if (current.Encode().AsSpan().SequenceEqual(bytes))
            {
                return new(LedgerStatus.Duplicate, "binding already taken");
            }

            if (binding.Seq <= current.Seq)
            {
                return new(LedgerStatus.Refused, $"node {binding.Node.ToShortString()} already bound with seq {current.Seq}; a new binding needs a higher seq");
            }
        }

        _bindings[binding.Node] = binding;
        return new(LedgerStatus.Accepted, $"node {binding.Node.ToShortString()} is paid to {SkycoinAddress.Encode(binding.Address)} (seq {binding.Seq})");
    }
}
