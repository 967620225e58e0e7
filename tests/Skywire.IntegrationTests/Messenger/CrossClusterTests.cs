using System.Net;
using System.Net.Sockets;
using Skywire.Core.AppApi;
using Skywire.Core.Crypto;
using Skywire.Core.DataPlane;
using Skywire.IntegrationTests.Mesh;
using Skywire.Protocol.AppApi;

namespace Skywire.IntegrationTests.Messenger;

/// <summary>Peering clusters by key: two managers, a node in each, one messenger; apps dial across by node key.</summary>
public sealed class CrossClusterTests
{
    [Fact]
    public async Task AppInClusterOne_DialsAppInClusterTwo_ByNodeKey_10MegabytesByteExact()
    {
        var ct = TestContext.Current.CancellationToken;
        await using var messenger = new MessengerHarness();
        await using var cluster1 = MeshHarness.Start();
        await using var cluster2 = MeshHarness.Start();
        var viaMessenger = messenger.ClientOptions();
        var nodeA = await cluster1.AddNodeAsync(o => o with { Messenger = viaMessenger });
        var nodeB = await cluster2.AddNodeAsync(o => o with { Messenger = viaMessenger });
        await MessengerRelayTests.WaitUntilAsync(() => nodeA.MessengerConnected && nodeB.MessengerConnected && messenger.Server.IsOnline(nodeA.PublicKey) && messenger.Server.IsOnline(nodeB.PublicKey));

        // Cluster 1's manager has never heard of node B: the dial goes through the messenger, the same API call.
        var (sent, received, count) = await MeshHarness.TransferAsync(nodeA, nodeB, 10 * 1024 * 1024).WaitAsync(TimeSpan.FromMinutes(3), ct);
        Assert.Equal(10 * 1024 * 1024, count);
        Assert.Equal(sent, received);

        // And the other way round.
        (sent, received, count) = await MeshHarness.TransferAsync(nodeB, nodeA, 1024 * 1024).WaitAsync(TimeSpan.FromMinutes(3), ct);
        Assert.Equal(1024 * 1024, count);
        Assert.Equal(sent, received);
    }

    [Fact]
    public async Task DialToAnAppThatDoesNotExistInTheOtherCluster_IsRefused()
    {
        var ct = TestContext.Current.CancellationToken;
        await using var messenger = new MessengerHarness();
        await using var cluster1 = MeshHarness.Start();
        await using var cluster2 = MeshHarness.Start();
        var nodeA = await cluster1.AddNodeAsync(o => o with { Messenger = messenger.ClientOptions() });
        var nodeB = await cluster2.AddNodeAsync(o => o with { Messenger = messenger.ClientOptions() });
        await MessengerRelayTests.WaitUntilAsync(() => nodeA.MessengerConnected && nodeB.MessengerConnected && messenger.Server.IsOnline(nodeA.PublicKey) && messenger.Server.IsOnline(nodeB.PublicKey));

        await using var app = await MeshHarness.AppAsync(nodeA);
        var ex = await Assert.ThrowsAsync<AppApiException>(() => app.DialAsync(nodeB.NodeKey, "no-such-app", ct));
        Assert.Equal(AppApiErrorCode.Refused, ex.Code);

        // Without a messenger, the same dial is unreachable (cluster 1 does not know node B).
        var isolated = await cluster1.AddNodeAsync();
        await using var lonely = await MeshHarness.AppAsync(isolated);
        var unreachable = await Assert.ThrowsAsync<AppApiException>(() => lonely.DialAsync(nodeB.NodeKey, "no-such-app", ct));
        Assert.Equal(AppApiErrorCode.Unreachable, unreachable.Code);
    }

    [Fact]
    public async Task CrossClusterDial_UsesABrokeredDirectLink_MessengerRelaysNoStreamBytes_AndStrangersStayOut()
    {
        var ct = TestContext.Current.CancellationToken;
        await using var messenger = new MessengerHarness();
        await using var cluster1 = MeshHarness.Start();
        await using var cluster2 = MeshHarness.Start();
        var nodeA = await cluster1.AddNodeAsync(o => o with { Messenger = messenger.ClientOptions() });

        // B takes no unsolicited inbound links at all: only a key it brokers a direct link with gets in.
        var nodeB = await cluster2.AddNodeAsync(o => o with { Messenger = messenger.ClientOptions(), DataPlane = o.DataPlane with { AcceptInboundLink = _ => false } });
        await MessengerRelayTests.WaitUntilAsync(() => nodeA.MessengerConnected && nodeB.MessengerConnected && messenger.Server.IsOnline(nodeA.PublicKey) && messenger.Server.IsOnline(nodeB.PublicKey));

        var (sent, received, count) = await MeshHarness.TransferAsync(nodeA, nodeB, 2 * 1024 * 1024).WaitAsync(TimeSpan.FromMinutes(2), ct);
        Assert.Equal(2 * 1024 * 1024, count);
        Assert.Equal(sent, received);

        // The other way round rides the same direct session.
        (sent, received, count) = await MeshHarness.TransferAsync(nodeB, nodeA, 512 * 1024).WaitAsync(TimeSpan.FromMinutes(2), ct);
        Assert.Equal(512 * 1024, count);
        Assert.Equal(sent, received);

        Assert.Equal(0, messenger.Server.StreamsRelayed);
        Assert.Equal(0, messenger.Server.StreamBytesRelayed);
        Assert.Equal(1, nodeA.DirectSessionsEstablished);
        Assert.Equal(1, nodeB.DirectSessionsEstablished);
        Assert.Equal(Skywire.Core.Links.LinkState.Up, nodeA.DataPlane.GetLink(nodeB.PublicKey)?.State);

        // A key that did not broker anything cannot even get a link to B.
        await using var stranger = new NodeDataPlane(KeyPair.Generate(), DataPlaneOptions.Default with { HandshakeTimeout = TimeSpan.FromSeconds(2) });
        stranger.Start(new IPEndPoint(IPAddress.Loopback, 0));
        var refusedBefore = nodeB.DataPlane.Statistics.Refused;
        await Assert.ThrowsAnyAsync<Exception>(() => stranger.OpenLinkAsync(nodeB.PublicKey, nodeB.LinkEndPoint, ct));
        Assert.True(nodeB.DataPlane.Statistics.Refused > refusedBefore);
        Assert.Null(nodeB.DataPlane.GetLink(stranger.LocalKey));
    }

    [Fact]
    public async Task DirectLink_WhenOnlyOneSidesHandshakeGetsThrough_TheOtherSidesPunchStillMakesIt()
    {
        var ct = TestContext.Current.CancellationToken;
        using var deadEnd = new UdpClient(new IPEndPoint(IPAddress.Loopback, 0)); // bound, never read: a black hole
        await using var messenger = new MessengerHarness();
        await using var cluster1 = MeshHarness.Start();
        await using var cluster2 = MeshHarness.Start();
        var nodeA = await cluster1.AddNodeAsync(o => o with { Messenger = messenger.ClientOptions() });

        // B advertises an address that swallows everything (say, a NAT mapping that is not what it thinks): A's
        // handshakes are lost, but B's own handshake toward A opens the link.
        var nodeB = await cluster2.AddNodeAsync(o => o with { Messenger = messenger.ClientOptions(), AdvertisedLinkAddress = (IPEndPoint)deadEnd.Client.LocalEndPoint! });
        await MessengerRelayTests.WaitUntilAsync(() => nodeA.MessengerConnected && nodeB.MessengerConnected && messenger.Server.IsOnline(nodeA.PublicKey) && messenger.Server.IsOnline(nodeB.PublicKey));

        var (sent, received, count) = await MeshHarness.TransferAsync(nodeA, nodeB, 256 * 1024).WaitAsync(TimeSpan.FromMinutes(2), ct);
        Assert.Equal(256 * 1024, count);
        Assert.Equal(sent, received);
        Assert.Equal(0, messenger.Server.StreamBytesRelayed);
        Assert.Equal(1, nodeA.DirectSessionsEstablished);
    }

    [Fact]
    public async Task DirectLink_WhenUdpIsBlockedBothWays_FallsBackToTheRelay()
    {
        var ct = TestContext.Current.CancellationToken;
        using var deadA = new UdpClient(new IPEndPoint(IPAddress.Loopback, 0));
        using var deadB = new UdpClient(new IPEndPoint(IPAddress.Loopback, 0));
        await using var messenger = new MessengerHarness();
        await using var cluster1 = MeshHarness.Start();
        await using var cluster2 = MeshHarness.Start();
        var direct = TimeSpan.FromSeconds(1);
        var nodeA = await cluster1.AddNodeAsync(o => o with { Messenger = messenger.ClientOptions(), DirectLinkTimeout = direct, AdvertisedLinkAddress = (IPEndPoint)deadA.Client.LocalEndPoint! });
        var nodeB = await cluster2.AddNodeAsync(o => o with { Messenger = messenger.ClientOptions(), DirectLinkTimeout = direct, AdvertisedLinkAddress = (IPEndPoint)deadB.Client.LocalEndPoint! });
        await MessengerRelayTests.WaitUntilAsync(() => nodeA.MessengerConnected && nodeB.MessengerConnected && messenger.Server.IsOnline(nodeA.PublicKey) && messenger.Server.IsOnline(nodeB.PublicKey));

        var (sent, received, count) = await MeshHarness.TransferAsync(nodeA, nodeB, 512 * 1024).WaitAsync(TimeSpan.FromMinutes(2), ct);
        Assert.Equal(512 * 1024, count);
        Assert.Equal(sent, received);
        (sent, received, count) = await MeshHarness.TransferAsync(nodeB, nodeA, 128 * 1024).WaitAsync(TimeSpan.FromMinutes(2), ct);
        Assert.Equal(128 * 1024, count);
        Assert.Equal(sent, received);

        Assert.Equal(2, messenger.Server.StreamsRelayed);
        Assert.True(messenger.Server.StreamBytesRelayed > 640 * 1024);
        Assert.Equal(0, nodeA.DirectSessionsEstablished);
        Assert.Equal(0, nodeB.DirectSessionsEstablished);
    }
}
