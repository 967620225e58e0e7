namespace Skywire.IntegrationTests.EndToEnd;

/// <summary>
/// Issue 12.1 through the built executables: `skywire app nc --to` streams into `skywire app nc --listen` across
/// real `skywire node` and `skywire manager` processes on loopback; mid-stream the relay, a node, an app or the messenger
/// relaying the stream is killed (SIGKILL), or the dialing app is interrupted (SIGTERM).
/// The listener must then exit non-zero, never print "received N bytes" and exit 0 for an unfinished stream; what it
/// wrote before is a correct prefix. Since issue 13 a killed manager breaks nothing: the nodes hold their rules while it
/// is away, so that stream goes on past the rules' lifetime (and is then broken by killing the dialing node).
/// </summary>
/// <remarks>One class per cause, so they (some bounded by the 30 s session idle timeout) run in parallel.</remarks>
public abstract partial class TruncatedStreamScenario(string scratchPrefix) : ExecutableTestBase(scratchPrefix)
{
    private static readonly TimeSpan Limit = TimeSpan.FromSeconds(90);
    private const int Seed = 121;
    private const int BeforeBreak = 2 << 20;

    protected enum Cause
    {
        RelayKilled,
        ManagerKilledStreamGoesOn,
        DialingNodeKilled,
        ReceivingNodeKilled,
        DialingAppKilled,
        DialingAppTerminated,
        MessengerKilled,
    }

    protected async Task RunAsync(Cause cause)
    {
        var processes = new List<SkywireProcess>();
        var gate = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        try
        {
            var managerArgs = new List<string> { "manager", "--listen", "127.0.0.1:0", "--key", FilePath("manager.json") };
            if (cause == Cause.ManagerKilledStreamGoesOn)
            {
                managerArgs.AddRange(["--rule-ttl", "3"]);
            }

            var manager = Start(processes, managerArgs);
            var managerLine = await manager.WaitForLineAsync("listening on", Limit);
            var managerKey = ManagerKey().Match(managerLine).Groups[1].Value;
            var managerAt = $"{managerKey}@127.0.0.1:{ManagerLine().Match(managerLine).Groups[1].Value}";

            // Relayed by a messenger: the nodes have no link (the manager has no route between them) and try no direct
            // link, so the stream goes through the messenger (docs/messenger.md "Relayed streams").
            SkywireProcess? messenger = null;
            string[] nodeExtra = [];
            if (cause == Cause.MessengerKilled)
            {
                messenger = Start(processes, ["messenger", "--listen", "127.0.0.1:0", "--key", FilePath("messenger.json")]);
                var line = MessengerLine().Match(await messenger.WaitForStdoutLineAsync("listening on", Limit));
                nodeExtra = ["--messenger", $"{line.Groups[1].Value}@{line.Groups[2].Value}", "--direct-timeout", "0"];
            }

            var names = cause is Cause.RelayKilled or Cause.ManagerKilledStreamGoesOn ? new[] { "a", "b", "d" } : ["a", "d"];
            var nodes = new Dictionary<string, (SkywireProcess Process, string Key, string AppsPort)>();
            foreach (var name in names)
            {
                var node = Start(processes, ["node", "--manager", managerAt, "--key", FilePath(name + ".json"), "--app-token-file", FilePath(name + ".token"), .. nodeExtra]);
                var m = NodeLine().Match(await node.WaitForLineAsync(" apps 127.0.0.1", Limit));
                nodes[name] = (node, m.Groups[1].Value, m.Groups[2].Value);
            }

            string[] Cli(params string[] args) => ["cli", "--manager", managerAt, "--key", FilePath("manager.json"), .. args];
            if (messenger is null)
            {
                for (var i = 1; i < names.Length; i++)
                {
                    await LinkAsync(Cli("link", nodes[names[i - 1]].Key, nodes[names[i]].Key), Limit);
                }

                await WaitForLinksUpAsync(Cli("links"), 2 * (names.Length - 1), Limit);
            }

            var listener = Start(processes, ["app", "nc", "--node-apps", "127.0.0.1:" + nodes["d"].AppsPort, "--token-file", FilePath("d.token"), "--name", "sink", "--listen"]);
            await listener.WaitForLineAsync("listening as", Limit);
            var dialer = Start(processes, ["app", "nc", "--node-apps", "127.0.0.1:" + nodes["a"].AppsPort, "--token-file", FilePath("a.token"), "--name", "src",
                "--to", $"{nodes["d"].Key}/sink"], new GatedPatternStream(Seed, BeforeBreak, gate.Task));
            await WaitUntilAsync(() => listener.Stdout.Length >= BeforeBreak || listener.HasExited, "the listener received the first bytes");

            switch (cause)
            {
                case Cause.RelayKilled:
                    await nodes["b"].Process.DisposeAsync();
                    break;
                case Cause.ManagerKilledStreamGoesOn:
                    await manager.DisposeAsync();
                    break;
                case Cause.DialingNodeKilled:
                    await nodes["a"].Process.DisposeAsync();
                    break;
                case Cause.ReceivingNodeKilled:
                    // SIGKILL: the kernel, not the node, closes the listener's app-API connection.
                    await nodes["d"].Process.DisposeAsync();
                    break;
                case Cause.DialingAppKilled:
                    await dialer.DisposeAsync();
                    break;
                case Cause.MessengerKilled:
                    await messenger!.DisposeAsync();
                    break;
                case Cause.DialingAppTerminated:
                    // SIGTERM (Ctrl+C): the sender stops before the end of its input; that is not the end of the stream.
                    await dialer.TerminateAsync();
                    break;
            }

            // The sender goes on writing into the dead stream.
            gate.TrySetResult();
            if (cause == Cause.ManagerKilledStreamGoesOn)
            {
                // Issue 13: without a manager the stream still flows well past the 3 s rule lifetime (before, it broke there).
                var away = System.Diagnostics.Stopwatch.StartNew();
                await WaitUntilAsync(() => away.Elapsed > TimeSpan.FromSeconds(8) || listener.HasExited, "twice the rules' lifetime");
                var mark = listener.Stdout.Length;
                await WaitUntilAsync(() => listener.Stdout.Length > mark + (1 << 20) || listener.HasExited, "more bytes without a manager");
                Assert.False(listener.HasExited, "the stream broke while the manager was away:\n" + listener.Stderr);
                await nodes["a"].Process.DisposeAsync();
            }

            var code = await listener.WaitForExitAsync(Limit);
            var received = listener.Stdout;
            Assert.True(code != 0, $"the listener exited 0 after {received.Length} bytes of an unfinished stream:\n{listener.Stderr}");
            Assert.DoesNotContain("received", listener.Stderr, StringComparison.Ordinal);
            Assert.True(received.AsSpan().SequenceEqual(GatedPatternStream.Expected(Seed, received.Length)), "the listener wrote wrong bytes");
            if (cause is Cause.RelayKilled or Cause.ManagerKilledStreamGoesOn or Cause.DialingAppTerminated or Cause.MessengerKilled)
            {
                Assert.NotEqual(0, await dialer.WaitForExitAsync(Limit));
            }
        }
        finally
        {
            gate.TrySetResult();
            foreach (var p in processes)
            {
                await p.DisposeAsync();
            }
        }
    }

    private static SkywireProcess Start(List<SkywireProcess>? processes, IEnumerable<string> args, Stream? stdin = null)
    {
        var process = SkywireProcess.Start(null, args, stdin);
        processes?.Add(process);
        return process;
    }

    private static async Task WaitUntilAsync(Func<bool> condition, string what)
    {
        var deadline = DateTime.UtcNow + Limit;
        while (!condition())
        {
            Assert.True(DateTime.UtcNow < deadline, "timed out waiting for: " + what);
            await Task.Delay(50);
        }
    }

    [System.Text.RegularExpressions.GeneratedRegex(@"manager ([0-9a-f]{66}) listening")]
    private static partial System.Text.RegularExpressions.Regex ManagerKey();

    [System.Text.RegularExpressions.GeneratedRegex(@"messenger ([0-9a-f]{66}) listening on (\S+)")]
    private static partial System.Text.RegularExpressions.Regex MessengerLine();

    /// <summary>
    /// Endless deterministic bytes (the dialer's stdin): the first <c>gateAfter</c> bytes at once, the rest after
    /// <c>gate</c> completes, without end.
    /// </summary>
    private sealed class GatedPatternStream(int seed, long gateAfter, Task gate) : Stream
    {
        private long _position;

        public static byte[] Expected(int seed, int length)
        {
            var bytes = new byte[length];
            Fill(bytes, 0, seed);
            return bytes;
        }

        private static void Fill(Span<byte> buffer, long offset, int seed)
        {
            for (var i = 0; i < buffer.Length; i++)
            {
                var x = ((ulong)(offset + i) * 0x9E3779B97F4A7C15UL) ^ ((ulong)seed * 0xC2B2AE3D27D4EB4FUL);
                x ^= x >> 29;
                buffer[i] = (byte)(x ^ (x >> 17));
            }
        }

        public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
        {
            if (_position >= gateAfter)
            {
                await gate.WaitAsync(cancellationToken);
            }

            var n = (int)Math.Min(buffer.Length, _position < gateAfter ? gateAfter - _position : 64 * 1024);
            Fill(buffer.Span[..n], _position, seed);
            _position += n;
            return n;
        }

        public override int Read(byte[] buffer, int offset, int count) => ReadAsync(buffer.AsMemory(offset, count)).AsTask().GetAwaiter().GetResult();
        public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) => ReadAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();
        public override bool CanRead => true;
        public override bool CanSeek => false;
        public override bool CanWrite => false;
        public override long Length => throw new NotSupportedException();
        public override long Position { get => _position; set => throw new NotSupportedException(); }
        public override void Flush() { }
        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
        public override void SetLength(long value) => throw new NotSupportedException();
        public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
    }
}

[Trait("Category", "E2E")]
public sealed class RelayKilledProcessTests() : TruncatedStreamScenario("skywire-trunc-relay-")
{
    [Fact]
    public Task NcListener_RelayKilledWithoutAlternative_ExitsNonZero() => RunAsync(Cause.RelayKilled);
}

[Trait("Category", "E2E")]
public sealed class RulesExpiredProcessTests() : TruncatedStreamScenario("skywire-trunc-rules-")
{
    [Fact]
    public Task NcListener_ManagerKilled_StreamGoesOn_ThenDialingNodeKilled_ExitsNonZero() => RunAsync(Cause.ManagerKilledStreamGoesOn);
}

[Trait("Category", "E2E")]
public sealed class PeerKilledProcessTests() : TruncatedStreamScenario("skywire-trunc-peer-")
{
    [Fact]
    public Task NcListener_DialingNodeKilled_ExitsNonZero() => RunAsync(Cause.DialingNodeKilled);
}

[Trait("Category", "E2E")]
public sealed class ReceiverNodeKilledProcessTests() : TruncatedStreamScenario("skywire-trunc-rnode-")
{
    [Fact]
    public Task NcListener_ItsOwnNodeKilled_ExitsNonZero() => RunAsync(Cause.ReceivingNodeKilled);
}

[Trait("Category", "E2E")]
public sealed class DialingAppKilledProcessTests() : TruncatedStreamScenario("skywire-trunc-dapp-")
{
    [Fact]
    public Task NcListener_DialingAppKilled_ExitsNonZero() => RunAsync(Cause.DialingAppKilled);
}

[Trait("Category", "E2E")]
public sealed class DialingAppTerminatedProcessTests() : TruncatedStreamScenario("skywire-trunc-dterm-")
{
    [Fact]
    public Task NcListener_DialingAppTerminatedMidStream_ExitsNonZero() => RunAsync(Cause.DialingAppTerminated);
}

[Trait("Category", "E2E")]
public sealed class MessengerKilledProcessTests() : TruncatedStreamScenario("skywire-trunc-msgr-")
{
    [Fact]
    public Task NcListener_StreamRelayedByAMessenger_MessengerKilled_BothExitNonZero() => RunAsync(Cause.MessengerKilled);
}
