using System.Net;
using System.Net.Sockets;
using System.Security.Cryptography;
using Skywire.IntegrationTests.Mesh;
using Skywire.Core.Sdk;
using Skywire.TestKit;

namespace Skywire.IntegrationTests.Messenger;

/// <summary>
/// A cross-cluster stream that had to be relayed by the messenger (UDP between the clusters blocked) moves to a direct
/// link when one comes up, while data flows both ways, without losing, duplicating or reordering a byte.
/// </summary>
public sealed class RelayHandoverTests
{
    private const int Chunk = 32 * 1024;
    private const long BeforeUnblock = 1024 * 1024;
    private const long AfterMove = 4 * 1024 * 1024;
    private const long GiveUpAfter = 256L * 1024 * 1024;

    [Fact]
    public async Task RelayedStream_MovesToTheDirectLink_WhenUdpComesBack_ByteExactBothWays()
    {
        var ct = TestContext.Current.CancellationToken;
        using var nowhere = new UdpClient(new IPEndPoint(IPAddress.Loopback, 0));
        var dead = (IPEndPoint)nowhere.Client.LocalEndPoint!;

        // Each node advertises a relay in front of its link socket that drops everything for now: the dial's direct
        // attempt fails both ways, and the stream goes through the messenger.
        using var inFrontOfA = new UdpFaultRelay(dead) { Blackhole = true };
        using var inFrontOfB = new UdpFaultRelay(dead) { Blackhole = true };
        await using var messenger = new MessengerHarness();
        await using var cluster1 = MeshHarness.Start();
        await using var cluster2 = MeshHarness.Start();
        Func<Skywire.Core.Node.NodeOptions, Skywire.Core.Node.NodeOptions> Configure(UdpFaultRelay front) => o => o with
        {
            Messenger = messenger.ClientOptions(),
            AdvertisedLinkAddress = front.ListenEndPoint,
            DirectLinkTimeout = TimeSpan.FromSeconds(1),
            RelayUpgradeInterval = TimeSpan.FromMilliseconds(200),
            RelayUpgradeMaxInterval = TimeSpan.FromSeconds(1),
        };
        var nodeA = await cluster1.AddNodeAsync(Configure(inFrontOfA));
        var nodeB = await cluster2.AddNodeAsync(Configure(inFrontOfB));
        inFrontOfA.Target = nodeA.LinkEndPoint;
        inFrontOfB.Target = nodeB.LinkEndPoint;
        await MessengerRelayTests.WaitUntilAsync(() => nodeA.MessengerConnected && nodeB.MessengerConnected && messenger.Server.IsOnline(nodeA.PublicKey) && messenger.Server.IsOnline(nodeB.PublicKey));

        await using var sink = await MeshHarness.AppAsync(nodeB);
        await sink.RegisterAsync("echo-less", "test", ct);
        await using var source = await MeshHarness.AppAsync(nodeA);
        var accepting = sink.AcceptAsync(ct);
        await using var atA = await source.DialAsync(nodeB.NodeKey, "echo-less", ct).WaitAsync(MessengerHarness.Timeout, ct);
        await using var atB = await accepting.WaitAsync(MessengerHarness.Timeout, ct);
        Assert.Equal(1, messenger.Server.StreamsRelayed);
        Assert.Equal(0, nodeA.DirectSessionsEstablished);

        bool Moved() => nodeA.StreamsMovedToDirect == 1 && nodeB.StreamsMovedToDirect == 1;
        var aToB = new Direction(atA, atB, seed: 1, Moved);
        var bToA = new Direction(atB, atA, seed: 2, Moved);
        var flows = Task.WhenAll(aToB.RunAsync(ct), bToA.RunAsync(ct));

        // Data has crossed the relay both ways; now UDP gets through to B (A's side stays blocked: B's punch is lost,
        // A's own handshake makes the link).
        await Task.WhenAll(aToB.Received(BeforeUnblock), bToA.Received(BeforeUnblock)).WaitAsync(TimeSpan.FromMinutes(2), ct);
        inFrontOfB.Blackhole = false;
        await MessengerRelayTests.WaitUntilAsync(Moved);
        var relayedAtMove = messenger.Server.StreamBytesRelayed;

        await flows.WaitAsync(TimeSpan.FromMinutes(3), ct);
        aToB.AssertByteExact();
        bToA.AssertByteExact();
        Assert.True(aToB.Sent >= BeforeUnblock + AfterMove && bToA.Sent >= BeforeUnblock + AfterMove);
        Assert.Equal(1, nodeA.DirectSessionsEstablished);

        // After the move, at most what was in flight on the relay (its windows) still crossed it; the rest went direct.
        var relayedAfterMove = messenger.Server.StreamBytesRelayed - relayedAtMove;
        Assert.True(relayedAfterMove < 2 * 1024 * 1024, $"{relayedAfterMove} bytes crossed the relay after the move");
        Assert.Equal(1, messenger.Server.StreamsRelayed);
    }

    /// <summary>One direction of the stream: a writer of seeded random chunks and a reader hashing what arrives.</summary>
    private sealed class Direction(SkywireStream from, SkywireStream to, int seed, Func<bool> moved)
    {
        private readonly IncrementalHash _sentHash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        private readonly IncrementalHash _receivedHash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        private readonly Lock _progressLock = new();
        private readonly List<(long Bytes, TaskCompletionSource Reached)> _waits = [];
        private long _received;

        public long Sent { get; private set; }

        public long ReceivedBytes => Interlocked.Read(ref _received);

        public Task Received(long bytes)
        {
            lock (_progressLock)
            {
                if (_received >= bytes)
                {
                    return Task.CompletedTask;
                }

                var wait = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
                _waits.Add((bytes, wait));
                return wait.Task;
            }
        }

        public Task RunAsync(CancellationToken ct) => Task.WhenAll(Task.Run(() => WriteAsync(ct), ct), Task.Run(() => ReadAsync(ct), ct));

        private async Task WriteAsync(CancellationToken ct)
        {
            // Writes until the stream has moved and AfterMove more bytes went out after that (or a generous cap).
            var rng = new Random(seed);
            var chunk = new byte[Chunk];
            long movedAt = -1;
            while (Sent < GiveUpAfter && (movedAt < 0 || Sent - movedAt < AfterMove))
            {
                rng.NextBytes(chunk);
                _sentHash.AppendData(chunk);
                await from.WriteAsync(chunk, ct);
                Sent += chunk.Length;
                if (movedAt < 0 && moved())
                {
                    movedAt = Sent;
                }
            }

            await from.CompleteWritesAsync(ct);
        }

        private async Task ReadAsync(CancellationToken ct)
        {
            var buffer = new byte[64 * 1024];
            int n;
            while ((n = await to.ReadAsync(buffer, ct)) > 0)
            {
                _receivedHash.AppendData(buffer, 0, n);
                lock (_progressLock)
                {
                    _received += n;
                    foreach (var wait in _waits.Where(w => _received >= w.Bytes).ToList())
                    {
                        wait.Reached.TrySetResult();
                        _waits.Remove(wait);
                    }
                }
            }
        }

        public void AssertByteExact()
        {
            Assert.Equal(Sent, ReceivedBytes);
            Assert.Equal(_sentHash.GetHashAndReset(), _receivedHash.GetHashAndReset());
        }
    }
}
