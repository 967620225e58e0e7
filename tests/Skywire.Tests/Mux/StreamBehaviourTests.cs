using Skywire.Core.Sessions.Mux;
using Skywire.TestKit;
using static Skywire.Tests.Mux.MuxTestUtil;

namespace Skywire.Tests.Mux;

public class StreamBehaviourTests
{
    private static readonly MuxOptions Fast = MuxOptions.Default with
    {
        MinRetransmissionTimeout = TimeSpan.FromMilliseconds(5),
        InitialRetransmissionTimeout = TimeSpan.FromMilliseconds(100),
    };

    private static async Task WaitUntilAsync(Func<bool> condition, CancellationToken ct)
    {
        var deadline = DateTime.UtcNow + TestTimeout;
        while (!condition())
        {
            Assert.True(DateTime.UtcNow < deadline, "condition not reached in time");
            await Task.Delay(10, ct);
        }
    }

    [Fact]
    public async Task ManyConcurrentStreams_EchoExactly()
    {
        var faults = new FaultOptions { DropRate = 0.01, DuplicateRate = 0.01, ReorderRate = 0.02, ReorderWindow = 4, Seed = 5 };
        await using var pair = MuxPair.Create(faults, Fast);
        var ct = TestContext.Current.CancellationToken;
        const int streams = 64;
        const int size = 200_000;
        var server = Task.Run(async () =>
        {
            var handlers = new List<Task>();
            for (var i = 0; i < streams; i++)
            {
                var s = await pair.B.AcceptStreamAsync(ct);
                handlers.Add(Task.Run(async () =>
                {
                    await s.CopyToAsync(s, ct);
                    await s.CompleteWritesAsync(ct);
                    await s.DisposeAsync();
                }, ct));
            }
            await Task.WhenAll(handlers);
        }, ct);
        var clients = Enumerable.Range(0, streams).Select(i => Task.Run(async () =>
        {
            await using var s = await pair.A.OpenStreamAsync(BitConverter.GetBytes(i), ct);
            var read = ReadPatternAsync(s, seed: i);
            var sent = await WritePatternAsync(s, size, seed: i, chunk: 7000);
            var (count, hash) = await read;
            Assert.Equal(size, count);
            Assert.Equal(sent, hash);
        }, ct)).ToArray();
        await Task.WhenAll(clients).WaitAsync(TestTimeout, ct);
        await server.WaitAsync(TestTimeout, ct);
        await WaitUntilAsync(() => pair.A.Statistics.OpenStreams == 0 && pair.B.Statistics.OpenStreams == 0, ct);
    }

    [Fact]
    public async Task HalfClose_EachDirectionFinishesIndependently()
    {
        await using var pair = MuxPair.Create(options: Fast);
        var ct = TestContext.Current.CancellationToken;
        var (client, server) = await OpenPairAsync(pair, "half", ct);

        // Client finishes first; the server still writes afterwards.
        await client.WriteAsync("question"u8.ToArray(), ct);
        await client.CompleteWritesAsync(ct);
        await Assert.ThrowsAsync<InvalidOperationException>(async () => await client.WriteAsync(new byte[1], ct));
        Assert.Equal("question"u8.ToArray(), await ReadAllAsync(server).WaitAsync(TestTimeout, ct));
        Assert.Equal(0, await server.ReadAtLeastAsync(new byte[10], 1, throwOnEndOfStream: false, ct)); // FIN stays visible
        await server.WriteAsync("answer 1"u8.ToArray(), ct);
        await server.WriteAsync(", answer 2"u8.ToArray(), ct);
        await server.CompleteWritesAsync(ct);
        Assert.Equal("answer 1, answer 2"u8.ToArray(), await ReadAllAsync(client).WaitAsync(TestTimeout, ct));
        await WaitUntilAsync(() => pair.A.Statistics.OpenStreams == 0 && pair.B.Statistics.OpenStreams == 0, ct);

        // And the other way round: the acceptor finishes first.
        var (c2, s2) = await OpenPairAsync(pair, "half2", ct);
        await s2.WriteAsync("server first"u8.ToArray(), ct);
        await s2.CompleteWritesAsync(ct);
        Assert.Equal("server first"u8.ToArray(), await ReadAllAsync(c2).WaitAsync(TestTimeout, ct));
        await c2.WriteAsync("client later"u8.ToArray(), ct);
        await c2.CompleteWritesAsync(ct);
        Assert.Equal("client later"u8.ToArray(), await ReadAllAsync(s2).WaitAsync(TestTimeout, ct));
    }

    [Fact]
    public async Task Refuse_OpenerGetsRefusedWithCode()
    {
        await using var pair = MuxPair.Create(options: Fast);
        var ct = TestContext.Current.CancellationToken;
        var open = pair.A.OpenStreamAsync("no-such-app"u8.ToArray(), ct).AsTask();
        var incoming = await pair.B.AcceptStreamAsync(ct).AsTask().WaitAsync(TestTimeout, ct);
        Assert.True(incoming.Refuse(42));
        Assert.False(incoming.Refuse(43));
        var ex = await Assert.ThrowsAsync<MuxException>(() => open.WaitAsync(TestTimeout, ct));
        Assert.Equal(MuxError.Refused, ex.Error);
        Assert.Equal(42, ex.ApplicationCode);
        await Assert.ThrowsAsync<MuxException>(async () => await incoming.ReadAtLeastAsync(new byte[1], 1, false, ct));
    }

    [Fact]
    public async Task AcceptBacklogFull_RefusesAsBusy()
    {
        await using var pair = MuxPair.Create(options: Fast with { AcceptBacklog = 2 });
        var ct = TestContext.Current.CancellationToken;
        var opens = Enumerable.Range(0, 3).Select(_ => pair.A.OpenStreamAsync("x"u8.ToArray(), ct).AsTask()).ToArray();
        var refused = await Assert.ThrowsAsync<MuxException>(() => Task.WhenAny(opens).Unwrap().WaitAsync(TestTimeout, ct));
        Assert.Equal(MuxError.Refused, refused.Error);
        Assert.Equal(StreamMultiplexer.RefusedBusyCode, refused.ApplicationCode);
    }

    /// <summary>
    /// Issue 12.1: a reset that arrives after the FIN but before the reader caught up discards the unread bytes; the
    /// reader must then get an error, never a clean end of stream after a truncated read.
    /// </summary>
    [Theory]
    [InlineData(0)]
    [InlineData(1000)]
    public async Task ResetAfterFin_BeforeTheReaderCaughtUp_ReadFails_NeverACleanEnd(int readFirst)
    {
        await using var pair = MuxPair.Create(options: Fast);
        var ct = TestContext.Current.CancellationToken;
        var (client, server) = await OpenPairAsync(pair, "reset-after-fin", ct);
        await client.WriteAsync(new byte[100_000], ct);
        await client.CompleteWritesAsync(ct);
        await WaitUntilAsync(() => server.FinOffset == 100_000, ct);
        if (readFirst > 0)
        {
            await server.ReadExactlyAsync(new byte[readFirst], ct);
        }

        client.Abort(9);
        await WaitUntilAsync(() => server.Error is not null, ct);
        var error = await Assert.ThrowsAsync<MuxException>(() => ReadAllAsync(server).WaitAsync(TestTimeout, ct));
        Assert.Equal(MuxError.ResetByPeer, error.Error);
    }

    /// <summary>A reset after the reader consumed everything up to the FIN changes nothing: the stream was complete.</summary>
    [Fact]
    public async Task ResetAfterTheReaderReachedFin_StreamStaysComplete()
    {
        await using var pair = MuxPair.Create(options: Fast);
        var ct = TestContext.Current.CancellationToken;
        var (client, server) = await OpenPairAsync(pair, "reset-after-eof", ct);
        await client.WriteAsync(new byte[5000], ct);
        await client.CompleteWritesAsync(ct);
        Assert.Equal(5000, (await ReadAllAsync(server).WaitAsync(TestTimeout, ct)).Length);
        client.Abort(9);
        await WaitUntilAsync(() => server.Error is not null, ct);
        Assert.Equal(0, await server.ReadAsync(new byte[10], ct));
    }

    [Fact]
    public async Task Abort_PeerSeesResetWithCode()
    {
        await using var pair = MuxPair.Create(options: Fast);
        var ct = TestContext.Current.CancellationToken;
        var (client, server) = await OpenPairAsync(pair, "abort", ct);
        var pendingRead = server.ReadAsync(new byte[10], ct).AsTask();
        client.Abort(7);
        var ex = await Assert.ThrowsAsync<MuxException>(() => pendingRead.WaitAsync(TestTimeout, ct));
        Assert.Equal(MuxError.ResetByPeer, ex.Error);
        Assert.Equal(7, ex.ApplicationCode);
        var local = await Assert.ThrowsAsync<MuxException>(async () => await client.WriteAsync(new byte[1], ct));
        Assert.Equal(MuxError.Aborted, local.Error);
        await Assert.ThrowsAsync<MuxException>(async () => await server.WriteAsync(new byte[1], ct));
    }

    [Fact]
    public async Task Dispose_SendsFinAfterBufferedData()
    {
        await using var pair = MuxPair.Create(options: Fast);
        var ct = TestContext.Current.CancellationToken;
        var (client, server) = await OpenPairAsync(pair, "dispose", ct);
        var read = ReadPatternAsync(server, seed: 3);
        await WritePatternAsync(client, 3_000_000, seed: 3, complete: false);
        await client.DisposeAsync(); // FIN after the 3 MB, not a reset
        var (count, _) = await read.WaitAsync(TestTimeout, ct);
        Assert.Equal(3_000_000, count);
        await Assert.ThrowsAsync<ObjectDisposedException>(async () => await client.ReadAtLeastAsync(new byte[1], 1, false, ct));
        await server.DisposeAsync();
        await WaitUntilAsync(() => pair.A.Statistics.OpenStreams == 0 && pair.B.Statistics.OpenStreams == 0, ct);
    }

    [Fact]
    public async Task Dispose_PeerNeverFinishes_ResetAfterLinger()
    {
        await using var pair = MuxPair.Create(options: Fast with { LingerTimeout = TimeSpan.FromMilliseconds(200) });
        var ct = TestContext.Current.CancellationToken;
        var (client, server) = await OpenPairAsync(pair, "linger", ct);
        await client.DisposeAsync();
        Assert.Equal(0, await server.ReadAtLeastAsync(new byte[1], 1, throwOnEndOfStream: false, ct).AsTask().WaitAsync(TestTimeout, ct)); // the FIN
        // The server keeps its direction open; the client resets it after the linger timeout.
        var ex = await Assert.ThrowsAsync<MuxException>(async () =>
        {
            while (true)
            {
                await server.WriteAsync(new byte[1000], ct);
                await Task.Delay(5, ct);
            }
        }).WaitAsync(TestTimeout, ct);
        Assert.Equal(MuxError.ResetByPeer, ex.Error);
        Assert.Equal(StreamMultiplexer.LingerTimeoutCode, ex.ApplicationCode);
    }

    [Fact]
    public async Task PeerDies_StreamsFailLoudly_NeverWrongBytes()
    {
        var options = Fast with { IdleTimeout = TimeSpan.FromSeconds(1), KeepAliveInterval = TimeSpan.FromMilliseconds(200) };
        await using var pair = MuxPair.Create(options: options);
        var ct = TestContext.Current.CancellationToken;
        var (client, server) = await OpenPairAsync(pair, "dies", ct);
        var read = ReadPatternAsync(server, seed: 11);
        var write = WritePatternAsync(client, 1L << 40, seed: 11); // "forever"
        await WaitUntilAsync(() => pair.B.Statistics.BytesReceived > 1_000_000, ct);
        pair.EndA.Outbound.Blackhole = true;
        pair.EndB.Outbound.Blackhole = true;
        var readError = await Assert.ThrowsAsync<MuxException>(() => read.WaitAsync(TestTimeout, ct)); // not InvalidDataException
        var writeError = await Assert.ThrowsAsync<MuxException>(() => write.WaitAsync(TestTimeout, ct));
        Assert.Equal(MuxError.Timeout, readError.Error);
        Assert.Equal(MuxError.Timeout, writeError.Error);
        Assert.Equal(MuxError.Timeout, pair.A.CloseReason);
        await Assert.ThrowsAsync<MuxException>(async () => await pair.A.OpenStreamAsync(default, ct));
        await Assert.ThrowsAsync<MuxException>(async () => await pair.B.AcceptStreamAsync(ct));
    }

    [Fact]
    public async Task PeerCloses_PendingOperationsFail_ReceivedDataStaysReadable()
    {
        await using var pair = MuxPair.Create(options: Fast);
        var ct = TestContext.Current.CancellationToken;
        var (c1, s1) = await OpenPairAsync(pair, "complete", ct);
        var (c2, s2) = await OpenPairAsync(pair, "pending", ct);
        await c1.WriteAsync("all of it"u8.ToArray(), ct);
        await c1.CompleteWritesAsync(ct);
        await WaitUntilAsync(() => s1.FinOffset >= 0, ct);
        var pending = s2.ReadAsync(new byte[10], ct).AsTask();
        await pair.A.DisposeAsync();
        var ex = await Assert.ThrowsAsync<MuxException>(() => pending.WaitAsync(TestTimeout, ct));
        Assert.Equal(MuxError.ClosedByPeer, ex.Error);
        await pair.B.Completion.WaitAsync(TestTimeout, ct);
        Assert.Equal("all of it"u8.ToArray(), await ReadAllAsync(s1)); // accepted data is not lost
        await Assert.ThrowsAsync<MuxException>(async () => await c2.WriteAsync(new byte[1], ct));
    }

    [Fact]
    public async Task SlowReader_WriterWaits_MemoryStaysBounded()
    {
        const int window = 64 * 1024;
        var options = Fast with { StreamReceiveWindow = window, StreamSendBuffer = window, MaxStreamReceiveWindow = window, MaxStreamSendBuffer = window, ConnectionReceiveWindow = 65536 };
        await using var pair = MuxPair.Create(options: options);
        var ct = TestContext.Current.CancellationToken;
        var (client, server) = await OpenPairAsync(pair, "slow", ct);
        const long total = 4 << 20;
        var write = WritePatternAsync(client, total, seed: 9);
        // Nobody reads: the writer fills the peer's window and its own send buffer, then waits.
        await WaitUntilAsync(() => server.RecvHighest == window && client.WriteOffset - client.SendAcked == window, ct);
        Assert.False(write.IsCompleted);
        Assert.True(server.ReceiveBuffer.AllocatedBytes <= window);
        Assert.True(client.SendBuffer.AllocatedBytes <= window);
        Assert.True(pair.B.Statistics.BadFrames == 0);
        // Read slowly in small pieces; memory never grows past the windows.
        var buffer = new byte[1000];
        long count = 0;
        var expected = new byte[1000];
        while (true)
        {
            var n = await server.ReadAsync(buffer, ct).AsTask().WaitAsync(TestTimeout, ct);
            if (n == 0)
            {
                break;
            }
            Fill(expected.AsSpan(0, n), count, 9);
            Assert.True(buffer.AsSpan(0, n).SequenceEqual(expected.AsSpan(0, n)));
            count += n;
            Assert.True(server.ReceiveBuffer.AllocatedBytes <= window);
            Assert.True(client.WriteOffset - client.SendAcked <= window);
        }
        Assert.Equal(total, count);
        await write;
    }

    [Fact]
    public async Task Datagrams_ArriveUnreliablyButIntact()
    {
        await using var pair = MuxPair.Create(options: Fast);
        var ct = TestContext.Current.CancellationToken;
        for (var i = 0; i < 100; i++)
        {
            Assert.True(pair.A.TrySendDatagram(BitConverter.GetBytes(i)));
        }
        var max = new byte[pair.A.MaxDatagramPayloadSize];
        Assert.True(pair.A.TrySendDatagram(max));
        Assert.False(pair.A.TrySendDatagram(new byte[pair.A.MaxDatagramPayloadSize + 1]));
        for (var i = 0; i < 100; i++)
        {
            var d = await pair.B.Datagrams.ReadAsync(ct).AsTask().WaitAsync(TestTimeout, ct);
            Assert.Equal(i, BitConverter.ToInt32(d.Span)); // no faults: in order
        }
        Assert.Equal(max.Length, (await pair.B.Datagrams.ReadAsync(ct)).Length);
        Assert.Equal(101, pair.B.Statistics.DatagramsReceived);

        // A full queue drops and counts instead of blocking.
        await using var small = MuxPair.Create(options: Fast with { DatagramQueueCapacity = 4 });
        for (var i = 0; i < 10; i++)
        {
            small.A.TrySendDatagram(new byte[10]);
        }
        await WaitUntilAsync(() => small.B.Statistics.DatagramsDropped + small.B.Statistics.DatagramsReceived == 10, ct);
        Assert.Equal(4, small.B.Statistics.DatagramsReceived);
        Assert.Equal(6, small.B.Statistics.DatagramsDropped);
    }

    [Fact]
    public async Task TransportFailure_FailsStreams()
    {
        await using var pair = MuxPair.Create(options: Fast);
        var ct = TestContext.Current.CancellationToken;
        var (client, _) = await OpenPairAsync(pair, "tf", ct);
        pair.EndA.FailSends = true;
        var ex = await Assert.ThrowsAsync<MuxException>(async () =>
        {
            while (true)
            {
                await client.WriteAsync(new byte[10_000], ct);
            }
        }).WaitAsync(TestTimeout, ct);
        Assert.Equal(MuxError.TransportFailed, ex.Error);
    }

    [Fact]
    public async Task Idle_KeepAliveHoldsTheMultiplexerOpen()
    {
        // The idle timeout leaves room for a scheduler stall of a loaded machine; the wait outlasts it by far.
        var options = Fast with { IdleTimeout = TimeSpan.FromMilliseconds(1500), KeepAliveInterval = TimeSpan.FromMilliseconds(100) };
        await using var pair = MuxPair.Create(options: options);
        var ct = TestContext.Current.CancellationToken;
        var pings = pair.A.Statistics.PacketsSent;
        await WaitUntilAsync(() => pair.A.Statistics.PacketsSent >= pings + 25, ct); // > 2.5 s of keepalives
        Assert.Null(pair.A.CloseReason);
        Assert.Null(pair.B.CloseReason);
        var (client, server) = await OpenPairAsync(pair, "still open", ct);
        await client.WriteAsync("x"u8.ToArray(), ct);
        Assert.Equal(1, await server.ReadAtLeastAsync(new byte[1], 1, cancellationToken: ct));
    }

    [Fact]
    public async Task Options_Invalid_Rejected()
    {
        var (a, b) = InMemoryDatagramPipe.CreatePair();
        using var _a = a;
        using var _b = b;
        var ex = Assert.Throws<ArgumentException>(() => new StreamMultiplexer(a, MuxOptions.Default with { StreamReceiveWindow = 10, IdleTimeout = TimeSpan.Zero }));
        Assert.Contains("StreamReceiveWindow", ex.Message);
        Assert.Contains("IdleTimeout", ex.Message);
        await using var mux = new StreamMultiplexer(a);
        await Assert.ThrowsAsync<ArgumentException>(async () => await mux.OpenStreamAsync(new byte[5000], TestContext.Current.CancellationToken));
    }
}

public class ConnectionCreditTests
{
    [Fact]
    public async Task AbortedStreams_DoNotLeakConnectionCredit()
    {
        // A connection window of 64 KiB and 40 streams that each get 32 KiB sent and then reset without being read:
        // without final sizes the window would be gone after two streams.
        var options = MuxOptions.Default with
        {
            StreamReceiveWindow = 32 * 1024,
            ConnectionReceiveWindow = 65536,
            MinRetransmissionTimeout = TimeSpan.FromMilliseconds(5),
        };
        await using var pair = MuxPair.Create(options: options);
        var ct = TestContext.Current.CancellationToken;
        for (var i = 0; i < 40; i++)
        {
            var (client, server) = await OpenPairAsync(pair, "reset-" + i, ct);
            await client.WriteAsync(new byte[32 * 1024], ct);
            var deadline = DateTime.UtcNow + TestTimeout;
            while (server.RecvHighest < 32 * 1024)
            {
                Assert.True(DateTime.UtcNow < deadline);
                await Task.Delay(2, ct);
            }
            if (i % 2 == 0)
            {
                client.Abort(1);
            }
            else
            {
                server.Abort(2);
            }
        }
        var (c, s) = await OpenPairAsync(pair, "last", ct);
        var read = ReadPatternAsync(s, seed: 1);
        await WritePatternAsync(c, 200_000, seed: 1);
        Assert.Equal(200_000, (await read.WaitAsync(TestTimeout, ct)).Count);
    }
}
