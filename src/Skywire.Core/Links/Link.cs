using System.Net;
using Skywire.Core.Crypto;
using Skywire.Core.Crypto.Noise;
using Skywire.Protocol;

namespace Skywire.Core.Links;

/// <summary>One direction-pair of keys with a peer, found by our local index.</summary>
internal sealed class LinkSession : IDisposable
{
    private long _sendCounter = -1;

    public LinkSession(Link link, uint localIndex, uint remoteIndex, NoiseTransport transport, AeadAlgorithmId aead, bool confirmed, long createdAt)
    {
        CreatedAt = createdAt;
        Link = link;
        LocalIndex = localIndex;
        RemoteIndex = remoteIndex;
        Transport = transport;
        Aead = aead;
        Confirmed = confirmed;
    }

    public Link Link { get; }

    /// <summary>TimeProvider timestamp of the handshake that made these keys (rekey timing).</summary>
    public long CreatedAt { get; }

    public uint LocalIndex { get; }

    public uint RemoteIndex { get; }

    public NoiseTransport Transport { get; }

    public AeadKey SendKey => Transport.Send.Key;

    public AeadKey ReceiveKey => Transport.Receive.Key;

    public AeadAlgorithmId Aead { get; }

    /// <summary>Receive-thread only.</summary>
    public ReplayWindow Window { get; } = new();

    /// <summary>True once the peer proved it holds the keys (responder side: its first packet).</summary>
    public volatile bool Confirmed;

    public ulong NextCounter() => (ulong)Interlocked.Increment(ref _sendCounter);

    public void Dispose() => Transport.Dispose();
}

/// <summary>Our side of an IK handshake we started.</summary>
internal sealed class PendingLinkHandshake : IDisposable
{
    public PendingLinkHandshake(uint localIndex, HandshakeState state, AeadAlgorithmId aead, byte[] mac1)
    {
        Mac1 = mac1;
        LocalIndex = localIndex;
        State = state;
        Aead = aead;
    }

    public uint LocalIndex { get; }

    public HandshakeState State { get; }

    public AeadAlgorithmId Aead { get; }

    /// <summary>The mac1 of the init sent: a cookie reply echoes it.</summary>
    public byte[] Mac1 { get; }

    public void Dispose() => State.Dispose();
}

/// <summary>
/// Everything about the link to one peer. Mutations happen under <see cref="Gate"/>; the hot
/// path reads <see cref="Current"/> and <see cref="Remote"/> without locking.
/// </summary>
internal sealed class Link
{
    public const int MaxProbeWindow = 64;

    public Link(PubKey peer) => Peer = peer;

    public PubKey Peer { get; }

    public object Gate { get; } = new();

    public volatile LinkSession? Current;

    public LinkSession? Previous;

    /// <summary>
    /// Responder side of a re-handshake on an up link: the new keys receive at once but are used
    /// for sending only after the initiator proves it has them (its first packet under them).
    /// </summary>
    public LinkSession? Next;

    /// <summary>Completed handshakes (tests, diagnostics).</summary>
    public long Handshakes;

    public volatile SocketAddress? Remote;

    public IPEndPoint? RemoteEndPoint;

    public volatile LinkState State = LinkState.Connecting;

    public bool Initiator;

    // Initiator handshake.
    public PendingLinkHandshake? Pending;
    public int Attempts;
    public long HandshakeStartedAt;
    public long NextAttemptAt;
    public TaskCompletionSource? UpSignal;

    /// <summary>Cookie from the peer's last cookie reply (for mac2), and when it arrived.</summary>
    public byte[]? Cookie;
    public long CookieAt;

    /// <summary>Highest handshake timestamp accepted from the peer (replayed inits are refused).</summary>
    public ulong LastInitTimestamp;

    public long LastReceivedAt;
    public long UpSinceAt;
    public DateTimeOffset? UpSinceUtc;

    /// <summary>Times the peer's address changed under an authenticated packet.</summary>
    public long Roams;

    // Metrics (Interlocked).
    public long PacketsSent;
    public long PacketsReceived;
    public long BytesSent;
    public long BytesReceived;

    // Probes (maintenance thread writes sends; receive thread writes replies; under Gate).
    public uint NextProbeId;
    public long NextProbeAt;
    public readonly long[] ProbeSentAt = new long[MaxProbeWindow];
    public readonly uint[] ProbeIds = new uint[MaxProbeWindow];
    public readonly bool[] ProbeAnswered = new bool[MaxProbeWindow];
    public double? SrttSeconds;
    public double? LastRttSeconds;
}
