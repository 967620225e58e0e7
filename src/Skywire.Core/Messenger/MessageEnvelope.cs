using System.Collections.Concurrent;
using System.Text;
using Skywire.Core.Crypto;
using Skywire.Core.Crypto.Noise;
using Skywire.Protocol;
using Skywire.Protocol.Messenger;

namespace Skywire.Core.Messenger;

/// <summary>
/// End-to-end sealing of one relayed message (docs/protocol.md §8.4): the envelope is
/// <c>version (1) | aead id (1) | Noise_KK message 1</c> from the sender's static key to the recipient's, i.e.
/// <c>e, es, ss</c> then the AEAD-sealed message. Only the recipient can open it (es, ss need its secret), and only
/// the holder of the sender's secret can have made it (ss), so the relay can neither read nor forge messages; the
/// fresh ephemeral gives each message its own key. The relay can replay an envelope: <see cref="ReplayGuard"/> drops
/// repeats of an ephemeral key.
/// </summary>
public static class MessageEnvelope
{
    /// <summary>Envelope bytes for a message of <paramref name="messageLength"/> bytes.</summary>
    public static int SealedLength(int messageLength) => MessengerProtocol.EnvelopeHeaderSize + PubKey.Length + messageLength + AeadKey.TagLength;

    /// <summary>Seals <paramref name="message"/> from <paramref name="sender"/> to <paramref name="recipient"/>.</summary>
    public static byte[] Seal(KeyPair sender, PubKey recipient, ReadOnlySpan<byte> message, AeadAlgorithmId? algorithm = null)
    {
        ArgumentNullException.ThrowIfNull(sender);
        if (message.Length > MessengerProtocol.MaxMessageSize)
        {
            throw new ArgumentException($"a message is at most {MessengerProtocol.MaxMessageSize} bytes", nameof(message));
        }

        var alg = algorithm ?? AeadKey.PreferredAlgorithm;
        var envelope = new byte[SealedLength(message.Length)];
        envelope[0] = MessengerProtocol.EnvelopeVersion;
        envelope[1] = (byte)alg;
        using var local = Secp256k1Dh.FromKeyPair(sender);
        using var hs = new HandshakeState(HandshakePattern.KK, true, Secp256k1Dh.Instance, alg, Prologue(envelope.AsSpan(0, 2)), local, recipient.ToArray());
        var n = hs.WriteMessage(message, envelope.AsSpan(MessengerProtocol.EnvelopeHeaderSize));
        return n + MessengerProtocol.EnvelopeHeaderSize == envelope.Length ? envelope : envelope[..(MessengerProtocol.EnvelopeHeaderSize + n)];
    }

    /// <summary>Opens an envelope that the messenger says came from <paramref name="sender"/>. False if it was not sealed by that key for us.</summary>
    public static bool TryOpen(KeyPair recipient, PubKey sender, ReadOnlySpan<byte> envelope, out byte[] message)
    {
        ArgumentNullException.ThrowIfNull(recipient);
        message = [];
        if (envelope.Length < MessengerProtocol.EnvelopeHeaderSize + PubKey.Length + AeadKey.TagLength || envelope[0] != MessengerProtocol.EnvelopeVersion)
        {
            return false;
        }

        var alg = (AeadAlgorithmId)envelope[1];
        if (!Enum.IsDefined(alg) || !AeadKey.IsSupported(alg))
        {
            return false;
        }

        try
        {
            using var local = Secp256k1Dh.FromKeyPair(recipient);
            using var hs = new HandshakeState(HandshakePattern.KK, false, Secp256k1Dh.Instance, alg, Prologue(envelope[..2]), local, sender.ToArray());
            var body = envelope[MessengerProtocol.EnvelopeHeaderSize..];
            var buffer = new byte[body.Length];
            var n = hs.ReadMessage(body, buffer);
            message = n == buffer.Length ? buffer : buffer.AsSpan(0, n).ToArray();
            return true;
        }
        catch (NoiseException)
        {
            return false;
        }
    }

    /// <summary>The ephemeral key of an envelope (for replay detection), or empty when too short.</summary>
    public static ReadOnlySpan<byte> EphemeralKey(ReadOnlySpan<byte> envelope) =>
        envelope.Length >= MessengerProtocol.EnvelopeHeaderSize + PubKey.Length
            ? envelope.Slice(MessengerProtocol.EnvelopeHeaderSize, PubKey.Length)
            : [];

    private static byte[] Prologue(ReadOnlySpan<byte> header) => [.. Encoding.ASCII.GetBytes(MessengerProtocol.EnvelopePrologue), .. header];
}

/// <summary>
/// Remembers the ephemeral keys of recently opened envelopes so a relay cannot replay a message. Bounded:
/// the oldest entries are forgotten first (the window should cover the messenger's queue TTL at the expected rate).
/// </summary>
public sealed class ReplayGuard
{
    private readonly int _capacity;
    private readonly ConcurrentDictionary<string, byte> _seen = new();
    private readonly ConcurrentQueue<string> _order = new();

    public ReplayGuard(int capacity = 100_000) => _capacity = capacity;

    /// <summary>True the first time an ephemeral key is seen, false on a repeat.</summary>
    public bool FirstSeen(ReadOnlySpan<byte> ephemeralKey)
    {
        var id = Convert.ToBase64String(ephemeralKey);
        if (!_seen.TryAdd(id, 0))
        {
            return false;
        }

        _order.Enqueue(id);
        while (_order.Count > _capacity && _order.TryDequeue(out var old))
        {
            _seen.TryRemove(old, out _);
        }

        return true;
    }
}
