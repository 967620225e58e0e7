using Skywire.Core.AppApi;
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
        await MessengerRelayTests.WaitUntilAsync(() => messenger.Server.IsOnline(nodeA.PublicKey) && messenger.Server.IsOnline(nodeB.PublicKey));

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
        await MessengerRelayTests.WaitUntilAsync(() => messenger.Server.IsOnline(nodeA.PublicKey) && messenger.Server.IsOnline(nodeB.PublicKey));

        await using var app = await MeshHarness.AppAsync(nodeA);
        var ex = await Assert.ThrowsAsync<AppApiException>(() => app.DialAsync(nodeB.NodeKey, "no-such-app", ct));
        Assert.Equal(AppApiErrorCode.Refused, ex.Code);

        // Without a messenger, the same dial is unreachable (cluster 1 does not know node B).
        var isolated = await cluster1.AddNodeAsync();
        await using var lonely = await MeshHarness.AppAsync(isolated);
        var unreachable = await Assert.ThrowsAsync<AppApiException>(() => lonely.DialAsync(nodeB.NodeKey, "no-such-app", ct));
        Assert.Equal(AppApiErrorCode.Unreachable, unreachable.Code);
    }
}
