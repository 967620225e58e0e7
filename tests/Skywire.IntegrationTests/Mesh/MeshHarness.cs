using System.Net;
using System.Security.Cryptography;
using Skywire.Core.Control;
using Skywire.Core.Crypto;
using Skywire.Core.Manager;
using Skywire.Core.Node;
using Skywire.Core.Sdk;
using Skywire.TestKit.Logging;

namespace Skywire.IntegrationTests.Mesh;

/// <summary>
/// A manager and nodes in this process, on loopback, every port chosen by the OS. Everything logs to one
/// <see cref="TestLog"/> (<see cref="Log"/>, the harness's own unless the test passes one): an Error-level log the test
/// did not declare with <see cref="TestLog.ExpectError(int)"/> fails the test when the log is disposed, and a node whose
/// run ended with an exception instead of stopping cleanly fails it when the harness is disposed.
/// </summary>
public sealed class MeshHarness : IAsyncDisposable
{
    public static readonly TimeSpan Limit = TimeSpan.FromSeconds(60);

    private readonly List<NodeHost> _nodes = [];
    private readonly TestLog _log;
    private readonly bool _ownsLog;

    private readonly ManagerOptions _managerOptions;

    private MeshHarness(ManagerServer manager, KeyPair managerKey, ManagerOptions managerOptions, TestLog log, bool ownsLog)
    {
        Manager = manager;
        ManagerKey = managerKey;
        _managerOptions = managerOptions;
        _log = log;
        _ownsLog = ownsLog;
    }

    /// <summary>The log of the manager and every node.</summary>
    public TestLog Log => _log;

    public ManagerServer Manager { get; private set; }

    /// <summary>
    /// Stops the manager and starts a new one with the same key on the same address (a restart: nothing of its state
    /// survives unless its store keeps it). <paramref name="whileDown"/> runs while no manager listens;
    /// <paramref name="reconfigure"/> changes the new manager's options (e.g. a store opened again from its file).
    /// </summary>
    public async Task RestartManagerAsync(Func<Task>? whileDown = null, Func<ManagerOptions, ManagerOptions>? reconfigure = null)
    {
        var endPoint = Manager.LocalEndPoint;
        await Manager.DisposeAsync();
        if (whileDown is not null)
        {
            await whileDown();
        }

        var options = _managerOptions with { Listen = endPoint };
        Manager = new ManagerServer(ManagerKey, reconfigure is null ? options : reconfigure(options), _log);
        Manager.Start();
    }

    public KeyPair ManagerKey { get; }

    public IReadOnlyList<NodeHost> Nodes => _nodes;

    /// <summary>
    /// Starts a manager (options: the harness sets the listener and a 200 ms report interval). <paramref name="log"/>:
    /// a log the test owns and disposes itself; null: the harness's own, checked when the harness is disposed.
    /// </summary>
    public static MeshHarness Start(ManagerOptions? options = null, TestLog? log = null)
    {
        var key = KeyPair.Generate();
        var ownsLog = log is null;
        log ??= new TestLog(Output());
        var managerOptions = (options ?? new ManagerOptions()) with { Listen = new IPEndPoint(IPAddress.Loopback, 0), ReportInterval = TimeSpan.FromMilliseconds(200) };
        var manager = new ManagerServer(key, managerOptions, log);
        manager.Start();
        return new MeshHarness(manager, key, managerOptions, log, ownsLog);
    }

    private static Action<string>? Output() => TestContext.Current.TestOutputHelper is { } output ? output.WriteLine : null;

    public async Task<NodeHost> AddNodeAsync(Func<NodeOptions, NodeOptions>? configure = null, KeyPair? key = null)
    {
        var options = new NodeOptions { Manager = new ManagerAddress(Manager.LocalEndPoint, ManagerKey.Public) };
        options = options with
        {
            DataPlane = options.DataPlane with { ProbeInterval = TimeSpan.FromMilliseconds(200), DeadAfter = TimeSpan.FromSeconds(2) },
        };
        if (configure is not null)
        {
            options = configure(options);
        }

        var node = new NodeHost(key ?? KeyPair.Generate(), options, _log);
        await node.StartAsync();
        _nodes.Add(node);
        return node;
    }

    public async Task<NodeHost[]> AddNodesAsync(int count)
    {
        var nodes = new NodeHost[count];
        for (var i = 0; i < count; i++)
        {
            nodes[i] = await AddNodeAsync();
        }

        return nodes;
    }

    /// <summary>Asks <paramref name="a"/> to link to <paramref name="b"/> and waits until the manager sees the link from both ends.</summary>
    public async Task LinkAsync(NodeHost a, NodeHost b)
    {
        await Manager.Controller.LinkNodesAsync(a.PublicKey, b.PublicKey, CancellationToken.None);
        await WaitUntilAsync(() =>
        {
            var links = Manager.Controller.ListLinks().Links;
            return links.Any(l => l.From == a.NodeKey && l.To == b.NodeKey && l.Up) && links.Any(l => l.From == b.NodeKey && l.To == a.NodeKey && l.Up);
        }, $"link {a.NodeKey[..8]}-{b.NodeKey[..8]} reported up");
    }

    public static async Task WaitUntilAsync(Func<bool> condition, string what)
    {
        var deadline = DateTime.UtcNow + Limit;
        while (!condition())
        {
            if (DateTime.UtcNow > deadline)
            {
                throw new TimeoutException("timed out waiting for: " + what);
            }

            await Task.Delay(20);
        }
    }

    public static Task<SkywireApp> AppAsync(NodeHost node) => SkywireApp.ConnectAsync(node.AppsEndPoint, node.AppToken);

    /// <summary>Sends <paramref name="size"/> pseudo-random bytes from app "src" on <paramref name="from"/> to app "sink" on <paramref name="to"/>; returns (sent hash, received hash, bytes received).</summary>
    public static async Task<(byte[] Sent, byte[] Received, long Count)> TransferAsync(NodeHost from, NodeHost to, long size, Func<long, Task>? onProgress = null)
    {
        await using var sink = await AppAsync(to);
        await sink.RegisterAsync("sink" + Guid.NewGuid().ToString("n")[..6], "test");
        await using var source = await AppAsync(from);
        var acceptTask = sink.AcceptAsync();
        await using var outbound = await source.DialAsync(to.NodeKey, sink.Name!).WaitAsync(Limit);
        await using var inbound = await acceptTask.WaitAsync(Limit);

        var receive = Task.Run(async () =>
        {
            using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
            var buffer = new byte[64 * 1024];
            long total = 0;
            int n;
            while ((n = await inbound.ReadAsync(buffer)) > 0)
            {
                hash.AppendData(buffer, 0, n);
                total += n;
            }

            return (hash.GetHashAndReset(), total);
        });

        using var sentHash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        var rng = new Random(42);
        var chunk = new byte[64 * 1024];
        long sent = 0;
        var nextMark = size / 4;
        while (sent < size)
        {
            var n = (int)Math.Min(chunk.Length, size - sent);
            rng.NextBytes(chunk.AsSpan(0, n));
            sentHash.AppendData(chunk, 0, n);
            await outbound.WriteAsync(chunk.AsMemory(0, n));
            sent += n;
            if (onProgress is not null && sent >= nextMark)
            {
                nextMark += size / 4;
                await onProgress(sent);
            }
        }

        outbound.CompleteWrites();
        var (received, count) = await receive.WaitAsync(TimeSpan.FromMinutes(3));
        return (sentHash.GetHashAndReset(), received, count);
    }

    public async Task RemoveNodeAsync(NodeHost node)
    {
        _nodes.Remove(node);
        var ended = await StopAsync(node);
        Assert.True(ended is null, ended);
    }

    /// <summary>Stops a node; returns null when its run ended cleanly, else how it ended.</summary>
    private static async Task<string?> StopAsync(NodeHost node)
    {
        await node.DisposeAsync();
        await node.Completion.WaitAsync(Limit).ContinueWith(_ => { }, TaskScheduler.Default);
        return node.Completion.IsCompletedSuccessfully
            ? null
            : $"node {node.NodeKey[..12]} ended {node.Completion.Status}: {node.Completion.Exception?.GetBaseException().Message}";
    }

    /// <summary>Stops every node and the manager, then fails if a node's run did not end cleanly or an unexpected error was logged.</summary>
    public async ValueTask DisposeAsync()
    {
        var failures = new List<string>();
        try
        {
            foreach (var node in _nodes)
            {
                if (await StopAsync(node) is { } failure)
                {
                    failures.Add(failure);
                }
            }

            await Manager.DisposeAsync();
            ManagerKey.Dispose();
        }
        finally
        {
            if (_ownsLog)
            {
                _log.Dispose();
            }
        }

        Assert.True(failures.Count == 0, string.Join(Environment.NewLine, failures));
    }
}
