using Microsoft.Extensions.Time.Testing;
using Skywire.Core.Crypto;
using Skywire.Core.Messenger;
using Skywire.Protocol.Messenger;

namespace Skywire.Tests.Messenger;

/// <summary>Session envelopes (docs/protocol.md §8.4 version 2): public-key work once per session, one AEAD per message.</summary>
public sealed class SessionEnvelopesTests
{
    private readonly KeyPair _alice = KeyPair.Generate();
    private readonly KeyPair _bob = KeyPair.Generate();

    [Fact]
    public void ManyMessages_OneHandshakePerSide_AndTheyOpenInAnyOrder()
    {
        using var a = new SessionEnvelopes(_alice);
        using var b = new SessionEnvelopes(_bob);
        var envelopes = Enumerable.Range(0, 100).Select(i => a.Seal(_bob.Public, BitConverter.GetBytes(i))).ToList();
        Assert.All(envelopes, e => Assert.Equal(MessengerProtocol.SessionEnvelopeVersion, e[0]));
        Assert.Equal(SessionEnvelopes.SealedLength(4), envelopes[0].Length);
        foreach (var i in Enumerable.Range(0, 100).Reverse())
        {
            Assert.True(b.TryOpen(_alice.Public, envelopes[i], out var message));
            Assert.Equal(i, BitConverter.ToInt32(message));
        }

        Assert.Equal(1, a.Handshakes);
        Assert.Equal(1, b.Handshakes);
    }

    [Fact]
    public void Replay_WrongSender_WrongRecipient_AndTamperingAreRefused()
    {
        using var a = new SessionEnvelopes(_alice);
        using var b = new SessionEnvelopes(_bob);
        using var eve = new SessionEnvelopes(KeyPair.Generate());
        var envelope = a.Seal(_bob.Public, "attack at dawn"u8);
        Assert.False(b.TryOpen(KeyPair.Generate().Public, envelope, out _));
        Assert.False(eve.TryOpen(_alice.Public, envelope, out _));
        for (var i = 0; i < envelope.Length; i += 7)
        {
            var copy = (byte[])envelope.Clone();
            copy[i] ^= 0x20;
            Assert.False(b.TryOpen(_alice.Public, copy, out _), $"bit flip at {i} accepted");
        }

        Assert.True(b.TryOpen(_alice.Public, envelope, out _));
        Assert.False(b.TryOpen(_alice.Public, envelope, out _));
    }

    [Fact]
    public void ARestartedRecipient_OpensAStoredMessageOfAnOldSession()
    {
        using var a = new SessionEnvelopes(_alice);
        var first = a.Seal(_bob.Public, "1"u8);
        var stored = a.Seal(_bob.Public, "2"u8);
        using (var b = new SessionEnvelopes(_bob))
        {
            Assert.True(b.TryOpen(_alice.Public, first, out _));
        }

        using var restarted = new SessionEnvelopes(_bob);
        Assert.True(restarted.TryOpen(_alice.Public, stored, out var message));
        Assert.Equal("2"u8.ToArray(), message);
    }

    [Fact]
    public void ASession_IsReplaced_AfterItsMessageCount_AndAfterItsTime()
    {
        var time = new FakeTimeProvider();
        using var a = new SessionEnvelopes(_alice, new SessionEnvelopeOptions { RekeyAfterMessages = 3, RekeyAfter = TimeSpan.FromMinutes(10), TimeProvider = time });
        using var b = new SessionEnvelopes(_bob);
        var envelopes = Enumerable.Range(0, 7).Select(_ => a.Seal(_bob.Public, "x"u8)).ToList();
        Assert.Equal(3, a.Handshakes);
        time.Advance(TimeSpan.FromMinutes(11));
        envelopes.Add(a.Seal(_bob.Public, "x"u8));
        Assert.Equal(4, a.Handshakes);
        Assert.Equal(4, envelopes.Select(e => Convert.ToHexString(e.AsSpan(2, 33))).Distinct().Count());
        Assert.All(envelopes, e => Assert.True(b.TryOpen(_alice.Public, e, out _)));
        Assert.Equal(4, b.Handshakes);
    }

    [Fact]
    public void VersionOneEnvelopes_StillOpen_OnceEach()
    {
        using var b = new SessionEnvelopes(_bob);
        var old = MessageEnvelope.Seal(_alice, _bob.Public, "old client"u8);
        Assert.True(b.TryOpen(_alice.Public, old, out var message));
        Assert.Equal("old client"u8.ToArray(), message);
        Assert.False(b.TryOpen(_alice.Public, old, out _));
    }

    [Fact]
    public void TheReplayWindow_RefusesCountersTooFarBehind_AndAcceptsLateOnesWithinIt()
    {
        using var a = new SessionEnvelopes(_alice);
        using var b = new SessionEnvelopes(_bob);
        var envelopes = Enumerable.Range(0, 3000).Select(_ => a.Seal(_bob.Public, "x"u8)).ToList();
        Assert.True(b.TryOpen(_alice.Public, envelopes[2999], out _));
        Assert.True(b.TryOpen(_alice.Public, envelopes[1000], out _));
        Assert.False(b.TryOpen(_alice.Public, envelopes[500], out _));
        Assert.False(b.TryOpen(_alice.Public, envelopes[1000], out _));
    }
}
