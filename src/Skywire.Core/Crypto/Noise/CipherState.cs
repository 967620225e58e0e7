namespace Skywire.Core.Crypto.Noise;

/// <summary>
/// Noise CipherState (spec §5.1): a key and a 64-bit counter. After the handshake, one instance
/// per direction. Datagram transports use the explicit-nonce <see cref="Seal"/>/<see cref="Open"/>
/// (the counter travels in the packet); stream transports use the sequential
/// <see cref="EncryptWithAd"/>/<see cref="DecryptWithAd"/>.
/// </summary>
public sealed class CipherState : IDisposable
{
    /// <summary>2^64-1 is reserved by Noise (rekey); no message may use it.</summary>
    public const ulong MaxNonce = ulong.MaxValue - 1;

    private readonly AeadAlgorithmId _algorithm;
    private AeadKey? _key;
    private ulong _n;

    internal CipherState(AeadAlgorithmId algorithm) => _algorithm = algorithm;

    /// <summary>The AEAD.</summary>
    public AeadAlgorithmId Algorithm => _algorithm;

    /// <summary>Whether a key is set.</summary>
    public bool HasKey => _key is not null;

    /// <summary>The next counter <see cref="EncryptWithAd"/> or <see cref="DecryptWithAd"/> uses.</summary>
    public ulong Nonce => _n;

    /// <summary>The keyed AEAD, for data paths that build nonces themselves.</summary>
    public AeadKey Key => _key ?? throw new InvalidOperationException("The cipher state has no key.");

    internal void InitializeKey(ReadOnlySpan<byte> key)
    {
        _key?.Dispose();
        _key = AeadKey.Create(_algorithm, key);
        _n = 0;
    }

    /// <summary>Encrypts with the next counter (or copies when no key is set). Returns bytes written.</summary>
    public int EncryptWithAd(ReadOnlySpan<byte> associatedData, ReadOnlySpan<byte> plaintext, Span<byte> output)
    {
        if (_key is null)
        {
            plaintext.CopyTo(output);
            return plaintext.Length;
        }

        if (_n > MaxNonce)
        {
            throw new NoiseException("nonce exhausted");
        }

        _key.Seal(_n, associatedData, plaintext, output);
        _n++;
        return plaintext.Length + AeadKey.TagLength;
    }

    /// <summary>Decrypts with the next counter (or copies when no key is set). Returns bytes written.</summary>
    /// <exception cref="NoiseException">Bad tag or too short; the counter does not advance.</exception>
    public int DecryptWithAd(ReadOnlySpan<byte> associatedData, ReadOnlySpan<byte> ciphertext, Span<byte> output)
    {
        if (_key is null)
        {
            ciphertext.CopyTo(output);
            return ciphertext.Length;
        }

        if (_n > MaxNonce)
        {
            throw new NoiseException("nonce exhausted");
        }

        if (ciphertext.Length < AeadKey.TagLength || !_key.Open(_n, associatedData, ciphertext, output))
        {
            throw new NoiseException("authentication failed");
        }

        _n++;
        return ciphertext.Length - AeadKey.TagLength;
    }

    /// <summary>Seals with an explicit counter (datagrams). Writes plaintext length + 16 bytes.</summary>
    public void Seal(ulong nonce, ReadOnlySpan<byte> associatedData, ReadOnlySpan<byte> plaintext, Span<byte> output) =>
        Key.Seal(nonce, associatedData, plaintext, output);

    /// <summary>Opens with an explicit counter (datagrams). False when the tag is wrong.</summary>
    public bool Open(ulong nonce, ReadOnlySpan<byte> associatedData, ReadOnlySpan<byte> ciphertext, Span<byte> output) =>
        Key.Open(nonce, associatedData, ciphertext, output);

    /// <summary>Releases the key.</summary>
    public void Dispose()
    {
        _key?.Dispose();
        _key = null;
    }
}
