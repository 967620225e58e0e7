using Skywire.Core.Node;
using System.Net;
using Skywire.Core.AppApi;
using Skywire.Protocol.AppApi;
using Skywire.TestKit;

namespace Skywire.IntegrationTests.Mesh;

public sealed class MeshTests
{
    private static readonly TimeSpan Limit = MeshHarness.Limit;

    [Fact]
    public async Task TwoNodes_AppStream_BothDirectionsAndHalfClose()
    {
        await using var mesh = MeshHarness.Start();
        var (a, b) = (await mesh.AddNodeAsync(), await mesh.AddNodeAsync());
        await mesh.LinkAsync(a, b);

        await using var server = await MeshHarness.AppAsync(b);
        await server.RegisterAsync("echo", "echo");
        var apps = await server.ListAppsAsync("type", "echo");
        Assert.Equal(b.NodeKey, Assert.Single(apps).Node);

        var serve = Task.Run(async () =>
        {
            await using var s = await server.AcceptAsync();
            Assert.Equal(a.NodeKey, s.RemoteNode);
            var buffer = new byte[4096];
            int n;
            while ((n = await s.ReadAsync(buffer)) > 0)
            {
                await s.WriteAsync(buffer.AsMemory(0, n));
            }

            s.CompleteWrites();
        });

        await using var client = await MeshHarness.AppAsync(a);
        await client.RegisterAsync("client", "test");
        await using var stream = await client.DialAsync(b.NodeKey, "echo").WaitAsync(Limit);
        var message = "hello across the mesh"u8.ToArray();
        await stream.WriteAsync(message);
        stream.CompleteWrites();
        var echoed = new MemoryStream();
        await stream.CopyToAsync(echoed).WaitAsync(Limit);
        Assert.Equal(message, echoed.ToArray());
        await serve.WaitAsync(Limit);
    }

    [Fact]
    public async Task Dial_UnknownApp_Refused_UnknownNode_Unreachable()
    {
        await using var mesh = MeshHarness.Start();
        var (a, b) = (await mesh.AddNodeAsync(), await mesh.AddNodeAsync());
        await mesh.LinkAsync(a, b);
        await using var client = await MeshHarness.AppAsync(a);
        var refused = await Assert.ThrowsAsync<AppApiException>(() => client.DialAsync(b.NodeKey, "nobody")).WaitAsync(Limit);
        Assert.Equal(AppApiErrorCode.Refused, refused.Code);
        var unknown = await Assert.ThrowsAsync<AppApiException>(() => client.DialAsync("02" + new string('1', 64), "x")).WaitAsync(Limit);
        Assert.Equal(AppApiErrorCode.Unreachable, unknown.Code);
    }

    [Fact]
    public async Task AppApi_WrongToken_Unauthorized()
    {
        await using var mesh = MeshHarness.Start();
        var a = await mesh.AddNodeAsync();
        var ex = await Assert.ThrowsAsync<AppApiException>(() => Core.Sdk.SkywireApp.ConnectAsync(a.AppsEndPoint, (a.AppToken[0] == '0' ? "1" : "0") + a.AppToken[1..])).WaitAsync(Limit);
        Assert.Equal(AppApiErrorCode.Unauthorized, ex.Code);
    }

    [Fact]
    public async Task AppDisconnects_TrackerForgetsIt()
    {
        await using var mesh = MeshHarness.Start();
        var a = await mesh.AddNodeAsync();
        var app = await MeshHarness.AppAsync(a);
        await app.RegisterAsync("ephemeral", "test");
        Assert.Single(mesh.Manager.Controller.ListApps(new() { By = "name", Value = "ephemeral" }).Apps);
        await app.DisposeAsync();
        await MeshHarness.WaitUntilAsync(() => mesh.Manager.Controller.ListApps(new()).Apps.Count == 0, "app unregistered");
    }

    /// <summary>
    /// Five nodes: A-B, B-C, C-D, A-E, E-C. A to D takes three hops either way; 50 MB arrive byte-exact.
    /// </summary>
    [Fact]
    public async Task FiveNodes_ThreeHopRoute_50MB_ByteExact()
    {
        await using var mesh = MeshHarness.Start();
        var n = await mesh.AddNodesAsync(5);
        var (a, b, c, d, e) = (n[0], n[1], n[2], n[3], n[4]);
        await mesh.LinkAsync(a, b);
        await mesh.LinkAsync(b, c);
        await mesh.LinkAsync(c, d);
        await mesh.LinkAsync(a, e);
        await mesh.LinkAsync(e, c);

        var (sent, received, count) = await MeshHarness.TransferAsync(a, d, 50L * 1024 * 1024);
        Assert.Equal(50L * 1024 * 1024, count);
        Assert.Equal(sent, received);
        var route = Assert.Single(mesh.Manager.Controller.ListRoutes().Routes);
        Assert.Equal(4, route.Path.Count);
        Assert.Equal(a.NodeKey, route.Path[0]);
        Assert.Equal(d.NodeKey, route.Path[3]);
    }

    /// <summary>Every hop of a 3-hop route runs through a UDP relay that drops 5 %, duplicates and reorders.</summary>
    [Fact]
    public async Task FaultyLinks_DropDuplicateReorder_StillByteExact()
    {
        await using var mesh = MeshHarness.Start();
        var faults = new FaultOptions { DropRate = 0.05, DuplicateRate = 0.02, ReorderRate = 0.05, ReorderWindow = 8, Seed = 7 };
        var relays = new List<UdpFaultRelay>();
        try
        {
            var a = await mesh.AddNodeAsync();
            var chain = new List<NodeHost> { a };
            for (var i = 0; i < 3; i++)
            {
                // The node's link socket is bound first, then a relay in front of it is what the manager hands to peers.
                var port = FreeUdpPort();
                var target = new IPEndPoint(IPAddress.Loopback, port);
                var relay = new UdpFaultRelay(target, faults, faults with { Seed = 100 + i });
                relays.Add(relay);
                chain.Add(await mesh.AddNodeAsync(o => o with { LinkListen = target, AdvertisedLinkAddress = relay.ListenEndPoint }));
            }

            for (var i = 0; i < 3; i++)
            {
                await mesh.LinkAsync(chain[i], chain[i + 1]);
            }

            var size = 8L * 1024 * 1024;
            var (sent, received, count) = await MeshHarness.TransferAsync(chain[0], chain[3], size);
            Assert.Equal(size, count);
            Assert.Equal(sent, received);
            Assert.True(relays.Sum(r => r.ToTarget.Dropped + r.FromTarget.Dropped) > 0, "the relays dropped nothing");
        }
        finally
        {
            foreach (var relay in relays)
            {
                relay.Dispose();
            }
        }
    }

    /// <summary>The relay on the route dies mid-transfer; the manager re-routes over the alternate and nothing is lost.</summary>
    [Fact]
    public async Task RelayKilledMidTransfer_RerouteAndByteExact()
    {
        await using var mesh = MeshHarness.Start();
        var n = await mesh.AddNodesAsync(4);
        var (a, b, c, d) = (n[0], n[1], n[2], n[3]);
        // A-B-D and A-C-D: two disjoint 2-hop paths.
        await mesh.LinkAsync(a, b);
        await mesh.LinkAsync(b, d);
        await mesh.LinkAsync(a, c);
        await mesh.LinkAsync(c, d);

        var rerouted = new TaskCompletionSource<IReadOnlyList<string>>(TaskCreationOptions.RunContinuationsAsynchronously);
        mesh.Manager.Controller.Rerouted += (_, path) => rerouted.TrySetResult([.. path.Select(p => p.ToString())]);
        var killed = false;
        string? victim = null;
        var size = 24L * 1024 * 1024;
        var (sent, received, count) = await MeshHarness.TransferAsync(a, d, size, async progress =>
        {
            if (killed)
            {
                return;
            }

            killed = true;
            var route = mesh.Manager.Controller.ListRoutes().Routes.Single();
            victim = route.Path[1];
            await mesh.RemoveNodeAsync(mesh.Nodes.Single(x => x.NodeKey == victim));
        });

        Assert.Equal(size, count);
        Assert.Equal(sent, received);
        var path = await rerouted.Task.WaitAsync(Limit);
        Assert.DoesNotContain(victim, path);
        Assert.Equal(3, path.Count);
    }

    /// <summary>
    /// A link on the route goes silent (its UDP path is blackholed, both nodes stay up): the data plane declares it
    /// dead, the node reports it, the manager re-routes over the alternate, and the transfer completes byte-exact.
    /// </summary>
    [Fact]
    public async Task LinkBlackholedMidTransfer_RerouteAndByteExact()
    {
        await using var mesh = MeshHarness.Start();
        var relays = new Dictionary<string, UdpFaultRelay>();
        try
        {
            var a = await mesh.AddNodeAsync();
            var d = await mesh.AddNodeAsync();
            var middles = new List<NodeHost>();
            for (var i = 0; i < 2; i++)
            {
                var target = new IPEndPoint(IPAddress.Loopback, FreeUdpPort());
                var relay = new UdpFaultRelay(target);
                var node = await mesh.AddNodeAsync(o => o with { LinkListen = target, AdvertisedLinkAddress = relay.ListenEndPoint });
                relays[node.NodeKey] = relay;
                middles.Add(node);
            }

            // a -> middle goes through the middle's relay; middle -> d is direct.
            foreach (var m in middles)
            {
                await mesh.LinkAsync(a, m);
                await mesh.LinkAsync(m, d);
            }

            var rerouted = new TaskCompletionSource<IReadOnlyList<string>>(TaskCreationOptions.RunContinuationsAsynchronously);
            mesh.Manager.Controller.Rerouted += (_, path) => rerouted.TrySetResult([.. path.Select(p => p.ToString())]);
            string? silenced = null;
            var size = 16L * 1024 * 1024;
            var (sent, received, count) = await MeshHarness.TransferAsync(a, d, size, progress =>
            {
                if (silenced is null)
                {
                    silenced = mesh.Manager.Controller.ListRoutes().Routes.Single().Path[1];
                    relays[silenced].Blackhole = true;
                }

                return Task.CompletedTask;
            });

            Assert.Equal(size, count);
            Assert.Equal(sent, received);
            var path = await rerouted.Task.WaitAsync(Limit);
            Assert.DoesNotContain(silenced, path);
        }
        finally
        {
            foreach (var relay in relays.Values)
            {
                relay.Dispose();
            }
        }
    }

    private static int FreeUdpPort()
    {
        using var s = new System.Net.Sockets.Socket(System.Net.Sockets.AddressFamily.InterNetwork, System.Net.Sockets.SocketType.Dgram, System.Net.Sockets.ProtocolType.Udp);
        s.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        return ((IPEndPoint)s.LocalEndPoint!).Port;
    }
}
