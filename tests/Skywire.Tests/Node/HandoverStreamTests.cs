using System.Buffers.Binary;
using System.Text;
using Skywire.Core.Node;
using Skywire.Core.Streams;
using Skywire.TestKit.Streams;

namespace Skywire.Tests.Node;

/// <summary>
/// The move of a relayed stream to a direct one (<see cref="HandoverStream"/>), on in-memory stream pairs standing in
/// for the messenger's relay and the direct mux stream: every byte arrives once and in order, each direction switches
/// at its own byte count, and a relay that lost bytes never reads as a clean end.
/// </summary>
public sealed class HandoverStreamTests
{
    private const string Token = "00112233445566778899aabbccddeeff";

    private sealed class Pair
    {
        public DuplexStreamPair Relay { get; } = new();
        public DuplexStreamPair Direct { get; } = new();
        public HandoverStream Dialler { get; }
        public HandoverStream Acceptor { get; }

        public Pair()
        {
            Dialler = new HandoverStream(Relay.A, Token, "app", isDialler: true);
            Acceptor = new HandoverStream(Relay.B, Token, "app", isDialler: false);
        }

        public Task<bool> HandOverAsync() => Dialler.HandOverAsync((sent, _) =>
        {
            Assert.True(Acceptor.AcceptHandover(Direct.B, sent));
            return Task.FromResult<DuplexStream>(Direct.A);
        }, CancellationToken.None);
    }

    [Fact]
    public async Task BothDirections_MoveAtTheirOwnCount_AndReadInOrder()
    {
        var ct = TestContext.Current.CancellationToken;
        var p = new Pair();
        await p.Dialler.WriteAsync("hello "u8.ToArray(), ct);
        await p.Acceptor.WriteAsync("world, "u8.ToArray(), ct);

        Assert.True(await p.HandOverAsync());
        await p.Dialler.WriteAsync("after"u8.ToArray(), ct);
        await p.Dialler.CompleteWritesAsync(ct);
        await WhenMoved(p.Acceptor);
        await p.Acceptor.WriteAsync("later"u8.ToArray(), ct);
        await p.Acceptor.CompleteWritesAsync(ct);

        Assert.Equal("hello after", await ReadAllAsync(p.Acceptor, ct));
        Assert.Equal("world, later", await ReadAllAsync(p.Dialler, ct));

        // Both of the relay's directions ended, so it is closed; the later bytes went the direct way.
        Assert.True(p.Relay.A.IsDisposed);
        Assert.True(p.Dialler.IsMoved && p.Acceptor.IsMoved);
    }

    [Fact]
    public async Task AWriterThatHadFinishedOnTheRelay_StillEndsCleanlyAfterTheMove()
    {
        var ct = TestContext.Current.CancellationToken;
        var p = new Pair();
        await p.Acceptor.WriteAsync("done"u8.ToArray(), ct);
        await p.Acceptor.CompleteWritesAsync(ct);

        Assert.True(await p.HandOverAsync());
        await p.Dialler.WriteAsync("x"u8.ToArray(), ct);
        await p.Dialler.CompleteWritesAsync(ct);

        Assert.Equal("done", await ReadAllAsync(p.Dialler, ct));
        Assert.Equal("x", await ReadAllAsync(p.Acceptor, ct));
    }

    [Fact]
    public async Task WithoutAHandover_TheRelaysEndIsTheEnd()
    {
        var ct = TestContext.Current.CancellationToken;
        var p = new Pair();
        await p.Dialler.WriteAsync("abc"u8.ToArray(), ct);
        await p.Dialler.CompleteWritesAsync(ct);
        await p.Acceptor.CompleteWritesAsync(ct);

        Assert.Equal("abc", await ReadAllAsync(p.Acceptor, ct));
        Assert.Equal("", await ReadAllAsync(p.Dialler, ct));
    }

    [Fact]
    public async Task ARefusedHandover_LeavesTheStreamOnTheRelay()
    {
        var ct = TestContext.Current.CancellationToken;
        var p = new Pair();
        Assert.False(await p.Dialler.HandOverAsync((_, _) => throw new IOException("refused"), ct));
        Assert.False(p.Dialler.IsMoved);

        await p.Dialler.WriteAsync("still relayed"u8.ToArray(), ct);
        await p.Dialler.CompleteWritesAsync(ct);
        await p.Acceptor.CompleteWritesAsync(ct);
        Assert.Equal("still relayed", await ReadAllAsync(p.Acceptor, ct));
        Assert.Equal("", await ReadAllAsync(p.Dialler, ct));
    }

    /// <summary>
    /// A write cancelled (the writer gave up part way), then a dispose (having tried to finish its writes, or not): the
    /// relay is aborted, not finished.
    /// </summary>
    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task AWriteCancelled_ThenDisposed_AbortsTheRelay_NotACleanEnd(bool triesToFinishFirst)
    {
        var ct = TestContext.Current.CancellationToken;
        var p = new Pair();
        await p.Dialler.WriteAsync("part"u8.ToArray(), ct);
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => p.Dialler.WriteAsync("rest"u8.ToArray(), new CancellationToken(canceled: true)).AsTask());
        if (triesToFinishFirst)
        {
            await Assert.ThrowsAsync<StreamAbortedException>(() => p.Dialler.CompleteWritesAsync(ct).AsTask());
        }

        await p.Dialler.DisposeAsync();

        Assert.True(p.Relay.A.IsAborted);
        await Assert.ThrowsAsync<StreamAbortedException>(() => ReadAllAsync(p.Acceptor, ct));
    }

    [Fact]
    public async Task ARelayThatEndsBeforeTheAnnouncedCount_IsAnAbortNotACleanEnd()
    {
        var ct = TestContext.Current.CancellationToken;
        var p = new Pair();

        // The dialler claims 10 bytes on the relay; only 4 arrive before the relay's end.
        await p.Relay.A.WriteAsync("four"u8.ToArray(), ct);
        await p.Relay.A.CompleteWritesAsync(ct);
        Assert.True(p.Acceptor.AcceptHandover(p.Direct.B, 10));

        var buffer = new byte[64];
        var n = await p.Acceptor.ReadAsync(buffer, ct);
        Assert.Equal(4, n);
        await Assert.ThrowsAsync<StreamAbortedException>(() => p.Acceptor.ReadAsync(buffer, ct).AsTask());
        Assert.True(p.Direct.B.IsAborted);
    }

    [Fact]
    public async Task AnAcceptorCountThatDoesNotMatchTheRelay_IsAnAbortNotACleanEnd()
    {
        var ct = TestContext.Current.CancellationToken;
        var p = new Pair();
        var fakeCount = new byte[8];
        BinaryPrimitives.WriteInt64BigEndian(fakeCount, 99);
        Assert.True(await p.Dialler.HandOverAsync(async (_, token) =>
        {
            await p.Direct.B.WriteAsync(fakeCount, token);
            return p.Direct.A;
        }, ct));

        await p.Relay.B.WriteAsync("abc"u8.ToArray(), ct);
        await p.Relay.B.CompleteWritesAsync(ct);
        var buffer = new byte[64];
        var n = await p.Dialler.ReadAsync(buffer, ct);
        Assert.Equal(3, n);
        await Assert.ThrowsAsync<StreamAbortedException>(() => p.Dialler.ReadAsync(buffer, ct).AsTask());
    }

    [Fact]
    public async Task ASecondHandoverForTheSameStream_IsRefused()
    {
        var p = new Pair();
        Assert.True(await p.HandOverAsync());
        Assert.False(p.Acceptor.AcceptHandover(new DuplexStreamPair().B, 0));
        Assert.False(await p.Dialler.HandOverAsync((_, _) => throw new InvalidOperationException("not called"), TestContext.Current.CancellationToken));
    }

    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    [InlineData(3)]
    [InlineData(4)]
    [InlineData(5)]
    public async Task ConcurrentWritesAndReads_BothWays_WithTheMoveAtARandomPoint_AreByteExact(int seed)
    {
        var ct = TestContext.Current.CancellationToken;
        var p = new Pair();
        var rng = new Random(seed);
        var moveAfter = rng.Next(0, 200_000);
        var bytesWritten = 0L;
        var reachedMovePoint = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var handoverEntered = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);

        byte[] Pattern(int s, int length)
        {
            var data = new byte[length];
            new Random(s).NextBytes(data);
            return data;
        }

        async Task WriteAsync(DuplexStream stream, byte[] data, int chunkSeed, bool signal)
        {
            var chunks = new Random(chunkSeed);
            var offset = 0;
            while (offset < data.Length)
            {
                var n = Math.Min(chunks.Next(1, 20_000), data.Length - offset);
                await stream.WriteAsync(data.AsMemory(offset, n), ct);
                offset += n;
                if (signal && Interlocked.Add(ref bytesWritten, n) >= moveAfter && reachedMovePoint.TrySetResult())
                {
                    // The next write races the handover for the write lock (the dialler must not finish before it).
                    await handoverEntered.Task;
                }
            }

            reachedMovePoint.TrySetResult();
            await stream.CompleteWritesAsync(ct);
        }

        async Task<byte[]> ReadAsync(DuplexStream stream)
        {
            using var received = new MemoryStream();
            var buffer = new byte[rng.Next(1, 8192)];
            int n;
            while ((n = await stream.ReadAsync(buffer, ct)) > 0)
            {
                received.Write(buffer, 0, n);
            }

            return received.ToArray();
        }

        var toAcceptor = Pattern(seed * 2, 400_000);
        var toDialler = Pattern((seed * 2) + 1, 300_000);
        var readAtAcceptor = Task.Run(() => ReadAsync(p.Acceptor), ct);
        var readAtDialler = Task.Run(() => ReadAsync(p.Dialler), ct);
        var writes = Task.WhenAll(
            Task.Run(() => WriteAsync(p.Dialler, toAcceptor, seed, signal: true), ct),
            Task.Run(() => WriteAsync(p.Acceptor, toDialler, seed + 100, signal: false), ct));
        await reachedMovePoint.Task.WaitAsync(ct);
        Assert.True(await p.Dialler.HandOverAsync((sent, _) =>
        {
            handoverEntered.TrySetResult();
            Assert.True(p.Acceptor.AcceptHandover(p.Direct.B, sent));
            return Task.FromResult<DuplexStream>(p.Direct.A);
        }, ct));
        await writes.WaitAsync(TimeSpan.FromSeconds(30), ct);

        Assert.Equal(toAcceptor, await readAtAcceptor.WaitAsync(TimeSpan.FromSeconds(30), ct));
        Assert.Equal(toDialler, await readAtDialler.WaitAsync(TimeSpan.FromSeconds(30), ct));
    }

    private static async Task WhenMoved(HandoverStream stream)
    {
        using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(10));
        while (!stream.IsMoved)
        {
            await Task.Delay(5, deadline.Token);
        }
    }

    private static async Task<string> ReadAllAsync(DuplexStream stream, CancellationToken ct)
    {
        using var received = new MemoryStream();
        var buffer = new byte[7];
        int n;
        while ((n = await stream.ReadAsync(buffer, ct)) > 0)
        {
            received.Write(buffer, 0, n);
        }

        return Encoding.ASCII.GetString(received.ToArray());
    }
}
