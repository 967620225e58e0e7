using System.Text.Json;
using Skywire.Core.Crypto;
using Skywire.Core.Node;
using Skywire.Protocol.Control;
using LinkInfo = Skywire.Core.Links.LinkInfo;
using LinkState = Skywire.Core.Links.LinkState;

namespace Skywire.Tests.Node;

public sealed class NodeReportsTests
{
    private static LinkInfo Link(LinkState state, TimeSpan? rtt = null, long received = 0)
    {
        using var key = KeyPair.Generate();
        return new LinkInfo(key.Public, null, state, false, null, rtt, null, 0.1234567890123, long.MaxValue, 0, long.MaxValue, received, null, null);
    }

    [Fact]
    public void BuildLinkReport_FewLinks_AllUpAndDown_NoneOmitted_ConnectingAndClosedLeftOut()
    {
        var links = new[] { Link(LinkState.Up), Link(LinkState.Down), Link(LinkState.Connecting), Link(LinkState.Closed) };
        var report = NodeReports.BuildLinkReport(links, _ => false, 4096, ControlProtocol.MaxFrameSize, out var omitted);
        Assert.Equal(2, report.Links.Count);
        Assert.Equal(0, omitted);
    }

    [Fact]
    public void BuildLinkReport_ExcludedPeers_LeftOutAndNotCountedAsOmitted()
    {
        var direct = Link(LinkState.Up);
        var report = NodeReports.BuildLinkReport([direct, Link(LinkState.Up)], p => p == direct.Peer, 4096, ControlProtocol.MaxFrameSize, out var omitted);
        Assert.DoesNotContain(report.Links, l => l.Peer == direct.Peer.ToString());
        Assert.Single(report.Links);
        Assert.Equal(0, omitted);
    }

    [Fact]
    public void BuildLinkReport_DefaultCapOfWidestLinks_FitsTheFrame()
    {
        var links = Enumerable.Range(0, 5000).Select(_ => Link(LinkState.Up, TimeSpan.MaxValue / 2, long.MaxValue)).ToList();
        var report = NodeReports.BuildLinkReport(links, _ => false, new NodeOptions { Manager = null! }.MaxReportedLinks, ControlProtocol.MaxFrameSize, out var omitted);
        Assert.Equal(4096, report.Links.Count);
        Assert.Equal(5000 - 4096, omitted);
        Assert.True(JsonSerializer.SerializeToUtf8Bytes(report, ControlJsonContext.Default.LinkReportMessage).Length <= ControlProtocol.MaxFrameSize);
    }

    [Fact]
    public void BuildLinkReport_CapAboveWhatFits_HalvesUntilItFits()
    {
        var links = Enumerable.Range(0, 20_000).Select(_ => Link(LinkState.Up)).ToList();
        var report = NodeReports.BuildLinkReport(links, _ => false, int.MaxValue, ControlProtocol.MaxFrameSize, out var omitted);
        Assert.InRange(report.Links.Count, 1, 19_999);
        Assert.Equal(20_000 - report.Links.Count, omitted);
        Assert.True(JsonSerializer.SerializeToUtf8Bytes(report, ControlJsonContext.Default.LinkReportMessage).Length <= ControlProtocol.MaxFrameSize);
    }

    [Fact]
    public void BuildLinkReport_OverCap_KeepsUpMeasuredBusyLinksFirst()
    {
        var busy = Link(LinkState.Up, TimeSpan.FromMilliseconds(3), 1_000_000);
        var measured = Link(LinkState.Up, TimeSpan.FromMilliseconds(3));
        var idle = Link(LinkState.Up);
        var down = Link(LinkState.Down, TimeSpan.FromMilliseconds(3), 5_000_000);
        var report = NodeReports.BuildLinkReport([down, idle, measured, busy], _ => false, 2, ControlProtocol.MaxFrameSize, out var omitted);
        Assert.Equal([busy.Peer.ToString(), measured.Peer.ToString()], report.Links.Select(l => l.Peer));
        Assert.Equal(2, omitted);
    }

    [Fact]
    public void Heartbeats_ManyLongEscapedNames_EveryNameOnce_EachFitsTheFrame()
    {
        var names = Enumerable.Range(0, 10_000).Select(i => i.ToString("D5", System.Globalization.CultureInfo.InvariantCulture) + new string('é', 59)).ToList();
        var batches = NodeReports.Heartbeats(names, ControlProtocol.MaxFrameSize).ToList();
        Assert.True(batches.Count > 1);
        Assert.Equal(names, batches.SelectMany(b => b.Names));
        Assert.All(batches, b => Assert.True(JsonSerializer.SerializeToUtf8Bytes(b, ControlJsonContext.Default.AppHeartbeatMessage).Length <= ControlProtocol.MaxFrameSize));
    }

    [Fact]
    public void Heartbeats_TinyFrame_SplitsFurther()
    {
        var names = Enumerable.Range(0, 100).Select(i => "app" + i.ToString(System.Globalization.CultureInfo.InvariantCulture)).ToList();
        var batches = NodeReports.Heartbeats(names, 512).ToList();
        Assert.True(batches.Count > 1);
        Assert.Equal(names, batches.SelectMany(b => b.Names));
    }
}
