using System.Security.Cryptography;
using NSec.Cryptography;
using Skywire.Protocol;

namespace Skywire.Core.Crypto.Noise;

/// <summary>
/// A Diffie-Hellman function for Noise (spec §4.1). The state machine only needs the public-key
/// length, key generation and agreement, so curves plug in here.
/// </summary>
public abstract class NoiseDh
{
    /// <summary>The protocol-name component ("secp256k1", "25519").</summary>
    public abstract string Name { get; }

    /// <summary>Bytes of a public key on the wire (DHLEN for the message layout).</summary>
    public abstract int PublicKeyLength { get; }

    /// <summary>Bytes of a DH output (fed to MixKey; any length works with HKDF).</summary>
    public abstract int OutputLength { get; }

    /// <summary>A fresh key pair from the OS CSPRNG.</summary>
    public abstract NoiseKeyPair GenerateKeyPair();
}

/// <summary>A key pair usable by a <see cref="NoiseDh"/>.</summary>
public abstract class NoiseKeyPair : IDisposable
{
    /// <summary>The public key as it appears in handshake messages.</summary>
    public abstract ReadOnlySpan<byte> PublicKey { get; }

    /// <summary>DH(this, remote). Throws <see cref="NoiseException"/> for an invalid remote key.</summary>
    public abstract void Agree(ReadOnlySpan<byte> remotePublicKey, Span<byte> output);

    /// <summary>Releases the secret.</summary>
    public void Dispose()
    {
        Dispose(true);
        GC.SuppressFinalize(this);
    }

    /// <summary>Releases the secret.</summary>
    protected abstract void Dispose(bool disposing);
}

/// <summary>
/// secp256k1 for Noise: public keys are 33-byte compressed points; DH(a, B) = SHA-256 of the
/// compressed point a·B (32 bytes), the same as <see cref="KeyPair.SharedSecret(PubKey)"/>.
/// Noise does not standardise this curve: the protocol name uses "secp256k1".
/// </summary>
public sealed class Secp256k1Dh : NoiseDh
{
    /// <summary>The instance.</summary>
    public static Secp256k1Dh Instance { get; } = new();

    private Secp256k1Dh()
    {
    }

    /// <inheritdoc/>
    public override string Name => "secp256k1";

    /// <inheritdoc/>
    public override int PublicKeyLength => PubKey.Length;

    /// <inheritdoc/>
    public override int OutputLength => KeyPair.SharedSecretLength;

    /// <inheritdoc/>
    public override NoiseKeyPair GenerateKeyPair() => new Secp256k1NoiseKeyPair(KeyPair.Generate(), owns: true);

    /// <summary>Uses an identity key as a Noise static key. The caller keeps ownership of <paramref name="pair"/>.</summary>
    public static NoiseKeyPair FromKeyPair(KeyPair pair) => new Secp256k1NoiseKeyPair(pair, owns: false);

    private sealed class Secp256k1NoiseKeyPair : NoiseKeyPair
    {
        private readonly KeyPair _pair;
        private readonly bool _owns;
        private readonly byte[] _public;

        public Secp256k1NoiseKeyPair(KeyPair pair, bool owns)
        {
            _pair = pair;
            _owns = owns;
            _public = pair.Public.ToArray();
        }

        public override ReadOnlySpan<byte> PublicKey => _public;

        public override void Agree(ReadOnlySpan<byte> remotePublicKey, Span<byte> output)
        {
            if (remotePublicKey.Length != PubKey.Length || !PubKey.TryRead(remotePublicKey, out var remote) || !KeyPair.IsValidPoint(remote))
            {
                throw new NoiseException("the remote public key is not a valid secp256k1 point");
            }

            _pair.SharedSecret(remote, output);
        }

        protected override void Dispose(bool disposing)
        {
            if (disposing && _owns)
            {
                _pair.Dispose();
            }
        }
    }
}

/// <summary>
/// X25519 (RFC 7748) through NSec. Mesh traffic uses secp256k1; this curve exists so the Noise
/// state machine can be checked against published test vectors.
/// </summary>
public sealed class X25519Dh : NoiseDh
{
    /// <summary>The instance.</summary>
    public static X25519Dh Instance { get; } = new();

    private X25519Dh()
    {
    }

    /// <inheritdoc/>
    public override string Name => "25519";

    /// <inheritdoc/>
    public override int PublicKeyLength => 32;

    /// <inheritdoc/>
    public override int OutputLength => 32;

    /// <inheritdoc/>
    public override NoiseKeyPair GenerateKeyPair()
    {
        Span<byte> secret = stackalloc byte[32];
        RandomNumberGenerator.Fill(secret);
        try
        {
            return FromPrivateKey(secret);
        }
        finally
        {
            CryptographicOperations.ZeroMemory(secret);
        }
    }

    /// <summary>A key pair from a 32-byte private key (test vectors).</summary>
    public static NoiseKeyPair FromPrivateKey(ReadOnlySpan<byte> privateKey) => new X25519KeyPair(privateKey);

    private sealed class X25519KeyPair : NoiseKeyPair
    {
        private readonly Key _key;
        private readonly byte[] _public;

        public X25519KeyPair(ReadOnlySpan<byte> privateKey)
        {
            _key = Key.Import(KeyAgreementAlgorithm.X25519, privateKey, KeyBlobFormat.RawPrivateKey);
            _public = _key.PublicKey.Export(KeyBlobFormat.RawPublicKey);
        }

        public override ReadOnlySpan<byte> PublicKey => _public;

        public override void Agree(ReadOnlySpan<byte> remotePublicKey, Span<byte> output)
        {
            if (!NSec.Cryptography.PublicKey.TryImport(KeyAgreementAlgorithm.X25519, remotePublicKey, KeyBlobFormat.RawPublicKey, out var remote) || remote is null)
            {
                throw new NoiseException("the remote public key is not a valid X25519 key");
            }

            var parameters = new SharedSecretCreationParameters { ExportPolicy = KeyExportPolicies.AllowPlaintextExport };
            using var shared = KeyAgreementAlgorithm.X25519.Agree(_key, remote, in parameters)
                ?? throw new NoiseException("X25519 agreement produced the all-zero output");
            var bytes = shared.Export(SharedSecretBlobFormat.RawSharedSecret);
            bytes.CopyTo(output);
            CryptographicOperations.ZeroMemory(bytes);
        }

        protected override void Dispose(bool disposing)
        {
            if (disposing)
            {
                _key.Dispose();
            }
        }
    }
}
