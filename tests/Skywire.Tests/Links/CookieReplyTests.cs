using System.Security.Cryptography;
using System.Text;
using NSec.Cryptography;
using Skywire.Protocol;
using Skywire.Protocol.Links;
using Skywire.TestKit.Logging;

namespace Skywire.Tests.Links;

/// <summary>
/// Issue 12.7: cookie replies are sealed with XChaCha20-Poly1305 under a random 24-byte nonce (WireGuard's cookie
/// design): the key derives from the responder's public key and never changes, so 12-byte random nonces would
/// repeat long before it is retired. Checked against the wire format of docs/protocol.md §3.1, with NSec directly.
/// </summary>
public sealed class CookieReplyTests
{
    [Fact]
    public async Task CookieReply_IsXChaCha20Poly1305_WithA24ByteRandomNonce_AndTheCookieWorksAsMac2Key()
    {
        var ct = TestContext.Current.CancellationToken;
        using var log = new TestLog(TestContext.Current.TestOutputHelper!.WriteLine);
        await using var a = new TestNode(log: log);
        // Threshold 0: the responder always demands proof of address, so every init without mac2 gets a cookie.
        await using var b = new TestNode(TestNode.Fast with { HandshakesPerSecondBeforeCookies = 0 }, log);
        using var proxy = new RecordingProxy(b.EndPoint);
        await a.Plane.OpenLinkAsync(b.Key.Public, proxy.EndPoint, ct);

        var init = proxy.Seen.First(p => p[0] == (byte)LinkPacketType.HandshakeInit);
        var reply = proxy.Seen.First(p => p[0] == (byte)LinkPacketType.CookieReply);
        Assert.Equal(76, reply.Length); // 4 header, 16 echoed mac1, 24 nonce, 16 cookie + 16 tag
        Assert.Equal(LinkLimits.CookieReplyLength, reply.Length);
        Assert.Equal([3, 1, 0, 0], reply[..4]);
        Assert.Equal(init[114..130], reply[4..20]); // the init's mac1, echoed

        var cookie = Open(b.Key.Public, reply);
        Assert.NotNull(cookie);
        Assert.Equal(16, cookie.Length);

        // The next init proves the address with it: mac2 = HMAC-SHA256(cookie, bytes 0..129), first 16 bytes.
        var withMac2 = proxy.Seen.First(p => p[0] == (byte)LinkPacketType.HandshakeInit && p[130..].Any(x => x != 0));
        Assert.Equal(HMACSHA256.HashData(cookie, withMac2[..130])[..16], withMac2[130..146]);

        // Tampering with the nonce, the echoed mac1 (the associated data) or the box fails authentication.
        foreach (var at in new[] { 25, 10, 60 })
        {
            var bad = reply.ToArray();
            bad[at] ^= 1;
            Assert.Null(Open(b.Key.Public, bad));
        }

        // Another init from the same address gets a fresh random nonce: no nonce is ever used twice.
        var cookies = b.Plane.Statistics.CookieReplies;
        proxy.Inject(init);
        await Wait.UntilAsync(() => proxy.Seen.Count(p => p[0] == (byte)LinkPacketType.CookieReply) >= 2 && b.Plane.Statistics.CookieReplies > cookies, what: "second cookie reply");
        var second = proxy.Seen.Where(p => p[0] == (byte)LinkPacketType.CookieReply).Skip(1).First();
        Assert.NotEqual(reply[20..44], second[20..44]);
        Assert.Equal(cookie, Open(b.Key.Public, second)); // same address, same secret: the same cookie
    }

    /// <summary>Opens a cookie reply per docs/protocol.md §3.1; null when it does not authenticate.</summary>
    private static byte[]? Open(PubKey responder, byte[] reply)
    {
        var label = Encoding.ASCII.GetBytes("skywire-link-cookie/");
        var keyBytes = SHA256.HashData([.. label, .. responder.ToArray()]);
        using var key = Key.Import(AeadAlgorithm.XChaCha20Poly1305, keyBytes, KeyBlobFormat.RawSymmetricKey);
        var cookie = new byte[16];
        return AeadAlgorithm.XChaCha20Poly1305.Decrypt(key, reply.AsSpan(20, 24), reply.AsSpan(4, 16), reply.AsSpan(44, 32), cookie) ? cookie : null;
    }
}
