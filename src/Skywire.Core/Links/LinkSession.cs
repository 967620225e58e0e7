using Skywire.Core.Crypto;
using Skywire.Core.Crypto.Noise;

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
