using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using Skywire.Core.Crypto;
using Skywire.Core.Sdk;
using Skywire.Protocol;
using Skywire.TestKit;

namespace Skywire.IntegrationTests.EndToEnd;

/// <summary>
/// Issue 13.6: a 6-node mesh of real `skywire node` processes and a `skywire manager`, two nodes behind impairment
/// relays (1 % loss and 50 ms each way: 100 ms RTT on their links), continuous byte-exact transfers between apps (in
/// this process, through the SDK, which waits for restarted nodes), while relays are killed with SIGKILL and restarted
/// and the manager is killed and restarted; meanwhile two keys chat through a `skywire messenger` process that is killed
/// and restarted too. At the end: no transfer corrupted, every broken one reported to its app as
/// broken, descriptors and memory of the processes that ran throughout flat, no process died unasked, and a transfer
/// on every pair completes (the mesh healed by itself).
/// </summary>
/// <remarks>
/// <c>SKYWIRE_SOAK_SECONDS</c> sets the chaos time (default 25: the short run of the default test run; 1800 for the
/// report in docs/benchmarks.md); <c>SKYWIRE_SOAK_REPORT</c> names a file the summary is also written to;
/// <c>SKYWIRE_SOAK_LOGS</c> names a directory that receives every process's stderr at Information level (one file per
/// process, each incarnation appended as it is killed), to read what the manager and the nodes did when a run fails.
/// </remarks>
[Trait("Category", "E2E")]
public sealed partial class SoakProcessTests() : ExecutableTestBase("skywire-soak-")
{
    private const int NodeCount = 6;
    private static readonly TimeSpan Limit = TimeSpan.FromSeconds(120);

    // Square 0-1-2-3 with a chord of paths through 4 and 5 (the impaired nodes): every pair has two disjoint paths.
    private static readonly (int From, int To)[] Links = [(0, 1), (1, 2), (2, 3), (3, 0), (0, 4), (2, 4), (1, 5), (3, 5)];
    private static readonly (int From, int To)[] Pairs = [(0, 2), (1, 3), (4, 5), (5, 0)];
    private static readonly int[] Killable = [0, 1, 2, 3];

    private readonly List<string> _log = [];
    private readonly object _sync = new();
    private readonly Counters _counters = new();

    [Fact]
    public async Task SixNodeMesh_RelayAndManagerKills_LossAndDelay_NoCorruption_Heals()
    {
        var seconds = int.TryParse(Environment.GetEnvironmentVariable("SKYWIRE_SOAK_SECONDS"), CultureInfo.InvariantCulture, out var s) && s > 0 ? s : 25;
        var random = new Random(13);
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(TestContext.Current.CancellationToken);

        string managerKey;
        using (var key = KeyFile.LoadOrCreate(FilePath("manager.json")))
        {
            managerKey = key.Public.ToString();
        }

        var managerPort = FreeTcpPort();
        var managerAt = $"{managerKey}@127.0.0.1:{managerPort}";
        string[] managerArgs = ["manager", "--listen", $"127.0.0.1:{managerPort}", "--key", FilePath("manager.json"), "--rule-ttl", "15"];
        var impaired = new FaultOptions { DropRate = 0.01, Delay = TimeSpan.FromMilliseconds(50), Seed = 6 };
        var nodes = new NodeSlot[NodeCount];
        var relays = new List<UdpFaultRelay>();
        SkywireProcess? manager = null;
        SkywireProcess? messenger = null;
        var workers = new List<Task>();
        try
        {
            manager = Launch(managerArgs);
            await manager.WaitForLineAsync("listening on", Limit);
            var messengerAt = new IPEndPoint(IPAddress.Loopback, FreeTcpPort());
            string[] messengerArgs = ["messenger", "--listen", messengerAt.ToString(), "--key", FilePath("messenger.json")];
            messenger = Launch(messengerArgs);
            var messengerKey = PubKey.Parse(MessengerLine().Match(await messenger.WaitForStdoutLineAsync("listening on", Limit)).Groups[1].Value);
            for (var i = 0; i < NodeCount; i++)
            {
                var udp = new IPEndPoint(IPAddress.Loopback, FreeUdpPort());
                string[] args = ["node", "--manager", managerAt, "--key", FilePath($"n{i}.json"), "--app-token-file", FilePath($"n{i}.token"),
                    "--listen", udp.ToString(), "--apps", $"127.0.0.1:{FreeTcpPort()}"];
                if (i >= 4)
                {
                    var relay = new UdpFaultRelay(udp, impaired, impaired with { Seed = 60 + i });
                    relays.Add(relay);
                    args = [.. args, "--advertise", relay.ListenEndPoint.ToString()];
                }

                nodes[i] = new NodeSlot(i, args);
                nodes[i].Process = Launch(args);
                var line = NodeLine().Match(await nodes[i].Process!.WaitForLineAsync(" apps 127.0.0.1", Limit));
                nodes[i].Key = line.Groups[1].Value;
                nodes[i].Apps = new IPEndPoint(IPAddress.Loopback, int.Parse(line.Groups[2].Value, CultureInfo.InvariantCulture));
            }

            foreach (var (from, to) in Links)
            {
                await LinkAsync(["cli", "--manager", managerAt, "--key", FilePath("manager.json"), "link", nodes[from].Key, nodes[to].Key], Limit);
            }

            // Transfers run for the whole soak; the first of each pair completes before the chaos starts.
            foreach (var (from, to) in Pairs)
            {
                workers.Add(TransferLoopAsync(nodes[from], nodes[to], $"sink{from}{to}", stop.Token));
            }

            workers.Add(ChatLoopAsync(messengerAt, messengerKey, stop.Token));
            await WaitUntilAsync(() => _counters.Completed >= Pairs.Length, "a first transfer on every pair");
            await WaitUntilAsync(() => _chat.LastHeard("alice") > 0 && _chat.LastHeard("bob") > 0, "a first chat line each way");
            var before = Sample(nodes.Where(n => n.Index >= 4).Select(n => n.Process!).ToList());

            // Chaos. The processes that run throughout are sampled along the way (a leak grows steadily; the GC heap
            // settles), about 20 times a run, at least every 10 s.
            var chaos = Stopwatch.StartNew();
            var sampleEvery = TimeSpan.FromSeconds(Math.Max(10, seconds / 20));
            var nextSample = sampleEvery;
            var series = new List<(TimeSpan At, List<(int Fds, long RssKb)> Sample)> { (TimeSpan.Zero, before) };
            while (chaos.Elapsed < TimeSpan.FromSeconds(seconds))
            {
                if (chaos.Elapsed >= nextSample)
                {
                    series.Add((chaos.Elapsed, Sample(nodes.Where(n => n.Index >= 4).Select(n => n.Process!).ToList())));
                    nextSample += sampleEvery;
                }

                await Task.Delay(TimeSpan.FromMilliseconds(random.Next(1500, 4000)), stop.Token);
                var roll = random.NextDouble();
                if (roll < 0.55)
                {
                    var victim = nodes[Killable[random.Next(Killable.Length)]];
                    Note($"kill -9 node {victim.Index}");
                    await Killed($"node{victim.Index}", victim.Process!); // SIGKILL
                    _counters.Kills++;
                    await Task.Delay(TimeSpan.FromMilliseconds(random.Next(500, 3000)), stop.Token);
                    victim.Process = Launch(victim.Args);
                    await victim.Process.WaitForLineAsync(" apps 127.0.0.1", Limit);
                }
                else if (roll < 0.8)
                {
                    Note("kill -9 manager");
                    await Killed("manager", manager);
                    _counters.ManagerRestarts++;
                    await Task.Delay(TimeSpan.FromMilliseconds(random.Next(500, 2000)), stop.Token);
                    manager = Launch(managerArgs);
                    await manager.WaitForLineAsync("listening on", Limit);
                }
                else if (roll < 0.9)
                {
                    Note("kill -9 messenger");
                    await Killed("messenger", messenger);
                    _counters.MessengerRestarts++;
                    await Task.Delay(TimeSpan.FromMilliseconds(random.Next(500, 2000)), stop.Token);
                    messenger = Launch(messengerArgs);
                    await messenger.WaitForStdoutLineAsync("listening on", Limit);
                }
            }

            // Healed: every pair completes a transfer after the chaos, without any command.
            var completedAtEnd = Enumerable.Range(0, Pairs.Length).Select(i => _counters.CompletedOn(i)).ToArray();
            await WaitUntilAsync(() => Enumerable.Range(0, Pairs.Length).All(i => _counters.CompletedOn(i) > completedAtEnd[i]), "a transfer on every pair after the chaos");
            var chatAtEnd = (Alice: _chat.LastSent("alice"), Bob: _chat.LastSent("bob"));
            await WaitUntilAsync(() => _chat.LastHeard("alice") > chatAtEnd.Alice && _chat.LastHeard("bob") > chatAtEnd.Bob, "a chat line each way after the chaos");
            var after = Sample(nodes.Where(n => n.Index >= 4).Select(n => n.Process!).ToList());
            await stop.CancelAsync();
            await Task.WhenAll(workers).WaitAsync(Limit, TestContext.Current.CancellationToken);

            var summary = $"soak {seconds} s: {_counters.Completed} transfers completed byte-exact ({_counters.Bytes / (1024 * 1024)} MiB), "
                + $"{_counters.Aborted} broken and reported to their apps, {_counters.Corrupted} corrupted; {_counters.Kills} node kills, {_counters.ManagerRestarts} manager kills, {_counters.MessengerRestarts} messenger kills; chat: {_chat}; "
                + $"impaired relays dropped {relays.Sum(r => r.ToTarget.Dropped + r.FromTarget.Dropped)} datagrams; "
                + string.Join("; ", before.Select((b, i) => $"node {4 + i}: fds {b.Fds} -> {after[i].Fds}, RSS {b.RssKb / 1024} -> {after[i].RssKb / 1024} MiB"));
            Note(summary);
            series.Add((chaos.Elapsed, after));
            foreach (var (at, sample) in series)
            {
                Note($"sample at {at.TotalSeconds:0} s: " + string.Join("; ", sample.Select((x, i) => $"node {4 + i} fds {x.Fds} RSS {x.RssKb / 1024} MiB")));
            }
            if (Environment.GetEnvironmentVariable("SKYWIRE_SOAK_REPORT") is { Length: > 0 } report)
            {
                await File.WriteAllLinesAsync(report, _log, TestContext.Current.CancellationToken);
            }

            Assert.Equal(0, _counters.Corrupted);
            Assert.Equal(0, _chat.Corrupted);
            Assert.True(_counters.ReceiverVerified >= _counters.Completed, "a sender saw a clean end the receiver never verified");
            Assert.True(manager.HasExited is false, "the manager died unasked:\n" + manager.Stderr);
            Assert.True(messenger.HasExited is false, "the messenger died unasked:\n" + messenger.Stderr);
            foreach (var node in nodes)
            {
                Assert.False(node.Process!.HasExited, $"node {node.Index} died unasked:\n{node.Process.Stderr}");
            }

            for (var i = 0; i < before.Count; i++)
            {
                // Flat: a leak grows with the number of transfers and restarts; these bounds hold for a 30-minute run.
                Assert.True(after[i].Fds <= before[i].Fds + 64, $"descriptors grew: {summary}");
                Assert.True(after[i].RssKb <= (before[i].RssKb * 2) + (64 * 1024), $"memory grew: {summary}");
            }

            if (seconds >= 600)
            {
                // A long run must level off: the last third of the samples stays near the middle third's peak.
                var third = series.Count / 3;
                for (var i = 0; i < before.Count; i++)
                {
                    var middle = series.Skip(third).Take(third).Max(x => x.Sample[i].RssKb);
                    var late = series.Skip(2 * third).Max(x => x.Sample[i].RssKb);
                    Assert.True(late <= (middle * 5 / 4) + (16 * 1024), $"node {4 + i}: RSS still growing in the last third ({middle / 1024} -> {late / 1024} MiB)");
                }
            }
        }
        finally
        {
            await stop.CancelAsync();
            foreach (var node in nodes)
            {
                if (node?.Process is { } p)
                {
                    await Killed($"node{node.Index}", p);
                }
            }

            if (manager is not null)
            {
                await Killed("manager", manager);
            }

            if (messenger is not null)
            {
                await Killed("messenger", messenger);
            }

            foreach (var relay in relays)
            {
                relay.Dispose();
            }

            foreach (var line in _log)
            {
                TestContext.Current.TestOutputHelper?.WriteLine(line);
            }

            if (LogDirectory is { } dir)
            {
                await File.WriteAllLinesAsync(Path.Combine(dir, "soak.log"), _log, CancellationToken.None);
            }
        }
    }

    /// <summary>Starts a `skywire` process; with <c>SKYWIRE_SOAK_LOGS</c> set it logs at Information level.</summary>
    private static SkywireProcess Launch(string[] args) => LogDirectory is null
            ? SkywireProcess.Start(null, args)
            : SkywireProcess.Start(null, args, environment: new Dictionary<string, string> { ["SKYWIRE_LOG"] = "Information" });

    /// <summary>Kills <paramref name="process"/> (SIGKILL) and, with <c>SKYWIRE_SOAK_LOGS</c> set, appends its stderr to the log of <paramref name="name"/>.</summary>
    private async Task Killed(string name, SkywireProcess process)
    {
        var pid = process.Id;
        await process.DisposeAsync();
        if (LogDirectory is { } dir)
        {
            Directory.CreateDirectory(dir);
            await File.AppendAllTextAsync(Path.Combine(dir, name + ".log"), $"{process.Stderr}\n--- pid {pid} killed at {DateTime.UtcNow:HH:mm:ss.fff} ---\n");
        }
    }

    private static string? LogDirectory => Environment.GetEnvironmentVariable("SKYWIRE_SOAK_LOGS") is { Length: > 0 } dir ? dir : null;

    /// <summary>Transfers from <paramref name="from"/> to <paramref name="to"/> until stopped; counts how each one ended.</summary>
    private async Task TransferLoopAsync(NodeSlot from, NodeSlot to, string sink, CancellationToken stop)
    {
        var pair = Array.IndexOf(Pairs, (from.Index, to.Index));
        await using var receiver = await SkywireApp.ConnectAsync(AppOptions(to), stop);
        await receiver.RegisterAsync(sink, "soak", stop);
        var accepting = AcceptLoopAsync(receiver, stop);
        await using var sender = await SkywireApp.ConnectAsync(AppOptions(from), stop);
        var random = new Random(pair);
        var backoff = new Core.Channels.Backoff(TimeSpan.FromMilliseconds(100), TimeSpan.FromSeconds(2));
        var broken = false;
        while (!stop.IsCancellationRequested)
        {
            var size = random.Next(256 * 1024, 2 * 1024 * 1024);
            var seed = random.Next();
            try
            {
                if (broken)
                {
                    // Back off after a broken transfer, as a real app would: the mesh is healing.
                    await backoff.DelayAsync(TimeProvider.System, stop);
                }

                await using var stream = await sender.DialAsync(to.Key, sink, stop).WaitAsync(TimeSpan.FromSeconds(30), stop);
                var header = new byte[8];
                BitConverter.TryWriteBytes(header.AsSpan(0, 4), size);
                BitConverter.TryWriteBytes(header.AsSpan(4, 4), seed);
                await stream.WriteAsync(header, stop);
                await stream.WriteAsync(Pattern(seed, size), stop);
                await stream.CompleteWritesAsync(stop);
                // The receiver closes its side once it verified every byte: a clean end here means it did.
                var rest = new byte[16];
                var n = await stream.ReadAsync(rest, stop).AsTask().WaitAsync(TimeSpan.FromSeconds(90), stop);
                if (n != 0)
                {
                    throw new InvalidOperationException("the receiver sent data");
                }

                _counters.Complete(pair, size);
                broken = false;
                backoff.Reset();
            }
            catch (OperationCanceledException) when (stop.IsCancellationRequested)
            {
                break;
            }
            catch (Exception ex) when (ex is IOException or Core.AppApi.AppApiException or TimeoutException or ObjectDisposedException)
            {
                // Broken and told so: the app saw an error, never a clean end.
                _counters.Abort();
                broken = true;
                Note($"transfer {from.Index}->{to.Index} broken: {ex.GetType().Name}: {ex.Message}");
            }
        }

        await accepting;
    }

    private async Task AcceptLoopAsync(SkywireApp receiver, CancellationToken stop)
    {
        var running = new List<Task>();
        while (!stop.IsCancellationRequested)
        {
            SkywireStream stream;
            try
            {
                stream = await receiver.AcceptAsync(stop);
            }
            catch (OperationCanceledException)
            {
                break;
            }
            catch (Exception ex) when (ex is IOException or Core.AppApi.AppApiException)
            {
                Note("accept failed: " + ex.Message);
                continue;
            }

            running.Add(VerifyAsync(stream, stop));
        }

        await Task.WhenAll(running);
    }

    private async Task VerifyAsync(SkywireStream stream, CancellationToken stop)
    {
        await using (stream)
        {
            try
            {
                var header = new byte[8];
                await stream.ReadExactlyAsync(header, stop);
                var size = BitConverter.ToInt32(header, 0);
                var expected = Pattern(BitConverter.ToInt32(header, 4), size);
                var got = new byte[size + 1];
                var total = 0;
                int n;
                while ((n = await stream.ReadAsync(got.AsMemory(total, Math.Min(64 * 1024, got.Length - total)), stop)) > 0)
                {
                    total += n;
                    if (total == got.Length)
                    {
                        break;
                    }
                }

                if (total != size || !got.AsSpan(0, size).SequenceEqual(expected))
                {
                    // A clean end with the wrong bytes: the one thing that must never happen.
                    _counters.Corrupt();
                    Note($"CORRUPTED: {total} of {size} bytes, content {(got.AsSpan(0, Math.Min(total, size)).SequenceEqual(expected.AsSpan(0, Math.Min(total, size))) ? "a correct prefix" : "wrong")}");
                    return;
                }

                _counters.Verified();
                await stream.CompleteWritesAsync(stop);
            }
            catch (Exception ex) when (ex is IOException or OperationCanceledException or EndOfStreamException)
            {
                // Broken: the receiving app was told (an error, or a short stream it rejected above).
            }
        }
    }

    private static SkywireAppOptions AppOptions(NodeSlot node) => new()
    {
        NodeApps = node.Apps,
        TokenFile = node.TokenFile,
        RetryDelay = TimeSpan.FromMilliseconds(100),
        MaxRetryDelay = TimeSpan.FromSeconds(1),
    };

    private static byte[] Pattern(int seed, int size)
    {
        var bytes = new byte[size];
        new Random(seed).NextBytes(bytes);
        return bytes;
    }

    private void Note(string line)
    {
        lock (_sync)
        {
            _log.Add($"{DateTime.UtcNow:HH:mm:ss.fff} {line}");
        }
    }

    private static async Task WaitUntilAsync(Func<bool> condition, string what)
    {
        var deadline = DateTime.UtcNow + Limit;
        while (!condition())
        {
            Assert.True(DateTime.UtcNow < deadline, "timed out waiting for: " + what);
            await Task.Delay(100);
        }
    }

    [System.Text.RegularExpressions.GeneratedRegex(@"messenger ([0-9a-f]{66}) listening")]
    private static partial System.Text.RegularExpressions.Regex MessengerLine();

    private static List<(int Fds, long RssKb)> Sample(List<SkywireProcess> processes) =>
        [.. processes.Select(p => (Directory.GetFiles($"/proc/{p.Id}/fd").Length, RssKb(p.Id)))];

    private static long RssKb(int pid)
    {
        // The process is `dotnet skywire.dll` itself (started without a shell).
        var line = File.ReadLines($"/proc/{pid}/status").First(l => l.StartsWith("VmRSS:", StringComparison.Ordinal));
        return long.Parse(line.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1], CultureInfo.InvariantCulture);
    }

    private static int FreeTcpPort()
    {
        using var s = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        s.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        return ((IPEndPoint)s.LocalEndPoint!).Port;
    }

    private static int FreeUdpPort()
    {
        using var s = new Socket(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp);
        s.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        return ((IPEndPoint)s.LocalEndPoint!).Port;
    }

    private sealed class NodeSlot(int index, string[] args)
    {
        public int Index { get; } = index;
        public string[] Args { get; } = args;
        public string TokenFile => Args[Array.IndexOf(Args, "--app-token-file") + 1];
        public SkywireProcess? Process { get; set; }
        public string Key { get; set; } = "";
        public IPEndPoint Apps { get; set; } = new(IPAddress.Loopback, 0);
    }

    private sealed class Counters
    {
        private readonly long[] _perPair = new long[Pairs.Length];
        private long _completed;
        private long _bytes;
        private long _aborted;
        private long _corrupted;
        private long _verified;

        public int Kills { get; set; }
        public int ManagerRestarts { get; set; }
        public int MessengerRestarts { get; set; }
        public long Completed => Interlocked.Read(ref _completed);
        public long Bytes => Interlocked.Read(ref _bytes);
        public long Aborted => Interlocked.Read(ref _aborted);
        public long Corrupted => Interlocked.Read(ref _corrupted);
        public long ReceiverVerified => Interlocked.Read(ref _verified);

        public long CompletedOn(int pair) => Interlocked.Read(ref _perPair[pair]);

        public void Complete(int pair, int size)
        {
            Interlocked.Increment(ref _perPair[pair]);
            Interlocked.Increment(ref _completed);
            Interlocked.Add(ref _bytes, size);
        }

        public void Abort() => Interlocked.Increment(ref _aborted);

        public void Corrupt() => Interlocked.Increment(ref _corrupted);

        public void Verified() => Interlocked.Increment(ref _verified);
    }
}
