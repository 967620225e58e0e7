using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Time.Testing;
using Skywire.Core.Crypto;
using Skywire.Core.Sessions;
using Skywire.Protocol;
using Skywire.Protocol.Links;
using Skywire.Protocol.Sessions;

namespace Skywire.Tests.Sessions;

/// <summary>SecureSession over an in-memory "route": no sockets, packets pumped by the test.</summary>
public sealed class SecureSessionTests : IDisposable
{
    private readonly KeyPair _a = KeyPair.Generate();
    private readonly KeyPair _b = KeyPair.Generate();

    public void Dispose()
    {
        _a.Dispose();
        _b.Dispose();
    }

    [Fact]
    public async Task Handshake_ThenDatagramsBothWays_SealedOnTheWire()
    {
        var (net, sa, sb) = Pair();
        sa.Start();
        net.Pump();
        await sa.Established.WaitAsync(TimeSpan.FromSeconds(10), TestContext.Current.CancellationToken);
        await sb.Established.WaitAsync(TimeSpan.FromSeconds(10), TestContext.Current.CancellationToken);
        Assert.Equal(SecureSessionState.Established, sa.State);
        Assert.Equal(SecureSessionState.Established, sb.State);

        var gotB = new List<byte[]>();
        var gotA = new List<byte[]>();
        sb.Receiver = d => gotB.Add(d.ToArray());
        sa.Receiver = d => gotA.Add(d.ToArray());
        var secret = "the relay must never see this"u8.ToArray();
        sa.Send(secret);
        sb.Send([1, 2, 3]);
        net.Pump();
        Assert.Equal(secret, Assert.Single(gotB));
        Assert.Equal(new byte[] { 1, 2, 3 }, Assert.Single(gotA));
        Assert.DoesNotContain(net.Wire, p => p.AsSpan().IndexOf(secret) >= 0);
        Assert.Equal(sa.MaxDatagramSize, SessionLimits.MaxDatagram(LinkLimits.DefaultMaxUdpPayload));
    }

    [Fact]
    public async Task Replay_Rejected_TamperedByte_RejectedAndCounted()
    {
        var (net, sa, sb) = Pair();
        sa.Start();
        net.Pump();
        await sb.Established.WaitAsync(TimeSpan.FromSeconds(10), TestContext.Current.CancellationToken);
        var got = new List<byte[]>();
        sb.Receiver = d => got.Add(d.ToArray());
        net.Wire.Clear();
        sa.Send([9, 8, 7, 6]);
        var packet = net.Wire.Single();
        net.Pump();
        Assert.Single(got);

        // Same packet again: replay.
        sb.OnPacket(packet.ToArray());
        Assert.Single(got);
        Assert.Equal(1, sb.Statistics.Replayed);

        // Every single-byte change of a fresh packet is detected.
        net.Wire.Clear();
        sa.Send([1, 1, 1, 1]);
        var fresh = net.Wire.Single();
        net.Wire.Clear();
        for (var i = 0; i < fresh.Length; i++)
        {
            var copy = fresh.ToArray();
            copy[i] ^= 0x04;
            sb.OnPacket(copy);
        }

        Assert.Single(got);
        Assert.Equal(fresh.Length, sb.Statistics.BadTag + sb.Statistics.Malformed + sb.Statistics.HandshakeRejected + sb.Statistics.Replayed + sb.Statistics.UnknownIndex - 1);
        sb.OnPacket(fresh.ToArray());
        Assert.Equal(2, got.Count);
    }

    [Fact]
    public async Task WrongPeer_ResponderRefusesInit_InitiatorTimesOut()
    {
        using var impostor = KeyPair.Generate();
        var net = new FakeRoute();
        var time = new FakeTimeProvider();
        // b expects a, but the impostor initiates claiming the session.
        var si = new SecureSession(Route(1, _b.Public, initiator: true), impostor, net.Side(0), AeadKey.PreferredAlgorithm, TimeSpan.FromMilliseconds(300), time, NullLogger.Instance);
        var sb = new SecureSession(Route(1, _a.Public, initiator: false), _b, net.Side(1), AeadKey.PreferredAlgorithm, TimeSpan.FromSeconds(10), time, NullLogger.Instance);
        net.Bind(si, sb);
        si.Start();
        net.Pump();
        Assert.Equal(1, sb.Statistics.HandshakeRejected);
        Assert.Equal(SecureSessionState.Handshaking, sb.State);
        time.Advance(TimeSpan.FromMilliseconds(400));
        si.Tick(time.GetTimestamp());
        await Assert.ThrowsAsync<SessionClosedException>(() => si.Established);
        Assert.Equal(SecureSessionState.Closed, si.State);
    }

    [Fact]
    public async Task ReplayedInit_AfterEstablished_DoesNotRekey()
    {
        var (net, sa, sb) = Pair();
        sa.Start();
        var init = net.Wire.Single().ToArray();
        net.Pump();
        await sb.Established.WaitAsync(TimeSpan.FromSeconds(10), TestContext.Current.CancellationToken);
        sb.OnPacket(init);
        Assert.Equal(1, sb.Statistics.HandshakeRejected);
        var got = new List<byte[]>();
        sb.Receiver = d => got.Add(d.ToArray());
        sa.Send([5]);
        net.Pump();
        Assert.Single(got);
    }

    [Fact]
    public async Task EarlyDatagrams_QueuedUntilReceiverSet_AndOversize_Dropped()
    {
        var (net, sa, sb) = Pair();
        sa.Start();
        net.Pump();
        await sb.Established.WaitAsync(TimeSpan.FromSeconds(10), TestContext.Current.CancellationToken);
        sa.Send([1]);
        sa.Send([2]);
        net.Pump();
        var got = new List<byte>();
        sb.Receiver = d => got.Add(d[0]);
        Assert.Equal(new byte[] { 1, 2 }, got);
        sa.Send(new byte[sa.MaxDatagramSize + 1]);
        Assert.Equal(1, sa.Statistics.SendDropped);
        sa.Send(new byte[sa.MaxDatagramSize]);
        net.Pump();
        Assert.Equal(3, got.Count);
    }

    [Fact]
    public void Send_BeforeEstablished_DroppedAndCounted()
    {
        var (_, sa, _) = Pair();
        sa.Send([1, 2]);
        Assert.Equal(1, sa.Statistics.SendDropped);
    }

    [Fact]
    public async Task Fuzz_RandomAndTruncatedPackets_NeverThrow_NeverDeliver()
    {
        var (net, sa, sb) = Pair();
        sa.Start();
        net.Pump();
        await sb.Established.WaitAsync(TimeSpan.FromSeconds(10), TestContext.Current.CancellationToken);
        var delivered = 0;
        sb.Receiver = _ => delivered++;
        sa.Receiver = _ => delivered++;
        net.Wire.Clear();
        sa.Send(new byte[100]);
        var data = net.Wire.Single();
        net.Wire.Clear();
        var rng = new Random(11);
        for (var i = 0; i < 5000; i++)
        {
            var packet = new byte[rng.Next(0, 300)];
            rng.NextBytes(packet);
            if (packet.Length > 0)
            {
                packet[0] = (byte)(0x10 + rng.Next(0, 3));
            }

            sb.OnPacket(packet);
            sa.OnPacket(packet.ToArray());
        }

        for (var n = 0; n < data.Length; n++)
        {
            sb.OnPacket(data.AsSpan(0, n).ToArray());
        }

        Assert.Equal(0, delivered);
        Assert.Equal(SecureSessionState.Established, sb.State);
        sb.OnPacket(data.ToArray());
        Assert.Equal(1, delivered);
    }

    [Fact]
    public void DataHeader_RoundTrip_AndRejects()
    {
        var packet = new byte[SessionLimits.DataOverhead];
        SessionLimits.WriteDataHeader(packet, 0xA1B2C3D4, 0x1122334455667788);
        Assert.Equal(new byte[] { 0x12, 0, 0, 0, 0xA1, 0xB2, 0xC3, 0xD4, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88 }, packet[..SessionLimits.DataHeaderLength]);
        Assert.True(SessionLimits.TryReadDataHeader(packet, out var receiver, out var counter));
        Assert.Equal(0xA1B2C3D4u, receiver);
        Assert.Equal(0x1122334455667788UL, counter);
        Assert.False(SessionLimits.TryReadDataHeader(packet.AsSpan(0, SessionLimits.DataOverhead - 1), out _, out _));
        packet[2] = 1;
        Assert.False(SessionLimits.TryReadDataHeader(packet, out _, out _));
    }

    /// <summary>The table drawn at the top of SecureSession, and nothing else.</summary>
    [Fact]
    public void StateTable_AllowsExactlyTheDrawnTransitions()
    {
        var allowed = new HashSet<(SecureSessionState, SecureSessionState)>
        {
            (SecureSessionState.Handshaking, SecureSessionState.Established),
            (SecureSessionState.Handshaking, SecureSessionState.Closed),
            (SecureSessionState.Established, SecureSessionState.Closed),
        };
        foreach (var from in Enum.GetValues<SecureSessionState>())
        {
            foreach (var to in Enum.GetValues<SecureSessionState>())
            {
                Assert.True(allowed.Contains((from, to)) == SecureSessionStates.IsAllowed(from, to), $"{from} -> {to}");
            }
        }
    }

    /// <summary>Closed is terminal: a handshake answer that arrives after the close does not bring the session back.</summary>
    [Fact]
    public async Task ClosedWhileHandshaking_ResponseArrivesLater_StaysClosed_NoKeys()
    {
        var (net, sa, sb) = Pair();
        sa.Start();
        net.Pump(toward: 1); // the init reaches b, which answers
        sa.Dispose();
        net.Pump();          // the response reaches a, closed
        Assert.Equal(SecureSessionState.Closed, sa.State);
        Assert.Null(sa.Aead);
        var closed = await Assert.ThrowsAsync<SessionClosedException>(() => sa.Established.WaitAsync(TimeSpan.FromSeconds(10), TestContext.Current.CancellationToken));
        Assert.Equal("closed", closed.Reason);
        sa.Dispose(); // idempotent
        Assert.Equal(SecureSessionState.Handshaking, sb.State);
    }

    private (FakeRoute Net, SecureSession A, SecureSession B) Pair()
    {
        var net = new FakeRoute();
        var sa = new SecureSession(Route(42, _b.Public, initiator: true), _a, net.Side(0), AeadKey.PreferredAlgorithm, TimeSpan.FromSeconds(10), TimeProvider.System, NullLogger.Instance);
        var sb = new SecureSession(Route(42, _a.Public, initiator: false), _b, net.Side(1), AeadKey.PreferredAlgorithm, TimeSpan.FromSeconds(10), TimeProvider.System, NullLogger.Instance);
        net.Bind(sa, sb);
        return (net, sa, sb);
    }

    private static SessionRoute Route(ulong id, PubKey peer, bool initiator) => new(id, peer, initiator, peer, 7, peer, 8);

    /// <summary>Carries routed payloads between two sessions; records every payload on the "wire".</summary>
    private sealed class FakeRoute
    {
        private readonly Queue<(int To, byte[] Payload)> _queue = new();
        private readonly SecureSession[] _ends = new SecureSession[2];

        public List<byte[]> Wire { get; } = [];

        public Sender Side(int index) => new(this, index);

        public void Bind(SecureSession a, SecureSession b)
        {
            _ends[0] = a;
            _ends[1] = b;
        }

        public void Pump()
        {
            while (_queue.TryDequeue(out var item))
            {
                _ends[item.To].OnPacket(item.Payload);
            }
        }

        /// <summary>Delivers only what is queued now toward <paramref name="toward"/>; the rest waits.</summary>
        public void Pump(int toward)
        {
            var now = _queue.ToArray();
            _queue.Clear();
            foreach (var item in now)
            {
                if (item.To == toward)
                {
                    _ends[item.To].OnPacket(item.Payload);
                }
                else
                {
                    _queue.Enqueue(item);
                }
            }
        }

        public sealed class Sender(FakeRoute route, int index) : IRoutedSender
        {
            public int MaxUdpPayload => LinkLimits.DefaultMaxUdpPayload;

            public bool SendRouted(PubKey outLink, uint routeId, Span<byte> packet, int payloadLength)
            {
                var payload = packet.Slice(LinkLimits.RoutedHeaderLength, payloadLength).ToArray();
                route.Wire.Add(payload.ToArray());
                route._queue.Enqueue((1 - index, payload));
                return true;
            }
        }
    }
}
