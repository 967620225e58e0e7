using System.Security.Cryptography;
using System.Text;

namespace Skywire.Core.Crypto.Noise;

/// <summary>Noise SymmetricState (spec §5.2) with SHA-256 (HASHLEN 32, HMAC-SHA256 HKDF).</summary>
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

    /// <summary>Noise HKDF with two outputs (spec §4.3). Outputs may alias the chaining key.</summary>
    private static void Hkdf2(ReadOnlySpan<byte> chainingKey, ReadOnlySpan<byte> ikm, Span<byte> out1, Span<byte> out2)
    {
        Span<byte> tempKey = stackalloc byte[HashLength];
        Span<byte> input = stackalloc byte[HashLength + 1];
        Span<byte> o1 = stackalloc byte[HashLength];
        HMACSHA256.HashData(chainingKey, ikm, tempKey);
        input[0] = 0x01;
        HMACSHA256.HashData(tempKey, input[..1], o1);
        o1.CopyTo(input);
        input[HashLength] = 0x02;
        HMACSHA256.HashData(tempKey, input, out2);
        o1.CopyTo(out1);
        CryptographicOperations.ZeroMemory(tempKey);
        CryptographicOperations.ZeroMemory(o1);
    }

    public void Dispose()
    {
        Cipher.Dispose();
        CryptographicOperations.ZeroMemory(_ck);
    }
}
