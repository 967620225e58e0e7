using System.Buffers.Binary;
using System.Security.Cryptography;
using System.Text;
using Skywire.Core.Crypto;
using Skywire.Core.Crypto.Noise;
using Skywire.Protocol;
using Skywire.Protocol.Links;

namespace Skywire.Core.Links;

/// <summary>An init that passed Noise: who sent it, its index and timestamp, and the responder's handshake state to answer with.</summary>
internal readonly record struct InboundInit(HandshakeState State, AeadAlgorithmId Aead, PubKey Peer, uint RemoteIndex, ulong Timestamp);

/// <summary>
/// The link handshake messages (docs/protocol.md §3.1; wireguard-go's noise-protocol.go): Noise IK with this
/// node's static key, the AEAD in the prologue, the sender's index and a timestamp in message 1, its index in
/// message 2, and a mac1 (and mac2) on each. It builds and reads messages only; which link they belong to,
/// and what the data plane keeps of them, is <c>LinkHandshaker</c>'s business.
/// </summary>
internal sealed class LinkHandshake
{
    private const int InitPayloadLength = 12;
    private const int ResponsePayloadLength = 4;
    private const int ResponseMacAt = LinkLimits.HandshakeResponseLength - LinkLimits.TagLength;

    private readonly NoiseKeyPair _staticKey;
    private readonly PubKey _localKey;
    private readonly TimeProvider _time;
    private long _lastTimestamp;

    /// <param name="staticKey">This node's key for Noise (not disposed here).</param>
    /// <param name="localKey">Its public key.</param>
    /// <param name="time">The clock of timestamps.</param>
    public LinkHandshake(NoiseKeyPair staticKey, PubKey localKey, TimeProvider time)
    {
        _staticKey = staticKey;
        _localKey = localKey;
        _time = time;
    }

    /// <summary>SHA-256("skywire-link-mac1/" || key33): the mac1 key of handshake messages sent to <paramref name="key"/>.</summary>
    public static byte[] Mac1Key(PubKey key) => LabelledKey("skywire-link-mac1/", key);

    /// <summary>SHA-256("skywire-link-cookie/" || key33): the key that seals the cookie replies of <paramref name="key"/>.</summary>
    public static byte[] CookieKey(PubKey key) => LabelledKey("skywire-link-cookie/", key);

    /// <summary>"skywire-link/" || version || AEAD id.</summary>
    public static byte[] Prologue(AeadAlgorithmId aead)
    {
        var prologue = Encoding.ASCII.GetBytes("skywire-link/\0\0");
        prologue[^2] = LinkLimits.Version;
        prologue[^1] = (byte)aead;
        return prologue;
    }

    /// <summary>The first 16 bytes of HMAC-SHA256(<paramref name="key"/>, <paramref name="message"/>).</summary>
    public static void WriteMac(ReadOnlySpan<byte> key, ReadOnlySpan<byte> message, Span<byte> mac)
    {
        Span<byte> full = stackalloc byte[32];
        HMACSHA256.HashData(key, message, full);
        full[..LinkLimits.TagLength].CopyTo(mac);
    }

    /// <summary>Whether <paramref name="mac"/> is <see cref="WriteMac"/> of the message (constant time).</summary>
    public static bool CheckMac(ReadOnlySpan<byte> key, ReadOnlySpan<byte> message, ReadOnlySpan<byte> mac)
    {
        Span<byte> full = stackalloc byte[32];
        HMACSHA256.HashData(key, message, full);
        return CryptographicOperations.FixedTimeEquals(full[..LinkLimits.TagLength], mac);
    }

    /// <summary>
    /// Writes a HandshakeInit to <paramref name="peer"/> into <paramref name="packet"/> (146 bytes): a fresh
    /// ephemeral key and timestamp, mac1 under the peer's key and mac2 under <paramref name="cookie"/> (zero when empty).
    /// Returns our side of the handshake, which reads the response.
    /// </summary>
    public PendingLinkHandshake CreateInit(PubKey peer, ReadOnlySpan<byte> peerMac1Key, AeadAlgorithmId aead, uint localIndex, ReadOnlySpan<byte> cookie, Span<byte> packet)
    {
        var state = new HandshakeState(HandshakePattern.IK, true, Secp256k1Dh.Instance, aead, Prologue(aead), _staticKey, peer.ToArray());
        packet[0] = (byte)LinkPacketType.HandshakeInit;
        packet[1] = LinkLimits.Version;
        packet[2] = (byte)aead;
        packet[3] = 0;
        Span<byte> body = stackalloc byte[InitPayloadLength];
        BinaryPrimitives.WriteUInt32BigEndian(body, localIndex);
        BinaryPrimitives.WriteUInt64BigEndian(body[4..], NextTimestamp());
        const int macAt = LinkLimits.HandshakeInitMac1Offset;
        const int mac2At = LinkLimits.HandshakeInitMac2Offset;
        var written = state.WriteMessage(body, packet[4..macAt]);
        if (4 + written != macAt)
        {
            state.Dispose();
            throw new InvalidOperationException("unexpected handshake init length");
        }

        WriteMac(peerMac1Key, packet[..macAt], packet[macAt..mac2At]);
        if (cookie.IsEmpty)
        {
            packet[mac2At..LinkLimits.HandshakeInitLength].Clear();
        }
        else
        {
            WriteMac(cookie, packet[..mac2At], packet[mac2At..LinkLimits.HandshakeInitLength]);
        }

        return new PendingLinkHandshake(localIndex, state, aead, packet[macAt..mac2At].ToArray());
    }

    /// <summary>
    /// Responder: runs Noise on an init whose size and macs were checked. False, with the reason, when the
    /// message does not decrypt, names an invalid key, or carries an unexpected payload; the state is then disposed.
    /// </summary>
    public bool TryConsumeInit(ReadOnlySpan<byte> packet, out InboundInit init, out string? error)
    {
        init = default;
        var aead = (AeadAlgorithmId)packet[2];
        var state = new HandshakeState(HandshakePattern.IK, false, Secp256k1Dh.Instance, aead, Prologue(aead), _staticKey, []);
        Span<byte> body = stackalloc byte[64];
        try
        {
            var n = state.ReadMessage(packet[4..LinkLimits.HandshakeInitMac1Offset], body);
            if (n != InitPayloadLength || !PubKey.TryRead(state.RemoteStaticKey, out var peer))
            {
                throw new NoiseException("unexpected init payload");
            }

            init = new InboundInit(state, aead, peer, BinaryPrimitives.ReadUInt32BigEndian(body), BinaryPrimitives.ReadUInt64BigEndian(body[4..]));
            error = null;
            return true;
        }
        catch (NoiseException ex)
        {
            state.Dispose();
            error = ex.Message;
            return false;
        }
    }

    /// <summary>
    /// Responder: writes the HandshakeResponse to <paramref name="init"/> (77 bytes, mac1 under the initiator's key),
    /// disposes its handshake state and returns the transport keys.
    /// </summary>
    public NoiseTransport CreateResponse(in InboundInit init, uint localIndex, ReadOnlySpan<byte> peerMac1Key, Span<byte> response)
    {
        try
        {
            response[0] = (byte)LinkPacketType.HandshakeResponse;
            response[1] = LinkLimits.Version;
            response[2] = (byte)init.Aead;
            response[3] = 0;
            BinaryPrimitives.WriteUInt32BigEndian(response[4..], init.RemoteIndex);
            Span<byte> body = stackalloc byte[ResponsePayloadLength];
            BinaryPrimitives.WriteUInt32BigEndian(body, localIndex);
            var written = init.State.WriteMessage(body, response[8..]);
            if (8 + written != ResponseMacAt)
            {
                throw new InvalidOperationException("unexpected handshake response length");
            }

            WriteMac(peerMac1Key, response[..ResponseMacAt], response[ResponseMacAt..LinkLimits.HandshakeResponseLength]);
            return init.State.Split();
        }
        finally
        {
            init.State.Dispose();
        }
    }

    /// <summary>
    /// Initiator: reads the response to <paramref name="pending"/> (size, version, AEAD and mac1 checked by the caller).
    /// False, with the reason, when Noise fails: the pending state is then dead.
    /// </summary>
    public static bool TryConsumeResponse(PendingLinkHandshake pending, ReadOnlySpan<byte> packet, out uint remoteIndex, out string? error)
    {
        Span<byte> body = stackalloc byte[16];
        remoteIndex = 0;
        try
        {
            var n = pending.State.ReadMessage(packet[8..ResponseMacAt], body);
            if (n != ResponsePayloadLength)
            {
                throw new NoiseException("unexpected response payload");
            }

            remoteIndex = BinaryPrimitives.ReadUInt32BigEndian(body);
            error = null;
            return true;
        }
        catch (NoiseException ex)
        {
            error = ex.Message;
            return false;
        }
    }

    /// <summary>Microseconds since the epoch, strictly increasing within this process.</summary>
    public ulong NextTimestamp()
    {
        var now = _time.GetUtcNow().ToUnixTimeMilliseconds() * 1000;
        while (true)
        {
            var last = Interlocked.Read(ref _lastTimestamp);
            var next = Math.Max(now, last + 1);
            if (Interlocked.CompareExchange(ref _lastTimestamp, next, last) == last)
            {
                return (ulong)next;
            }
        }
    }

    /// <summary>Whether <paramref name="peer"/> is this node (an init from ourselves is refused).</summary>
    public bool IsSelf(PubKey peer) => peer == _localKey;

    private static byte[] LabelledKey(string label, PubKey key)
    {
        Span<byte> input = stackalloc byte[64];
        var n = Encoding.ASCII.GetBytes(label, input);
        key.WriteTo(input[n..]);
        return SHA256.HashData(input[..(n + PubKey.Length)]);
    }
}
