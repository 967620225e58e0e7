using Skywire.Core.Crypto;
using Skywire.Protocol;

namespace Skywire.Tests.Crypto;

public class PubKeyTests
{
    [Fact]
    public void ParseAndFormat_RoundTrip_LowercaseHex()
    {
        using var pair = KeyPair.Generate();
        var text = pair.Public.ToString();
        Assert.Equal(66, text.Length);
        Assert.Equal(text.ToLowerInvariant(), text);
        Assert.Equal(pair.Public, PubKey.Parse(text));
        Assert.Equal(pair.Public, PubKey.Parse(text.ToUpperInvariant()));
    }

    [Fact]
    public void WriteToAndRead_RoundTrip()
    {
        using var pair = KeyPair.Generate();
        var bytes = new byte[40];
        pair.Public.WriteTo(bytes.AsSpan(3));
        Assert.Equal(pair.Public, PubKey.Read(bytes.AsSpan(3)));
        Assert.Equal(pair.Public.ToArray(), bytes.AsSpan(3, 33).ToArray());
    }

    [Theory]
    [InlineData("")]
    [InlineData("02")]
    [InlineData("0411111111111111111111111111111111111111111111111111111111111111ab")]
    [InlineData("02zz111111111111111111111111111111111111111111111111111111111111ab")]
    [InlineData("021111111111111111111111111111111111111111111111111111111111111111ab")]
    public void TryParse_BadText_False(string text)
    {
        Assert.False(PubKey.TryParse(text, out _));
        Assert.Throws<FormatException>(() => PubKey.Parse(text));
    }

    [Fact]
    public void TryRead_ShortOrBadPrefix_False()
    {
        Assert.False(PubKey.TryRead(new byte[32], out _));
        var bytes = new byte[33];
        bytes[0] = 0x04;
        Assert.False(PubKey.TryRead(bytes, out _));
        bytes[0] = 0x02;
        Assert.True(PubKey.TryRead(bytes, out var key));
        Assert.False(key.IsEmpty);
        Assert.False(KeyPair.IsValidPoint(key)); // x = 0 is not on secp256k1
    }

    [Fact]
    public void Equality_Hash_Order_AreByValue()
    {
        var a = PubKey.Parse("02" + new string('1', 64));
        var b = PubKey.Parse("02" + new string('1', 63) + "2");
        var a2 = PubKey.Parse(a.ToString());
        Assert.Equal(a, a2);
        Assert.True(a == a2);
        Assert.Equal(a.GetHashCode(), a2.GetHashCode());
        Assert.NotEqual(a, b);
        Assert.True(a < b);
        Assert.True(default(PubKey).IsEmpty);
        Assert.Equal("02111111", a.ToShortString());
    }
}
