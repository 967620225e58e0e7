using Skywire.Core.Crypto;
using Skywire.Core.Messenger;
using Skywire.Protocol.Messenger;

namespace Skywire.Tests.Messenger;

public sealed class MessageEnvelopeTests
{
    [Fact]
    public void Seal_ThenOpen_ByTheRecipient_ReturnsTheMessage()
    {
        var alice = KeyPair.Generate();
        var bob = KeyPair.Generate();
        var envelope = MessageEnvelope.Seal(alice, bob.Public, "hi"u8);
        Assert.Equal(MessageEnvelope.SealedLength(2), envelope.Length);
        Assert.True(MessageEnvelope.TryOpen(bob, alice.Public, envelope, out var message));
        Assert.Equal("hi"u8.ToArray(), message);
    }

    [Theory]
    [InlineData(AeadAlgorithmId.ChaCha20Poly1305)]
    [InlineData(AeadAlgorithmId.Aes256Gcm)]
    public void BothAeads_RoundTrip(AeadAlgorithmId algorithm)
    {
        Assert.SkipUnless(AeadKey.IsSupported(algorithm), "AEAD not supported on this CPU");
        var alice = KeyPair.Generate();
        var bob = KeyPair.Generate();
        var envelope = MessageEnvelope.Seal(alice, bob.Public, new byte[1000], algorithm);
        Assert.Equal((byte)algorithm, envelope[1]);
        Assert.True(MessageEnvelope.TryOpen(bob, alice.Public, envelope, out var message));
        Assert.Equal(1000, message.Length);
    }

    [Fact]
    public void Open_WithTheWrongClaimedSender_Fails()
    {
        // A relay that lies about who sent a message cannot make the recipient accept it.
        var alice = KeyPair.Generate();
        var bob = KeyPair.Generate();
        var mallory = KeyPair.Generate();
        var envelope = MessageEnvelope.Seal(alice, bob.Public, "hi"u8);
        Assert.False(MessageEnvelope.TryOpen(bob, mallory.Public, envelope, out _));
    }

    [Fact]
    public void Open_ByAnotherRecipient_Fails()
    {
        var alice = KeyPair.Generate();
        var bob = KeyPair.Generate();
        var eve = KeyPair.Generate();
        var envelope = MessageEnvelope.Seal(alice, bob.Public, "hi"u8);
        Assert.False(MessageEnvelope.TryOpen(eve, alice.Public, envelope, out _));
    }

    [Fact]
    public void Open_AnyFlippedBit_Fails()
    {
        var alice = KeyPair.Generate();
        var bob = KeyPair.Generate();
        var envelope = MessageEnvelope.Seal(alice, bob.Public, "attack at dawn"u8);
        for (var i = 0; i < envelope.Length; i++)
        {
            var copy = (byte[])envelope.Clone();
            copy[i] ^= 0x01;
            Assert.False(MessageEnvelope.TryOpen(bob, alice.Public, copy, out _), $"bit flip at {i} accepted");
        }
    }

    [Fact]
    public void Open_TruncatedOrGarbage_FailsWithoutThrowing()
    {
        var alice = KeyPair.Generate();
        var bob = KeyPair.Generate();
        var envelope = MessageEnvelope.Seal(alice, bob.Public, "hello"u8);
        for (var n = 0; n < envelope.Length; n++)
        {
            Assert.False(MessageEnvelope.TryOpen(bob, alice.Public, envelope.AsSpan(0, n), out _));
        }

        var random = new Random(7);
        for (var i = 0; i < 200; i++)
        {
            var junk = new byte[random.Next(0, 200)];
            random.NextBytes(junk);
            if (junk.Length > 1)
            {
                junk[0] = MessengerProtocol.EnvelopeVersion;
            }

            Assert.False(MessageEnvelope.TryOpen(bob, alice.Public, junk, out _));
        }
    }

    [Fact]
    public void Seal_TwiceTheSameMessage_GivesDifferentEnvelopes()
    {
        var alice = KeyPair.Generate();
        var bob = KeyPair.Generate();
        Assert.NotEqual(MessageEnvelope.Seal(alice, bob.Public, "x"u8), MessageEnvelope.Seal(alice, bob.Public, "x"u8));
    }

    [Fact]
    public void ReplayGuard_RejectsARepeat_AndForgetsTheOldestBeyondCapacity()
    {
        var guard = new ReplayGuard(capacity: 2);
        Assert.True(guard.FirstSeen([1]));
        Assert.False(guard.FirstSeen([1]));
        Assert.True(guard.FirstSeen([2]));
        Assert.True(guard.FirstSeen([3]));
        Assert.True(guard.FirstSeen([1]));
    }
}
