using System.Buffers.Binary;
using System.Text;
using Skywire.Core.Crypto;
using Skywire.Core.Crypto.Noise;
using Skywire.Protocol;
using Skywire.Protocol.Messenger;

namespace Skywire.Core.Messenger;

/// <summary>Options of <see cref="SessionEnvelopes"/>.</summary>
public sealed record SessionEnvelopeOptions
{
    public static SessionEnvelopeOptions Default { get; } = new();

    /// <summary>A sending session is replaced (new ephemeral key, the old key erased) after this many messages.</summary>
    public ulong RekeyAfterMessages { get; init; } = 1UL << 20;

    /// <summary>A sending session is replaced after this long.</summary>
    public TimeSpan RekeyAfter { get; init; } = TimeSpan.FromMinutes(10);

    /// <summary>Receiving sessions kept (least recently used are forgotten; a forgotten one is derived again on its next message).</summary>
    public int MaxReceiveSessions { get; init; } = 4096;

    /// <summary>AEAD of new sessions (null: the preferred one of this machine).</summary>
    public AeadAlgorithmId? Algorithm { get; init; }

    public TimeProvider TimeProvider { get; init; } = TimeProvider.System;
}

/// <summary>
/// End-to-end session envelopes (docs/protocol.md §8.4, version 2): the sender runs the one-way Noise pattern K
/// (<c>e, es, ss</c>) once per session to a recipient and seals every message of the session with the split key and
/// the message's counter as the nonce:
/// <c>0x02 | aead | e (33) | handshake tag (16) | counter (u64 BE) | AEAD(key, counter, ad = these 59 bytes, message)</c>.
/// Each envelope carries its session's handshake, so the recipient needs no earlier message (offline delivery, a
/// restart, several connections, reordering); it derives a session's key once (two secp256k1 DH) and caches it, so
/// public-key work is once per session on both ends, not per message. Replays are refused by a 2048-message sliding
/// window per session. A sending session is replaced after <see cref="SessionEnvelopeOptions.RekeyAfterMessages"/>
/// messages or <see cref="SessionEnvelopeOptions.RekeyAfter"/>; its ephemeral secret is erased once the handshake is
/// written. Version-1 envelopes (one KK handshake per message) are still opened. Thread-safe.
/// </summary>
public sealed class SessionEnvelopes : IDisposable
{
    private const int WindowBits = 2048;

    private readonly KeyPair _key;
    private readonly SessionEnvelopeOptions _options;
    private readonly Lock _lock = new();
    private readonly Dictionary<PubKey, SendSession> _send = [];
    private readonly Dictionary<(PubKey From, ReceiveId Id), LinkedListNode<ReceiveSession>> _receive = [];
    private readonly LinkedList<ReceiveSession> _lru = new();
    private readonly ReplayGuard _v1Replay = new();
    private long _handshakes;

    public SessionEnvelopes(KeyPair key, SessionEnvelopeOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(key);
        _key = key;
        _options = options ?? SessionEnvelopeOptions.Default;
    }

    /// <summary>Noise handshakes written or read so far (public-key work: two DH each).</summary>
    public long Handshakes => Interlocked.Read(ref _handshakes);

    /// <summary>Envelope bytes for a message of <paramref name="messageLength"/> bytes.</summary>
    public static int SealedLength(int messageLength) => MessengerProtocol.SessionEnvelopeHeaderSize + messageLength + AeadKey.TagLength;

    /// <summary>Seals <paramref name="message"/> to <paramref name="recipient"/> in the current session to it.</summary>
    public byte[] Seal(PubKey recipient, ReadOnlySpan<byte> message)
    {
        if (message.Length > MessengerProtocol.MaxMessageSize)
        {
            throw new ArgumentException($"a message is at most {MessengerProtocol.MaxMessageSize} bytes", nameof(message));
        }

        var envelope = new byte[SealedLength(message.Length)];
        SendSession session;
        ulong counter;
        lock (_lock)
        {
            var now = _options.TimeProvider.GetTimestamp();
            if (!_send.TryGetValue(recipient, out session!) || session.Counter >= _options.RekeyAfterMessages
                || _options.TimeProvider.GetElapsedTime(session.Started, now) >= _options.RekeyAfter)
            {
                session?.Release();
                session = NewSendSession(recipient, now);
                _send[recipient] = session;
            }

            counter = session.Counter++;
            session.AddUser();
        }

        try
        {
            session.Header.CopyTo(envelope);
            BinaryPrimitives.WriteUInt64BigEndian(envelope.AsSpan(MessengerProtocol.SessionEnvelopeHeaderSize - 8), counter);
            var header = envelope.AsSpan(0, MessengerProtocol.SessionEnvelopeHeaderSize);
            session.Key.Seal(counter, header, message, envelope.AsSpan(MessengerProtocol.SessionEnvelopeHeaderSize));
        }
        finally
        {
            session.Release();
        }

        return envelope;
    }

    /// <summary>
    /// Opens an envelope (version 2, or 1) that the messenger says came from <paramref name="sender"/>. False if it was not
    /// sealed by that key for us, or is a replay.
    /// </summary>
    public bool TryOpen(PubKey sender, ReadOnlySpan<byte> envelope, out byte[] message)
    {
        message = [];
        if (envelope.Length > 0 && envelope[0] == MessengerProtocol.EnvelopeVersion)
        {
            return MessageEnvelope.TryOpen(_key, sender, envelope, out message) && _v1Replay.FirstSeen(MessageEnvelope.EphemeralKey(envelope));
        }

        const int headerSize = MessengerProtocol.SessionEnvelopeHeaderSize;
        if (envelope.Length < headerSize + AeadKey.TagLength || envelope[0] != MessengerProtocol.SessionEnvelopeVersion)
        {
            return false;
        }

        var alg = (AeadAlgorithmId)envelope[1];
        if (!Enum.IsDefined(alg) || !AeadKey.IsSupported(alg))
        {
            return false;
        }

        var id = new ReceiveId(envelope[..(headerSize - 8)]);
        var counter = BinaryPrimitives.ReadUInt64BigEndian(envelope.Slice(headerSize - 8, 8));
        ReceiveSession? session;
        lock (_lock)
        {
            if (_receive.TryGetValue((sender, id), out var node))
            {
                _lru.Remove(node);
                _lru.AddFirst(node);
                session = node.Value;
                if (!session.Window.Check(counter))
                {
                    return false;
                }
            }
            else
            {
                session = null;
            }
        }

        if (session is null)
        {
            // Public-key work once per session (per process: a restart derives it again from the envelope itself).
            session = NewReceiveSession(sender, id, envelope[..headerSize], alg);
            if (session is null)
            {
                return false;
            }
        }

        var plaintext = new byte[envelope.Length - headerSize - AeadKey.TagLength];
        lock (session)
        {
            if (!session.Key.Open(counter, envelope[..headerSize], envelope[headerSize..], plaintext))
            {
                return false;
            }
        }

        lock (_lock)
        {
            if (!session.Window.Accept(counter))
            {
                return false;
            }

            if (!_receive.ContainsKey((sender, id)))
            {
                _receive[(sender, id)] = _lru.AddFirst(session);
                while (_lru.Count > _options.MaxReceiveSessions)
                {
                    var old = _lru.Last!.Value;
                    _lru.RemoveLast();
                    _receive.Remove((old.From, old.Id));
                }
            }
        }

        message = plaintext;
        return true;
    }

    private SendSession NewSendSession(PubKey recipient, long now)
    {
        var alg = _options.Algorithm ?? AeadKey.PreferredAlgorithm;
        var header = new byte[MessengerProtocol.SessionEnvelopeHeaderSize - 8];
        header[0] = MessengerProtocol.SessionEnvelopeVersion;
        header[1] = (byte)alg;
        using var local = Secp256k1Dh.FromKeyPair(_key);
        using var hs = new HandshakeState(HandshakePattern.K, true, Secp256k1Dh.Instance, alg, Prologue(header.AsSpan(0, 2)), local, recipient.ToArray());
        var n = hs.WriteMessage([], header.AsSpan(MessengerProtocol.EnvelopeHeaderSize));
        if (n != PubKey.Length + AeadKey.TagLength)
        {
            throw new InvalidOperationException("unexpected handshake length");
        }

        var transport = hs.Split();
        transport.Receive.Dispose();
        Interlocked.Increment(ref _handshakes);
        return new SendSession(header, transport.Send, now);
    }

    private ReceiveSession? NewReceiveSession(PubKey sender, ReceiveId id, ReadOnlySpan<byte> header, AeadAlgorithmId alg)
    {
        try
        {
            using var local = Secp256k1Dh.FromKeyPair(_key);
            using var hs = new HandshakeState(HandshakePattern.K, false, Secp256k1Dh.Instance, alg, Prologue(header[..2]), local, sender.ToArray());
            hs.ReadMessage(header[MessengerProtocol.EnvelopeHeaderSize..(MessengerProtocol.SessionEnvelopeHeaderSize - 8)], []);
            var transport = hs.Split();
            transport.Send.Dispose();
            Interlocked.Increment(ref _handshakes);
            return new ReceiveSession(sender, id, transport.Receive);
        }
        catch (NoiseException)
        {
            return null;
        }
    }

    private static byte[] Prologue(ReadOnlySpan<byte> header) => [.. Encoding.ASCII.GetBytes(MessengerProtocol.SessionEnvelopePrologue), .. header];

    public void Dispose()
    {
        lock (_lock)
        {
            foreach (var s in _send.Values)
            {
                s.Release();
            }

            foreach (var r in _lru)
            {
                r.Key.Dispose();
            }

            _send.Clear();
            _receive.Clear();
            _lru.Clear();
        }
    }

    /// <summary>A session's identity: its version, aead, ephemeral key and handshake tag (51 bytes).</summary>
    private readonly struct ReceiveId : IEquatable<ReceiveId>
    {
        private readonly byte[] _bytes;

        public ReceiveId(ReadOnlySpan<byte> bytes) => _bytes = bytes.ToArray();

        public bool Equals(ReceiveId other) => _bytes.AsSpan().SequenceEqual(other._bytes);

        public override bool Equals(object? obj) => obj is ReceiveId other && Equals(other);

        public override int GetHashCode()
        {
            var hash = new HashCode();
            hash.AddBytes(_bytes);
            return hash.ToHashCode();
        }
    }

    /// <summary>A sending session; its key is disposed when it is replaced and no Seal still uses it.</summary>
    private sealed class SendSession(byte[] header, CipherState key, long started)
    {
        private int _users = 1;

        public byte[] Header { get; } = header;

        public CipherState Key { get; } = key;

        public long Started { get; } = started;

        public ulong Counter { get; set; }

        public void AddUser() => Interlocked.Increment(ref _users);

        public void Release()
        {
            if (Interlocked.Decrement(ref _users) == 0)
            {
                Key.Dispose();
            }
        }
    }

    private sealed class ReceiveSession(PubKey from, ReceiveId id, CipherState key)
    {
        public PubKey From { get; } = from;

        public ReceiveId Id { get; } = id;

        public CipherState Key { get; } = key;

        public ReplayWindow Window { get; } = new();
    }

    /// <summary>The sliding window of accepted counters (WireGuard's, RFC 6479 style): the newest counter and the 2048 before it.</summary>
    private sealed class ReplayWindow
    {
        private readonly ulong[] _bits = new ulong[WindowBits / 64];
        private ulong _top;
        private bool _any;

        public bool Check(ulong counter) => !_any || counter > _top || (_top - counter < WindowBits && (_bits[(counter / 64) % (ulong)_bits.Length] & (1UL << (int)(counter % 64))) == 0);

        public bool Accept(ulong counter)
        {
            if (!Check(counter))
            {
                return false;
            }

            if (!_any || counter > _top)
            {
                var from = _any ? _top + 1 : counter;
                if (counter - from >= WindowBits)
                {
                    Array.Clear(_bits);
                }
                else
                {
                    for (var c = from; c <= counter; c++)
                    {
                        _bits[(c / 64) % (ulong)_bits.Length] &= ~(1UL << (int)(c % 64));
                    }
                }

                _top = counter;
                _any = true;
            }

            _bits[(counter / 64) % (ulong)_bits.Length] |= 1UL << (int)(counter % 64);
            return true;
        }
    }
}
