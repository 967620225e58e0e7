using System.Net;
using System.Net.Sockets;
using System.Text;
using Skywire.Core.Manager;
using Skywire.Core.Node;
using Skywire.Core.Sdk;
using Skywire.Core.Sessions.Mux;
using Skywire.IntegrationTests.Mesh;
using Skywire.TestKit.Logging;

namespace Skywire.IntegrationTests.Issues;

/// <summary>
/// Issue 12.1, "end of stream means complete": a stream that ends because its session died, its route vanished or its
/// peer aborted reaches the app as an error (a reset of its app API connection, an exception from the SDK), never as
/// a clean end of stream. In-process meshes with a short idle timeout; the executables are in
/// EndToEnd/TruncatedStreamProcessTests.
/// </summary>
public sealed class Issue12EndOfStreamTests
{
    private static readonly TimeSpan Limit = MeshHarness.Limit;
    private const int Seed = 12;

    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    private static TestLog NewLog() => new(TestContext.Current.TestOutputHelper!.WriteLine);

    /// <summary>Fast failure detection: a dead session is noticed within seconds, not the default 30 s.</summary>
    private static NodeOptions Quick(NodeOptions o) => o with
    {
        Mux = o.Mux with { IdleTimeout = TimeSpan.FromSeconds(3), KeepAliveInterval = TimeSpan.FromMilliseconds(500) },
    };

    [Fact]
    public async Task RelayKilled_NoAlternative_BothAppsSeeAnError_NeverACleanEnd()
    {
        using var log = NewLog();
        await using var mesh = MeshHarness.Start(log: log);
        var (a, b, d) = (await mesh.AddNodeAsync(Quick), await mesh.AddNodeAsync(Quick), await mesh.AddNodeAsync(Quick));
        await mesh.LinkAsync(a, b);
        await mesh.LinkAsync(b, d);
        await using var transfer = await Transfer.StartAsync(a, d);
        await transfer.WaitForBytesAsync(1 << 20);

        await mesh.RemoveNodeAsync(b);

        await transfer.AssertBothSidesFailAsync();
    }

    /// <summary>
    /// The relay is gone and the manager has no other path: the ends' links to it are down, no new route comes, so the
    /// sessions are closed after <see cref="NodeOptions.DeadHopGrace"/> and the apps get their error then, not after the
    /// multiplexer's idle timeout (30 s, the default here).
    /// </summary>
    [Fact]
    public async Task RelayGone_NoAlternative_BothAppsSeeTheErrorSoon_NotAtTheIdleTimeout()
    {
        using var log = NewLog();
        await using var mesh = MeshHarness.Start(log: log);
        var (a, b, d) = (await mesh.AddNodeAsync(), await mesh.AddNodeAsync(), await mesh.AddNodeAsync());
        await mesh.LinkAsync(a, b);
        await mesh.LinkAsync(b, d);
        await using var transfer = await Transfer.StartAsync(a, d);
        await transfer.WaitForBytesAsync(1 << 20);

        var gone = System.Diagnostics.Stopwatch.StartNew();
        await mesh.RemoveNodeAsync(b);

        await transfer.AssertBothSidesFailAsync();
        Assert.True(gone.Elapsed < MuxOptions.Default.IdleTimeout / 2, $"the error took {gone.Elapsed}: the ends waited for their idle timeout");
    }

    [Fact]
    public async Task RelayRulesGone_ManagerGone_BothAppsSeeAnError_NeverACleanEnd()
    {
        // Disposing the manager under load races its in-flight requests (logged as event 2003; reported on issue 12).
        using var log = NewLog().ExpectError(2003);
        var manager = new ManagerOptions { RuleLifetime = TimeSpan.FromSeconds(2), RefreshInterval = TimeSpan.FromMilliseconds(600) };
        await using var mesh = MeshHarness.Start(manager, log);
        var (a, b, d) = (await mesh.AddNodeAsync(Quick), await mesh.AddNodeAsync(Quick), await mesh.AddNodeAsync(Quick));
        await mesh.LinkAsync(a, b);
        await mesh.LinkAsync(b, d);
        await using var transfer = await Transfer.StartAsync(a, d);
        await transfer.WaitForBytesAsync(1 << 20);

        // Nobody refreshes the rules any more. Since issue 13 a node holds its rules while its manager is away (the
        // session would go on); take the relay's away, as when they lapse, and it drops the session's packets.
        await mesh.Manager.DisposeAsync();
        foreach (var rule in b.DataPlane.GetRules())
        {
            b.DataPlane.RemoveRule(rule.InLink, rule.InRoute);
        }

        await transfer.AssertBothSidesFailAsync();
    }

    [Fact]
    public async Task PeerNodeGone_ReceiverSeesAnError_NeverACleanEnd()
    {
        using var log = NewLog();
        await using var mesh = MeshHarness.Start(log: log);
        var (a, d) = (await mesh.AddNodeAsync(Quick), await mesh.AddNodeAsync(Quick));
        await mesh.LinkAsync(a, d);
        await using var transfer = await Transfer.StartAsync(a, d);
        await transfer.WaitForBytesAsync(1 << 20);

        await mesh.RemoveNodeAsync(a);

        await transfer.AssertReceiverFailsAsync();
    }

    /// <summary>
    /// A node that shuts down tells its peers (the multiplexer's CLOSE goes out before the session's keys are dropped),
    /// so the apps at the other end get their error at once, not after the 30 s idle timeout.
    /// </summary>
    [Fact]
    public async Task PeerNodeShutsDown_ReceiverSeesTheErrorAtOnce_NotAfterTheIdleTimeout()
    {
        using var log = NewLog();
        await using var mesh = MeshHarness.Start(log: log);
        var (a, d) = (await mesh.AddNodeAsync(), await mesh.AddNodeAsync());
        await mesh.LinkAsync(a, d);
        await using var transfer = await Transfer.StartAsync(a, d);
        await transfer.WaitForBytesAsync(1 << 20);

        var shutdown = System.Diagnostics.Stopwatch.StartNew();
        await mesh.RemoveNodeAsync(a);
        await transfer.AssertReceiverFailsAsync();
        Assert.True(shutdown.Elapsed < MuxOptions.Default.IdleTimeout / 2, $"the error took {shutdown.Elapsed}: the peer learned of the shutdown by its idle timeout");
    }

    [Fact]
    public async Task SendingAppAborts_ReceiverSeesAnError_NeverACleanEnd()
    {
        using var log = NewLog();
        await using var mesh = MeshHarness.Start(log: log);
        var (a, d) = (await mesh.AddNodeAsync(Quick), await mesh.AddNodeAsync(Quick));
        await mesh.LinkAsync(a, d);
        await using var transfer = await Transfer.StartAsync(a, d);
        await transfer.WaitForBytesAsync(1 << 20);

        transfer.ResetSender();

        await transfer.AssertReceiverFailsAsync();
    }

    /// <summary>
    /// The mesh under a SOCKS connection breaks mid-body: curl must fail (a reset), not report a truncated body as a
    /// complete one (the body has no Content-Length, so a clean end of stream would look complete to curl).
    /// </summary>
    [Fact]
    public async Task Socks_MeshBreaksMidBody_CurlFails_NotATruncatedSuccess()
    {
        using var log = NewLog();
        await using var mesh = MeshHarness.Start(log: log);
        var (entry, relay, exit) = (await mesh.AddNodeAsync(Quick), await mesh.AddNodeAsync(Quick), await mesh.AddNodeAsync(Quick));
        await mesh.LinkAsync(entry, relay);
        await mesh.LinkAsync(relay, exit);
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(Ct);
        await using var target = new EndlessHttpTarget();

        var serverReady = new TaskCompletionSource<string>(TaskCreationOptions.RunContinuationsAsynchronously);
        var server = Apps.Socks.SocksApps.RunServerAsync(new Apps.Socks.SocksAppBinding(exit.AppsEndPoint, exit.AppToken, "exit"),
            Apps.Socks.SocksServerOptions.Default with { AllowLoopbackTargets = true }, log.CreateLogger("socks-server"), serverReady.SetResult, stop.Token);
        await serverReady.Task.WaitAsync(Limit, Ct);
        var clientReady = new TaskCompletionSource<IPEndPoint>(TaskCreationOptions.RunContinuationsAsynchronously);
        var client = Apps.Socks.SocksApps.RunClientAsync(new Apps.Socks.SocksAppBinding(entry.AppsEndPoint, entry.AppToken, "entry"), server: null,
            Apps.Socks.SocksClientOptions.Default with { Listen = new IPEndPoint(IPAddress.Loopback, 0) }, log.CreateLogger("socks-client"), (ep, _) => clientReady.SetResult(ep), stop.Token);
        var proxy = await clientReady.Task.WaitAsync(Limit, Ct);

        var curl = Socks.Curl.RunAsync(["-sS", "--socks5-hostname", $"127.0.0.1:{proxy.Port}", $"http://127.0.0.1:{target.Port}/"], Ct, keepBytes: 0);
        await target.WaitForBytesSentAsync(1 << 20);
        await mesh.RemoveNodeAsync(relay);
        target.Stop();

        var result = await curl.WaitAsync(Limit, Ct);
        Assert.True(result.ExitCode != 0, $"curl reported success after {result.Length} bytes of an endless body");
        await stop.CancelAsync();
        await Task.WhenAll(server, client).WaitAsync(Limit, Ct);
    }

    /// <summary>An SDK stream from an app on one node to an app on another, written to "forever" and read as it comes.</summary>
    private sealed class Transfer : IAsyncDisposable
    {
        private readonly SkywireApp _sinkApp;
        private readonly SkywireApp _sourceApp;
        private readonly SkywireStream _outbound;
        private readonly SkywireStream _inbound;
        private long _received;

        private Transfer(SkywireApp sinkApp, SkywireApp sourceApp, SkywireStream outbound, SkywireStream inbound)
        {
            (_sinkApp, _sourceApp, _outbound, _inbound) = (sinkApp, sourceApp, outbound, inbound);
            Writer = Task.Run(WriteForeverAsync);
            Reader = Task.Run(ReadToEndAsync);
        }

        /// <summary>Completes only by failing (the stream never ends cleanly on the sending side).</summary>
        public Task Writer { get; }

        /// <summary>Returns the byte count if the stream ended cleanly, throws if it failed.</summary>
        public Task<long> Reader { get; }

        public static async Task<Transfer> StartAsync(NodeHost from, NodeHost to)
        {
            var sink = await MeshHarness.AppAsync(to);
            await sink.RegisterAsync("sink", "test");
            var source = await MeshHarness.AppAsync(from);
            await source.RegisterAsync("source", "test");
            var accept = sink.AcceptAsync(Ct);
            var outbound = await source.DialAsync(to.NodeKey, "sink", Ct).WaitAsync(Limit, Ct);
            var inbound = await accept.WaitAsync(Limit, Ct);
            return new Transfer(sink, source, outbound, inbound);
        }

        public Task WaitForBytesAsync(long count) =>
            MeshHarness.WaitUntilAsync(() => Interlocked.Read(ref _received) >= count || Reader.IsCompleted, $"{count} bytes received");

        /// <summary>The sending app aborts its stream (its connection to the node is reset): an abort, not an end of stream.</summary>
        public void ResetSender() => _outbound.Abort();

        public async Task AssertReceiverFailsAsync()
        {
            var outcome = await Record.ExceptionAsync(() => Reader.WaitAsync(Limit, Ct));
            Assert.True(outcome is IOException, outcome is null
                ? $"the receiving app saw a clean end of stream after {Reader.Result} bytes of an unfinished stream"
                : $"expected an IOException, got {outcome}");
        }

        public async Task AssertBothSidesFailAsync()
        {
            await AssertReceiverFailsAsync();
            var sent = await Record.ExceptionAsync(() => Writer.WaitAsync(Limit, Ct));
            Assert.True(sent is IOException, $"expected the sending app's write to fail with an IOException, got {sent?.ToString() ?? "no error"}");
        }

        private async Task WriteForeverAsync()
        {
            var buffer = new byte[64 * 1024];
            for (long offset = 0; ; offset += buffer.Length)
            {
                Fill(buffer, offset, Seed);
                await _outbound.WriteAsync(buffer);
            }
        }

        private async Task<long> ReadToEndAsync()
        {
            var buffer = new byte[64 * 1024];
            var expected = new byte[buffer.Length];
            while (true)
            {
                var n = await _inbound.ReadAsync(buffer);
                if (n == 0)
                {
                    return Interlocked.Read(ref _received);
                }

                var offset = Interlocked.Read(ref _received);
                Fill(expected.AsSpan(0, n), offset, Seed);
                Assert.True(buffer.AsSpan(0, n).SequenceEqual(expected.AsSpan(0, n)), $"wrong bytes at offset {offset}");
                Interlocked.Add(ref _received, n);
            }
        }

        /// <summary>Deterministic bytes: position i of the stream is a function of (seed, i).</summary>
        private static void Fill(Span<byte> buffer, long offset, int seed)
        {
            for (var i = 0; i < buffer.Length; i++)
            {
                var x = ((ulong)(offset + i) * 0x9E3779B97F4A7C15UL) ^ ((ulong)seed * 0xC2B2AE3D27D4EB4FUL);
                x ^= x >> 29;
                buffer[i] = (byte)(x ^ (x >> 17));
            }
        }

        public async ValueTask DisposeAsync()
        {
            await _outbound.DisposeAsync();
            await _inbound.DisposeAsync();
            await _sourceApp.DisposeAsync();
            await _sinkApp.DisposeAsync();

            // Their outcomes were asserted by the test; here they only have to be over once the streams are closed.
            await Task.WhenAll(Writer, Reader).WaitAsync(Limit).ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
            Assert.True(Writer.IsCompleted && Reader.IsCompleted, "the transfer's loops did not end after the streams closed");
        }
    }

    /// <summary>
    /// An HTTP/1.1 target on 127.0.0.1:0 that answers any request with a body without Content-Length (it ends with the
    /// connection) and streams it until stopped; a clean end of stream is the only end-of-body marker curl gets.
    /// </summary>
    private sealed class EndlessHttpTarget : IAsyncDisposable
    {
        private readonly TcpListener _listener = new(IPAddress.Loopback, 0);
        private readonly CancellationTokenSource _stopWriting = new();
        private readonly CancellationTokenSource _disposing = new();
        private readonly Task _serve;
        private long _sent;

        public EndlessHttpTarget()
        {
            _listener.Start();
            Port = ((IPEndPoint)_listener.LocalEndpoint).Port;
            _serve = ServeOneAsync();
        }

        public int Port { get; }

        public Task WaitForBytesSentAsync(long count) =>
            MeshHarness.WaitUntilAsync(() => Interlocked.Read(ref _sent) >= count || _serve.IsCompleted, $"{count} body bytes sent");

        /// <summary>Stops writing (the connection stays open: the break is the mesh's, not the target's).</summary>
        public void Stop() => _stopWriting.Cancel();

        private async Task ServeOneAsync()
        {
            using var client = await _listener.AcceptTcpClientAsync(_disposing.Token);
            var stream = client.GetStream();
            var request = new byte[4096];
            var seen = new StringBuilder();
            while (!seen.ToString().Contains("\r\n\r\n", StringComparison.Ordinal))
            {
                var n = await stream.ReadAsync(request, _disposing.Token);
                if (n == 0)
                {
                    return;
                }

                seen.Append(Encoding.ASCII.GetString(request, 0, n));
            }

            await stream.WriteAsync("HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nConnection: close\r\n\r\n"u8.ToArray(), _disposing.Token);
            var chunk = new byte[16 * 1024];
            try
            {
                while (true)
                {
                    await stream.WriteAsync(chunk, _stopWriting.Token);
                    Interlocked.Add(ref _sent, chunk.Length);
                }
            }
            catch (OperationCanceledException) when (_stopWriting.IsCancellationRequested)
            {
                // Stopped: hold the connection until disposal, so its end is not what curl sees.
            }

            await Task.Delay(Timeout.Infinite, _disposing.Token).ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
        }

        public async ValueTask DisposeAsync()
        {
            await _stopWriting.CancelAsync();
            await _disposing.CancelAsync();
            _listener.Stop();
            var outcome = await Record.ExceptionAsync(() => _serve.WaitAsync(Limit));
            Assert.True(outcome is null or OperationCanceledException or IOException or SocketException, $"the target ended with {outcome}");
            _stopWriting.Dispose();
            _disposing.Dispose();
        }
    }
}
