using Skywire.Core.Crypto;
using Skywire.Protocol;
using Skywire.Protocol.Metering;

namespace Skywire.Core.Metering;

/// <summary>
/// Signs and verifies the metering messages of Skywire.Protocol.Metering with node keys (secp256k1 ECDSA over
/// SHA-256, RFC 6979, low-S; <see cref="KeyPair"/>). The codecs stay BCL-only; the keys live here.
/// </summary>
public static class MeteringSigner
{
    /// <summary>The manager signs terms it issues.</summary>
    public static RouteTerms SignAsManager(RouteTerms terms, KeyPair manager)
    {
        ArgumentNullException.ThrowIfNull(terms);
        ArgumentNullException.ThrowIfNull(manager);
        if (manager.Public != terms.Manager)
        {
            throw new ArgumentException("The terms name another manager.", nameof(manager));
        }

        terms.Validate();
        return terms with { ManagerSignature = manager.Sign(terms.ManagerSigningBytes()), SourceSignature = [] };
    }

    /// <summary>The source accepts terms the manager signed (call only after <see cref="VerifyTerms"/> of the manager part).</summary>
    public static RouteTerms AcceptAsSource(RouteTerms terms, KeyPair source)
    {
        ArgumentNullException.ThrowIfNull(terms);
        ArgumentNullException.ThrowIfNull(source);
        if (source.Public != terms.Source)
        {
            throw new ArgumentException("The terms name another source.", nameof(source));
        }

        if (!KeyPair.Verify(terms.Manager, terms.ManagerSigningBytes(), terms.ManagerSignature))
        {
            throw new ArgumentException("The manager's signature on the terms does not verify.", nameof(terms));
        }

        return terms with { SourceSignature = source.Sign(terms.SourceSigningBytes()) };
    }

    /// <summary>Null when both signatures verify, else why not.</summary>
    public static string? VerifyTerms(RouteTerms terms, PubKey expectedManager)
    {
        ArgumentNullException.ThrowIfNull(terms);
        if (terms.Manager != expectedManager)
        {
            return "terms issued by another manager";
        }

        if (!KeyPair.Verify(terms.Manager, terms.ManagerSigningBytes(), terms.ManagerSignature))
        {
            return "manager signature invalid";
        }

        return KeyPair.Verify(terms.Source, terms.SourceSigningBytes(), terms.SourceSignature) ? null : "source signature invalid";
    }

    /// <summary>The receiver of a hop signs its cumulative counters.</summary>
    public static HopReceipt SignAsReceiver(HopReceipt receipt, RouteTerms terms, KeyPair receiver)
    {
        ArgumentNullException.ThrowIfNull(receipt);
        ArgumentNullException.ThrowIfNull(terms);
        ArgumentNullException.ThrowIfNull(receiver);
        CheckPosition(receipt, terms);
        if (terms.ReceiverOf(receipt.Hop, receipt.Direction) != receiver.Public)
        {
            throw new ArgumentException("This key is not the receiver of that hop.", nameof(receiver));
        }

        return receipt with { ReceiverSignature = receiver.Sign(receipt.ReceiverSigningBytes()), SenderSignature = [] };
    }

    /// <summary>The sender of a hop countersigns a receipt the receiver signed (after its own loss-bound check).</summary>
    public static HopReceipt CountersignAsSender(HopReceipt receipt, RouteTerms terms, KeyPair sender)
    {
        ArgumentNullException.ThrowIfNull(receipt);
        ArgumentNullException.ThrowIfNull(terms);
        ArgumentNullException.ThrowIfNull(sender);
        CheckPosition(receipt, terms);
        if (terms.SenderOf(receipt.Hop, receipt.Direction) != sender.Public)
        {
            throw new ArgumentException("This key is not the sender of that hop.", nameof(sender));
        }

        if (!KeyPair.Verify(terms.ReceiverOf(receipt.Hop, receipt.Direction), receipt.ReceiverSigningBytes(), receipt.ReceiverSignature))
        {
            throw new ArgumentException("The receiver's signature does not verify.", nameof(receipt));
        }

        return receipt with { SenderSignature = sender.Sign(receipt.SenderSigningBytes()) };
    }

    /// <summary>Null when the receipt belongs to <paramref name="terms"/> and both the receiver and the sender of its hop signed it.</summary>
    public static string? VerifyReceipt(HopReceipt receipt, RouteTerms terms, byte[] termsId)
    {
        ArgumentNullException.ThrowIfNull(receipt);
        ArgumentNullException.ThrowIfNull(terms);
        if (!receipt.TermsId.AsSpan().SequenceEqual(termsId))
        {
            return "receipt for other terms";
        }

        if (receipt.Hop >= terms.HopCount)
        {
            return $"hop {receipt.Hop} not on a {terms.HopCount}-hop route";
        }

        if (!KeyPair.Verify(terms.ReceiverOf(receipt.Hop, receipt.Direction), receipt.ReceiverSigningBytes(), receipt.ReceiverSignature))
        {
            return "receiver signature invalid";
        }

        return KeyPair.Verify(terms.SenderOf(receipt.Hop, receipt.Direction), receipt.SenderSigningBytes(), receipt.SenderSignature)
            ? null
            : "sender signature invalid";
    }

    /// <summary>The source signs an authorization.</summary>
    public static SpendAuthorization SignAuthorization(SpendAuthorization auth, KeyPair source)
    {
        ArgumentNullException.ThrowIfNull(auth);
        ArgumentNullException.ThrowIfNull(source);
        auth.Validate();
        return auth with { SourceSignature = source.Sign(auth.SigningBytes()) };
    }

    /// <summary>Null when the authorization belongs to the terms and the source signed it.</summary>
    public static string? VerifyAuthorization(SpendAuthorization auth, RouteTerms terms, byte[] termsId)
    {
        ArgumentNullException.ThrowIfNull(auth);
        ArgumentNullException.ThrowIfNull(terms);
        if (!auth.TermsId.AsSpan().SequenceEqual(termsId))
        {
            return "authorization for other terms";
        }

        return KeyPair.Verify(terms.Source, auth.SigningBytes(), auth.SourceSignature) ? null : "source signature invalid";
    }

    /// <summary>A node binds its payouts to another Skycoin address (docs/metering.md "Payouts").</summary>
    /// <exception cref="ArgumentException">The address is not a well-formed Skycoin address.</exception>
    public static PayoutBinding SignBinding(KeyPair node, string address, ulong seq)
    {
        ArgumentNullException.ThrowIfNull(node);
        if (!SkycoinAddress.TryDecode(address, out var bytes))
        {
            throw new ArgumentException($"'{address}' is not a Skycoin address (Base58, version 0, checksum)", nameof(address));
        }

        var binding = new PayoutBinding { Node = node.Public, Seq = seq, Address = bytes };
        binding.Validate();
        return binding with { NodeSignature = node.Sign(binding.SigningBytes()) };
    }

    /// <summary>Null when the node named in the binding signed it.</summary>
    public static string? VerifyBinding(PayoutBinding binding)
    {
        ArgumentNullException.ThrowIfNull(binding);
        return KeyPair.Verify(binding.Node, binding.SigningBytes(), binding.NodeSignature) ? null : "node signature invalid";
    }

    private static void CheckPosition(HopReceipt receipt, RouteTerms terms)
    {
        receipt.Validate();
        if (receipt.Hop >= terms.HopCount)
        {
            throw new ArgumentException($"Hop {receipt.Hop} is not on a {terms.HopCount}-hop route.", nameof(receipt));
        }

        if (!receipt.TermsId.AsSpan().SequenceEqual(terms.TermsId))
        {
            throw new ArgumentException("The receipt names other terms.", nameof(receipt));
        }
    }
}
