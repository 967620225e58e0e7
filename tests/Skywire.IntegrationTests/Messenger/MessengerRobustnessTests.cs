using System.Text;
using Skywire.Core.Crypto;
using Skywire.Core.Crypto.Noise;
using Skywire.Core.Messenger;
using Skywire.Protocol.Framing;
using Skywire.Protocol.Messenger;

namespace Skywire.IntegrationTests.Messenger;

public sealed class MessengerRobustnessTests
{
    public static TheoryData<string, byte[]> MalformedFrames => new()
    {
        { "oversized length", [0x7F, 0xFF, 0xFF, 0xFF, (byte)MessengerOpcode.Send, 0, 0, 0, 1] },
        { "unknown opcode", FrameCodec.Encode(0x5A, 0, [1, 2, 3]) },
        { "send shorter than a key", FrameCodec.Encode((byte)MessengerOpcode.Send, 7, new byte[10]) },
        { "send with an invalid key", FrameCodec.Encode((byte)MessengerOpcode.Send, 7, [0x05, .. new byte[40]]) },
        { "bad JSON query", FrameCodec.Encode((byte)MessengerOpcode.Query, 3, "{not json"u8) },
        { "credit of the wrong size", FrameCodec.Encode((byte)MessengerOpcode.StreamCredit, 0, [0, 0, 0, 1, 0]) },
        { "second hello", FrameCodec.Encode((byte)MessengerOpcode.Hello, 9, "{}"u8) },
    };

    [Theory]
    [MemberData(nameof(MalformedFrames))]
    public async Task MalformedFrame_ClosesOnlyThatConnection(string name, byte[] frame)
    {
        await using var h = new MessengerHarness();
        var alice = await h.ConnectAsync();
        var bob = await h.ConnectAsync();

        var badKey = KeyPair.Generate();
        await using var bad = await RawMessengerPeer.ConnectAsync(h.Server.LocalEndPoint);
        using var local = Secp256k1Dh.FromKeyPair(badKey);
        await bad.HandshakeAsync(local, h.Server.Key);
        Assert.Equal((byte)MessengerOpcode.Hello | 0x80, await bad.HelloAsync(badKey));
        await bad.WritePlainAsync(frame);
        Assert.True(await bad.WaitClosedAsync(), name);
        await MessengerRelayTests.WaitUntilAsync(() => !h.Server.IsOnline(badKey.Public));

        await alice.SendAsync(bob.Key, "still here", TestContext.Current.CancellationToken);
        Assert.Equal("still here", MessengerHarness.Text(await MessengerHarness.ReceiveAsync(bob)));
        Assert.True(h.Server.IsOnline(alice.Key) && h.Server.IsOnline(bob.Key));
    }

    /// <summary>
    /// Issue 12.7: a client that pipelines 1 000 000 requests (Ping, 9 MB: more than the kernel's socket buffers hold) without reading a single answer. The messenger stops
    /// reading it while the answers it queued are at the cap (4096 frames), instead of queueing an answer per request:
    /// before, every answer was queued (unbounded) and the queue grew with the flood. Honest clients are served
    /// meanwhile, and once the client reads, every request is answered: backpressure loses nothing.
    /// </summary>
    [Fact]
    public async Task PipelinedRequests_WithoutReadingTheAnswers_StopBeingRead_QueueStaysAtItsCap_AndAllAreAnsweredOnceRead()
    {
        await using var h = new MessengerHarness();
        var alice = await h.ConnectAsync();
        var bob = await h.ConnectAsync();
        var key = KeyPair.Generate();
        await using var raw = await RawMessengerPeer.ConnectAsync(h.Server.LocalEndPoint, receiveBuffer: 4096);
        using var local = Secp256k1Dh.FromKeyPair(key);
        await raw.HandshakeAsync(local, h.Server.Key);
        Assert.Equal((byte)MessengerOpcode.Hello | 0x80, await raw.HelloAsync(key));
        var link = h.Server.ConnectionLinks.Single(l => l.PeerName == key.Public.ToShortString(12));

        const int count = 1_000_000;
        const int perRecord = 4000;
        var writer = Task.Run(async () =>
        {
            for (var first = 0; first < count; first += perRecord)
            {
                var record = new byte[perRecord * FrameCodec.HeaderSize];
                for (var i = 0; i < perRecord; i++)
                {
                    FrameCodec.WriteHeader(record.AsSpan(i * FrameCodec.HeaderSize), (byte)MessengerOpcode.Ping, (uint)(first + i + 1), 0);
                }

                await raw.WritePlainAsync(record);
            }
        });

        var maxFrames = 0;
        var maxBytes = 0L;
        // Generous: under a load of 40+ the messenger may take long to read what the kernel buffers hold.
        var deadline = DateTime.UtcNow + TimeSpan.FromMinutes(2);
        while (link.ReadPauses == 0 && DateTime.UtcNow < deadline)
        {
            maxFrames = Math.Max(maxFrames, link.QueuedFrames);
            maxBytes = Math.Max(maxBytes, link.QueuedBytes);
            await Task.Delay(5, TestContext.Current.CancellationToken);
        }

        Assert.True(link.ReadPauses > 0, $"the messenger never stopped reading a client that does not read (queued up to {maxFrames} frames, {maxBytes} bytes)");
        for (var i = 0; i < 50; i++)
        {
            maxFrames = Math.Max(maxFrames, link.QueuedFrames);
            await Task.Delay(5, TestContext.Current.CancellationToken);
        }

        Assert.InRange(maxFrames, 0, MessengerServerOptions.Default.OutboundQueueFrames + 1);

        // Honest clients are unaffected while it is held.
        await alice.SendAsync(bob.Key, "still here", TestContext.Current.CancellationToken);
        Assert.Equal("still here", MessengerHarness.Text(await MessengerHarness.ReceiveAsync(bob)));

        // Reading now gets every answer, in order.
        var expected = 1u;
        var pending = Array.Empty<byte>();
        using var cts = new CancellationTokenSource(TimeSpan.FromMinutes(3));
        while (expected <= count)
        {
            var plain = await raw.ReadPlainAsync().WaitAsync(cts.Token);
            var bytes = pending.Length == 0 ? plain : [.. pending, .. plain];
            var offset = 0;
            for (; offset + FrameCodec.HeaderSize <= bytes.Length; offset += FrameCodec.HeaderSize)
            {
                Assert.Equal((byte)MessengerOpcode.Ping | FrameCodec.ResponseBit, bytes[offset + 4]);
                Assert.Equal(expected++, System.Buffers.Binary.BinaryPrimitives.ReadUInt32BigEndian(bytes.AsSpan(offset + 5)));
            }

            pending = bytes[offset..];
        }

        await writer.WaitAsync(cts.Token);
        Assert.InRange(maxFrames, 0, MessengerServerOptions.Default.OutboundQueueFrames + 1);
    }

    [Fact]
    public async Task OldClient_Version1Hello_GetsUnsupportedVersionSayingToUpgrade()
    {
        await using var h = new MessengerHarness();
        var key = KeyPair.Generate();
        await using var old = await RawMessengerPeer.ConnectAsync(h.Server.LocalEndPoint);
        using var local = Secp256k1Dh.FromKeyPair(key);
        await old.HandshakeAsync(local, h.Server.Key);
        var answer = await old.HelloFrameAsync(key, 1);
        Assert.Equal(0xFF, answer[4]);
        var text = Encoding.UTF8.GetString(answer);
        Assert.Contains("version 1 is not supported", text, StringComparison.Ordinal);
        Assert.Contains("upgrade the client", text, StringComparison.Ordinal);
        Assert.True(await old.WaitClosedAsync());
        Assert.False(h.Server.IsOnline(key.Public));
    }

    [Fact]
    public async Task SendFrame_SplitAcrossRecordsAtEveryOffset_IsStillRelayed()
    {
        await using var h = new MessengerHarness();
        var bob = await h.ConnectAsync();
        var key = KeyPair.Generate();
        await using var raw = await RawMessengerPeer.ConnectAsync(h.Server.LocalEndPoint);
        using var local = Secp256k1Dh.FromKeyPair(key);
        await raw.HandshakeAsync(local, h.Server.Key);
        Assert.Equal((byte)MessengerOpcode.Hello | 0x80, await raw.HelloAsync(key));

        var length = FrameCodec.HeaderSize + MessengerFrames.KeyAndBody(bob.Key, MessageEnvelope.Seal(key, bob.Key, "x"u8)).Length;
        for (var cut = 1; cut < length; cut++)
        {
            var frame = FrameCodec.Encode((byte)MessengerOpcode.Send, (uint)cut, MessengerFrames.KeyAndBody(bob.Key, MessageEnvelope.Seal(key, bob.Key, "x"u8)));
            await raw.WritePlainAsync(frame[..cut]);
            await raw.WritePlainAsync(frame[cut..]);
        }

        for (var cut = 1; cut < length; cut++)
        {
            var m = await MessengerHarness.ReceiveAsync(bob);
            Assert.Equal((key.Public, "x"), (m.From, MessengerHarness.Text(m)));
        }

        Assert.Equal(0, bob.RejectedEnvelopes);
    }

    [Fact]
    public async Task ForgedOrReplayedEnvelopes_AreRejectedByTheRecipient_NotDelivered()
    {
        await using var h = new MessengerHarness();
        var bob = await h.ConnectAsync();
        var key = KeyPair.Generate();
        var someoneElse = KeyPair.Generate();
        await using var raw = await RawMessengerPeer.ConnectAsync(h.Server.LocalEndPoint);
        using var local = Secp256k1Dh.FromKeyPair(key);
        await raw.HandshakeAsync(local, h.Server.Key);
        await raw.HelloAsync(key);

        // Sealed by another key: the messenger stamps the true sender, so the recipient cannot open it as coming from it.
        await raw.WritePlainAsync(FrameCodec.Encode((byte)MessengerOpcode.Send, 1, MessengerFrames.KeyAndBody(bob.Key, MessageEnvelope.Seal(someoneElse, bob.Key, "forged"u8))));
        var genuine = MessengerFrames.KeyAndBody(bob.Key, MessageEnvelope.Seal(key, bob.Key, "genuine"u8));
        await raw.WritePlainAsync(FrameCodec.Encode((byte)MessengerOpcode.Send, 2, genuine));

        // A replayed envelope (what a malicious relay could do) is dropped by the recipient too.
        await raw.WritePlainAsync(FrameCodec.Encode((byte)MessengerOpcode.Send, 3, genuine));
        await raw.WritePlainAsync(FrameCodec.Encode((byte)MessengerOpcode.Send, 4, MessengerFrames.KeyAndBody(bob.Key, MessageEnvelope.Seal(key, bob.Key, "after"u8))));
        Assert.Equal("genuine", MessengerHarness.Text(await MessengerHarness.ReceiveAsync(bob)));
        Assert.Equal("after", MessengerHarness.Text(await MessengerHarness.ReceiveAsync(bob)));
        Assert.Equal(2, bob.RejectedEnvelopes);
    }

    [Fact]
    public async Task CorruptedRecordAndGarbageBeforeTheHandshake_CloseOnlyThoseConnections()
    {
        await using var h = new MessengerHarness();
        var alice = await h.ConnectAsync();

        await using (var garbage = await RawMessengerPeer.ConnectAsync(h.Server.LocalEndPoint))
        {
            await garbage.WriteRawAsync("GET / HTTP/1.1\r\n\r\n"u8.ToArray());
            Assert.True(await garbage.WaitClosedAsync());
        }

        var key = KeyPair.Generate();
        await using (var forger = await RawMessengerPeer.ConnectAsync(h.Server.LocalEndPoint))
        {
            using var local = Secp256k1Dh.FromKeyPair(key);
            await forger.HandshakeAsync(local, h.Server.Key);
            await forger.HelloAsync(key);
            await forger.WriteRawAsync([0, 40, .. new byte[40]]);
            Assert.True(await forger.WaitClosedAsync());
        }

        await alice.SendAsync(alice.Key, "fine", TestContext.Current.CancellationToken);
        Assert.Equal("fine", MessengerHarness.Text(await MessengerHarness.ReceiveAsync(alice)));
    }

    [Fact]
    public async Task Flood_FromOneClient_IsRateLimited_AndOthersAreUnaffected()
    {
        var options = MessengerServerOptions.Default with { RatePerSecond = 50, RateBurst = 100 };
        await using var h = new MessengerHarness(options);
        var flooder = await h.ConnectAsync();
        var victim = await h.ConnectAsync();
        var carol = await h.ConnectAsync();
        var dave = await h.ConnectAsync();

        var started = DateTime.UtcNow;
        const int FloodSize = 3000;
        for (var i = 0; i < FloodSize; i++)
        {
            await flooder.SendAsync(victim.Key, "spam", TestContext.Current.CancellationToken);
        }

        for (var i = 0; i < 50; i++)
        {
            await carol.SendAsync(dave.Key, $"c{i}", TestContext.Current.CancellationToken);
        }

        for (var i = 0; i < 50; i++)
        {
            Assert.Equal($"c{i}", MessengerHarness.Text(await MessengerHarness.ReceiveAsync(dave)));
        }

        await flooder.PingAsync(TestContext.Current.CancellationToken);
        var elapsed = (DateTime.UtcNow - started).TotalSeconds;
        var drops = 0;
        while (flooder.Drops.TryRead(out var drop))
        {
            Assert.Equal(DropReason.RateLimited, drop.Reason);
            drops++;
        }

        // Every message was either relayed or reported dropped; the relayed ones may still be on their way.
        var delivered = FloodSize - drops;
        for (var i = 0; i < delivered; i++)
        {
            await MessengerHarness.ReceiveAsync(victim);
        }

        await carol.PingAsync(TestContext.Current.CancellationToken);
        Assert.False(carol.Drops.TryRead(out _));
        Assert.True(drops > 0);
        Assert.True(delivered <= options.RateBurst + (options.RatePerSecond * (elapsed + 1)), $"{delivered} delivered in {elapsed:0.0} s");
    }

    [Fact]
    public async Task ConnectionBeyondTheKeysCap_IsRefusedWhileTheHoldersAreAlive()
    {
        // Issue 13.5 allows several connections per key; at the cap (here 1) a newcomer is refused while the holder lives.
        // A generous liveness window: on a loaded machine the live holder must not be mistaken for a dead one.
        await using var h = new MessengerHarness(MessengerServerOptions.Default with { LivenessTimeout = TimeSpan.FromSeconds(20), MaxConnectionsPerKey = 1 });
        var key = KeyPair.Generate();
        var first = await h.ConnectAsync(key);
        var ex = await Assert.ThrowsAsync<MessengerException>(() => h.ConnectAsync(key));
        Assert.Equal(MessengerErrorCode.Conflict, ex.Code);

        // The first registration is untouched.
        await first.SendAsync(first.Key, "me", TestContext.Current.CancellationToken);
        Assert.Equal("me", MessengerHarness.Text(await MessengerHarness.ReceiveAsync(first)));
    }

    [Fact]
    public async Task ConnectionBeyondTheKeysCap_ReplacesAHolderThatFailsTheLivenessCheck()
    {
        await using var h = new MessengerHarness(MessengerServerOptions.Default with { LivenessTimeout = TimeSpan.FromMilliseconds(300), MaxConnectionsPerKey = 1 });
        var key = KeyPair.Generate();

        // A holder that registered and then went silent (it never answers the messenger's ping).
        await using var silent = await RawMessengerPeer.ConnectAsync(h.Server.LocalEndPoint);
        using var local = Secp256k1Dh.FromKeyPair(key);
        await silent.HandshakeAsync(local, h.Server.Key);
        Assert.Equal((byte)MessengerOpcode.Hello | 0x80, await silent.HelloAsync(key));
        Assert.True(h.Server.IsOnline(key.Public));

        var fresh = await h.ConnectAsync(key);
        var alice = await h.ConnectAsync();
        await alice.SendAsync(key.Public, "to the new one", TestContext.Current.CancellationToken);
        Assert.Equal("to the new one", MessengerHarness.Text(await MessengerHarness.ReceiveAsync(fresh)));
        Assert.True(await silent.WaitClosedAsync());
    }
}
