using System.Diagnostics;

namespace Skywire.IntegrationTests.EndToEnd;

/// <summary>
/// Issue 13.4 through the built executables: on a mesh with two disjoint paths (a-b-d and a-c-d), the relay that carries
/// a `skywire app nc` transfer is killed with SIGKILL mid-transfer; the manager re-routes over the other path and the
/// transfer completes byte-exact. The stall (the longest time the receiver got no byte after the kill) is measured and
/// printed; docs/benchmarks.md publishes it. <c>SKYWIRE_FAILOVER_REPORT</c> names a file the figure is appended to.
/// </summary>
[Trait("Category", "E2E")]
public sealed class FailoverProcessTests() : ExecutableTestBase("skywire-failover-")
{
    private static readonly TimeSpan Limit = TimeSpan.FromSeconds(120);
    private const long Size = 48L * 1024 * 1024;
    /// <summary>The source's pace: the transfer lasts about 16 s, so the relay dies mid-transfer even on a loaded machine.</summary>
    private const long Rate = 3L * 1024 * 1024;
    private const int Seed = 134;

    [Fact]
    public async Task RelayKilledMidTransfer_CompletesByteExactOnTheOtherPath_StallMeasured()
    {
        var processes = new List<SkywireProcess>();
        try
        {
            var manager = Start(processes, ["manager", "--listen", "127.0.0.1:0", "--key", FilePath("manager.json")]);
            var managerLine = await manager.WaitForLineAsync("listening on", Limit);
            var managerAt = $"{managerLine.Split(' ')[1]}@127.0.0.1:{ManagerLine().Match(managerLine).Groups[1].Value}";
            var nodes = new Dictionary<string, (SkywireProcess Process, string Key, string AppsPort)>();
            foreach (var name in new[] { "a", "b", "c", "d" })
            {
                var node = Start(processes, ["node", "--manager", managerAt, "--key", FilePath(name + ".json"), "--app-token-file", FilePath(name + ".token")]);
                var m = NodeLine().Match(await node.WaitForLineAsync(" apps 127.0.0.1", Limit));
                nodes[name] = (node, m.Groups[1].Value, m.Groups[2].Value);
            }

            string[] Cli(params string[] args) => ["cli", "--manager", managerAt, "--key", FilePath("manager.json"), .. args];
            foreach (var (x, y) in new[] { ("a", "b"), ("b", "d"), ("a", "c"), ("c", "d") })
            {
                await LinkAsync(Cli("link", nodes[x].Key, nodes[y].Key), Limit);
            }

            await WaitForAsync(Cli("links"), text => text.Split('\n').Count(l => l.Contains(" yes ", StringComparison.Ordinal)) >= 8, "all links routed");
            var listener = Start(processes, ["app", "nc", "--node-apps", "127.0.0.1:" + nodes["d"].AppsPort, "--token-file", FilePath("d.token"), "--name", "sink", "--listen"]);
            await listener.WaitForLineAsync("listening as", Limit);
            var dialer = Start(processes, ["app", "nc", "--node-apps", "127.0.0.1:" + nodes["a"].AppsPort, "--token-file", FilePath("a.token"), "--name", "src",
                "--to", $"{nodes["d"].Key}/sink"], new PatternStream(Seed, Size, Rate));
            var routes = await WaitForAsync(Cli("routes"), text => text.Contains(" > ", StringComparison.Ordinal), "the route");
            var path = routes.Split('\n').First(l => l.Contains(" > ", StringComparison.Ordinal));
            var relay = path.Contains(" > " + nodes["b"].Key[..12] + " > ", StringComparison.Ordinal) ? "b" : "c";
            await WaitUntilAsync(() => listener.StdoutLength >= 8 << 20, "the first 8 MiB");

            // kill -9 the relay and watch the receiver's byte count.
            var clock = Stopwatch.StartNew();
            var killedAt = clock.Elapsed;
            var lastGrowth = killedAt;
            var stall = TimeSpan.Zero;
            var lastLength = listener.StdoutLength;
            var killedAtBytes = lastLength;
            await nodes[relay].Process.DisposeAsync();
            while (!listener.HasExited && clock.Elapsed < Limit)
            {
                var length = listener.StdoutLength;
                var now = clock.Elapsed;
                if (length != lastLength)
                {
                    stall = TimeSpan.FromTicks(Math.Max(stall.Ticks, (now - lastGrowth).Ticks));
                    lastGrowth = now;
                    lastLength = length;
                }

                await Task.Delay(2);
            }

            Assert.Equal(0, await listener.WaitForExitAsync(Limit));
            Assert.Equal(0, await dialer.WaitForExitAsync(Limit));
            var received = listener.Stdout;
            Assert.Equal(Size, received.LongLength);
            Assert.True(received.AsSpan().SequenceEqual(PatternStream.Expected(Seed, Size)), "the bytes differ");
            var line = $"failover: relay {relay} killed after {killedAtBytes >> 20} MiB of {Size >> 20} MiB (sent at {Rate >> 20} MiB/s); longest stall after the kill {stall.TotalMilliseconds:0} ms";
            TestContext.Current.TestOutputHelper?.WriteLine(line);
            if (Environment.GetEnvironmentVariable("SKYWIRE_FAILOVER_REPORT") is { Length: > 0 } report)
            {
                await File.AppendAllLinesAsync(report, [line], TestContext.Current.CancellationToken);
            }

            // The kill came mid-transfer (the source is paced), so the stall measured is the failover's.
            Assert.True(killedAtBytes < Size - (8L << 20), line);
            // Loose on purpose (a loaded machine): the published figure comes from a quiet run.
            Assert.True(stall < TimeSpan.FromSeconds(20), line);
        }
        finally
        {
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

    private static async Task<string> WaitForAsync(string[] cli, Func<string, bool> done, string what)
    {
        var deadline = DateTime.UtcNow + Limit;
        while (true)
        {
            await using var query = SkywireProcess.Start(null, cli);
            Assert.Equal(0, await query.WaitForExitAsync(Limit));
            if (done(query.StdoutText))
            {
                return query.StdoutText;
            }

            Assert.True(DateTime.UtcNow < deadline, $"timed out waiting for {what}:\n{query.StdoutText}");
            await Task.Delay(200);
        }
    }

    private static async Task WaitUntilAsync(Func<bool> condition, string what)
    {
        var deadline = DateTime.UtcNow + Limit;
        while (!condition())
        {
            Assert.True(DateTime.UtcNow < deadline, "timed out waiting for: " + what);
            await Task.Delay(20);
        }
    }

    /// <summary>A finite deterministic byte stream (the dialer's stdin), read at most <paramref name="bytesPerSecond"/>.</summary>
    private sealed class PatternStream(int seed, long length, long bytesPerSecond) : Stream
    {
        private readonly long _started = TimeProvider.System.GetTimestamp();
        private long _position;

        public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
        {
            // Pacing, not synchronisation: the next chunk is due when the rate allows it.
            var due = TimeSpan.FromSeconds((double)_position / bytesPerSecond) - TimeProvider.System.GetElapsedTime(_started);
            if (due > TimeSpan.Zero)
            {
                await Task.Delay(due, cancellationToken);
            }

            return Read(buffer.Span[..(int)Math.Min(buffer.Length, 64 * 1024)]);
        }

        public override int Read(Span<byte> buffer)
        {
            var n = (int)Math.Min(buffer.Length, length - _position);
            Fill(buffer[..n], _position, seed);
            _position += n;
            return n;
        }

        public static byte[] Expected(int seed, long length)
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

        public override int Read(byte[] buffer, int offset, int count) => Read(buffer.AsSpan(offset, count));

        public override bool CanRead => true;
        public override bool CanSeek => false;
        public override bool CanWrite => false;
        public override long Length => length;
        public override long Position { get => _position; set => throw new NotSupportedException(); }
        public override void Flush() { }
        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
        public override void SetLength(long value) => throw new NotSupportedException();
        public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
    }
}
