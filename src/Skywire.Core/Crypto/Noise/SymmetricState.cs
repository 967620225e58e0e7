using System.Security.Cryptography;
using System.Text;

namespace Skywire.Core.Crypto.Noise;

/// <summary>Noise SymmetricState (spec §5.2) with SHA-256 (HASHLEN 32, HKDF over HMAC-SHA256 from the BCL).</summary>
internal sealed class SymmetricState : IDisposable
{
    public const int HashLength = 32;

    private readonly byte[] _ck = new byte[HashLength];
    private readonly byte[] _h = new byte[HashLength];

    public SymmetricState(string protocolName, AeadAlgorithmId algorithm)
    {
        Cipher = new CipherState(algorithm);
        var name = Encoding.ASCII.GetBytes(protocolName);
        if (name.Length <= HashLength)
        {
            name.CopyTo(_h, 0);
        }
        else
        {
            SHA256.HashData(name, _h);
        }

        _h.CopyTo(_ck, 0);
    }

    public CipherState Cipher { get; }

    public ReadOnlySpan<byte> Hash => _h;

    public void MixKey(ReadOnlySpan<byte> inputKeyMaterial)
    {
        Span<byte> tempK = stackalloc byte[HashLength];
        Hkdf2(_ck, inputKeyMaterial, _ck, tempK);
        Cipher.InitializeKey(tempK);
        CryptographicOperations.ZeroMemory(tempK);
    }

    public void MixHash(ReadOnlySpan<byte> data)
    {
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        hash.AppendData(_h);
        hash.AppendData(data);
        hash.GetHashAndReset(_h);
    }

    public int EncryptAndHash(ReadOnlySpan<byte> plaintext, Span<byte> output)
    {
        var written = Cipher.EncryptWithAd(_h, plaintext, output);
        MixHash(output[..written]);
        return written;
    }

    public int DecryptAndHash(ReadOnlySpan<byte> ciphertext, Span<byte> output)
    {
        // The hash covers the ciphertext; decrypt into a scratch copy so output may alias input.
        var copy = ciphertext.ToArray();
        var written = Cipher.DecryptWithAd(_h, copy, output);
        MixHash(copy);
        return written;
    }

    public (CipherState First, CipherState Second) Split()
    {
        Span<byte> k1 = stackalloc byte[HashLength];
        Span<byte> k2 = stackalloc byte[HashLength];
        Hkdf2(_ck, [], k1, k2);
        var c1 = new CipherState(Cipher.Algorithm);
        var c2 = new CipherState(Cipher.Algorithm);
        c1.InitializeKey(k1);
        c2.InitializeKey(k2);
        CryptographicOperations.ZeroMemory(k1);
        CryptographicOperations.ZeroMemory(k2);
        return (c1, c2);
    }

    /// <summary>
    /// Noise HKDF with two outputs (spec §4.3), which is RFC 5869 HKDF with the chaining key as the salt, an empty
    /// info and 64 bytes of output, computed by the BCL's <see cref="HKDF"/>. One exception: on Linux the BCL's
    /// HKDF (OpenSSL) refuses an empty input key, which Noise's Split uses, so that Extract step is done as RFC 5869
    /// defines it, one HMAC of the empty input under the salt. Outputs may alias the chaining key.
    /// </summary>
    private static void Hkdf2(ReadOnlySpan<byte> chainingKey, ReadOnlySpan<byte> ikm, Span<byte> out1, Span<byte> out2)
    {
        Span<byte> prk = stackalloc byte[HashLength];
        Span<byte> output = stackalloc byte[2 * HashLength];
        if (ikm.IsEmpty)
        {
            HMACSHA256.HashData(chainingKey, [], prk);
        }
        else
        {
            HKDF.Extract(HashAlgorithmName.SHA256, ikm, chainingKey, prk);
        }

        HKDF.Expand(HashAlgorithmName.SHA256, prk, output, []);
        output[..HashLength].CopyTo(out1);
        output[HashLength..].CopyTo(out2);
        CryptographicOperations.ZeroMemory(prk);
        CryptographicOperations.ZeroMemory(output);
    }

    public void Dispose()
    {
        Cipher.Dispose();
        CryptographicOperations.ZeroMemory(_ck);
    }
}
