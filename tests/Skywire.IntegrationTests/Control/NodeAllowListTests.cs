using System.Net;
using Microsoft.Extensions.Logging.Abstractions;
using Skywire.Core.Control;
using Skywire.Core.Channels;
using Skywire.Core.Crypto;
using Skywire.Core.Manager;
using Skywire.Core.Node;
using Skywire.Protocol.Control;
using Skywire.TestKit.Logging;

namespace Skywire.IntegrationTests.Control;

/// <summary>The manager's node allow-list: refusal at the control handshake, reload from its file, revocation.</summary>
public sealed class NodeAllowListTests : IAsyncLifetime
{
    private static readonly TimeSpan Limit = TimeSpan.FromSeconds(30);
    private readonly KeyPair _managerKey = KeyPair.Generate();
    private readonly KeyPair _listed = KeyPair.Generate();
    private readonly KeyPair _other = KeyPair.Generate();
    private readonly string _dir = Directory.CreateTempSubdirectory("skywire-allow-").FullName;
    private readonly TestLog _log = new(TestContext.Current.TestOutputHelper is { } output ? output.WriteLine : null);
    private ManagerServer _manager = null!;

    private string ListFile => Path.Combine(_dir, "nodes.allow");

    public ValueTask InitializeAsync()
    {
        File.WriteAllText(ListFile, $"# allowed nodes\n{_listed.Public}   # lab node\n");
        _manager = new ManagerServer(_managerKey, new ManagerOptions
        {
            Listen = new IPEndPoint(IPAddress.Loopback, 0),
            AllowedNodes = new NodeAllowList([], ListFile),
        }, _log);
        _manager.Start();
        return ValueTask.CompletedTask;
    }

    public async ValueTask DisposeAsync()
    {
        await _manager.DisposeAsync();
        _listed.Dispose();
        _other.Dispose();
        Directory.Delete(_dir, recursive: true);
        _log.Dispose();
    }

    private static FrameRequestHandler Ignore => (_, _, _) => ValueTask.FromResult<byte[]>([]);

    private Task<(FrameConnection Connection, HelloAckMessage Ack)> Connect(KeyPair key, string role = "node") =>
        ControlClient.ConnectAsync(new ManagerAddress(_manager.LocalEndPoint, _managerKey.Public), key, role, role == "node" ? "127.0.0.1:4000" : null,
            Ignore, NullLogger.Instance, Limit, CancellationToken.None);

    [Fact]
    public async Task UnlistedNode_RefusedAtHandshake_WithClearReason_ListedNodeJoins()
    {
        var ex = await Assert.ThrowsAsync<ControlException>(() => Connect(_other));
        Assert.Equal(ControlErrorCode.Forbidden, ex.Code);
        Assert.Contains("not in this manager's node allow-list", ex.Message, StringComparison.Ordinal);
        Assert.Contains(_other.Public.ToString(), ex.Message, StringComparison.Ordinal);
        Assert.Empty(_manager.Controller.ListNodes().Nodes);

        var (connection, _) = await Connect(_listed);
        await using (connection)
        {
            Assert.Equal(_listed.Public.ToString(), Assert.Single(_manager.Controller.ListNodes().Nodes).Key);
        }

        // The manager's own key as cli is not a node: the list does not apply to cli connections.
        var (cli, _) = await Connect(_managerKey, "cli");
        await cli.DisposeAsync();
    }

    [Fact]
    public async Task NodeHost_RefusedNode_StartFailsForbidden()
    {
        var options = new NodeOptions { Manager = new ManagerAddress(_manager.LocalEndPoint, _managerKey.Public) };
        await using var node = new NodeHost(_other, options, _log);
        var ex = await Assert.ThrowsAsync<ControlException>(() => node.StartAsync(TestContext.Current.CancellationToken));
        Assert.Equal(ControlErrorCode.Forbidden, ex.Code);
        Assert.Contains("allow-list", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Reload_AddsAndRevokes_ConnectedRevokedNodeIsDisconnected_BadFileKeepsList()
    {
        var (listed, _) = await Connect(_listed);
        await using var _ = listed;

        File.WriteAllText(ListFile, $"{_other.Public}\n");
        Assert.Equal(1, _manager.ReloadAllowedNodes());

        // The node that lost its place is disconnected, the newly listed one may join.
        await listed.Closed.WaitAsync(Limit, TestContext.Current.CancellationToken);
        var (other, _) = await Connect(_other);
        await using var __ = other;
        var refused = await Assert.ThrowsAsync<ControlException>(() => Connect(_listed));
        Assert.Equal(ControlErrorCode.Forbidden, refused.Code);

        File.WriteAllText(ListFile, "not a key\n");
        _log.ExpectError(2208); // "Node allow-list not reloaded": the failure this test provokes
        Assert.Throws<NodeAllowListException>(() => _manager.ReloadAllowedNodes());
        Assert.False(other.Closed.IsCompleted);
        Assert.Equal(ControlErrorCode.Forbidden, (await Assert.ThrowsAsync<ControlException>(() => Connect(_listed))).Code);
    }

    [Fact]
    public async Task NodeHost_RevokedWhileConnected_GivesUp_CompletionFaultsForbidden()
    {
        var options = new NodeOptions { Manager = new ManagerAddress(_manager.LocalEndPoint, _managerKey.Public) };
        await using var node = new NodeHost(_listed, options, _log);
        await node.StartAsync(TestContext.Current.CancellationToken);
        Assert.False(node.Completion.IsCompleted);
        _log.ExpectError(7020); // "The manager refused this node; giving up": the node's side of the revocation

        File.WriteAllText(ListFile, "# nobody\n");
        Assert.Equal(0, _manager.ReloadAllowedNodes());
        var ex = await Assert.ThrowsAsync<ControlException>(() => node.Completion.WaitAsync(Limit, TestContext.Current.CancellationToken));
        Assert.Equal(ControlErrorCode.Forbidden, ex.Code);
        Assert.Contains("allow-list", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task FileChange_IsPickedUpWithoutSignal()
    {
        await using var manager = new ManagerServer(_managerKey, new ManagerOptions
        {
            Listen = new IPEndPoint(IPAddress.Loopback, 0),
            AllowedNodes = new NodeAllowList([], ListFile),
            WatchAllowedNodesFile = true,
        }, _log);
        var reloaded = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        manager.AllowedNodesReloaded += (_, e) =>
        {
            if (e.Error is null && e.Count == 2)
            {
                reloaded.TrySetResult();
            }
        };
        manager.Start();

        File.AppendAllText(ListFile, $"{_other.Public}\n");
        await reloaded.Task.WaitAsync(Limit, TestContext.Current.CancellationToken);
        var (connection, _) = await ControlClient.ConnectAsync(new ManagerAddress(manager.LocalEndPoint, _managerKey.Public), _other, "node", "127.0.0.1:4000",
            Ignore, NullLogger.Instance, Limit, CancellationToken.None);
        await connection.DisposeAsync();
    }
}
