using System.Net;
using Microsoft.Extensions.Logging.Abstractions;
using Skywire.Core.Control;
using Skywire.Core.Crypto;
using Skywire.Core.Manager;
using Skywire.Core.Node;

/// <summary>A manager and a chain of nodes in this process (loopback, OS-chosen ports), as the integration tests build it.</summary>
internal sealed class BenchMesh : IAsyncDisposable
{
    private readonly ManagerServer _manager;
    private readonly KeyPair _managerKey;
    private readonly List<NodeHost> _nodes;

    private BenchMesh(ManagerServer manager, KeyPair managerKey, List<NodeHost> nodes)
    {
        _manager = manager;
        _managerKey = managerKey;
        _nodes = nodes;
    }

    public NodeHost Entry => _nodes[0];

    public NodeHost Exit => _nodes[^1];

    public static async Task<BenchMesh> StartAsync(int hops)
    {
        var key = KeyPair.Generate();
        var manager = new ManagerServer(key, new ManagerOptions { Listen = new IPEndPoint(IPAddress.Loopback, 0) }, NullLoggerFactory.Instance);
        manager.Start();
        var nodes = new List<NodeHost>();
        for (var i = 0; i <= hops; i++)
        {
            var node = new NodeHost(KeyPair.Generate(), new NodeOptions { Manager = new ManagerAddress(manager.LocalEndPoint, key.Public) }, NullLoggerFactory.Instance);
            await node.StartAsync();
            nodes.Add(node);
        }

        for (var i = 0; i < hops; i++)
        {
            var (a, b) = (nodes[i], nodes[i + 1]);
            await manager.Controller.LinkNodesAsync(a.PublicKey, b.PublicKey, CancellationToken.None);
            var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(30);
            while (!manager.Controller.ListLinks().Links.Any(l => l.From == a.NodeKey && l.To == b.NodeKey && l.Up)
                || !manager.Controller.ListLinks().Links.Any(l => l.From == b.NodeKey && l.To == a.NodeKey && l.Up))
            {
                if (DateTime.UtcNow > deadline)
                {
                    throw new TimeoutException("link did not come up");
                }

                await Task.Delay(50);
            }
        }

        return new BenchMesh(manager, key, nodes);
    }

    public async ValueTask DisposeAsync()
    {
        foreach (var node in _nodes)
        {
            await node.DisposeAsync();
        }

        await _manager.DisposeAsync();
        _managerKey.Dispose();
    }
}
