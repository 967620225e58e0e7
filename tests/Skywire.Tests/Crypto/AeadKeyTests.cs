using NSec.Cryptography;
using Skywire.Core.Crypto;

namespace Skywire.Tests.Crypto;

/// <summary>
/// The data path's AES-256-GCM key (<see cref="SodiumAes256GcmKey"/>: key schedule expanded once, libsodium's
/// <c>_afternm</c> calls) against two independent implementations of the same algorithm (NSec's per-call
/// AES-GCM and .NET's <c>AesGcm</c>): same bytes out, each opens what the others sealed, in place too, and a
/// changed bit, nonce or associated datum is refused.
/// </summary>
public class AeadKeyTests
{
    private static readonly int[] Lengths = [0, 1, 15, 16, 17, 64, 1356, 1400, 4096];

    [Fact]
    public void Create_Aes256Gcm_KeepsTheExpandedKey()
    {
        Assert.SkipUnless(AeadKey.IsSupported(AeadAlgorithmId.Aes256Gcm), "no AES-NI on this CPU");
        using var key = AeadKey.Create(AeadAlgorithmId.Aes256Gcm, new byte[32]);
        Assert.IsType<SodiumAes256GcmKey>(key);
    }

    [Fact]
    public void SealAndOpen_MatchNSecAndDotNet()
    {
        Assert.SkipUnless(AeadKey.IsSupported(AeadAlgorithmId.Aes256Gcm), "no AES-NI on this CPU");
        var random = new Random(19);
        var raw = new byte[32];
        random.NextBytes(raw);
        using var ours = AeadKey.Create(AeadAlgorithmId.Aes256Gcm, raw);
        using var nsec = new NSecAeadKey(AeadAlgorithm.Aes256Gcm, AeadAlgorithmId.Aes256Gcm, raw);
        using var dotnet = new DotNetAeadKey(AeadAlgorithmId.Aes256Gcm, raw);
        foreach (var length in Lengths)
        {
            foreach (var adLength in new[] { 0, 38 })
            {
                var plaintext = new byte[length];
                var ad = new byte[adLength];
                random.NextBytes(plaintext);
                random.NextBytes(ad);
                var counter = (ulong)random.NextInt64();
                var a = new byte[length + AeadKey.TagLength];
                var b = new byte[length + AeadKey.TagLength];
                var c = new byte[length + AeadKey.TagLength];
                ours.Seal(counter, ad, plaintext, a);
                nsec.Seal(counter, ad, plaintext, b);
                dotnet.Seal(counter, ad, plaintext, c);
                Assert.Equal(b, a);
                Assert.Equal(c, a);

                var opened = new byte[length];
                Assert.True(ours.Open(counter, ad, b, opened));
                Assert.Equal(plaintext, opened);
                Assert.True(nsec.Open(counter, ad, a, opened));
                Assert.Equal(plaintext, opened);
            }
        }
    }

    [Fact]
    public void InPlace_SealThenOpen_RoundTrips()
    {
        Assert.SkipUnless(AeadKey.IsSupported(AeadAlgorithmId.Aes256Gcm), "no AES-NI on this CPU");
        using var key = AeadKey.Create(AeadAlgorithmId.Aes256Gcm, Enumerable.Range(1, 32).Select(i => (byte)i).ToArray());
        var plaintext = Enumerable.Range(0, 1356).Select(i => (byte)(i * 7)).ToArray();
        var buffer = new byte[plaintext.Length + AeadKey.TagLength];
        plaintext.CopyTo(buffer, 0);
        key.Seal(42, [], buffer.AsSpan(0, plaintext.Length), buffer);
        Assert.NotEqual(plaintext, buffer[..plaintext.Length]);
        Assert.True(key.Open(42, [], buffer, buffer.AsSpan(0, plaintext.Length)));
        Assert.Equal(plaintext, buffer[..plaintext.Length]);
    }

    [Fact]
    public void Open_RefusesTamperedCiphertextNonceOrAssociatedData()
    {
        Assert.SkipUnless(AeadKey.IsSupported(AeadAlgorithmId.Aes256Gcm), "no AES-NI on this CPU");
        using var key = AeadKey.Create(AeadAlgorithmId.Aes256Gcm, new byte[32]);
        var plaintext = new byte[100];
        byte[] ad = [1, 2, 3];
        var sealedBytes = new byte[plaintext.Length + AeadKey.TagLength];
        key.Seal(5, ad, plaintext, sealedBytes);
        var output = new byte[plaintext.Length];

        Assert.True(key.Open(5, ad, sealedBytes, output));
        Assert.False(key.Open(6, ad, sealedBytes, output));
        Assert.False(key.Open(5, [1, 2, 4], sealedBytes, output));
        Assert.False(key.Open(5, ad, sealedBytes.AsSpan(0, AeadKey.TagLength - 1), output));
        for (var i = 0; i < sealedBytes.Length; i += 29)
        {
            var tampered = (byte[])sealedBytes.Clone();
            tampered[i] ^= 0x10;
            Assert.False(key.Open(5, ad, tampered, output));
        }
    }

    [Fact]
    public void Disposed_Throws_AsNSecKeysDo()
    {
        Assert.SkipUnless(AeadKey.IsSupported(AeadAlgorithmId.Aes256Gcm), "no AES-NI on this CPU");
        var key = AeadKey.Create(AeadAlgorithmId.Aes256Gcm, new byte[32]);
        key.Dispose();
        key.Dispose();
        var output = new byte[AeadKey.TagLength];
        Assert.Throws<ObjectDisposedException>(() => key.Seal(1, [], [], output));
        Assert.Throws<ObjectDisposedException>(() => key.Open(1, [], output, []));
    }

    [Fact]
    public void WrongNonceOrOutputLength_IsAnArgumentError()
    {
        Assert.SkipUnless(AeadKey.IsSupported(AeadAlgorithmId.Aes256Gcm), "no AES-NI on this CPU");
        using var key = AeadKey.Create(AeadAlgorithmId.Aes256Gcm, new byte[32]);
        Assert.Throws<ArgumentException>(() => key.Seal(new byte[8], [], new byte[4], new byte[20]));
        Assert.Throws<ArgumentException>(() => key.Seal(new byte[12], [], new byte[4], new byte[19]));
        Assert.Throws<ArgumentException>(() => key.Open(new byte[12], [], new byte[20], new byte[3]));
    }
}
