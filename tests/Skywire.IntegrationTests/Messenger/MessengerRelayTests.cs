using System.Collections.Concurrent;
using System.Text;
using Skywire.Core.Crypto;
using Skywire.Core.Crypto.Noise;
using Skywire.Core.Messenger;
using Skywire.Protocol.Messenger;

namespace Skywire.IntegrationTests.Messenger;

public sealed class MessengerRelayTests
{
    [Fact]
    public async Task TwoClients_ExchangeMessages_BothWays()
    {
        await using var h = new MessengerHarness();
        var alice = await h.ConnectAsync();
        var bob = await h.ConnectAsync();

        await alice.SendAsync(bob.Key, "hello bob", TestContext.Current.CancellationToken);
        var got = await MessengerHarness.ReceiveAsync(bob);
        Assert.Equal(alice.Key, got.From);
        Assert.Equal("hello bob", MessengerHarness.Text(got));
        Assert.False(got.WasQueued);

        await bob.SendAsync(alice.Key, "hi alice", TestContext.Current.CancellationToken);
        var back = await MessengerHarness.ReceiveAsync(alice);
        Assert.Equal(bob.Key, back.From);
        Assert.Equal("hi alice", MessengerHarness.Text(back));
    }

    [Fact]
    public async Task ManyMessages_ArriveInOrder()
    {
        await using var h = new MessengerHarness();
        var alice = await h.ConnectAsync();
        var bob = await h.ConnectAsync();
        for (var i = 0; i < 500; i++)
        {
            await alice.SendAsync(bob.Key, $"m{i}", TestContext.Current.CancellationToken);
        }

        for (var i = 0; i < 500; i++)
        {
            Assert.Equal($"m{i}", MessengerHarness.Text(await MessengerHarness.ReceiveAsync(bob)));
        }
    }

    [Fact]
    public async Task WrongMessengerKey_ClientRefusesToConnect()
    {
        await using var h = new MessengerHarness();
        var ex = await Assert.ThrowsAsync<MessengerException>(() => h.ConnectAsync(options: h.ClientOptions(KeyPair.Generate().Public)));
        Assert.Equal(MessengerErrorCode.Forbidden, ex.Code);
        Assert.Contains("did not prove the key", ex.Message, StringComparison.Ordinal);
        Assert.Equal(0, h.Server.RegisteredCount);
    }

    [Fact]
    public async Task ImpostorClaimingAKeyItDoesNotHold_IsRefusedByTheHandshake()
    {
        await using var h = new MessengerHarness();
        var victim = KeyPair.Generate();
        var attacker = KeyPair.Generate();

        // Control: the same hand-driven client with an honest key registers.
        await using (var honest = await RawMessengerPeer.ConnectAsync(h.Server.LocalEndPoint))
        {
            using var honestKey = Secp256k1Dh.FromKeyPair(attacker);
            await honest.HandshakeAsync(honestKey, h.Server.Key);
            Assert.Equal((byte)MessengerOpcode.Hello | 0x80, await honest.HelloAsync(attacker));
        }

        await using var impostor = await RawMessengerPeer.ConnectAsync(h.Server.LocalEndPoint);
        using var lying = new ImpostorKeyPair(victim.Public, attacker);
        await impostor.HandshakeAsync(lying, h.Server.Key);
        Assert.True(await impostor.WaitClosedAsync());
        Assert.False(h.Server.IsOnline(victim.Public));
    }

    [Fact]
    public async Task HelloSignedByAnotherKey_IsRefused()
    {
        await using var h = new MessengerHarness();
        var mine = KeyPair.Generate();
        var other = KeyPair.Generate();
        await using var peer = await RawMessengerPeer.ConnectAsync(h.Server.LocalEndPoint);
        using var local = Secp256k1Dh.FromKeyPair(mine);
        await peer.HandshakeAsync(local, h.Server.Key);
        Assert.Equal((byte)MessengerOpcode.Error, await peer.HelloAsync(other));
        Assert.True(await peer.WaitClosedAsync());
        Assert.False(h.Server.IsOnline(mine.Public));
    }

    [Fact]
    public async Task Relay_SeesOnlyCiphertext_LiveAndStored()
    {
        await using var h = new MessengerHarness();
        var seen = new ConcurrentQueue<byte[]>();
        h.Server.Tap = (_, _, payload) => seen.Enqueue(payload.ToArray());
        var alice = await h.ConnectAsync();
        var bob = await h.ConnectAsync();
        var offlineKey = KeyPair.Generate();

        var secret = Encoding.UTF8.GetBytes("the eagle lands at midnight; the password is swordfish-42");
        await alice.SendAsync(bob.Key, secret, TestContext.Current.CancellationToken);
        await alice.SendAsync(offlineKey.Public, secret, TestContext.Current.CancellationToken);
        Assert.Equal(secret, (await MessengerHarness.ReceiveAsync(bob)).Data.ToArray());
        await alice.PingAsync(TestContext.Current.CancellationToken);

        // Every frame the messenger decrypted from its channels, and everything it stored: no 12-byte run of the plaintext.
        var everything = seen.Concat(h.Server.Store.Snapshot()).ToList();
        Assert.NotEmpty(h.Server.Store.Snapshot());
        Assert.True(seen.Count >= 3);
        for (var i = 0; i + 12 <= secret.Length; i++)
        {
            var window = secret[i..(i + 12)];
            Assert.DoesNotContain(everything, bytes => bytes.AsSpan().IndexOf(window) >= 0);
        }

        // And the recipient still opens the stored copy later.
        var late = await h.ConnectAsync(offlineKey);
        var stored = await MessengerHarness.ReceiveAsync(late);
        Assert.Equal(secret, stored.Data.ToArray());
        Assert.True(stored.WasQueued);
    }

    [Fact]
    public async Task OfflineKey_GetsItsMessagesWhenItConnects_InOrder()
    {
        await using var h = new MessengerHarness();
        var alice = await h.ConnectAsync();
        var bobKey = KeyPair.Generate();
        for (var i = 0; i < 5; i++)
        {
            await alice.SendAsync(bobKey.Public, $"while you were out {i}", TestContext.Current.CancellationToken);
        }

        await alice.PingAsync(TestContext.Current.CancellationToken);
        Assert.Equal(5, h.Server.Store.CountFor(bobKey.Public));
        Assert.False(alice.Drops.TryRead(out _));

        var bob = await h.ConnectAsync(bobKey);
        Assert.Equal(5, bob.Limits.Queued);
        for (var i = 0; i < 5; i++)
        {
            var m = await MessengerHarness.ReceiveAsync(bob);
            Assert.True(m.WasQueued);
            Assert.Equal($"while you were out {i}", MessengerHarness.Text(m));
        }

        Assert.Equal(0, h.Server.Store.CountFor(bobKey.Public));
    }

    [Fact]
    public async Task OfflineQueue_OverMessageLimit_SenderGetsDropNotices()
    {
        await using var h = new MessengerHarness(MessengerServerOptions.Default with { QueueMaxMessages = 3 });
        var alice = await h.ConnectAsync();
        var bobKey = KeyPair.Generate();
        var ids = new List<uint>();
        for (var i = 0; i < 5; i++)
        {
            ids.Add(await alice.SendAsync(bobKey.Public, $"m{i}", TestContext.Current.CancellationToken));
        }

        await alice.PingAsync(TestContext.Current.CancellationToken);
        var d1 = await MessengerHarness.DropAsync(alice);
        var d2 = await MessengerHarness.DropAsync(alice);
        Assert.Equal([ids[3], ids[4]], [d1.MessageId, d2.MessageId]);
        Assert.All([d1, d2], d => Assert.Equal(DropReason.QueueFull, d.Reason));
        Assert.Equal(bobKey.Public.ToString(), d1.To);

        var bob = await h.ConnectAsync(bobKey);
        Assert.Equal(["m0", "m1", "m2"], [
            MessengerHarness.Text(await MessengerHarness.ReceiveAsync(bob)),
            MessengerHarness.Text(await MessengerHarness.ReceiveAsync(bob)),
            MessengerHarness.Text(await MessengerHarness.ReceiveAsync(bob)),
        ]);
    }

    [Fact]
    public async Task OfflineQueue_OverByteLimit_DropsTheNewest()
    {
        await using var h = new MessengerHarness(MessengerServerOptions.Default with { QueueMaxBytes = 3000 });
        var alice = await h.ConnectAsync();
        var bobKey = KeyPair.Generate();
        var first = await alice.SendAsync(bobKey.Public, new byte[1000], TestContext.Current.CancellationToken);
        var second = await alice.SendAsync(bobKey.Public, new byte[1000], TestContext.Current.CancellationToken);
        var third = await alice.SendAsync(bobKey.Public, new byte[1000], TestContext.Current.CancellationToken);
        await alice.PingAsync(TestContext.Current.CancellationToken);
        var drop = await MessengerHarness.DropAsync(alice);
        Assert.Equal(third, drop.MessageId);
        Assert.Equal(DropReason.QueueFull, drop.Reason);
        Assert.Equal(2, h.Server.Store.CountFor(bobKey.Public));
        Assert.NotEqual(first, second);
    }

    [Fact]
    public async Task OfflineQueue_ExpiredMessages_AreDroppedAndTheSenderIsTold()
    {
        var clock = Clock.Create();
        var options = MessengerServerOptions.Default with { QueueTtl = TimeSpan.FromMinutes(10), SweepInterval = TimeSpan.FromMinutes(1) };
        await using var h = new MessengerHarness(options, clock);
        var alice = await h.ConnectAsync();
        var bobKey = KeyPair.Generate();
        var id = await alice.SendAsync(bobKey.Public, "stale", TestContext.Current.CancellationToken);
        await alice.PingAsync(TestContext.Current.CancellationToken);
        Assert.Equal(1, h.Server.Store.CountFor(bobKey.Public));

        clock.Advance(TimeSpan.FromMinutes(11));
        var drop = await MessengerHarness.DropAsync(alice);
        Assert.Equal(id, drop.MessageId);
        Assert.Equal(DropReason.Expired, drop.Reason);
        Assert.Equal(0, h.Server.Store.CountFor(bobKey.Public));

        var bob = await h.ConnectAsync(bobKey);
        Assert.Equal(0, bob.Limits.Queued);
    }

    [Fact]
    public async Task DropNotice_ForAnOfflineSender_WaitsForItsReconnect()
    {
        var clock = Clock.Create();
        var options = MessengerServerOptions.Default with { QueueTtl = TimeSpan.FromMinutes(10), SweepInterval = TimeSpan.FromMinutes(1) };
        await using var h = new MessengerHarness(options, clock);
        var aliceKey = KeyPair.Generate();
        var bobKey = KeyPair.Generate();
        uint id;
        await using (var alice = await MessengerClient.ConnectAsync(h.ClientOptions(), aliceKey, cancellationToken: TestContext.Current.CancellationToken))
        {
            id = await alice.SendAsync(bobKey.Public, "stale", TestContext.Current.CancellationToken);
            await alice.PingAsync(TestContext.Current.CancellationToken);
        }

        await WaitUntilAsync(() => !h.Server.IsOnline(aliceKey.Public));
        clock.Advance(TimeSpan.FromMinutes(11));
        await WaitUntilAsync(() => h.Server.Store.CountFor(bobKey.Public) == 0);

        var again = await h.ConnectAsync(aliceKey);
        var drop = await MessengerHarness.DropAsync(again);
        Assert.Equal(id, drop.MessageId);
        Assert.Equal(DropReason.Expired, drop.Reason);
    }

    [Fact]
    public async Task OversizedEnvelope_IsDroppedWithTooLarge()
    {
        await using var h = new MessengerHarness();
        var alice = await h.ConnectAsync();
        Assert.Throws<ArgumentException>(() => MessageEnvelope.Seal(KeyPair.Generate(), alice.Key, new byte[MessengerProtocol.MaxMessageSize + 1]));
        var max = await alice.SendAsync(alice.Key, new byte[MessengerProtocol.MaxMessageSize], TestContext.Current.CancellationToken);
        Assert.Equal(MessengerProtocol.MaxMessageSize, (await MessengerHarness.ReceiveAsync(alice)).Data.Length);
        Assert.NotEqual(0u, max);
    }

    internal static async Task WaitUntilAsync(Func<bool> condition)
    {
        using var cts = new CancellationTokenSource(MessengerHarness.Timeout);
        while (!condition())
        {
            await Task.Delay(10, cts.Token);
        }
    }
}
