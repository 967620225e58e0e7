using Skywire.IntegrationTests.Mesh;

namespace Skywire.IntegrationTests.AppApi;

/// <summary>
/// Regression: the node used to watch a pending accept for the app giving up with a zero-byte read, which now and
/// then completed on a live idle connection; the node then dropped the accept and the app waited forever (about one
/// accept in twenty under load). Many accepts in a row must all complete.
/// </summary>
public sealed class AcceptRepetitionTests
{
    [Fact]
    public async Task TwoHundredDialAcceptPairsInARow_AllComplete()
    {
        var ct = TestContext.Current.CancellationToken;
        await using var cluster = MeshHarness.Start();
        var nodes = await cluster.AddNodesAsync(2);
        await cluster.LinkAsync(nodes[0], nodes[1]);
        await using var source = await MeshHarness.AppAsync(nodes[0]);
        for (var i = 0; i < 200; i++)
        {
            await using var sink = await MeshHarness.AppAsync(nodes[1]);
            await sink.RegisterAsync("sink" + i, "test", ct);
            var accept = sink.AcceptAsync(ct);
            await using var outbound = await source.DialAsync(nodes[1].NodeKey, sink.Name!, ct).WaitAsync(TimeSpan.FromSeconds(30), ct);
            await using var inbound = await accept.WaitAsync(TimeSpan.FromSeconds(30), ct);
            await outbound.WriteAsync(new[] { (byte)i }, ct);
            var one = new byte[1];
            Assert.Equal(1, await inbound.ReadAsync(one, ct).AsTask().WaitAsync(TimeSpan.FromSeconds(30), ct));
            Assert.Equal((byte)i, one[0]);
        }
    }
}
