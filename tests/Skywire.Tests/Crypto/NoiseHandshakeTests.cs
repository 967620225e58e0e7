using System.Text;
using Skywire.Core.Crypto;
using Skywire.Core.Crypto.Noise;

namespace Skywire.Tests.Crypto;

public class NoiseHandshakeTests
{
    public static TheoryData<string, AeadAlgorithmId> Patterns()
    {
        var data = new TheoryData<string, AeadAlgorithmId>();
        foreach (var p in new[] { "XK", "IK", "KK", "XX" })
        {
            data.Add(p, AeadAlgorithmId.ChaCha20Poly1305);
            if (AeadKey.IsSupported(AeadAlgorithmId.Aes256Gcm))
            {
                data.Add(p, AeadAlgorithmId.Aes256Gcm);
            }
        }

        return data;
    }

    [Theory]
    [MemberData(nameof(Patterns))]
    public void Secp256k1_Handshake_Completes_AndTransportWorksBothWays(string patternName, AeadAlgorithmId algorithm)
    {
        var pattern = HandshakePattern.Parse(patternName);
        using var a = KeyPair.Generate();
        using var b = KeyPair.Generate();
        using var sa = Secp256k1Dh.FromKeyPair(a);
        using var sb = Secp256k1Dh.FromKeyPair(b);
        var prologue = Encoding.ASCII.GetBytes("skywire test");
        var knowsB = pattern.ResponderPreMessage.Count > 0 ? b.Public.ToArray() : [];
        var knowsA = pattern.InitiatorPreMessage.Count > 0 ? a.Public.ToArray() : [];
        using var init = new HandshakeState(pattern, true, Secp256k1Dh.Instance, algorithm, prologue, sa, knowsB);
        using var resp = new HandshakeState(pattern, false, Secp256k1Dh.Instance, algorithm, prologue, sb, knowsA);
        Assert.Equal($"Noise_{patternName}_secp256k1_{AeadKey.NoiseName(algorithm)}_SHA256", init.ProtocolName);

        var (ti, tr) = Complete(init, resp);
        Assert.Equal(a.Public.ToArray(), tr.RemoteStaticKey);
        Assert.Equal(b.Public.ToArray(), ti.RemoteStaticKey);
        Assert.Equal(ti.HandshakeHash, tr.HandshakeHash);

        var buf = new byte[100];
        var outBuf = new byte[100];
        var msg = Encoding.ASCII.GetBytes("hello over the mesh");
        var n = ti.Send.EncryptWithAd([], msg, buf);
        Assert.Equal(msg, outBuf.AsSpan(0, tr.Receive.DecryptWithAd([], buf.AsSpan(0, n), outBuf)).ToArray());
        n = tr.Send.EncryptWithAd([], msg, buf);
        Assert.Equal(msg, outBuf.AsSpan(0, ti.Receive.DecryptWithAd([], buf.AsSpan(0, n), outBuf)).ToArray());

        // Explicit nonces (datagram use), out of order.
        ti.Send.Seal(7, [], msg, buf);
        Assert.True(tr.Receive.Open(7, [], buf.AsSpan(0, msg.Length + 16), outBuf));
        Assert.False(tr.Receive.Open(8, [], buf.AsSpan(0, msg.Length + 16), outBuf));
        ti.Dispose();
        tr.Dispose();
    }

    [Theory]
    [InlineData("XK")]
    [InlineData("IK")]
    public void WrongResponderKey_HandshakeFails(string patternName)
    {
        var pattern = HandshakePattern.Parse(patternName);
        using var a = KeyPair.Generate();
        using var b = KeyPair.Generate();
        using var impostor = KeyPair.Generate();
        using var sa = Secp256k1Dh.FromKeyPair(a);
        using var si = Secp256k1Dh.FromKeyPair(impostor);
        // The initiator believes it talks to b; the impostor answers.
        using var init = new HandshakeState(pattern, true, Secp256k1Dh.Instance, AeadAlgorithmId.ChaCha20Poly1305, [], sa, b.Public.ToArray());
        using var resp = new HandshakeState(pattern, false, Secp256k1Dh.Instance, AeadAlgorithmId.ChaCha20Poly1305, [], si, []);
        var buf = new byte[512];
        var payload = new byte[512];
        var n = init.WriteMessage([], buf);
        Assert.Throws<NoiseException>(() => resp.ReadMessage(buf.AsSpan(0, n), payload));
    }

    [Fact]
    public void DifferentPrologue_HandshakeFails()
    {
        using var a = KeyPair.Generate();
        using var b = KeyPair.Generate();
        using var sa = Secp256k1Dh.FromKeyPair(a);
        using var sb = Secp256k1Dh.FromKeyPair(b);
        using var init = new HandshakeState(HandshakePattern.XK, true, Secp256k1Dh.Instance, AeadAlgorithmId.ChaCha20Poly1305, [1], sa, b.Public.ToArray());
        using var resp = new HandshakeState(HandshakePattern.XK, false, Secp256k1Dh.Instance, AeadAlgorithmId.ChaCha20Poly1305, [2], sb, []);
        var buf = new byte[512];
        var payload = new byte[512];
        var n = init.WriteMessage([], buf);
        Assert.Throws<NoiseException>(() => resp.ReadMessage(buf.AsSpan(0, n), payload));
    }

    [Theory]
    [InlineData("XK")]
    [InlineData("IK")]
    public void TamperedOrTruncatedMessage_EveryByte_Fails(string patternName)
    {
        var pattern = HandshakePattern.Parse(patternName);
        using var a = KeyPair.Generate();
        using var b = KeyPair.Generate();
        using var sa = Secp256k1Dh.FromKeyPair(a);
        using var sb = Secp256k1Dh.FromKeyPair(b);
        using var init = new HandshakeState(pattern, true, Secp256k1Dh.Instance, AeadAlgorithmId.ChaCha20Poly1305, [], sa, b.Public.ToArray());
        var buf = new byte[512];
        var n = init.WriteMessage([9, 9, 9], buf);
        var payload = new byte[512];
        for (var i = 0; i < n; i++)
        {
            var copy = buf.AsSpan(0, n).ToArray();
            copy[i] ^= 0x01;
            using var resp = new HandshakeState(pattern, false, Secp256k1Dh.Instance, AeadAlgorithmId.ChaCha20Poly1305, [], sb, []);
            Assert.Throws<NoiseException>(() => resp.ReadMessage(copy, payload));
            Assert.Throws<InvalidOperationException>(() => resp.ReadMessage(buf.AsSpan(0, n), payload));
        }

        for (var len = 0; len < n; len++)
        {
            using var resp = new HandshakeState(pattern, false, Secp256k1Dh.Instance, AeadAlgorithmId.ChaCha20Poly1305, [], sb, []);
            Assert.Throws<NoiseException>(() => resp.ReadMessage(buf.AsSpan(0, len), payload));
        }
    }

    [Fact]
    public void ReplayedTransportMessage_FailsSequentialDecrypt()
    {
        using var a = KeyPair.Generate();
        using var b = KeyPair.Generate();
        using var sa = Secp256k1Dh.FromKeyPair(a);
        using var sb = Secp256k1Dh.FromKeyPair(b);
        using var init = new HandshakeState(HandshakePattern.IK, true, Secp256k1Dh.Instance, AeadAlgorithmId.ChaCha20Poly1305, [], sa, b.Public.ToArray());
        using var resp = new HandshakeState(HandshakePattern.IK, false, Secp256k1Dh.Instance, AeadAlgorithmId.ChaCha20Poly1305, [], sb, []);
        var (ti, tr) = Complete(init, resp);
        var buf = new byte[64];
        var outBuf = new byte[64];
        var n = ti.Send.EncryptWithAd([], [1, 2, 3], buf);
        tr.Receive.DecryptWithAd([], buf.AsSpan(0, n), outBuf);
        Assert.Throws<NoiseException>(() => tr.Receive.DecryptWithAd([], buf.AsSpan(0, n), outBuf));
    }

    [Fact]
    public void OutOfTurn_Throws()
    {
        using var b = KeyPair.Generate();
        using var sb = Secp256k1Dh.FromKeyPair(b);
        using var resp = new HandshakeState(HandshakePattern.XK, false, Secp256k1Dh.Instance, AeadAlgorithmId.ChaCha20Poly1305, [], sb, []);
        Assert.False(resp.IsMyTurn);
        Assert.Throws<InvalidOperationException>(() => resp.WriteMessage([], new byte[512]));
        Assert.Throws<InvalidOperationException>(() => resp.Split());
    }

    internal static (NoiseTransport Initiator, NoiseTransport Responder) Complete(HandshakeState init, HandshakeState resp)
    {
        var buf = new byte[1024];
        var payload = new byte[1024];
        while (!init.IsCompleted)
        {
            var (w, r) = init.IsMyTurn ? (init, resp) : (resp, init);
            var n = w.WriteMessage([], buf);
            r.ReadMessage(buf.AsSpan(0, n), payload);
        }

        Assert.True(resp.IsCompleted);
        return (init.Split(), resp.Split());
    }
}
