using System.Net;
using Skywire.Core.Control;
using Skywire.Core.Crypto;
using Skywire.Core.Manager;
using Skywire.Core.Manager.Store;
using Skywire.Core.Node;
using Skywire.IntegrationTests.Mesh;
using Skywire.TestKit.Logging;

namespace Skywire.IntegrationTests.Manager;

/// <summary>
/// Several managers of one mesh in this process (one cluster key, one shared store each through its own session), and
/// nodes on loopback, each registered with one manager and given the others to fail over to.
/// </summary>
public sealed class MultiManagerHarness : IAsyncDisposable
{
    private readonly List<NodeHost> _nodes = [];
    private readonly Func<IMeshStore> _openStore;
    private readonly ManagerOptions _options;

    private MultiManagerHarness(KeyPair key, Func<IMeshStore> openStore, ManagerOptions options, TestLog log)
    {
        Key = key;
        _openStore = openStore;
        _options = options;
        Log = log;
    }

    public KeyPair Key { get; }

    public TestLog Log { get; }

    /// <summary>The managers (a killed one stays in the list, disposed).</summary>
    public List<ManagerServer> Managers { get; } = [];

    public List<IMeshStore> Stores { get; } = [];

    public IReadOnlyList<NodeHost> Nodes => _nodes;

    /// <summary>Starts <paramref name="count"/> managers, each with a store from <paramref name="openStore"/>.</summary>
    public static MultiManagerHarness Start(int count, Func<IMeshStore> openStore, TestLog log, ManagerOptions? options = null)
    {
        var harness = new MultiManagerHarness(KeyPair.Generate(), openStore, (options ?? new ManagerOptions()) with
        {
            Listen = new IPEndPoint(IPAddress.Loopback, 0),
            ReportInterval = TimeSpan.FromMilliseconds(200),
        }, log);
        for (var i = 0; i < count; i++)
        {
            harness.AddManager();
        }

        return harness;
    }

    public ManagerServer AddManager()
    {
        var store = _openStore();
        var manager = new ManagerServer(Key, _options with { Store = store }, Log);
        manager.Start();
        Managers.Add(manager);
        Stores.Add(store);
        return manager;
    }

    /// <summary>
    /// A node registered with manager <paramref name="index"/>, failing over to the others; waits until every manager
    /// has it online (<paramref name="everywhere"/>), or only its own.
    /// </summary>
    public async Task<NodeHost> AddNodeAsync(int index, bool everywhere = true)
    {
        var addresses = Managers.Select(m => new ManagerAddress(m.LocalEndPoint, Key.Public)).ToList();
        var first = addresses[index];
        var options = new NodeOptions
        {
            Manager = first,
            AlternateManagers = [.. addresses.Where(a => a != first)],
            ReconnectDelay = TimeSpan.FromMilliseconds(100),
            MaxReconnectDelay = TimeSpan.FromSeconds(1),
        };
        options = options with { DataPlane = options.DataPlane with { ProbeInterval = TimeSpan.FromMilliseconds(200), DeadAfter = TimeSpan.FromSeconds(3) } };
        var node = new NodeHost(KeyPair.Generate(), options, Log);
        await node.StartAsync();
        _nodes.Add(node);
        if (everywhere)
        {
            await WaitAllAsync(m => m.Controller.Nodes.IsOnline(node.PublicKey), $"node {node.NodeKey[..8]} online everywhere");
        }
        else
        {
            await MeshHarness.WaitUntilAsync(() => Managers[index].Controller.LocalChannel(node.PublicKey) is not null, $"node {node.NodeKey[..8]} registered with manager {index}");
        }

        return node;
    }

    /// <summary>Links two nodes (through the manager of <paramref name="a"/>) and waits until every manager routes over the link.</summary>
    public async Task LinkAsync(ManagerServer via, NodeHost a, NodeHost b)
    {
        await via.Controller.LinkNodesAsync(a.PublicKey, b.PublicKey, CancellationToken.None);
        await WaitAllAsync(m =>
        {
            var links = m.Controller.ListLinks().Links;
            return links.Any(l => l.From == a.NodeKey && l.To == b.NodeKey && l.Confirmed) && links.Any(l => l.From == b.NodeKey && l.To == a.NodeKey && l.Confirmed);
        }, $"link {a.NodeKey[..8]}-{b.NodeKey[..8]} routed by every manager");
    }

    /// <summary>Waits until <paramref name="condition"/> holds on every running manager.</summary>
    public Task WaitAllAsync(Func<ManagerServer, bool> condition, string what) =>
        MeshHarness.WaitUntilAsync(() => Running.All(condition), what);

    /// <summary>The managers not killed.</summary>
    public IEnumerable<ManagerServer> Running => Managers.Where((_, i) => !_killed.Contains(i));

    private readonly HashSet<int> _killed = [];

    /// <summary>
    /// Stops manager <paramref name="index"/> the way a crash does as far as the others can tell: its connections close,
    /// and its store session is not ended (its keys stay until the lease runs out).
    /// </summary>
    public async Task KillManagerAsync(int index, Func<IMeshStore, ValueTask>? endSession = null)
    {
        _killed.Add(index);
        await Managers[index].DisposeAsync();
        if (endSession is not null)
        {
            await endSession(Stores[index]);
        }
    }

    public async ValueTask DisposeAsync()
    {
        var failures = new List<string>();
        foreach (var node in _nodes)
        {
            await node.DisposeAsync();
            await node.Completion.WaitAsync(MeshHarness.Limit).ContinueWith(_ => { }, TaskScheduler.Default);
            if (!node.Completion.IsCompletedSuccessfully)
            {
                failures.Add($"node {node.NodeKey[..12]} ended {node.Completion.Status}: {node.Completion.Exception?.GetBaseException().Message}");
            }
        }

        for (var i = 0; i < Managers.Count; i++)
        {
            if (!_killed.Contains(i))
            {
                await Managers[i].DisposeAsync();
            }

            await Stores[i].DisposeAsync();
        }

        Key.Dispose();
        Assert.True(failures.Count == 0, string.Join(Environment.NewLine, failures));
    }
}
