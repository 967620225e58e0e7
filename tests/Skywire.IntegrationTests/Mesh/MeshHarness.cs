using System.Net;
using System.Security.Cryptography;
using Microsoft.Extensions.Logging;
using Skywire.Core.Control;
using Skywire.Core.Crypto;
using Skywire.Core.Manager;
using Skywire.Core.Node;
using Skywire.Core.Sdk;

namespace Skywire.IntegrationTests.Mesh;

/// <summary>A manager and nodes in this process, on loopback, every port chosen by the OS.</summary>
public sealed class MeshHarness : IAsyncDisposable
{
    public static readonly TimeSpan Limit = TimeSpan.FromSeconds(60);

    private readonly List<NodeHost> _nodes = [];
    private readonly ILoggerFactory _logging;

    private MeshHarness(ManagerServer manager, KeyPair managerKey, ILoggerFactory logging)
    {
        Manager = manager;
        ManagerKey = managerKey;
        _logging = logging;
    }

    public ManagerServer Manager { get; }

    public KeyPair ManagerKey { get; }

    public IReadOnlyList<NodeHost> Nodes => _nodes;

    public static MeshHarness Start(ManagerOptions? options = null, ILoggerFactory? logging = null)
    {
        var key = KeyPair.Generate();
        logging ??= LoggerFactory.Create(b => b.SetMinimumLevel(LogLevel.Warning));
        var manager = new ManagerServer(key, (options ?? new ManagerOptions()) with { Listen = new IPEndPoint(IPAddress.Loopback, 0), ReportInterval = TimeSpan.FromMilliseconds(200) }, logging);
        manager.Start();
        return new MeshHarness(manager, key, logging);
    }

    public async Task<NodeHost> AddNodeAsync(Func<NodeOptions, NodeOptions>? configure = null)
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

        var node = new NodeHost(KeyPair.Generate(), options, _logging);
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
        await node.DisposeAsync();
    }

    public async ValueTask DisposeAsync()
    {
        foreach (var node in _nodes)
        {
            await node.DisposeAsync();
        }

        await Manager.DisposeAsync();
        ManagerKey.Dispose();
    }
}
