using System.Security.Cryptography;
using NBitcoin.Secp256k1;
using Skywire.Protocol;
using SHA256 = System.Security.Cryptography.SHA256;

namespace Skywire.Core.Crypto;

/// <summary>
/// A secp256k1 identity: the secret scalar and its compressed public key. Signs with ECDSA over
/// SHA-256 (RFC 6979 deterministic nonces, 64-byte compact r||s, low-S) and agrees keys with ECDH.
/// </summary>
/// <remarks>
/// <see cref="ToString"/> shows the public key only; the secret leaves this type only through
/// <see cref="WriteSecret"/>, which <see cref="KeyFile"/> uses.
/// </remarks>
public sealed class KeyPair : IDisposable
{
    /// <summary>Length of a compact signature (r || s).</summary>
    public const int SignatureLength = 64;

    /// <summary>Length of a secret key.</summary>
    public const int SecretLength = 32;

    /// <summary>Length of an ECDH shared secret.</summary>
    public const int SharedSecretLength = 32;

    private readonly ECPrivKey _secret;
    private string? _address;

    private KeyPair(ECPrivKey secret)
    {
        _secret = secret;
        Span<byte> pub = stackalloc byte[PubKey.Length];
        secret.CreatePubKey().WriteToSpan(compressed: true, pub, out _);
        Public = PubKey.Read(pub);
    }

    /// <summary>The public key.</summary>
    public PubKey Public { get; }

    /// <summary>The Skycoin address of <see cref="Public"/> (see <see cref="Crypto.SkycoinAddress"/>).</summary>
    public string SkycoinAddress => _address ??= Crypto.SkycoinAddress.FromPubKey(Public);

    /// <summary>A new random key pair from the OS CSPRNG.</summary>
    public static KeyPair Generate()
    {
        Span<byte> secret = stackalloc byte[SecretLength];
        try
        {
            while (true)
            {
                RandomNumberGenerator.Fill(secret);
                // Rejects 0 and values >= the group order (probability ~2^-128).
                if (ECPrivKey.TryCreate(secret, out var key))
                {
                    return new KeyPair(key);
                }
            }
        }
        finally
        {
            CryptographicOperations.ZeroMemory(secret);
        }
    }

    /// <summary>Imports a 32-byte secret key.</summary>
    /// <exception cref="ArgumentException">Not 32 bytes, zero, or not below the curve order.</exception>
    public static KeyPair FromSecret(ReadOnlySpan<byte> secret)
    {
        if (secret.Length != SecretLength || !ECPrivKey.TryCreate(secret, out var key))
        {
            throw new ArgumentException("A secp256k1 secret key is 32 bytes, non-zero and below the curve order.", nameof(secret));
        }

        return new KeyPair(key);
    }

    /// <summary>Copies the 32-byte secret into <paramref name="destination"/>. Handle with care.</summary>
    public void WriteSecret(Span<byte> destination) => _secret.WriteToSpan(destination);

    /// <summary>Signs SHA-256(<paramref name="message"/>) into 64 bytes.</summary>
    public void Sign(ReadOnlySpan<byte> message, Span<byte> signature)
    {
        if (signature.Length < SignatureLength)
        {
            throw new ArgumentException("A signature needs 64 bytes.", nameof(signature));
        }

        Span<byte> hash = stackalloc byte[32];
        SHA256.HashData(message, hash);
        _secret.SignECDSARFC6979(hash).WriteCompactToSpan(signature);
    }

    /// <summary>Signs SHA-256(<paramref name="message"/>) and returns the 64-byte signature.</summary>
    public byte[] Sign(ReadOnlySpan<byte> message)
    {
        var signature = new byte[SignatureLength];
        Sign(message, signature);
        return signature;
    }

    /// <summary>
    /// Verifies a 64-byte compact signature of SHA-256(<paramref name="message"/>) by
    /// <paramref name="signer"/>. False for a malformed key or signature, never an exception.
    /// </summary>
    public static bool Verify(PubKey signer, ReadOnlySpan<byte> message, ReadOnlySpan<byte> signature)
    {
        if (signature.Length != SignatureLength || !TryGetPoint(signer, out var point))
        {
            return false;
        }

        if (!SecpECDSASignature.TryCreateFromCompact(signature, out var sig) || sig is null)
        {
            return false;
        }

        Span<byte> hash = stackalloc byte[32];
        SHA256.HashData(message, hash);
        // libsecp256k1 accepts only low-S signatures, so a signature cannot be malleated into a second valid one.
        return point.SigVerify(sig, hash);
    }

    /// <summary>
    /// ECDH: SHA-256 of the compressed shared point (33 bytes), as libsecp256k1's default ECDH.
    /// Writes 32 bytes.
    /// </summary>
    /// <exception cref="CryptographicException"><paramref name="peer"/> is not a point on the curve.</exception>
    public void SharedSecret(PubKey peer, Span<byte> destination)
    {
        if (destination.Length < SharedSecretLength)
        {
            throw new ArgumentException("A shared secret needs 32 bytes.", nameof(destination));
        }

        if (!TryGetPoint(peer, out var point))
        {
            throw new CryptographicException("The peer public key is not a valid secp256k1 point.");
        }

        Span<byte> shared = stackalloc byte[PubKey.Length];
        point.GetSharedPubkey(_secret).WriteToSpan(compressed: true, shared, out _);
        SHA256.HashData(shared, destination);
        CryptographicOperations.ZeroMemory(shared);
    }

    /// <summary>ECDH into a new 32-byte array (see <see cref="SharedSecret(PubKey, Span{byte})"/>).</summary>
    public byte[] SharedSecret(PubKey peer)
    {
        var result = new byte[SharedSecretLength];
        SharedSecret(peer, result);
        return result;
    }

    /// <summary>True when <paramref name="key"/> is a point on secp256k1 (not only the right shape).</summary>
    public static bool IsValidPoint(PubKey key) => TryGetPoint(key, out _);

    internal static bool TryGetPoint(PubKey key, out ECPubKey point)
    {
        point = null!;
        if (key.IsEmpty)
        {
            return false;
        }

        Span<byte> bytes = stackalloc byte[PubKey.Length];
        key.WriteTo(bytes);
        if (ECPubKey.TryCreate(bytes, null, out _, out var created) && created is not null)
        {
            point = created;
            return true;
        }

        return false;
    }

    /// <summary>The public key only.</summary>
    public override string ToString() => $"KeyPair({Public})";

    /// <summary>Clears the secret scalar.</summary>
    public void Dispose() => _secret.Dispose();
}
