using System.Text.Json;
using Skywire.Core.Channels;
using Skywire.Protocol.Control;
using Skywire.Protocol.Framing;
using Skywire.TestKit.Logging;
using Skywire.TestKit.Streams;

namespace Skywire.Tests.Control;

public sealed class FrameConnectionTests : IDisposable
{
    /// <summary>The connections' log: an Error log a test did not declare fails it at disposal.</summary>
    private TestLog Log { get; } = new(TestContext.Current.TestOutputHelper is { } output ? output.WriteLine : null);

    public void Dispose() => Log.Dispose();

    private static readonly TimeSpan Limit = TimeSpan.FromSeconds(20);

    /// <summary>An in-memory connected pair (the TestKit's; a dispose is a FIN the peer reads as the end).</summary>
    internal static (Stream A, Stream B) Pipes()
    {
        var pair = new DuplexStreamPair();
        return (pair.A, pair.B);
    }

    private static FrameRequestHandler Tracker => (op, payload, ct) =>
    {
        if (op != (byte)ControlOpcode.AppList)
        {
            throw new ControlException(ControlErrorCode.BadRequest, "unknown opcode");
        }

        var q = JsonSerializer.Deserialize(payload.Span, ControlJsonContext.Default.AppListMessage)!;
        if (q.By == "boom")
        {
            throw new ControlException(ControlErrorCode.NotFound, "nothing named boom");
        }

        var result = new AppListResultMessage { Apps = [new AppInfo { Name = q.Value ?? "all", Type = "t", Node = "n" }] };
        return ValueTask.FromResult(JsonSerializer.SerializeToUtf8Bytes(result, ControlJsonContext.Default.AppListResultMessage));
    };

    [Fact]
    public async Task Request_ConcurrentCalls_EachGetsItsOwnAnswer()
    {
        var (a, b) = Pipes();
        await using var server = new FrameConnection(a, "server", Log.CreateLogger("server"));
        await using var client = new FrameConnection(b, "client", Log.CreateLogger("client"));
        server.Start(Tracker);
        client.Start((_, _, _) => throw new ControlException(ControlErrorCode.BadRequest, "no"));

        var calls = Enumerable.Range(0, 50).Select(i => client.RequestAsync((byte)ControlOpcode.AppList, new AppListMessage { By = "name", Value = "app" + i },
            ControlJsonContext.Default.AppListMessage, ControlJsonContext.Default.AppListResultMessage)).ToList();
        var results = await Task.WhenAll(calls).WaitAsync(Limit);
        for (var i = 0; i < 50; i++)
        {
            Assert.Equal("app" + i, results[i].Apps.Single().Name);
        }
    }

    [Fact]
    public async Task Request_HandlerFails_CallerGetsCodeAndConnectionStaysOpen()
    {
        var (a, b) = Pipes();
        await using var server = new FrameConnection(a, "server", Log.CreateLogger("server"));
        await using var client = new FrameConnection(b, "client", Log.CreateLogger("client"));
        server.Start(Tracker);
        client.Start((_, _, _) => throw new ControlException(ControlErrorCode.BadRequest, "no"));

        var ex = await Assert.ThrowsAsync<ControlException>(() => client.RequestAsync((byte)ControlOpcode.AppList, new AppListMessage { By = "boom" },
            ControlJsonContext.Default.AppListMessage, ControlJsonContext.Default.AppListResultMessage)).WaitAsync(Limit);
        Assert.Equal(ControlErrorCode.NotFound, ex.Code);

        var ok = await client.RequestAsync((byte)ControlOpcode.AppList, new AppListMessage { By = "name", Value = "still" },
            ControlJsonContext.Default.AppListMessage, ControlJsonContext.Default.AppListResultMessage).WaitAsync(Limit);
        Assert.Equal("still", ok.Apps[0].Name);
    }

    [Fact]
    public async Task Request_AnswerOverTheFrameLimit_CallerGetsAnErrorAtOnce_AndItIsLogged()
    {
        // 11.5 leftover: an answer too big for a frame was dropped without a word; the caller waited for its timeout.
        Log.ExpectError(2004);
        var (a, b) = Pipes();
        await using var server = new FrameConnection(a, "server", Log.CreateLogger("server"), maxFrameSize: 1024);
        await using var client = new FrameConnection(b, "client", Log.CreateLogger("client")) { RequestTimeout = TimeSpan.FromMinutes(10) };
        server.Start((op, payload, ct) => op == (byte)ControlOpcode.AppList && JsonSerializer.Deserialize(payload.Span, ControlJsonContext.Default.AppListMessage)!.By == "big"
            ? ValueTask.FromResult(JsonSerializer.SerializeToUtf8Bytes(new AppListResultMessage { Apps = [.. Enumerable.Range(0, 100).Select(i => new AppInfo { Name = "app" + i, Type = "t", Node = "n" })] },
                ControlJsonContext.Default.AppListResultMessage))
            : Tracker(op, payload, ct));
        client.Start(Tracker);

        var ex = await Assert.ThrowsAsync<ControlException>(() => client.RequestAsync((byte)ControlOpcode.AppList, new AppListMessage { By = "big" },
            ControlJsonContext.Default.AppListMessage, ControlJsonContext.Default.AppListResultMessage)).WaitAsync(Limit);
        Assert.Equal(ControlErrorCode.Internal, ex.Code);
        Assert.Contains("frame limit", ex.Message, StringComparison.Ordinal);
        Assert.Contains(Log.Entries, e => e.EventId.Id == 2004);

        var ok = await client.RequestAsync((byte)ControlOpcode.AppList, new AppListMessage { By = "name", Value = "still" },
            ControlJsonContext.Default.AppListMessage, ControlJsonContext.Default.AppListResultMessage).WaitAsync(Limit);
        Assert.Equal("still", ok.Apps[0].Name);
    }

    [Fact]
    public async Task MalformedJsonPayload_ClosesConnectionAsProtocolViolation()
    {
        var (a, b) = Pipes();
        await using var server = new FrameConnection(a, "server", Log.CreateLogger("server"));
        server.Start(Tracker);
        await b.WriteAsync(FrameCodec.Encode((byte)ControlOpcode.AppList, 1, "{not json"u8));
        await b.FlushAsync();
        Assert.Equal(ConnectionCloseReason.ProtocolViolation, await server.Closed.WaitAsync(Limit));
    }

    [Fact]
    public async Task OversizedFrame_ClosesConnectionAsProtocolViolation()
    {
        var (a, b) = Pipes();
        await using var server = new FrameConnection(a, "server", Log.CreateLogger("server"), maxFrameSize: 1024);
        server.Start(Tracker);
        var header = new byte[FrameCodec.HeaderSize];
        FrameCodec.WriteHeader(header, (byte)ControlOpcode.AppList, 1, 5000);
        await b.WriteAsync(header);
        await b.FlushAsync();
        Assert.Equal(ConnectionCloseReason.ProtocolViolation, await server.Closed.WaitAsync(Limit));
    }

    [Fact]
    public async Task StreamEndsMidFrame_IsProtocolViolation_AndPendingRequestsFail()
    {
        var (a, b) = Pipes();
        await using var client = new FrameConnection(a, "client", Log.CreateLogger("client"));
        client.Start(Tracker);
        var pending = client.RequestAsync((byte)ControlOpcode.AppList, new AppListMessage(), ControlJsonContext.Default.AppListMessage, ControlJsonContext.Default.AppListResultMessage);
        await b.WriteAsync(new byte[] { 0, 0, 0, 10, 0x94 });
        b.Dispose();
        Assert.Equal(ConnectionCloseReason.ProtocolViolation, await client.Closed.WaitAsync(Limit));
        var ex = await Assert.ThrowsAsync<ControlException>(() => pending).WaitAsync(Limit);
        Assert.Equal(ControlErrorCode.Unavailable, ex.Code);
    }

    [Fact]
    public async Task UnsolicitedResponse_IsIgnored()
    {
        var (a, b) = Pipes();
        await using var server = new FrameConnection(a, "server", Log.CreateLogger("server"));
        await using var client = new FrameConnection(b, "client", Log.CreateLogger("client"));
        server.Start(Tracker);
        client.Start(Tracker);
        // A response to a request nobody made (late, or forged inside the channel) is dropped, not fatal.
        await server.SendAsync((byte)ControlOpcode.AppList | FrameCodec.ResponseBit, 999, "{}"u8.ToArray());
        var ok = await client.RequestAsync((byte)ControlOpcode.AppList, new AppListMessage { By = "name", Value = "z" },
            ControlJsonContext.Default.AppListMessage, ControlJsonContext.Default.AppListResultMessage).WaitAsync(Limit);
        Assert.Equal("z", ok.Apps[0].Name);
        Assert.False(client.Closed.IsCompleted);
    }
}

/// <summary>Issue 12.7: a peer's requests never run as unbounded concurrent handlers; a full connection stops reading.</summary>
public sealed class FrameConnectionBackpressureTests : IDisposable
{
    /// <summary>The connections' log: an Error log a test did not declare fails it at disposal.</summary>
    private TestLog Log { get; } = new(TestContext.Current.TestOutputHelper is { } output ? output.WriteLine : null);

    public void Dispose() => Log.Dispose();

    private static readonly TimeSpan Limit = TimeSpan.FromSeconds(20);

    [Fact]
    public async Task Requests_BeyondTheCap_WaitForASlot_NeverMoreHandlersAtOnce()
    {
        var (a, b) = FrameConnectionTests.Pipes();
        var release = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var running = 0;
        var peak = 0;
        var started = 0;
        await using var server = new FrameConnection(a, "server", Log.CreateLogger("server")) { MaxConcurrentRequests = 4 };
        await using var client = new FrameConnection(b, "client", Log.CreateLogger("client"));
        server.Start(async (_, _, ct) =>
        {
            var now = Interlocked.Increment(ref running);
            Interlocked.Increment(ref started);
            InterlockedMax(ref peak, now);
            await release.Task.WaitAsync(ct);
            Interlocked.Decrement(ref running);
            return [];
        });
        client.Start((_, _, _) => throw new ControlException(ControlErrorCode.BadRequest, "no"));

        var calls = Enumerable.Range(0, 40).Select(_ => client.RequestRawAsync((byte)ControlOpcode.Ping, ReadOnlyMemory<byte>.Empty)).ToList();
        var deadline = DateTime.UtcNow + Limit;
        while (Volatile.Read(ref started) < 4)
        {
            Assert.True(DateTime.UtcNow < deadline, "the first handlers never started");
            await Task.Delay(10, TestContext.Current.CancellationToken);
        }

        // Every request has been written; only the cap's worth of handlers may be running.
        Assert.Equal(4, Volatile.Read(ref started));
        release.SetResult();
        await Task.WhenAll(calls).WaitAsync(Limit, TestContext.Current.CancellationToken);
        Assert.Equal(40, started);
        Assert.Equal(4, peak);
    }

    /// <summary>
    /// Issue 12.7: large requests pipelined by a peer whose requests are not answered yet. The read loop stops once the
    /// requests it holds reach <see cref="FrameConnection.MaxQueuedRequestBytes"/> (before, 256 queued + 64 running
    /// frames were held whatever their size: 20 MiB here, over 300 MiB with 1 MiB frames); once the handlers finish,
    /// every request is answered.
    /// </summary>
    [Fact]
    public async Task LargeRequests_Pipelined_HoldAtMostTheByteCap_AndAllAreAnsweredOnceHandled()
    {
        var (a, b) = FrameConnectionTests.Pipes();
        var release = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var started = 0;
        await using var server = new FrameConnection(a, "server", Log.CreateLogger("server"));
        await using var client = new FrameConnection(b, "client", Log.CreateLogger("client")) { RequestTimeout = TimeSpan.FromMinutes(2) };
        server.Start(async (_, payload, ct) =>
        {
            Interlocked.Increment(ref started);
            await release.Task.WaitAsync(ct);
            return [(byte)(payload.Length >> 16)];
        });
        client.Start((_, _, _) => throw new ControlException(ControlErrorCode.BadRequest, "no"));

        const int size = 512 * 1024;
        var calls = Enumerable.Range(0, 40).Select(_ => client.RequestRawAsync((byte)ControlOpcode.Ping, new byte[size])).ToList();
        var deadline = DateTime.UtcNow + Limit;
        var peak = 0L;
        while (server.QueuedRequestBytes < FrameConnection.MaxQueuedRequestBytes && DateTime.UtcNow < deadline)
        {
            peak = Math.Max(peak, server.QueuedRequestBytes);
            await Task.Delay(10, TestContext.Current.CancellationToken);
        }

        for (var i = 0; i < 20; i++)
        {
            peak = Math.Max(peak, server.QueuedRequestBytes);
            await Task.Delay(10, TestContext.Current.CancellationToken);
        }

        Assert.InRange(peak, FrameConnection.MaxQueuedRequestBytes, FrameConnection.MaxQueuedRequestBytes + size);
        Assert.InRange(Volatile.Read(ref started), 1, (int)(FrameConnection.MaxQueuedRequestBytes / size) + 1);
        release.SetResult();
        var answers = await Task.WhenAll(calls).WaitAsync(Limit, TestContext.Current.CancellationToken);
        Assert.All(answers, r => Assert.Equal((byte)(size >> 16), r.Payload.Single()));
        Assert.Equal(40, started);
        Assert.Equal(0, server.QueuedRequestBytes);
    }

    [Fact]
    public async Task HandlerWaitingForThePeer_StillGetsItsAnswer_WhileRequestsQueueBehindIt()
    {
        var (a, b) = FrameConnectionTests.Pipes();
        await using var server = new FrameConnection(a, "server", Log.CreateLogger("server")) { MaxConcurrentRequests = 1 };
        await using var client = new FrameConnection(b, "client", Log.CreateLogger("client"));
        server.Start(async (_, _, ct) =>
        {
            // The handler asks the peer something: its answer arrives behind queued requests.
            var (op, _) = await server.RequestRawAsync((byte)ControlOpcode.Ping, ReadOnlyMemory<byte>.Empty, ct);
            return [op];
        });
        client.Start((_, _, _) => ValueTask.FromResult(Array.Empty<byte>()));

        var calls = Enumerable.Range(0, 20).Select(_ => client.RequestRawAsync((byte)ControlOpcode.Ping, ReadOnlyMemory<byte>.Empty)).ToList();
        var answers = await Task.WhenAll(calls).WaitAsync(Limit, TestContext.Current.CancellationToken);
        Assert.All(answers, r => Assert.Equal((byte)ControlOpcode.Ping | FrameCodec.ResponseBit, r.Payload.Single()));
    }

    private static void InterlockedMax(ref int target, int value)
    {
        int seen;
        while ((seen = Volatile.Read(ref target)) < value && Interlocked.CompareExchange(ref target, value, seen) != seen)
        {
        }
    }
}
