using System.Buffers.Binary;
using System.Net;
using System.Net.Sockets;
using System.Security.Cryptography;
using System.Text;
using Skywire.Core.Crypto;
using Skywire.Core.Crypto.Noise;
using Skywire.Protocol;

namespace Skywire.Tests.Links;

/// <summary>
/// A stranger on the network that knows a node's public key and address and nothing else, and speaks the link
/// handshake from its wire format alone (docs/protocol.md §3.1, built here byte by byte, not with the node's own
/// code): every handshake from a freshly generated key, as a flood would. It can stop after the init (a handshake
/// never confirmed) or confirm the keys with a Keepalive (an up link that then falls silent).
/// </summary>
internal sealed class RogueInitiator : IDisposable
{
    private readonly Socket _socket = new(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp);
    private readonly IPEndPoint _target;
    private readonly PubKey _responder;
    private readonly byte[] _mac1Key;
    private ulong _timestamp = (ulong)DateTimeOffset.UtcNow.ToUnixTimeMilliseconds() * 1000;

    public RogueInitiator(IPEndPoint target, PubKey responder)
    {
        _target = target;
        _responder = responder;
        _socket.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        _socket.ReceiveTimeout = 20_000;
        Span<byte> input = stackalloc byte[64];
        var n = Encoding.ASCII.GetBytes("skywire-link-mac1/", input);
        responder.WriteTo(input[n..]);
        _mac1Key = SHA256.HashData(input[..(n + PubKey.Length)]);
    }

    /// <summary>
    /// One handshake from a fresh key: sends the init, waits for the response, and with <paramref name="confirm"/>
    /// completes it and sends a Keepalive under the new keys (the responder's link goes up). False when no response came.
    /// </summary>
    public bool Handshake(bool confirm)
    {
        const byte aead = (byte)AeadAlgorithmId.ChaCha20Poly1305;
        using var key = KeyPair.Generate();
        using var noiseKey = Secp256k1Dh.FromKeyPair(key);
        var prologue = Encoding.ASCII.GetBytes("skywire-link/\u0001\u0002");
        using var state = new HandshakeState(HandshakePattern.IK, true, Secp256k1Dh.Instance, AeadAlgorithmId.ChaCha20Poly1305, prologue, noiseKey, _responder.ToArray());

        var init = new byte[146];
        init[0] = 1; // HandshakeInit
        init[1] = 1; // version
        init[2] = aead;
        var payload = new byte[12];
        var index = (uint)RandomNumberGenerator.GetInt32(1, int.MaxValue);
        BinaryPrimitives.WriteUInt32BigEndian(payload, index);
        BinaryPrimitives.WriteUInt64BigEndian(payload.AsSpan(4), ++_timestamp);
        var written = state.WriteMessage(payload, init.AsSpan(4, 110));
        Assert.Equal(110, written);
        Mac(_mac1Key, init.AsSpan(0, 114), init.AsSpan(114, 16)); // mac2 (bytes 130..145) stays zero: no cookie
        _socket.SendTo(init, _target);

        var buffer = new byte[2048];
        while (true)
        {
            int n;
            try
            {
                n = _socket.Receive(buffer);
            }
            catch (SocketException)
            {
                return false;
            }

            if (n == 77 && buffer[0] == 2 && BinaryPrimitives.ReadUInt32BigEndian(buffer.AsSpan(4)) == index)
            {
                break; // our response; anything else (a late response to an earlier key) is skipped
            }
        }

        if (!confirm)
        {
            return true;
        }

        var body = new byte[16];
        var read = state.ReadMessage(buffer.AsSpan(8, 53), body);
        Assert.Equal(4, read);
        var responderIndex = BinaryPrimitives.ReadUInt32BigEndian(body);
        using var transport = state.Split();
        var keepalive = new byte[16 + 1 + 16];
        keepalive[0] = 5; // Control
        BinaryPrimitives.WriteUInt32BigEndian(keepalive.AsSpan(4), responderIndex);
        // counter 0 (bytes 8..15 zero)
        transport.Send.Key.Seal(0UL, keepalive.AsSpan(0, 16), [1], keepalive.AsSpan(16));
        _socket.SendTo(keepalive, _target);
        return true;
    }

    public void Dispose() => _socket.Dispose();

    private static void Mac(byte[] key, ReadOnlySpan<byte> message, Span<byte> mac)
    {
        Span<byte> full = stackalloc byte[32];
        HMACSHA256.HashData(key, message, full);
        full[..16].CopyTo(mac);
    }
}
