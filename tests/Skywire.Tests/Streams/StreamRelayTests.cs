using System.Security.Cryptography;
using Skywire.Core.Streams;
using Skywire.TestKit.Streams;

namespace Skywire.Tests.Streams;

/// <summary>
/// The one relay (<see cref="StreamRelay"/>): bytes both ways, a clean end becomes a half-close, a failure on either
/// side (or the cancellation) aborts both, and an end of stream reaches a side that finished first only once its own
/// writes were acknowledged.
/// </summary>
public class StreamRelayTests
{
    private static readonly TimeSpan Limit = TimeSpan.FromSeconds(20);

    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    private static async Task<byte[]> ReadToEndAsync(Stream stream)
    {
        var output = new MemoryStream();
        await stream.CopyToAsync(output).WaitAsync(Limit, Ct);
        return output.ToArray();
    }

    /// <summary>left.A is one app, right.B the other; the relay joins left.B and right.A.</summary>
    private static (DuplexStreamPair Left, DuplexStreamPair Right) Pairs() => (new DuplexStreamPair(), new DuplexStreamPair());

    [Fact]
    public async Task BothDirections_ByteExact_HalfCloseBecomesHalfClose_ThenBothClosedGracefully()
    {
        var (left, right) = Pairs();
        var relay = StreamRelay.RunAsync(left.B, right.A, Ct);

        var up = RandomNumberGenerator.GetBytes(300_000);
        var down = RandomNumberGenerator.GetBytes(1_000_000);
        var sendUp = Task.Run(async () =>
        {
            await left.A.WriteAsync(up);
            await left.A.CompleteWritesAsync();
        }, Ct);

        // The far side sees the half-close as end of stream, and can still answer afterwards.
        Assert.Equal(up, await ReadToEndAsync(right.B));
        var receiving = ReadToEndAsync(left.A);
        await right.B.WriteAsync(down, Ct);
        await right.B.CompleteWritesAsync(Ct);
        Assert.Equal(down, await receiving);
        await sendUp;

        var result = await relay.WaitAsync(Limit, Ct);
        Assert.Equal(up.Length, result.BytesAToB);
        Assert.Equal(down.Length, result.BytesBToA);
        Assert.True(result.Clean, result.Failure?.ToString());
        Assert.True(left.B.IsDisposed && right.A.IsDisposed);
        Assert.False(left.B.IsAborted || right.A.IsAborted);
    }

    [Fact]
    public async Task OneSideAborts_TheOtherIsAborted_ItsReaderGetsAnError_NeverACleanEnd()
    {
        var (left, right) = Pairs();
        var relay = StreamRelay.RunAsync(left.B, right.A, Ct);
        await left.A.WriteAsync(new byte[1000], Ct);
        await right.B.ReadExactlyAsync(new byte[1000], Ct).AsTask().WaitAsync(Limit, Ct);
        var pending = right.B.ReadAsync(new byte[100], Ct).AsTask();

        left.A.Abort();

        await Assert.ThrowsAsync<StreamAbortedException>(() => pending.WaitAsync(Limit, Ct));
        var result = await relay.WaitAsync(Limit, Ct);
        Assert.False(result.Clean);
        Assert.IsType<StreamAbortedException>(result.Failure);
        Assert.True(left.B.IsAborted && right.A.IsAborted);
    }

    [Fact]
    public async Task FarSideGoesAway_WhileNearSideSends_BothAborted_SenderSeesAnError()
    {
        var (left, right) = Pairs();
        var relay = StreamRelay.RunAsync(left.B, right.A, Ct);
        await left.A.WriteAsync(new byte[100], Ct);
        await right.B.ReadExactlyAsync(new byte[100], Ct).AsTask().WaitAsync(Limit, Ct);

        right.B.Dispose();
        var sending = Task.Run(async () =>
        {
            while (true)
            {
                await left.A.WriteAsync(new byte[4096]);
            }
        }, Ct);

        var result = await relay.WaitAsync(Limit, Ct);
        Assert.False(result.Clean);
        await Assert.ThrowsAsync<StreamAbortedException>(() => sending.WaitAsync(Limit, Ct));
        Assert.True(left.B.IsAborted && right.A.IsAborted);
    }

    [Fact]
    public async Task Cancelled_AbortsBothSides()
    {
        var (left, right) = Pairs();
        using var cts = new CancellationTokenSource();
        var relay = StreamRelay.RunAsync(left.B, right.A, cts.Token);
        await cts.CancelAsync();
        var result = await relay.WaitAsync(Limit, Ct);
        Assert.False(result.Clean);
        Assert.IsAssignableFrom<OperationCanceledException>(result.Failure);
        await Assert.ThrowsAsync<StreamAbortedException>(() => left.A.ReadAsync(new byte[1], Ct).AsTask());
        await Assert.ThrowsAsync<StreamAbortedException>(() => right.B.ReadAsync(new byte[1], Ct).AsTask());
    }

    [Fact]
    public async Task SideThatFinishedFirst_GetsTheEndOfStream_OnlyOnceItsWritesAreAcknowledged()
    {
        var (left, right) = Pairs();
        var acknowledged = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        right.A.Acknowledgement = acknowledged.Task; // what left.A sends is acknowledged by the far end only when we say
        var relay = StreamRelay.RunAsync(left.B, right.A, Ct);

        await left.A.WriteAsync("request"u8.ToArray(), Ct);
        await left.A.CompleteWritesAsync(Ct);
        Assert.Equal("request"u8.ToArray(), await ReadToEndAsync(right.B));
        await right.B.WriteAsync("answer"u8.ToArray(), Ct);
        await right.B.CompleteWritesAsync(Ct);

        var answer = new byte[6];
        await left.A.ReadExactlyAsync(answer, Ct).AsTask().WaitAsync(Limit, Ct);
        Assert.Equal("answer"u8.ToArray(), answer);
        var end = left.A.ReadAsync(new byte[1], Ct).AsTask();
        await right.A.AcknowledgementAwaited.WaitAsync(Limit, Ct); // the relay holds the end of stream until then
        Assert.False(end.IsCompleted, "the end of stream arrived before the far end acknowledged the request");

        acknowledged.SetResult();
        Assert.Equal(0, await end.WaitAsync(Limit, Ct));
        Assert.True((await relay.WaitAsync(Limit, Ct)).Clean);
    }

    [Fact]
    public async Task SideThatFinishedFirst_WritesNeverAcknowledged_GetsAnError_NotTheEndOfStream()
    {
        var (left, right) = Pairs();
        var acknowledged = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        right.A.Acknowledgement = acknowledged.Task;
        var relay = StreamRelay.RunAsync(left.B, right.A, Ct);
        await left.A.CompleteWritesAsync(Ct);
        Assert.Empty(await ReadToEndAsync(right.B));
        await right.B.CompleteWritesAsync(Ct);

        // The session under the far stream dies before it acknowledged.
        acknowledged.SetException(new StreamAbortedException("session timed out"));

        await Assert.ThrowsAsync<StreamAbortedException>(async () => await left.A.ReadAsync(new byte[1], Ct).AsTask().WaitAsync(Limit, Ct));
        Assert.False((await relay.WaitAsync(Limit, Ct)).Clean);
    }

    [Fact]
    public async Task BothDone_LastWritesNeverAcknowledged_AbortedAfterTheLinger()
    {
        var (left, right) = Pairs();
        right.A.Acknowledgement = new TaskCompletionSource().Task; // never
        var relay = StreamRelay.RunAsync(left.B, right.A, TimeSpan.FromMilliseconds(200), Ct);

        // right.B finishes first, so left.A's end of stream does not wait; left.A's writes are then never acknowledged.
        await right.B.CompleteWritesAsync(Ct);
        Assert.Empty(await ReadToEndAsync(left.A));
        await left.A.CompleteWritesAsync(Ct);

        var result = await relay.WaitAsync(Limit, Ct);
        Assert.IsAssignableFrom<OperationCanceledException>(result.Failure);
        Assert.True(left.B.IsAborted && right.A.IsAborted);
    }
}
