using System.Text;
using Skywire.Core.Sessions.Mux;
using Skywire.TestKit;
using static Skywire.Tests.Mux.MuxTestUtil;

namespace Skywire.Tests.Mux;

public class StreamMultiplexerTests
{
    private static readonly MuxOptions FastOptions = MuxOptions.Default with
    {
        MinRetransmissionTimeout = TimeSpan.FromMilliseconds(5),
        InitialRetransmissionTimeout = TimeSpan.FromMilliseconds(100),
    };

    [Fact]
    public async Task OpenStream_DeliversOpenDataAndEchoes()
    {
        await using var pair = MuxPair.Create(options: FastOptions);
        var ct = TestContext.Current.CancellationToken;
        var acceptTask = pair.B.AcceptStreamAsync(ct).AsTask();
        var openTask = pair.A.OpenStreamAsync("echo"u8.ToArray(), ct).AsTask();
        var server = await acceptTask.WaitAsync(TestTimeout, ct);
        Assert.Equal("echo", Encoding.ASCII.GetString(server.OpenData.Span));
        Assert.False(server.IsLocallyOpened);
        var serverTask = Task.Run(async () =>
        {
            await server.CopyToAsync(server, ct);
            await server.CompleteWritesAsync(ct);
        }, ct);
        var client = await openTask.WaitAsync(TestTimeout, ct);
        Assert.True(client.IsLocallyOpened);
        await client.WriteAsync("hello mux"u8.ToArray(), ct);
        await client.CompleteWritesAsync(ct);
        var echoed = await ReadAllAsync(client).WaitAsync(TestTimeout, ct);
        Assert.Equal("hello mux", Encoding.ASCII.GetString(echoed));
        await serverTask.WaitAsync(TestTimeout, ct);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task LargeTransfer_ArrivesByteExact(bool faults)
    {
        var faultOptions = faults
            ? new FaultOptions { DropRate = 0.05, DuplicateRate = 0.02, ReorderRate = 0.05, ReorderWindow = 8, Seed = 1234 }
            : null;
        const long size = 50L << 20;
        await using var pair = MuxPair.Create(faultOptions, FastOptions);
        var ct = TestContext.Current.CancellationToken;
        var (client, server) = await OpenPairAsync(pair, "bulk", ct);
        var readTask = ReadPatternAsync(server, seed: 7);
        var sentHash = await WritePatternAsync(client, size, seed: 7).WaitAsync(TestTimeout, ct);
        var (count, hash) = await readTask.WaitAsync(TestTimeout, ct);
        Assert.Equal(size, count);
        Assert.Equal(sentHash, hash);
        var stats = pair.A.Statistics;
        if (faults)
        {
            Assert.True(stats.PacketsLost > 0, "the faulty pipe should have lost packets");
            Assert.True(pair.B.Statistics.DuplicatePackets > 0);
        }
    }

    /// <summary>
    /// A write cancelled before it started (the app gave up between two writes) and then a dispose: the peer reads an
    /// error, never a clean end after the first write's bytes (disposing used to send FIN).
    /// </summary>
    [Fact]
    public async Task WriteCancelled_ThenDisposed_PeerReadsAnError_NotACleanEnd()
    {
        await using var pair = MuxPair.Create(options: FastOptions);
        var ct = TestContext.Current.CancellationToken;
        var (client, server) = await OpenPairAsync(pair, "cut", ct);
        await client.WriteAsync(new byte[8], ct);
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => client.WriteAsync(new byte[1000], new CancellationToken(canceled: true)).AsTask());

        await client.DisposeAsync();

        // (A reset discards bytes not read yet, so the first 8 may or may not be read before the error.)
        await Assert.ThrowsAsync<MuxException>(() => ReadAllAsync(server).WaitAsync(TestTimeout, ct));
    }

    /// <summary>The same with the write cancelled while it waits for send-buffer space (part of it was buffered).</summary>
    [Fact]
    public async Task WriteCancelledWhileBlocked_ThenDisposed_PeerReadsAnError_NotACleanEnd()
    {
        await using var pair = MuxPair.Create(options: FastOptions);
        var ct = TestContext.Current.CancellationToken;
        var (client, server) = await OpenPairAsync(pair, "cut", ct);
        using var cancel = new CancellationTokenSource();
        var write = client.WriteAsync(new byte[64 * 1024 * 1024], cancel.Token).AsTask(); // more than the send buffer and the peer's window
        Assert.False(write.IsCompleted);
        await cancel.CancelAsync();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => write);

        await client.DisposeAsync();

        await Assert.ThrowsAsync<MuxException>(() => ReadAllAsync(server).WaitAsync(TestTimeout, ct));
    }

    [Fact]
    public async Task WriteCancelled_FinishingWritesThrows_AndResetsTheStream()
    {
        await using var pair = MuxPair.Create(options: FastOptions);
        var ct = TestContext.Current.CancellationToken;
        var (client, server) = await OpenPairAsync(pair, "cut", ct);
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => client.WriteAsync(new byte[1000], new CancellationToken(canceled: true)).AsTask());

        await Assert.ThrowsAsync<MuxException>(() => client.CompleteWritesAsync(ct).AsTask());
        await Assert.ThrowsAsync<MuxException>(() => client.WriteAsync(new byte[1], ct).AsTask());
        await Assert.ThrowsAsync<MuxException>(() => server.ReadAsync(new byte[16], ct).AsTask().WaitAsync(TestTimeout, ct));
    }

    /// <summary>Every write finished: disposing without finishing the writes first still ends the stream cleanly.</summary>
    [Fact]
    public async Task EveryWriteFinished_Disposed_PeerReadsACleanEnd()
    {
        await using var pair = MuxPair.Create(options: FastOptions);
        var ct = TestContext.Current.CancellationToken;
        var (client, server) = await OpenPairAsync(pair, "whole", ct);
        await client.WriteAsync(new byte[8], ct);

        await client.DisposeAsync();

        Assert.Equal(8, (await ReadAllAsync(server).WaitAsync(TestTimeout, ct)).Length);
    }
}

public class MuxFaultProfileTests
{
    [Fact]
    public async Task Transfer_WithDelayJitterLossAndDuplicates_ArrivesByteExact()
    {
        var faults = new FaultOptions
        {
            DropRate = 0.03,
            DuplicateRate = 0.03,
            Delay = TimeSpan.FromMilliseconds(2),
            Jitter = TimeSpan.FromMilliseconds(2), // jitter larger than the spacing reorders too
            Seed = 4321,
        };
        var options = MuxOptions.Default with { MinRetransmissionTimeout = TimeSpan.FromMilliseconds(20) };
        await using var pair = MuxPair.Create(faults, options);
        var ct = TestContext.Current.CancellationToken;
        var (client, server) = await OpenPairAsync(pair, "delayed", ct);
        // Both directions at once.
        var readAtServer = ReadPatternAsync(server, seed: 21);
        var readAtClient = ReadPatternAsync(client, seed: 22);
        var sentByClient = WritePatternAsync(client, 3_000_000, seed: 21);
        var sentByServer = WritePatternAsync(server, 3_000_000, seed: 22);
        Assert.Equal(await sentByClient.WaitAsync(TestTimeout, ct), (await readAtServer.WaitAsync(TestTimeout, ct)).Hash);
        Assert.Equal(await sentByServer.WaitAsync(TestTimeout, ct), (await readAtClient.WaitAsync(TestTimeout, ct)).Hash);
        Assert.True(pair.A.Statistics.PacketsLost > 0);
        Assert.True(pair.A.Statistics.SmoothedRtt >= TimeSpan.FromMilliseconds(3));
    }

    [Fact]
    public void LogEventIds_AreUniqueAndInTheMuxRange()
    {
        var log = typeof(StreamMultiplexer).GetNestedType("Log", System.Reflection.BindingFlags.NonPublic)!;
        var ids = log.GetMethods(System.Reflection.BindingFlags.Static | System.Reflection.BindingFlags.Public)
            .Select(m => m.GetCustomAttributes(typeof(Microsoft.Extensions.Logging.LoggerMessageAttribute), false))
            .Where(a => a.Length == 1)
            .Select(a => ((Microsoft.Extensions.Logging.LoggerMessageAttribute)a[0]).EventId)
            .ToList();
        Assert.NotEmpty(ids);
        Assert.Equal(ids.Count, ids.Distinct().Count());
        Assert.All(ids, id => Assert.InRange(id, 1700, 1799));
    }
}
