using Skywire.Core.Crypto;
using LinkInfo = Skywire.Core.Links.LinkInfo;
using LinkState = Skywire.Core.Links.LinkState;
using Skywire.Core.Node;
using Skywire.Protocol.Control;
using Skywire.TestKit.Logging;

namespace Skywire.IntegrationTests.Node;

/// <summary>
/// Issue 12.2: a link report or heartbeat larger than the 1 MiB control frame used to throw in the report loop, which
/// then returned silently: no more link reports or app heartbeats while the connection stayed up.
/// </summary>
public sealed class NodeReportTests
{
    private static readonly TimeSpan Limit = TimeSpan.FromSeconds(30);

    private static IReadOnlyList<LinkInfo> FakeLinks(int count, int withTraffic = 0) =>
        [.. Enumerable.Range(0, count).Select(i =>
        {
            using var key = KeyPair.Generate();
            return new LinkInfo(key.Public, null, LinkState.Up, false, null, i < withTraffic ? TimeSpan.FromMilliseconds(1) : null, null, 0.123456789, long.MaxValue, 0, long.MaxValue,
                i < withTraffic ? long.MaxValue : i, null, null);
        })];

    [Fact]
    public async Task LinkReport_MoreLinksThanFitAFrame_ReportsTheOnesThatMatter_AndTheLoopGoesOn()
    {
        using var log = new TestLog(TestContext.Current.TestOutputHelper!.WriteLine);
        await using var manager = new FakeManager();
        using var key = KeyPair.Generate();
        await using var node = new NodeHost(key, new NodeOptions { Manager = manager.Address }, log);
        var many = FakeLinks(9000, withTraffic: 5);
        node.ReportLinkSource = () => many;
        await node.StartAsync(TestContext.Current.CancellationToken);

        var big = await manager.NextAsync(ControlOpcode.LinkReport, ControlJsonContext.Default.LinkReportMessage, r => r.Links.Count > 0, Limit);
        Assert.Equal(4096, big.Links.Count);
        // The links that carry traffic are among those reported.
        Assert.All(many.Take(5), l => Assert.Contains(big.Links, r => r.Peer == l.Peer.ToString()));
        Assert.Equal(9000 - 4096, node.Reports.LinksOmitted);
        Assert.Contains(log.Entries, e => e.EventId.Id == 7021 && e.Message.Contains("4904", StringComparison.Ordinal));

        // The loop is alive: a change of links is reported, and registered apps are heartbeated.
        var few = FakeLinks(3);
        node.ReportLinkSource = () => few;
        var small = await manager.NextAsync(ControlOpcode.LinkReport, ControlJsonContext.Default.LinkReportMessage, r => r.Links.Count == 3, Limit);
        Assert.Equal(few.Select(l => l.Peer.ToString()).Order(), small.Links.Select(l => l.Peer).Order());
        await node.Apps.RegisterAppAsync("chat", "chat", TestContext.Current.CancellationToken);
        await manager.NextAsync(ControlOpcode.AppHeartbeat, ControlJsonContext.Default.AppHeartbeatMessage, h => h.Names.Contains("chat"), Limit);
        Assert.Equal(0, node.Reports.LinksOmitted);
        Assert.Equal(0, node.Reports.Failures);
    }

    [Fact]
    public async Task Heartbeat_MoreAppsThanFitAFrame_GoesInBatches_EveryAppNamed()
    {
        using var log = new TestLog(TestContext.Current.TestOutputHelper!.WriteLine);
        await using var manager = new FakeManager();
        using var key = KeyPair.Generate();
        await using var node = new NodeHost(key, new NodeOptions { Manager = manager.Address }, log);
        await node.StartAsync(TestContext.Current.CancellationToken);

        // 64 non-ASCII characters are 384 bytes of escaped JSON: 3000 names make a 1.1 MiB heartbeat in one frame.
        var names = Enumerable.Range(0, 3000).Select(i => i.ToString("D4", System.Globalization.CultureInfo.InvariantCulture) + new string('é', 60)).ToList();
        foreach (var chunk in names.Chunk(100))
        {
            await Task.WhenAll(chunk.Select(n => node.Apps.RegisterAppAsync(n, "t", TestContext.Current.CancellationToken)));
        }

        // Every name is heartbeated (in several frames) after all are registered, and the link reports go on.
        var missing = new HashSet<string>(names, StringComparer.Ordinal);
        await manager.NextAsync(ControlOpcode.AppHeartbeat, ControlJsonContext.Default.AppHeartbeatMessage, h =>
        {
            missing.ExceptWith(h.Names);
            return missing.Count == 0;
        }, Limit);
        var reportsBefore = node.Reports.LinkReportsSent;
        await manager.NextAsync(ControlOpcode.LinkReport, ControlJsonContext.Default.LinkReportMessage, _ => node.Reports.LinkReportsSent > reportsBefore, Limit);
        Assert.Equal(0, node.Reports.Failures);
    }
}
