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

/// <summary>The answering side of direct-link brokering, driven by hand: bad offers are refused, good ones admit only their sender.</summary>
public sealed class DirectLinkOfferTests
{
    [Fact]
    public async Task Offers_AreCheckedAndAnswered_AndOnlyTheOfferingKeyIsAdmittedPastADenyAllPolicy_NoOtherKeyTakesItsSession()
    {
        var ct = TestContext.Current.CancellationToken;
        await using var messenger = new MessengerHarness();
        await using var cluster = MeshHarness.Start();
        var node = await cluster.AddNodeAsync(o => o with { Messenger = messenger.ClientOptions(), DataPlane = o.DataPlane with { AcceptInboundLink = _ => false } });
        await MessengerRelayTests.WaitUntilAsync(() => node.MessengerConnected && messenger.Server.IsOnline(node.PublicKey));
        await using var app = await MeshHarness.AppAsync(node);
        await app.RegisterAsync("svc", "test", ct);

        // The "other node": a key at the messenger, and a data plane with that key.
        var key = KeyPair.Generate();
        var peer = await messenger.ConnectAsync(key);
        await using var plane = new NodeDataPlane(key, DataPlaneOptions.Default with { HandshakeTimeout = TimeSpan.FromSeconds(2) });
        var link = plane.Start(new IPEndPoint(IPAddress.Loopback, 0));

        // Before any offer, the deny-all policy keeps this key out.
        await Assert.ThrowsAnyAsync<Exception>(() => plane.OpenLinkAsync(node.PublicKey, node.LinkEndPoint, ct));

        // Not direct-link messages at all: ignored (no answer; the next offer's answer is the first message back).
        await peer.SendAsync(node.PublicKey, "hello there", ct);
        await peer.SendAsync(node.PublicKey, "{\"type\":\"skywire-direct/1\",\"kind\":\"mystery\",\"id\":\"x\"}", ct);

        Assert.Equal("bad-offer", (await AskAsync(peer, node, Offer("1", 1UL << 63 | 1, 0x8000_0001, "not-an-address", "svc"), ct)).GetProperty("reason").GetString());
        Assert.Equal("bad-offer", (await AskAsync(peer, node, Offer("2", 0, 0x8000_0001, link.ToString(), "svc"), ct)).GetProperty("reason").GetString());
        Assert.Equal("no-app", (await AskAsync(peer, node, Offer("3", 1UL << 63 | 3, 0x8000_0001, link.ToString(), "nobody"), ct)).GetProperty("reason").GetString());

        var answer = await AskAsync(peer, node, Offer("4", 1UL << 63 | 4, 0x8000_0001, link.ToString(), "svc"), ct);
        Assert.Equal("answer", answer.GetProperty("kind").GetString());
        Assert.Equal("4", answer.GetProperty("id").GetString());
        Assert.NotEqual(0u, answer.GetProperty("route").GetUInt32());
        Assert.Equal(node.LinkEndPoint.ToString(), answer.GetProperty("link").GetString());

        // Another key offers the session id the node just bound for this key (issue 12.5: a brokered-direct request for
        // another node's session): refused, and the session stays this key's, on its route.
        var sessionId = 1UL << 63 | 4;
        var bound = node.DataPlane.GetSession(sessionId);
        Assert.NotNull(bound);
        var intruder = await messenger.ConnectAsync();
        Assert.Equal("bad-offer", (await AskAsync(intruder, node, Offer("5", sessionId, 0x8000_0002, link.ToString(), "svc"), ct)).GetProperty("reason").GetString());
        Assert.Same(bound, node.DataPlane.GetSession(sessionId));
        Assert.Equal(key.Public, bound.Peer);

        // Now this key (and only this one) gets a link past the deny-all policy.
        await plane.OpenLinkAsync(node.PublicKey, node.LinkEndPoint, ct).WaitAsync(MessengerHarness.Timeout, ct);
        await using var other = new NodeDataPlane(KeyPair.Generate(), DataPlaneOptions.Default with { HandshakeTimeout = TimeSpan.FromSeconds(2) });
        other.Start(new IPEndPoint(IPAddress.Loopback, 0));
        await Assert.ThrowsAnyAsync<Exception>(() => other.OpenLinkAsync(node.PublicKey, node.LinkEndPoint, ct));
    }

    private static string Offer(string id, ulong session, uint route, string link, string app) =>
        $"{{\"type\":\"skywire-direct/1\",\"kind\":\"offer\",\"id\":\"{id}\",\"session\":{session},\"route\":{route},\"link\":\"{link}\",\"app\":\"{app}\"}}";

    private static async Task<System.Text.Json.JsonElement> AskAsync(Skywire.Core.Messenger.MessengerClient peer, Skywire.Core.Node.NodeHost node, string offer, CancellationToken ct)
    {
        await peer.SendAsync(node.PublicKey, offer, ct);
        var reply = await MessengerHarness.ReceiveAsync(peer);
        Assert.Equal(node.PublicKey, reply.From);
        using var json = System.Text.Json.JsonDocument.Parse(reply.Data);
        Assert.Equal("skywire-direct/1", json.RootElement.GetProperty("type").GetString());
        return json.RootElement.Clone();
    }
}
