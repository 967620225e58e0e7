using System.Net;
using System.Text;
using Skywire.Core.Crypto;
using Skywire.Core.Crypto.Noise;
using Skywire.Core.Manager.Store;
using Skywire.Core.Messenger;
using Skywire.Protocol;
using Skywire.Protocol.Framing;
using Skywire.Protocol.Messenger;
using Skywire.TestKit.Etcd;
using Skywire.TestKit.Logging;

namespace Skywire.IntegrationTests.Messenger;

/// <summary>
/// Several messengers serving one set of users through a real etcd (issue 17): presence and offers shared in the store,
/// messages forwarded messenger to messenger, a dead messenger's users gone with its lease, hostile store values refused.
/// </summary>
public sealed class MessengerStoreTests
{
    private static readonly TimeSpan Deadline = TimeSpan.FromSeconds(30);

    private static Action<string>? Output() => TestContext.Current.TestOutputHelper is { } output ? output.WriteLine : null;

    private static EtcdStore Store(EtcdCluster etcd, string prefix, TestLog log, string name) =>
        new(EtcdStoreOptions.Parse(etcd.StoreAddress(prefix)) with { LeaseTtl = TimeSpan.FromSeconds(3), RevokeOnDispose = false }, log.CreateLogger(name));

    private static async Task WaitUntilAsync(Func<bool> condition, string what)
    {
        var deadline = DateTime.UtcNow + Deadline;
        while (!condition())
        {
            Assert.True(DateTime.UtcNow < deadline, "timed out waiting until " + what);
            await Task.Delay(20, TestContext.Current.CancellationToken);
        }
    }

    private static MessengerClientOptions Options(MessengerServer server) => new() { EndPoint = server.LocalEndPoint, MessengerKey = server.Key };

    private static async Task<MessengerClient> ConnectAsync(MessengerServer server, TestLog log, KeyPair? key = null) =>
        await MessengerClient.ConnectAsync(Options(server), key ?? KeyPair.Generate(), log).WaitAsync(Deadline, TestContext.Current.CancellationToken);

    private static async Task<string> ReceiveTextAsync(MessengerClient client, PubKey from)
    {
        var message = await client.Messages.ReadAsync(TestContext.Current.CancellationToken).AsTask().WaitAsync(Deadline, TestContext.Current.CancellationToken);
        Assert.Equal(from, message.From);
        return Encoding.UTF8.GetString(message.Data.Span);
    }

    private static MessengerServer StartServer(EtcdStore store, TestLog log)
    {
        var server = new MessengerServer(KeyPair.Generate(), loggerFactory: log, store: store);
        server.Start(new IPEndPoint(IPAddress.Loopback, 0));
        return server;
    }

    [Fact]
    public async Task TwoMessengersOneStore_UsersOnEitherReachEachOther_MessagesQueuedAndDiscovery()
    {
        var ct = TestContext.Current.CancellationToken;
        await using var etcd = await EtcdCluster.StartAsync(1, Output(), ct);
        using var log = new TestLog(Output());
        await using var storeA = Store(etcd, "/ms1/", log, "etcd-A");
        await using var storeB = Store(etcd, "/ms1/", log, "etcd-B");
        await using var a = StartServer(storeA, log);
        await using var b = StartServer(storeB, log);
        await using var alice = await ConnectAsync(a, log);
        await using var bob = await ConnectAsync(b, log);
        await WaitUntilAsync(() => a.IsOnlineAnywhere(bob.Key) && b.IsOnlineAnywhere(alice.Key), "each messenger sees the other's user");
        Assert.False(a.IsOnline(bob.Key));

        // Both ways, in order, through the link between the two messengers.
        for (var i = 0; i < 20; i++)
        {
            await alice.SendAsync(bob.Key, $"to bob {i}", ct);
        }

        for (var i = 0; i < 20; i++)
        {
            Assert.Equal($"to bob {i}", await ReceiveTextAsync(bob, alice.Key));
        }

        await bob.SendAsync(alice.Key, "to alice", ct);
        Assert.Equal("to alice", await ReceiveTextAsync(alice, bob.Key));
        Assert.Equal(1, a.PeerLinks);
        Assert.Equal(1, b.PeerLinks);

        // Discovery: an offer made at B is found at A, with its owner online.
        await bob.OfferServiceAsync(new ServiceOffer { Name = "bob-chat", Type = "chat" }, cancellationToken: ct);
        ServiceQueryResult? found = null;
        var deadline = DateTime.UtcNow + Deadline;
        while ((found = await alice.QueryServicesAsync(new ServiceQuery { Type = "chat" }, ct)).Entries.Count == 0)
        {
            Assert.True(DateTime.UtcNow < deadline, "bob's offer never reached messenger A");
            await Task.Delay(20, ct);
        }

        var entry = Assert.Single(found.Entries);
        Assert.Equal(bob.Key.ToString(), entry.Key);
        Assert.True(entry.Online);

        // A message for a key connected nowhere waits at A, and reaches it when it connects to B.
        var carolKey = KeyPair.Generate();
        await alice.SendAsync(carolKey.Public, "for carol", ct);
        await WaitUntilAsync(() => a.Store.CountFor(carolKey.Public) == 1, "the message for carol is queued at A");
        await using var carol = await ConnectAsync(b, log, carolKey);
        var queued = await carol.Messages.ReadAsync(ct).AsTask().WaitAsync(Deadline, ct);
        Assert.Equal(alice.Key, queued.From);
        Assert.Equal("for carol", Encoding.UTF8.GetString(queued.Data.Span));

        // A stream across messengers is refused with a reason that says so.
        var refused = await Assert.ThrowsAsync<MessengerException>(() => alice.OpenStreamAsync(bob.Key, ReadOnlyMemory<byte>.Empty, ct));
        Assert.Equal(MessengerErrorCode.NotFound, refused.Code);
        Assert.Contains("another messenger of this store", refused.Message, StringComparison.Ordinal);

        await bob.WithdrawServiceAsync("bob-chat", ct);
        await WaitUntilAsync(() => a.Directory.Count == 0, "bob's withdrawn offer leaves A's directory");
    }

    [Fact]
    public async Task KilledMessenger_ItsUsersPresenceGoesWithinTheLease_AndMessagesForThemWait()
    {
        var ct = TestContext.Current.CancellationToken;
        await using var etcd = await EtcdCluster.StartAsync(1, Output(), ct);
        using var log = new TestLog(Output());
        await using var storeA = Store(etcd, "/ms2/", log, "etcd-A");
        await using var a = StartServer(storeA, log);
        await using var alice = await ConnectAsync(a, log);
        var bobKey = KeyPair.Generate();
        var storeB = Store(etcd, "/ms2/", log, "etcd-B");
        var b = StartServer(storeB, log);
        var bob = await ConnectAsync(b, log, bobKey);
        await WaitUntilAsync(() => a.IsOnlineAnywhere(bobKey.Public), "A sees bob on B");

        // B dies without a word to etcd: its store goes first (the lease is not revoked, and nothing B does after reaches
        // etcd), so bob's presence must go with the lease (3 s), as after a kill -9.
        var killed = DateTime.UtcNow;
        await storeB.DisposeAsync();
        await b.DisposeAsync();
        await bob.DisposeAsync();
        await WaitUntilAsync(() => !a.IsOnlineAnywhere(bobKey.Public), "bob's presence is gone");
        Assert.True(DateTime.UtcNow - killed < TimeSpan.FromSeconds(3 + 10), "presence outlived the lease by far");

        await alice.SendAsync(bobKey.Public, "later", ct);
        await WaitUntilAsync(() => a.Store.CountFor(bobKey.Public) == 1, "the message for bob waits at A");
    }

    [Fact]
    public async Task HostileValuesInPresenceKeys_AreRefused_AndTheRealOnesStillWork()
    {
        var ct = TestContext.Current.CancellationToken;
        await using var etcd = await EtcdCluster.StartAsync(1, Output(), ct);
        using var log = new TestLog(Output());
        await using var storeA = Store(etcd, "/ms3/", log, "etcd-A");
        await using var storeB = Store(etcd, "/ms3/", log, "etcd-B");
        await using var hostile = Store(etcd, "/ms3/", log, "etcd-hostile");
        await using var a = StartServer(storeA, log);
        await using var b = StartServer(storeB, log);
        await using var alice = await ConnectAsync(a, log);
        await using var bob = await ConnectAsync(b, log);
        await WaitUntilAsync(() => a.IsOnlineAnywhere(bob.Key), "A sees bob");

        var victim = KeyPair.Generate().Public;
        var fake = KeyPair.Generate().Public;
        var big = new string('x', 20_000);
        (string Key, string Value)[] writes =
        [
            ($"messenger/presence/{victim}/{b.Key}", $"{{\"server\":\"{a.Key}\"}}"),        // names another server than its key
            ($"messenger/presence/not-a-key/{b.Key}", $"{{\"server\":\"{b.Key}\"}}"),       // user is not a key
            ($"messenger/presence/{victim}", $"{{\"server\":\"{b.Key}\"}}"),                // no server in the key
            ($"messenger/presence/{victim}/{fake}", "{not json"),                          // malformed
            ($"messenger/servers/{fake}", "{\"endpoint\":\"nowhere\"}"),                    // endpoint does not parse
            ($"messenger/servers/{fake}", "{\"endpoint\":\"127.0.0.1:0\"}"),                // port 0
            ($"messenger/servers/zz", "{\"endpoint\":\"127.0.0.1:9\"}"),                    // server is not a key
            ($"messenger/offers/{victim}/x", $"{{\"server\":\"{b.Key}\",\"offer\":{{\"name\":\"y\",\"type\":\"chat\"}},\"expiresAtMs\":1}}"), // name does not match the key
            ($"messenger/offers/{victim}/x", $"{{\"server\":\"{b.Key}\",\"offer\":{{\"name\":\"x\",\"type\":\"{big}\"}},\"expiresAtMs\":1}}"), // too large
            ($"messenger/offers/{victim}/x", $"{{\"server\":\"{b.Key}\",\"offer\":{{\"name\":\"x\",\"type\":\"\"}},\"expiresAtMs\":1}}"), // not a valid offer
        ];
        var before = a.Presence!.Ignored;
        foreach (var (key, value) in writes)
        {
            await hostile.TransactAsync(StoreTransaction.Write(StoreOp.Put(key, Encoding.UTF8.GetBytes(value))), ct);
        }

        await WaitUntilAsync(() => a.Presence.Ignored - before >= writes.Length, "every hostile value was refused");
        Assert.False(a.IsOnlineAnywhere(victim));
        Assert.False(a.Presence.TryGetServer(fake, out _));
        Assert.Equal(0, a.Directory.Count);

        // A presence pointing a user at a messenger that is not in the store is not used either: the message waits here.
        await hostile.TransactAsync(StoreTransaction.Write(StoreOp.Put($"messenger/presence/{victim}/{fake}", Encoding.UTF8.GetBytes($"{{\"server\":\"{fake}\"}}"))), ct);
        await alice.SendAsync(victim, "for the victim", ct);
        await WaitUntilAsync(() => a.Store.CountFor(victim) == 1, "the message waits at A");

        // The real users still reach each other.
        await alice.SendAsync(bob.Key, "still works", ct);
        Assert.Equal("still works", await ReceiveTextAsync(bob, alice.Key));
    }

    [Fact]
    public async Task PeerHello_AnsweredOnlyOnceTheStoreListsTheKey_RefusedWhenItNeverDoes()
    {
        // Two messengers' watches do not advance together: one that just joined can be listed at the messenger it links
        // to a moment after its link arrives. The acceptor holds a peer hello until its own view lists the key (the
        // link's first PeerSend used to meet the lagging view, close the link and lose what it carried), and refuses a
        // key that is never listed once the handshake timeout passes.
        var ct = TestContext.Current.CancellationToken;
        await using var etcd = await EtcdCluster.StartAsync(1, Output(), ct);
        using var log = new TestLog(Output());
        await using var storeA = Store(etcd, "/ms5/", log, "etcd-A");
        await using var writer = Store(etcd, "/ms5/", log, "etcd-writer");
        await using var a = new MessengerServer(KeyPair.Generate(), new MessengerServerOptions { HandshakeTimeout = TimeSpan.FromSeconds(2) }, log, store: storeA);
        a.Start(new IPEndPoint(IPAddress.Loopback, 0));

        // Never listed: refused (an error answer, not the hello's acknowledgement), after the handshake timeout.
        var stranger = KeyPair.Generate();
        await using (var raw = await RawMessengerPeer.ConnectAsync(a.LocalEndPoint))
        {
            using var local = Secp256k1Dh.FromKeyPair(stranger);
            await raw.HandshakeAsync(local, a.Key);
            var answer = await raw.HelloFrameAsync(stranger, MessengerProtocol.Version, peer: true);
            Assert.Equal((byte)MessengerOpcode.Error, answer[4]);
            Assert.True(await raw.WaitClosedAsync());
        }

        // Listed while its hello waits: answered, and its PeerSend is taken (queued here for its offline key).
        var peer = KeyPair.Generate();
        await using var link = await RawMessengerPeer.ConnectAsync(a.LocalEndPoint);
        using var peerDh = Secp256k1Dh.FromKeyPair(peer);
        await link.HandshakeAsync(peerDh, a.Key);
        var hello = link.HelloFrameAsync(peer, MessengerProtocol.Version, peer: true);
        await writer.TransactAsync(StoreTransaction.Write(StoreOp.Put($"messenger/servers/{peer.Public}", Encoding.UTF8.GetBytes("{\"endpoint\":\"127.0.0.1:9\"}"))), ct);
        Assert.Equal((byte)MessengerOpcode.Hello | 0x80, (await hello.WaitAsync(Deadline, ct))[4]);
        var offline = KeyPair.Generate().Public;
        await link.WritePlainAsync(FrameCodec.Encode((byte)MessengerOpcode.PeerSend, 7, [.. MessengerFrames.PeerSendPrefix(KeyPair.Generate().Public, offline), .. new byte[64]]));
        await WaitUntilAsync(() => a.Store.CountFor(offline) == 1, "the forwarded message is queued for its offline key");
    }

    [Fact]
    public async Task PeerFramesFromAUserThatIsNotAMessengerOfTheStore_CloseItsConnection_AndAreNotDelivered()
    {
        var ct = TestContext.Current.CancellationToken;
        await using var etcd = await EtcdCluster.StartAsync(1, Output(), ct);
        using var log = new TestLog(Output());
        await using var storeA = Store(etcd, "/ms4/", log, "etcd-A");
        await using var a = StartServer(storeA, log);
        await using var alice = await ConnectAsync(a, log);
        var bob = KeyPair.Generate().Public;

        // A plain user of A claims to be another messenger and hands alice a message "from bob".
        var mallory = KeyPair.Generate();
        await using var raw = await RawMessengerPeer.ConnectAsync(a.LocalEndPoint);
        using var local = Secp256k1Dh.FromKeyPair(mallory);
        await raw.HandshakeAsync(local, a.Key);
        Assert.Equal((byte)MessengerOpcode.Hello | 0x80, await raw.HelloAsync(mallory));
        var payload = MessengerFrames.PeerSendPrefix(bob, alice.Key).Concat(new byte[64]).ToArray();
        await raw.WritePlainAsync(FrameCodec.Encode((byte)MessengerOpcode.PeerSend, 1, payload));
        Assert.True(await raw.WaitClosedAsync());

        // Nothing reached alice: the next message she gets is a real one.
        await using var carol = await ConnectAsync(a, log);
        await carol.SendAsync(alice.Key, "real", ct);
        Assert.Equal("real", await ReceiveTextAsync(alice, carol.Key));
    }
}
