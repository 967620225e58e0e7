using System.Security.Cryptography;
using System.Text;
using Skywire.Core.Crypto;
using Skywire.Protocol;

namespace Skywire.Tests.Crypto;

public class KeyPairTests
{
    [Fact]
    public void SignVerify_GoodSignature_True_TamperedOrWrongKey_False()
    {
        using var a = KeyPair.Generate();
        using var b = KeyPair.Generate();
        var message = Encoding.UTF8.GetBytes("register node");
        var sig = a.Sign(message);
        Assert.Equal(64, sig.Length);
        Assert.True(KeyPair.Verify(a.Public, message, sig));
        Assert.False(KeyPair.Verify(b.Public, message, sig));
        message[0] ^= 1;
        Assert.False(KeyPair.Verify(a.Public, message, sig));
        message[0] ^= 1;
        sig[10] ^= 0x40;
        Assert.False(KeyPair.Verify(a.Public, message, sig));
        Assert.False(KeyPair.Verify(a.Public, message, sig.AsSpan(0, 63)));
        Assert.False(KeyPair.Verify(default, message, a.Sign(message)));
    }

    [Fact]
    public void SharedSecret_IsSymmetric_AndDiffersPerPeer()
    {
        using var a = KeyPair.Generate();
        using var b = KeyPair.Generate();
        using var c = KeyPair.Generate();
        Assert.Equal(a.SharedSecret(b.Public), b.SharedSecret(a.Public));
        Assert.NotEqual(a.SharedSecret(b.Public), a.SharedSecret(c.Public));
        Assert.Throws<CryptographicException>(() => a.SharedSecret(PubKey.Parse("02" + new string('0', 64))));
    }

    [Fact]
    public void FromSecret_KnownKey_GivesKnownPublicKey()
    {
        // Secret 1 gives the generator point G.
        var secret = new byte[32];
        secret[31] = 1;
        using var pair = KeyPair.FromSecret(secret);
        Assert.Equal("0279be667ef9dcbbac55a06295ce870b07029bfcdb2dce28d959f2815b16f81798", pair.Public.ToString());
        Assert.Throws<ArgumentException>(() => KeyPair.FromSecret(new byte[32]));
        Assert.Throws<ArgumentException>(() => KeyPair.FromSecret(new byte[31]));
    }

    [Fact]
    public void ToString_ShowsPublicKeyOnly()
    {
        using var pair = KeyPair.Generate();
        var secret = new byte[32];
        pair.WriteSecret(secret);
        Assert.Contains(pair.Public.ToString(), pair.ToString(), StringComparison.Ordinal);
        Assert.DoesNotContain(Convert.ToHexStringLower(secret), pair.ToString(), StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("", "9c1185a5c5e9fc54612808977ee8f548b2258d31")]
    [InlineData("abc", "8eb208f7e05d987a9b044a8e98c6b087f15a0bfc")]
    [InlineData("message digest", "5d0689ef49d2fae572b881b123a85ffa21595f36")]
    [InlineData("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq", "12a053384a9c0c88e405a06c27dcf49ada62eb2b")]
    [InlineData("12345678901234567890123456789012345678901234567890123456789012345678901234567890", "9b752e45573d4b39f4dbd3323cab82bf63326bfb")]
    public void Ripemd160_PublishedVectors(string input, string expected)
    {
        var hash = new byte[20];
        Ripemd160.HashData(Encoding.ASCII.GetBytes(input), hash);
        Assert.Equal(expected, Convert.ToHexStringLower(hash));
    }

    [Fact]
    public void Ripemd160_MillionA()
    {
        var hash = new byte[20];
        Ripemd160.HashData(Enumerable.Repeat((byte)'a', 1_000_000).ToArray(), hash);
        Assert.Equal("52783243c1697bdbe16d37f97f68f08325dc1528", Convert.ToHexStringLower(hash));
    }

    [Fact]
    public void Base58_KnownValues_AndRoundTrip()
    {
        Assert.Equal("1112", Base58.Encode([0, 0, 0, 1]));
        Assert.Equal("2NEpo7TZRRrLZSi2U", Base58.Encode(Encoding.ASCII.GetBytes("Hello World!")));
        for (var i = 0; i < 200; i++)
        {
            var data = new byte[Random.Shared.Next(0, 40)];
            Random.Shared.NextBytes(data);
            if (data.Length > 0 && Random.Shared.Next(3) == 0)
            {
                data[0] = 0;
            }

            Assert.True(Base58.TryDecode(Base58.Encode(data), out var back) || data.Length == 0);
            if (data.Length > 0)
            {
                Assert.Equal(data, back);
            }
        }

        Assert.False(Base58.TryDecode("0OIl", out _));
    }

    [Fact]
    public void SkycoinAddress_IsWellFormed_Deterministic_AndKeySpecific()
    {
        using var a = KeyPair.Generate();
        using var b = KeyPair.Generate();
        Assert.True(SkycoinAddress.IsWellFormed(a.SkycoinAddress));
        Assert.Equal(a.SkycoinAddress, SkycoinAddress.FromPubKey(a.Public));
        Assert.NotEqual(a.SkycoinAddress, b.SkycoinAddress);
        Assert.True(SkycoinAddress.Matches(a.SkycoinAddress, a.Public));
        var chars = a.SkycoinAddress.ToCharArray();
        chars[5] = chars[5] == '2' ? '3' : '2';
        Assert.False(SkycoinAddress.IsWellFormed(new string(chars)));
    }

    [Fact]
    public void SkycoinAddress_GeneratorPoint_Pinned()
    {
        // Layout check by hand: RIPEMD160(SHA256(SHA256(G))) || 0x00 || checksum, Base58.
        var secret = new byte[32];
        secret[31] = 1;
        using var pair = KeyPair.FromSecret(secret);
        var h = SHA256.HashData(SHA256.HashData(pair.Public.ToArray()));
        var bytes = new byte[25];
        Ripemd160.HashData(h, bytes);
        SHA256.HashData(bytes.AsSpan(0, 21)).AsSpan(0, 4).CopyTo(bytes.AsSpan(21));
        Assert.Equal(Base58.Encode(bytes), pair.SkycoinAddress);
    }
}
