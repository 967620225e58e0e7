using System.Net;
using System.Security.Cryptography;
using Skywire.Core.Crypto;
using Skywire.Protocol;
using Skywire.Protocol.Links;

namespace Skywire.Core.Links;

/// <summary>
/// The responder's stateless defences against handshake floods (docs/protocol.md §3.1; wireguard-go's
/// cookie.go): mac1 (a message made for this node's key), load detection, mac2 (the sender proved its address
/// with a cookie we gave it) and cookie replies. Nothing here keeps per-sender state. One thread (the receive
/// thread) uses an instance.
/// </summary>
/// <remarks>
/// A cookie is the first 16 bytes of HMAC-SHA256(secret, the sender's socket address); the secret is random and
/// replaced every 2 minutes (cookies under the previous one stay valid meanwhile). A cookie reply seals it with
/// XChaCha20-Poly1305 under a key derived from this node's public key (so only who knows it, the initiator,
/// reads it), a random 24-byte nonce and the init's mac1 as associated data. The nonce is random because the
/// key never changes: 24 bytes make a repeat negligible over the key's whole life, where 12 would not.
/// </remarks>
internal sealed class CookieChecker : IDisposable
{
    /// <summary>How long a cookie secret is used for new cookies (and then accepted for as long again).</summary>
    public static readonly TimeSpan SecretLifetime = TimeSpan.FromMinutes(2);

    /// <summary>How long an initiator uses a cookie it received (a little under <see cref="SecretLifetime"/>).</summary>
    public static readonly TimeSpan CookieLifetime = TimeSpan.FromSeconds(110);

    private const int EchoAt = 4;
    private const int NonceAt = EchoAt + LinkLimits.TagLength;
    private const int SealedAt = NonceAt + XChaCha20Poly1305Key.NonceLength;

    private readonly byte[] _mac1Key;
    private readonly XChaCha20Poly1305Key _replyKey;
    private readonly TimeProvider _time;
    private readonly int _handshakesPerSecondBeforeCookies;
    private byte[] _secret = RandomNumberGenerator.GetBytes(32);
    private byte[] _previousSecret = RandomNumberGenerator.GetBytes(32);
    private long _secretAt;
    private long _loadWindowStart;
    private int _loadCount;

    /// <param name="localKey">This node's public key (mac1 and cookie-reply keys derive from it).</param>
    /// <param name="handshakesPerSecondBeforeCookies">Inits per second with a valid mac1 above which mac2 is required (0: always).</param>
    /// <param name="time">The clock.</param>
    public CookieChecker(PubKey localKey, int handshakesPerSecondBeforeCookies, TimeProvider time)
    {
        _mac1Key = LinkHandshake.Mac1Key(localKey);
        _replyKey = new XChaCha20Poly1305Key(LinkHandshake.CookieKey(localKey));
        _handshakesPerSecondBeforeCookies = handshakesPerSecondBeforeCookies;
        _time = time;
        _secretAt = time.GetTimestamp();
    }

    /// <summary>Whether <paramref name="mac"/> is the mac1 of <paramref name="message"/> under this node's key.</summary>
    public bool CheckMac1(ReadOnlySpan<byte> message, ReadOnlySpan<byte> mac) => LinkHandshake.CheckMac(_mac1Key, message, mac);

    /// <summary>Counts an init with a valid mac1 in the current second; true above the configured rate.</summary>
    public bool UnderLoad()
    {
        var now = _time.GetTimestamp();
        if (now - _loadWindowStart >= _time.TimestampFrequency)
        {
            _loadWindowStart = now;
            _loadCount = 0;
        }

        return ++_loadCount > _handshakesPerSecondBeforeCookies;
    }

    /// <summary>Whether the init's mac2 is keyed with the cookie of <paramref name="from"/> (current or previous secret).</summary>
    public bool CheckMac2(ReadOnlySpan<byte> init, SocketAddress from)
    {
        RotateIfDue();
        Span<byte> cookie = stackalloc byte[LinkLimits.TagLength];
        const int mac2At = LinkLimits.HandshakeInitMac2Offset;
        var message = init[..mac2At];
        var mac2 = init[mac2At..LinkLimits.HandshakeInitLength];
        CookieFor(_secret, from, cookie);
        if (LinkHandshake.CheckMac(cookie, message, mac2))
        {
            return true;
        }

        CookieFor(_previousSecret, from, cookie);
        return LinkHandshake.CheckMac(cookie, message, mac2);
    }

    /// <summary>Writes the CookieReply to <paramref name="init"/> from <paramref name="from"/> (<see cref="LinkLimits.CookieReplyLength"/> bytes).</summary>
    public void WriteReply(ReadOnlySpan<byte> init, SocketAddress from, Span<byte> reply)
    {
        RotateIfDue();
        reply[0] = (byte)LinkPacketType.CookieReply;
        reply[1] = LinkLimits.Version;
        reply[2] = 0;
        reply[3] = 0;
        var echoed = reply[EchoAt..NonceAt];
        init[LinkLimits.HandshakeInitMac1Offset..LinkLimits.HandshakeInitMac2Offset].CopyTo(echoed);
        var nonce = reply[NonceAt..SealedAt];
        RandomNumberGenerator.Fill(nonce);
        Span<byte> cookie = stackalloc byte[LinkLimits.TagLength];
        CookieFor(_secret, from, cookie);
        _replyKey.Seal(nonce, echoed, cookie, reply[SealedAt..LinkLimits.CookieReplyLength]);
        CryptographicOperations.ZeroMemory(cookie);
    }

    /// <summary>The mac1 a cookie reply echoes (its initiator finds its handshake by it).</summary>
    public static ReadOnlySpan<byte> EchoedMac1(ReadOnlySpan<byte> reply) => reply[EchoAt..NonceAt];

    /// <summary>
    /// Initiator: opens a CookieReply from the responder whose cookie key is <paramref name="responderCookieKey"/>,
    /// answering the init whose mac1 was <paramref name="sentMac1"/>. False when it does not authenticate.
    /// </summary>
    public static bool TryOpenReply(ReadOnlySpan<byte> responderCookieKey, ReadOnlySpan<byte> sentMac1, ReadOnlySpan<byte> reply, Span<byte> cookie)
    {
        if (!CryptographicOperations.FixedTimeEquals(EchoedMac1(reply), sentMac1))
        {
            return false;
        }

        using var key = new XChaCha20Poly1305Key(responderCookieKey);
        return key.Open(reply[NonceAt..SealedAt], sentMac1, reply[SealedAt..LinkLimits.CookieReplyLength], cookie);
    }

    public void Dispose() => _replyKey.Dispose();

    private void RotateIfDue()
    {
        if (_time.GetElapsedTime(_secretAt) > SecretLifetime)
        {
            _previousSecret = _secret;
            _secret = RandomNumberGenerator.GetBytes(32);
            _secretAt = _time.GetTimestamp();
        }
    }

    private static void CookieFor(byte[] secret, SocketAddress from, Span<byte> cookie)
    {
        Span<byte> full = stackalloc byte[32];
        HMACSHA256.HashData(secret, from.Buffer.Span[..from.Size], full);
        full[..LinkLimits.TagLength].CopyTo(cookie);
    }
}
