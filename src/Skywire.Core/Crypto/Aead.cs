using System.Buffers.Binary;
using System.Security.Cryptography;
using NSec.Cryptography;

namespace Skywire.Core.Crypto;

/// <summary>AEAD algorithms of the mesh. Values are on the wire (handshake negotiation): never renumber.</summary>
public enum AeadAlgorithmId : byte
{
    /// <summary>AES-256-GCM (libsodium through NSec; needs AES-NI + CLMUL). The default when the CPU supports it.</summary>
    Aes256Gcm = 1,

    /// <summary>ChaCha20-Poly1305 (IETF, 96-bit nonce), the fallback everywhere.</summary>
    ChaCha20Poly1305 = 2,
}

/// <summary>
/// A keyed AEAD with a 32-byte key, 12-byte nonce and 16-byte tag. Seal and open work on spans
/// and allocate nothing; in-place operation (same buffer for input and output, same start) is
/// allowed. One instance is safe for concurrent use (libsodium keeps no per-call state).
/// </summary>
public abstract class AeadKey : IDisposable
{
    /// <summary>Key length in bytes.</summary>
    public const int KeyLength = 32;

    /// <summary>Tag length in bytes.</summary>
    public const int TagLength = 16;

    /// <summary>Nonce length in bytes.</summary>
    public const int NonceLength = 12;

    /// <summary>The algorithm.</summary>
    public abstract AeadAlgorithmId Algorithm { get; }

    /// <summary>
    /// Writes the Noise nonce for counter <paramref name="n"/>: 4 zero bytes, then the counter as
    /// 8 bytes, big-endian for AES-GCM and little-endian for ChaCha20-Poly1305 (Noise spec §12).
    /// </summary>
    public abstract void WriteNonce(ulong n, Span<byte> nonce);

    /// <summary>Seals: <paramref name="output"/> receives <paramref name="plaintext"/>.Length + 16 bytes.</summary>
    public abstract void Seal(ReadOnlySpan<byte> nonce, ReadOnlySpan<byte> associatedData, ReadOnlySpan<byte> plaintext, Span<byte> output);

    /// <summary>Opens: false (and <paramref name="output"/> unspecified) when the tag is wrong.</summary>
    public abstract bool Open(ReadOnlySpan<byte> nonce, ReadOnlySpan<byte> associatedData, ReadOnlySpan<byte> ciphertext, Span<byte> output);

    /// <summary>Seals with the Noise nonce of counter <paramref name="n"/>.</summary>
    public void Seal(ulong n, ReadOnlySpan<byte> associatedData, ReadOnlySpan<byte> plaintext, Span<byte> output)
    {
        Span<byte> nonce = stackalloc byte[NonceLength];
        WriteNonce(n, nonce);
        Seal(nonce, associatedData, plaintext, output);
    }

    /// <summary>Opens with the Noise nonce of counter <paramref name="n"/>.</summary>
    public bool Open(ulong n, ReadOnlySpan<byte> associatedData, ReadOnlySpan<byte> ciphertext, Span<byte> output)
    {
        Span<byte> nonce = stackalloc byte[NonceLength];
        WriteNonce(n, nonce);
        return Open(nonce, associatedData, ciphertext, output);
    }

    /// <summary>
    /// Creates a key for <paramref name="algorithm"/> (libsodium): AES-256-GCM with its key schedule expanded once
    /// (<see cref="SodiumAes256GcmKey"/>), ChaCha20-Poly1305 through NSec (it has no key schedule to keep).
    /// </summary>
    /// <exception cref="PlatformNotSupportedException">AES-256-GCM without CPU support.</exception>
    public static AeadKey Create(AeadAlgorithmId algorithm, ReadOnlySpan<byte> key) => algorithm switch
    {
        AeadAlgorithmId.Aes256Gcm => new SodiumAes256GcmKey(key),
        AeadAlgorithmId.ChaCha20Poly1305 => new NSecAeadKey(AeadAlgorithm.ChaCha20Poly1305, algorithm, key),
        _ => throw new ArgumentOutOfRangeException(nameof(algorithm), algorithm, "unknown AEAD"),
    };

    /// <summary>AES-256-GCM when the CPU supports it in libsodium, else ChaCha20-Poly1305.</summary>
    public static AeadAlgorithmId PreferredAlgorithm => Aes256Gcm.IsSupported ? AeadAlgorithmId.Aes256Gcm : AeadAlgorithmId.ChaCha20Poly1305;

    /// <summary>Whether this machine can use <paramref name="algorithm"/>.</summary>
    public static bool IsSupported(AeadAlgorithmId algorithm) => algorithm switch
    {
        AeadAlgorithmId.Aes256Gcm => Aes256Gcm.IsSupported,
        AeadAlgorithmId.ChaCha20Poly1305 => true,
        _ => false,
    };

    /// <summary>The Noise protocol-name component ("AESGCM" or "ChaChaPoly").</summary>
    public static string NoiseName(AeadAlgorithmId algorithm) => algorithm switch
    {
        AeadAlgorithmId.Aes256Gcm => "AESGCM",
        AeadAlgorithmId.ChaCha20Poly1305 => "ChaChaPoly",
        _ => throw new ArgumentOutOfRangeException(nameof(algorithm), algorithm, "unknown AEAD"),
    };

    internal static void WriteNonceFor(AeadAlgorithmId algorithm, ulong n, Span<byte> nonce)
    {
        BinaryPrimitives.WriteUInt32LittleEndian(nonce, 0);
        if (algorithm == AeadAlgorithmId.Aes256Gcm)
        {
            BinaryPrimitives.WriteUInt64BigEndian(nonce[4..], n);
        }
        else
        {
            BinaryPrimitives.WriteUInt64LittleEndian(nonce[4..], n);
        }
    }

    /// <summary>Releases the native key.</summary>
    public void Dispose()
    {
        Dispose(true);
        GC.SuppressFinalize(this);
    }

    /// <summary>Releases the native key.</summary>
    protected abstract void Dispose(bool disposing);
}

/// <summary>An NSec key: ChaCha20-Poly1305 on the data path; AES-256-GCM here only for comparison (benchmarks, tests),
/// as NSec expands the AES key on every call.</summary>
internal sealed class NSecAeadKey : AeadKey
{
    private readonly AeadAlgorithm _algorithm;
    private readonly AeadAlgorithmId _id;
    private readonly Key _key;

    public NSecAeadKey(AeadAlgorithm algorithm, AeadAlgorithmId id, ReadOnlySpan<byte> key)
    {
        if (key.Length != KeyLength)
        {
            throw new ArgumentException("An AEAD key is 32 bytes.", nameof(key));
        }

        if (id == AeadAlgorithmId.Aes256Gcm && !Aes256Gcm.IsSupported)
        {
            throw new PlatformNotSupportedException("AES-256-GCM needs AES-NI and CLMUL on this CPU; use ChaCha20-Poly1305.");
        }

        _algorithm = algorithm;
        _id = id;
        _key = Key.Import(algorithm, key, KeyBlobFormat.RawSymmetricKey);
    }

    public override AeadAlgorithmId Algorithm => _id;

    public override void WriteNonce(ulong n, Span<byte> nonce) => WriteNonceFor(_id, n, nonce);

    public override void Seal(ReadOnlySpan<byte> nonce, ReadOnlySpan<byte> associatedData, ReadOnlySpan<byte> plaintext, Span<byte> output) =>
        _algorithm.Encrypt(_key, nonce, associatedData, plaintext, output[..(plaintext.Length + TagLength)]);

    public override bool Open(ReadOnlySpan<byte> nonce, ReadOnlySpan<byte> associatedData, ReadOnlySpan<byte> ciphertext, Span<byte> output) =>
        ciphertext.Length >= TagLength &&
        _algorithm.Decrypt(_key, nonce, associatedData, ciphertext, output[..(ciphertext.Length - TagLength)]);

    protected override void Dispose(bool disposing)
    {
        if (disposing)
        {
            _key.Dispose();
        }
    }
}

/// <summary>
/// XChaCha20-Poly1305 (libsodium through NSec): 32-byte key, 24-byte nonce, 16-byte tag. The nonce is long
/// enough to be drawn at random for every message under one long-lived key (a 12-byte random nonce is not:
/// collisions become likely long before the key is retired), which is what cookie replies need
/// (WireGuard's cookie design; docs/protocol.md §3.1). Not a link or session AEAD: it is never negotiated.
/// </summary>
internal sealed class XChaCha20Poly1305Key : IDisposable
{
    /// <summary>Nonce length in bytes.</summary>
    public const int NonceLength = 24;

    private readonly Key _key;

    public XChaCha20Poly1305Key(ReadOnlySpan<byte> key)
    {
        if (key.Length != AeadKey.KeyLength)
        {
            throw new ArgumentException("An XChaCha20-Poly1305 key is 32 bytes.", nameof(key));
        }

        _key = Key.Import(AeadAlgorithm.XChaCha20Poly1305, key, KeyBlobFormat.RawSymmetricKey);
    }

    /// <summary>Seals: <paramref name="output"/> receives <paramref name="plaintext"/>.Length + 16 bytes.</summary>
    public void Seal(ReadOnlySpan<byte> nonce, ReadOnlySpan<byte> associatedData, ReadOnlySpan<byte> plaintext, Span<byte> output) =>
        AeadAlgorithm.XChaCha20Poly1305.Encrypt(_key, nonce, associatedData, plaintext, output[..(plaintext.Length + AeadKey.TagLength)]);

    /// <summary>Opens: false (and <paramref name="output"/> unspecified) when the tag is wrong.</summary>
    public bool Open(ReadOnlySpan<byte> nonce, ReadOnlySpan<byte> associatedData, ReadOnlySpan<byte> ciphertext, Span<byte> output) =>
        ciphertext.Length >= AeadKey.TagLength &&
        AeadAlgorithm.XChaCha20Poly1305.Decrypt(_key, nonce, associatedData, ciphertext, output[..(ciphertext.Length - AeadKey.TagLength)]);

    public void Dispose() => _key.Dispose();
}

/// <summary>
/// .NET's own AEAD classes (OpenSSL underneath), kept for comparison in benchmarks: 3-5x
/// slower than libsodium per 1400-byte packet here (docs/benchmarks.md).
/// </summary>
internal sealed class DotNetAeadKey : AeadKey
{
    private readonly AeadAlgorithmId _id;
    private readonly System.Security.Cryptography.AesGcm? _aes;
    private readonly System.Security.Cryptography.ChaCha20Poly1305? _chacha;

    public DotNetAeadKey(AeadAlgorithmId id, ReadOnlySpan<byte> key)
    {
        _id = id;
        if (id == AeadAlgorithmId.Aes256Gcm)
        {
            _aes = new System.Security.Cryptography.AesGcm(key, TagLength);
        }
        else
        {
            _chacha = new System.Security.Cryptography.ChaCha20Poly1305(key);
        }
    }

    public override AeadAlgorithmId Algorithm => _id;

    public override void WriteNonce(ulong n, Span<byte> nonce) => WriteNonceFor(_id, n, nonce);

    public override void Seal(ReadOnlySpan<byte> nonce, ReadOnlySpan<byte> associatedData, ReadOnlySpan<byte> plaintext, Span<byte> output)
    {
        var cipher = output[..plaintext.Length];
        var tag = output.Slice(plaintext.Length, TagLength);
        if (_aes is not null)
        {
            _aes.Encrypt(nonce, plaintext, cipher, tag, associatedData);
        }
        else
        {
            _chacha!.Encrypt(nonce, plaintext, cipher, tag, associatedData);
        }
    }

    public override bool Open(ReadOnlySpan<byte> nonce, ReadOnlySpan<byte> associatedData, ReadOnlySpan<byte> ciphertext, Span<byte> output)
    {
        if (ciphertext.Length < TagLength)
        {
            return false;
        }

        var length = ciphertext.Length - TagLength;
        try
        {
            if (_aes is not null)
            {
                _aes.Decrypt(nonce, ciphertext[..length], ciphertext[length..], output[..length], associatedData);
            }
            else
            {
                _chacha!.Decrypt(nonce, ciphertext[..length], ciphertext[length..], output[..length], associatedData);
            }

            return true;
        }
        catch (AuthenticationTagMismatchException)
        {
            return false;
        }
    }

    protected override void Dispose(bool disposing)
    {
        if (disposing)
        {
            _aes?.Dispose();
            _chacha?.Dispose();
        }
    }
}
