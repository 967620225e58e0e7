using System.Net;
using System.Threading.Channels;
using Microsoft.Extensions.Logging;
using Skywire.Core.AppApi;
using Skywire.Core.Sdk;
using Skywire.Core.Streams;
using Skywire.Protocol.AppApi;
using Skywire.Protocol.Control;
using Skywire.Protocol.Framing;
using Skywire.TestKit.Logging;
using Skywire.TestKit.Streams;

namespace Skywire.IntegrationTests.AppApi;

public sealed class AppApiServerTests : IAsyncLifetime
{
    private static readonly TimeSpan Limit = TimeSpan.FromSeconds(20);
    private const string Token = "0123456789abcdef";
    private readonly FakeHost _host = new();
    private readonly TestLog _log = new(line => TestContext.Current.TestOutputHelper?.WriteLine(line));
    private AppApiServer _server = null!;

    public ValueTask InitializeAsync()
    {
        _server = new AppApiServer(_host, new IPEndPoint(IPAddress.Loopback, 0), Token, _log.CreateLogger(nameof(AppApiServer)));
        _server.Start();
        return ValueTask.CompletedTask;
    }

    public async ValueTask DisposeAsync()
    {
        await _server.DisposeAsync();
        _log.Dispose(); // fails the test on an unexpected Error log
    }

    private sealed class FakeHost : IAppHost
    {
        public Channel<(string Node, string App, DuplexStreamPair.End Remote)> Dials { get; } = Channel.CreateUnbounded<(string, string, DuplexStreamPair.End)>();
        public List<string> Registered { get; } = [];
        public string NodeKey => "02" + new string('a', 64);

        /// <summary>Refuse a name the host still knows, as the node's tracker client does.</summary>
        public bool RefuseKnownNames { get; init; }

        /// <summary>When set, an unregistration waits for it before the host forgets the name.</summary>
        public TaskCompletionSource? UnregisterGate { get; init; }

        public TaskCompletionSource UnregisterStarted { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public Task RegisterAppAsync(string name, string type, CancellationToken cancellationToken)
        {
            lock (Registered)
            {
                if (RefuseKnownNames && Registered.Contains(name))
                {
                    throw new AppApiException(AppApiErrorCode.Conflict, $"app '{name}' is already registered here");
                }

                Registered.Add(name);
            }

            return Task.CompletedTask;
        }

        public async Task UnregisterAppAsync(string name, CancellationToken cancellationToken)
        {
            UnregisterStarted.TrySetResult();
            if (UnregisterGate is { } gate)
            {
                await gate.Task.WaitAsync(cancellationToken);
            }

            lock (Registered)
            {
                Registered.Remove(name);
            }
        }

        /// <summary>When set, tracker queries wait for it (a connection's serve loop stays busy in the request).</summary>
        public TaskCompletionSource? ListGate { get; set; }

        public TaskCompletionSource ListStarted { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public async Task<AppListResultMessage> ListAppsAsync(AppListMessage query, CancellationToken cancellationToken)
        {
            ListStarted.TrySetResult();
            if (ListGate is { } gate)
            {
                await gate.Task.WaitAsync(cancellationToken);
            }

            return new AppListResultMessage { Apps = [new AppInfo { Name = query.Value ?? "x", Type = "t", Node = NodeKey }] };
        }

        public Task<DuplexStream> DialAsync(string node, string app, string? from, CancellationToken cancellationToken)
        {
            if (app == "missing")
            {
                throw new AppApiException(AppApiErrorCode.Refused, "no such app");
            }

            var pair = new DuplexStreamPair();
            Dials.Writer.TryWrite((node, app, pair.B));
            return Task.FromResult<DuplexStream>(pair.A);
        }
    }

    [Fact]
    public async Task WrongToken_Unauthorized()
    {
        var ex = await Assert.ThrowsAsync<AppApiException>(() => SkywireApp.ConnectAsync(_server.LocalEndPoint, "wrong")).WaitAsync(Limit);
        Assert.Equal(AppApiErrorCode.Unauthorized, ex.Code);
    }

    [Fact]
    public void NonLoopbackListen_Refused() =>
        Assert.Throws<ArgumentException>(() => new AppApiServer(_host, new IPEndPoint(IPAddress.Any, 0), Token));

    [Fact]
    public async Task Register_DuplicateNameRefused_ReleasedOnDisconnect()
    {
        var first = await SkywireApp.ConnectAsync(_server.LocalEndPoint, Token);
        Assert.Equal(_host.NodeKey, first.NodeKey);
        await first.RegisterAsync("svc", "t");
        await using var second = await SkywireApp.ConnectAsync(_server.LocalEndPoint, Token);
        var ex = await Assert.ThrowsAsync<AppApiException>(() => second.RegisterAsync("svc", "t")).WaitAsync(Limit);
        Assert.Equal(AppApiErrorCode.Conflict, ex.Code);

        await first.DisposeAsync();
        await WaitUntil(() => !_server.RegisteredApps().Contains("svc"));
        await second.RegisterAsync("svc", "t").WaitAsync(Limit);
    }

    /// <summary>
    /// Issue 14: a refused client that registers its name again at once used to get "already registered", because the
    /// name was freed only when the old connection's serve loop read the close. Here that loop is held busy in a tracker
    /// query, so it cannot read the close at all: the new registration must take the name over, and the old loop,
    /// when it ends, must leave the new holder's name and tracker entry alone.
    /// </summary>
    [Fact]
    public async Task Register_NameHeldByAConnectionItsAppClosed_TakenOverAtOnce_OldLoopLeavesItAlone()
    {
        _host.ListGate = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var holder = await RawRegisterAsync("svc");
        await FrameIo.WriteFrameAsync(holder.GetStream(), (byte)AppApiOpcode.ListApps, 3, new AppListMessage { By = "name", Value = "x" },
            AppApiJsonContext.Default.AppListMessage, CancellationToken.None);
        await _host.ListStarted.Task.WaitAsync(Limit);
        holder.Dispose(); // the app is gone; its serve loop is still inside the query

        await using var second = await SkywireApp.ConnectAsync(_server.LocalEndPoint, Token);
        await second.RegisterAsync("svc", "t").WaitAsync(Limit);

        _host.ListGate.SetResult(); // the old loop answers into a closed socket, reads the end, and unregisters
        await WaitUntil(() => _server.ConnectionCount == 1);
        Assert.Contains("svc", _server.RegisteredApps());
        lock (_host.Registered)
        {
            Assert.Equal(["svc"], _host.Registered);
        }

        var (local, _) = Pair();
        Assert.True(_server.TryDeliver("svc", new IncomingStream(local, "02" + new string('c', 64), "caller")));
        await using var accepted = await second.AcceptAsync().WaitAsync(Limit);
        Assert.Equal("caller", accepted.RemoteApp);
    }

    /// <summary>
    /// Seen in CI (VpnInProcessTests): the old holder's loop had freed the name but not yet removed it from the
    /// tracker when a new registration claimed it, and the host refused that as "already registered". Here the host's
    /// removal waits on a gate: the new registration must wait for it, then succeed.
    /// </summary>
    [Fact]
    public async Task Register_WhileTheOldHolderLeavesTheTracker_WaitsForIt_NotRefused()
    {
        using var log = new TestLog(line => TestContext.Current.TestOutputHelper?.WriteLine(line), LogLevel.Debug);
        var host = new FakeHost { RefuseKnownNames = true, UnregisterGate = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously) };
        await using var server = new AppApiServer(host, new IPEndPoint(IPAddress.Loopback, 0), Token, log.CreateLogger(nameof(AppApiServer)));
        server.Start();
        var first = await SkywireApp.ConnectAsync(server.LocalEndPoint, Token);
        await first.RegisterAsync("svc", "t").WaitAsync(Limit);
        await first.DisposeAsync();
        await host.UnregisterStarted.Task.WaitAsync(Limit); // the old loop is leaving the tracker

        await using var second = await SkywireApp.ConnectAsync(server.LocalEndPoint, Token);
        var registering = second.RegisterAsync("svc", "t");
        var waiting = WaitUntil(() => log.Entries.Any(e => e.EventId.Id == 7112));
        await Task.WhenAny(registering, waiting).WaitAsync(Limit);
        Assert.False(registering.IsCompleted, $"the registration did not wait for the old holder: {registering.Exception?.InnerException?.Message}");

        host.UnregisterGate.SetResult();
        await registering.WaitAsync(Limit);
        Assert.Contains("svc", server.RegisteredApps());
        lock (host.Registered)
        {
            Assert.Equal(["svc"], host.Registered);
        }
    }

    /// <summary>The take-over is only for closed connections: a live holder, even one busy in a request or idle, keeps its name.</summary>
    [Fact]
    public async Task Register_NameHeldByALiveBusyConnection_Refused()
    {
        _host.ListGate = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        using var holder = await RawRegisterAsync("svc");
        await FrameIo.WriteFrameAsync(holder.GetStream(), (byte)AppApiOpcode.ListApps, 3, new AppListMessage { By = "name", Value = "x" },
            AppApiJsonContext.Default.AppListMessage, CancellationToken.None);
        await _host.ListStarted.Task.WaitAsync(Limit);
        // A request sent while the loop is busy is unread bytes, not a close.
        await FrameIo.WriteFrameAsync(holder.GetStream(), (byte)AppApiOpcode.Ping, 4, new OkMessage(), AppApiJsonContext.Default.OkMessage, CancellationToken.None);

        await using var second = await SkywireApp.ConnectAsync(_server.LocalEndPoint, Token);
        var busy = await Assert.ThrowsAsync<AppApiException>(() => second.RegisterAsync("svc", "t")).WaitAsync(Limit);
        Assert.Equal(AppApiErrorCode.Conflict, busy.Code);

        _host.ListGate.SetResult();
        var idle = await Assert.ThrowsAsync<AppApiException>(() => second.RegisterAsync("svc", "t")).WaitAsync(Limit);
        Assert.Equal(AppApiErrorCode.Conflict, idle.Code);
        Assert.Contains("svc", _server.RegisteredApps());
    }

    /// <summary>
    /// SkywireApp.ServeStreamsAsync: each accepted stream goes to the handler; a failing handler ends only its stream;
    /// when the node goes away the accepts stop, running handlers are cancelled and the failure is thrown after they finished.
    /// </summary>
    [Fact]
    public async Task ServeStreams_EachStreamToItsHandler_FailedHandlerEndsOnlyItsStream_NodeGoneCancelsHandlersAndThrows()
    {
        await using var app = await SkywireApp.ConnectAsync(_server.LocalEndPoint, Token);
        await app.RegisterAsync("svc", "t");
        var held = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var heldCancelled = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var serving = app.ServeStreamsAsync(async (stream, stopping) =>
        {
            await using var _ = stream;
            var first = new byte[1];
            await stream.ReadExactlyAsync(first, stopping);
            switch (first[0])
            {
                case (byte)'e': // echo one byte and end
                    await stream.WriteAsync(first, stopping);
                    await stream.CompleteWritesAsync(stopping);
                    break;
                case (byte)'x':
                    throw new InvalidOperationException("handler bug");
                default: // hold until serving stops
                    held.TrySetResult();
                    try
                    {
                        await Task.Delay(Timeout.Infinite, stopping);
                    }
                    catch (OperationCanceledException)
                    {
                        heldCancelled.TrySetResult();
                    }

                    break;
            }
        }, parallelAccepts: 2);

        var (failing, failingRemote) = Pair();
        await WaitUntil(() => _server.PendingAccepts == 2);
        Assert.True(_server.TryDeliver("svc", new IncomingStream(failing, "02" + new string('c', 64), "x")));
        await failingRemote.WriteAsync("x"u8.ToArray());
        try
        {
            // The failing handler's stream ends (disposed), whether cleanly or by a reset; serving goes on.
            Assert.Equal(0, await failingRemote.ReadAsync(new byte[1]).AsTask().WaitAsync(Limit));
        }
        catch (StreamAbortedException)
        {
        }

        var (echo, echoRemote) = Pair();
        Assert.True(_server.TryDeliver("svc", new IncomingStream(echo, "02" + new string('c', 64), "e")));
        await echoRemote.WriteAsync("e"u8.ToArray());
        var got = new MemoryStream();
        await echoRemote.CopyToAsync(got).WaitAsync(Limit);
        Assert.Equal("e"u8.ToArray(), got.ToArray());

        var (hold, holdRemote) = Pair();
        Assert.True(_server.TryDeliver("svc", new IncomingStream(hold, "02" + new string('c', 64), "h")));
        await holdRemote.WriteAsync("h"u8.ToArray());
        await held.Task.WaitAsync(Limit);
        Assert.False(serving.IsCompleted);

        await _server.DisposeAsync(); // the node goes away: the waiting accepts fail
        await Assert.ThrowsAsync<AppApiException>(() => serving).WaitAsync(Limit);
        Assert.True(heldCancelled.Task.IsCompleted);
    }

    /// <summary>A raw app API connection that said hello and registered <paramref name="name"/>.</summary>
    private async Task<System.Net.Sockets.TcpClient> RawRegisterAsync(string name)
    {
        var client = new System.Net.Sockets.TcpClient();
        await client.ConnectAsync(_server.LocalEndPoint);
        var s = client.GetStream();
        await FrameIo.WriteFrameAsync(s, (byte)AppApiOpcode.Hello, 1, new AppHelloMessage { Version = AppApiProtocol.Version, Token = Token },
            AppApiJsonContext.Default.AppHelloMessage, CancellationToken.None);
        Assert.NotNull(await FrameIo.ReadFrameAsync(s, AppApiProtocol.MaxFrameSize, CancellationToken.None).WaitAsync(Limit));
        await FrameIo.WriteFrameAsync(s, (byte)AppApiOpcode.Register, 2, new AppApiRegisterMessage { Name = name, Type = "t" },
            AppApiJsonContext.Default.AppApiRegisterMessage, CancellationToken.None);
        var ok = await FrameIo.ReadFrameAsync(s, AppApiProtocol.MaxFrameSize, CancellationToken.None).WaitAsync(Limit);
        Assert.Equal((byte)AppApiOpcode.Register | FrameCodec.ResponseBit, ok!.Value.Opcode);
        return client;
    }

    [Fact]
    public async Task Dial_PipesBothWays_HalfCloseMapsToStreamEnd()
    {
        await using var app = await SkywireApp.ConnectAsync(_server.LocalEndPoint, Token);
        await app.RegisterAsync("me", "t");
        await using var stream = await app.DialAsync("02" + new string('b', 64), "peer").WaitAsync(Limit);
        var (node, target, remote) = await _host.Dials.Reader.ReadAsync().AsTask().WaitAsync(Limit);
        Assert.Equal("peer", target);

        await stream.WriteAsync("ping"u8.ToArray());
        stream.CompleteWrites();
        var got = new MemoryStream();
        await remote.CopyToAsync(got).WaitAsync(Limit); // ends: the app's FIN became the stream's end
        Assert.Equal("ping"u8.ToArray(), got.ToArray());

        await remote.WriteAsync("pong"u8.ToArray());
        await remote.CompleteWritesAsync();
        var back = new MemoryStream();
        await stream.CopyToAsync(back).WaitAsync(Limit);
        Assert.Equal("pong"u8.ToArray(), back.ToArray());
        Assert.False(remote.IsAborted);
    }

    /// <summary>
    /// Issue 12.1: the mesh stream under a dialled connection fails (its session died): the app's connection is reset
    /// (RST, no FIN before it), so the SDK's read throws after the bytes that did arrive, never returns 0.
    /// </summary>
    [Fact]
    public async Task Dial_MeshStreamFails_AppConnectionReset_ReadThrows_NeverACleanEnd()
    {
        await using var app = await SkywireApp.ConnectAsync(_server.LocalEndPoint, Token);
        await using var stream = await app.DialAsync("02" + new string('b', 64), "peer").WaitAsync(Limit);
        var (_, _, remote) = await _host.Dials.Reader.ReadAsync().AsTask().WaitAsync(Limit);
        await remote.WriteAsync(new byte[10_000]);
        await stream.ReadExactlyAsync(new byte[10_000]).AsTask().WaitAsync(Limit);

        remote.Abort();

        var error = await Assert.ThrowsAsync<StreamAbortedException>(async () => await stream.ReadAsync(new byte[100]).AsTask().WaitAsync(Limit));
        Assert.Contains("broke", error.Message, StringComparison.Ordinal);
    }

    /// <summary>The app resets its connection (or dies): the mesh stream is aborted, so the far app sees an error too.</summary>
    [Fact]
    public async Task Dial_AppResetsItsConnection_MeshStreamAborted()
    {
        await using var app = await SkywireApp.ConnectAsync(_server.LocalEndPoint, Token);
        await using var stream = await app.DialAsync("02" + new string('b', 64), "peer").WaitAsync(Limit);
        var (_, _, remote) = await _host.Dials.Reader.ReadAsync().AsTask().WaitAsync(Limit);
        await stream.WriteAsync(new byte[1000]);
        await remote.ReadExactlyAsync(new byte[1000]).AsTask().WaitAsync(Limit);

        stream.Abort();

        await Assert.ThrowsAsync<StreamAbortedException>(async () => await remote.ReadAsync(new byte[100]).AsTask().WaitAsync(Limit));
    }

    /// <summary>
    /// The app gives up between two writes on a cancellation and leaves through <c>await using</c>: the mesh stream is
    /// aborted, so the far app reads an error, not a clean end after the first write's bytes (the soak test caught the
    /// clean end at its own stop).
    /// </summary>
    [Fact]
    public async Task Dial_AppCancelsAWrite_ThenDisposes_MeshStreamAborted_NotFinished()
    {
        await using var app = await SkywireApp.ConnectAsync(_server.LocalEndPoint, Token);
        DuplexStreamPair.End remote;
        await using (var stream = await app.DialAsync("02" + new string('b', 64), "peer").WaitAsync(Limit))
        {
            (_, _, remote) = await _host.Dials.Reader.ReadAsync().AsTask().WaitAsync(Limit);
            await stream.WriteAsync(new byte[8]);
            await Assert.ThrowsAnyAsync<OperationCanceledException>(() => stream.WriteAsync(new byte[1000], new CancellationToken(canceled: true)).AsTask());
        }

        // (The reset discards what the node had not read yet, so the first 8 bytes may or may not arrive before the error.)
        await Assert.ThrowsAsync<StreamAbortedException>(async () =>
        {
            var buffer = new byte[100];
            while (await remote.ReadAsync(buffer).AsTask().WaitAsync(Limit) > 0)
            {
            }
        });
    }

    [Fact]
    public async Task Dial_Refused_ErrorCodeReachesApp()
    {
        await using var app = await SkywireApp.ConnectAsync(_server.LocalEndPoint, Token);
        var ex = await Assert.ThrowsAsync<AppApiException>(() => app.DialAsync("02" + new string('b', 64), "missing")).WaitAsync(Limit);
        Assert.Equal(AppApiErrorCode.Refused, ex.Code);
    }

    [Fact]
    public async Task Accept_DeliversIncoming_UnregisteredNameRefused()
    {
        await using var app = await SkywireApp.ConnectAsync(_server.LocalEndPoint, Token);
        Assert.False(_server.TryDeliver("svc", new IncomingStream(new DuplexStreamPair().A, "x", null)));
        await app.RegisterAsync("svc", "t");
        var accept = app.AcceptAsync();
        var (local, remote) = Pair();
        Assert.True(_server.TryDeliver("svc", new IncomingStream(local, "02" + new string('c', 64), "caller")));
        await using var stream = await accept.WaitAsync(Limit);
        Assert.Equal("caller", stream.RemoteApp);
        await remote.WriteAsync("data"u8.ToArray());
        await remote.CompleteWritesAsync();
        var got = new MemoryStream();
        await stream.CopyToAsync(got).WaitAsync(Limit);
        Assert.Equal("data"u8.ToArray(), got.ToArray());
    }

    /// <summary>A raw app connection past its hello, with an Accept for <paramref name="name"/> sent.</summary>
    private async Task<(System.Net.Sockets.TcpClient Client, System.Net.Sockets.NetworkStream Stream)> RawAcceptAsync(string name, byte[]? extra = null)
    {
        var client = new System.Net.Sockets.TcpClient { NoDelay = true };
        await client.ConnectAsync(_server.LocalEndPoint);
        var s = client.GetStream();
        await FrameIo.WriteFrameAsync(s, (byte)AppApiOpcode.Hello, 1, new AppHelloMessage { Version = AppApiProtocol.Version, Token = Token },
            AppApiJsonContext.Default.AppHelloMessage, CancellationToken.None);
        var ack = await FrameIo.ReadFrameAsync(s, AppApiProtocol.MaxFrameSize, CancellationToken.None).WaitAsync(Limit);
        Assert.Equal((byte)AppApiOpcode.Hello | FrameCodec.ResponseBit, ack!.Value.Opcode);
        var accept = FrameCodec.Encode((byte)AppApiOpcode.Accept, 2, System.Text.Json.JsonSerializer.SerializeToUtf8Bytes(new AcceptMessage { Name = name }, AppApiJsonContext.Default.AcceptMessage));
        await s.WriteAsync(extra is null ? accept : [.. accept, .. extra]);
        return (client, s);
    }

    // The server watches a waiting accept's connection for the app closing it. A wake-up of that watch that is not
    // the end of the stream (here: bytes the app sent early; under load: a stale readiness event) once ended the
    // accept without an answer, and the app waited for ever.
    [Fact]
    public async Task Accept_AppSendsBytesWhileWaiting_StillGetsItsStream_TheBytesFollow()
    {
        await using var app = await SkywireApp.ConnectAsync(_server.LocalEndPoint, Token);
        await app.RegisterAsync("svc", "t");
        var (client, s) = await RawAcceptAsync("svc", "early"u8.ToArray());
        using (client)
        {
            await WaitUntil(() => _server.PendingAccepts == 1);
            var (local, remote) = Pair();
            Assert.True(_server.TryDeliver("svc", new IncomingStream(local, "02" + new string('c', 64), "caller")));

            var answer = await FrameIo.ReadFrameAsync(s, AppApiProtocol.MaxFrameSize, CancellationToken.None).WaitAsync(Limit);
            Assert.Equal((byte)AppApiOpcode.Accept | FrameCodec.ResponseBit, answer!.Value.Opcode);
            var early = new byte[5];
            await remote.ReadExactlyAsync(early).AsTask().WaitAsync(Limit);
            Assert.Equal("early"u8.ToArray(), early);
        }
    }

    [Fact]
    public async Task Accept_AppClosesWhileWaiting_TheStreamGoesToItsNextAccept()
    {
        await using var app = await SkywireApp.ConnectAsync(_server.LocalEndPoint, Token);
        await app.RegisterAsync("svc", "t");
        var (client, _) = await RawAcceptAsync("svc");
        await WaitUntil(() => _server.PendingAccepts == 1);
        client.Dispose();
        await WaitUntil(() => _server.PendingAccepts == 0);

        var (local, remote) = Pair();
        Assert.True(_server.TryDeliver("svc", new IncomingStream(local, "02" + new string('c', 64), "caller")));
        await using var stream = await app.AcceptAsync().WaitAsync(Limit);
        await remote.WriteAsync("data"u8.ToArray());
        await remote.CompleteWritesAsync();
        var got = new MemoryStream();
        await stream.CopyToAsync(got).WaitAsync(Limit);
        Assert.Equal("data"u8.ToArray(), got.ToArray());
    }

    [Fact]
    public async Task GarbageFirstFrame_ClosesConnection()
    {
        using var client = new System.Net.Sockets.TcpClient();
        await client.ConnectAsync(_server.LocalEndPoint);
        var s = client.GetStream();
        await s.WriteAsync(FrameCodec.Encode((byte)AppApiOpcode.Register, 1, "{}"u8));
        var buffer = new byte[64];
        try
        {
            Assert.Equal(0, await s.ReadAsync(buffer).AsTask().WaitAsync(Limit));
        }
        catch (IOException)
        {
        }
    }

    private static (DuplexStreamPair.End Local, DuplexStreamPair.End Remote) Pair()
    {
        var pair = new DuplexStreamPair();
        return (pair.A, pair.B);
    }

    /// <summary>An incoming stream queued for an app that unregisters before taking it: the dialer sees an error, not an empty stream.</summary>
    [Fact]
    public async Task Accept_AppUnregistersWithAStreamQueued_TheStreamIsAborted()
    {
        var app = await SkywireApp.ConnectAsync(_server.LocalEndPoint, Token);
        await app.RegisterAsync("svc", "t");
        var (local, remote) = Pair();
        Assert.True(_server.TryDeliver("svc", new IncomingStream(local, "02" + new string('c', 64), "caller")));
        await app.DisposeAsync();

        await Assert.ThrowsAsync<StreamAbortedException>(async () => await remote.ReadAsync(new byte[1]).AsTask().WaitAsync(Limit));
    }

    private static async Task WaitUntil(Func<bool> condition)
    {
        var deadline = DateTime.UtcNow + Limit;
        while (!condition())
        {
            Assert.True(DateTime.UtcNow < deadline, "condition not met in time");
            await Task.Delay(10);
        }
    }
}
