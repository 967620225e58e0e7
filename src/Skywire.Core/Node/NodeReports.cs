using System.Text.Json;
using LinkInfo = Skywire.Core.Links.LinkInfo;
using Skywire.Protocol;
using Skywire.Protocol.Control;
using LinkState = Skywire.Core.Links.LinkState;
using WireLinkState = Skywire.Protocol.Control.LinkState;

namespace Skywire.Core.Node;

/// <summary>
/// Builds the node's reports to the manager so that each one fits its control frame (docs/protocol.md §4.5): a link
/// report keeps at most <see cref="NodeOptions.MaxReportedLinks"/> links, the ones that matter first (up, measured,
/// carrying traffic), and says how many it left out; app heartbeats go in batches. Pure functions (no I/O).
/// </summary>
internal static class NodeReports
{
    /// <summary>Names per heartbeat frame: 1024 names of 64 characters, each escaped to 6 bytes, stay far below 1 MiB.</summary>
    public const int HeartbeatBatch = 1024;

    /// <summary>Bytes kept free in a frame (the JSON around the list).</summary>
    private const int Slack = 256;

    /// <summary>
    /// The link report for <paramref name="links"/> (only up and down links; <paramref name="exclude"/> leaves out
    /// direct links to other clusters' nodes). <paramref name="omitted"/> is how many reportable links did not fit.
    /// </summary>
    public static LinkReportMessage BuildLinkReport(IReadOnlyList<LinkInfo> links, Func<PubKey, bool> exclude, int maxLinks, int maxFrameSize, out int omitted)
    {
        var reportable = links
            .Where(l => l.State is LinkState.Up or LinkState.Down && !exclude(l.Peer))
            .ToList();
        IEnumerable<LinkInfo> ordered = reportable;
        if (reportable.Count > maxLinks)
        {
            // Keep what the manager routes over: links that are up, answer probes, and carry traffic.
            ordered = reportable
                .OrderByDescending(l => l.State == LinkState.Up)
                .ThenByDescending(l => l.Rtt.HasValue)
                .ThenByDescending(l => l.BytesReceived)
                .Take(maxLinks);
        }

        var report = new LinkReportMessage { Links = [.. ordered.Select(ToWire)] };
        while (report.Links.Count > 0 && JsonSerializer.SerializeToUtf8Bytes(report, ControlJsonContext.Default.LinkReportMessage).Length > maxFrameSize - Slack)
        {
            report = new LinkReportMessage { Links = report.Links[..(report.Links.Count / 2)] };
        }

        omitted = reportable.Count - report.Links.Count;
        return report;
    }

    /// <summary>Heartbeats naming every app in <paramref name="names"/>, each within <paramref name="maxFrameSize"/>.</summary>
    public static IEnumerable<AppHeartbeatMessage> Heartbeats(IReadOnlyCollection<string> names, int maxFrameSize)
    {
        foreach (var chunk in names.Chunk(HeartbeatBatch))
        {
            foreach (var message in Split(new AppHeartbeatMessage { Names = [.. chunk] }, maxFrameSize))
            {
                yield return message;
            }
        }
    }

    private static IEnumerable<AppHeartbeatMessage> Split(AppHeartbeatMessage message, int maxFrameSize)
    {
        if (message.Names.Count <= 1 || JsonSerializer.SerializeToUtf8Bytes(message, ControlJsonContext.Default.AppHeartbeatMessage).Length <= maxFrameSize - Slack)
        {
            return [message];
        }

        var half = message.Names.Count / 2;
        return Split(new AppHeartbeatMessage { Names = message.Names[..half] }, maxFrameSize)
            .Concat(Split(new AppHeartbeatMessage { Names = message.Names[half..] }, maxFrameSize));
    }

    private static WireLinkState ToWire(LinkInfo l) => new()
    {
        Peer = l.Peer.ToString(),
        Up = l.State == LinkState.Up,
        Initiator = l.Initiator,
        RttMicros = (long)(l.Rtt ?? TimeSpan.Zero).TotalMicroseconds,
        Loss = l.Loss,
        BytesSent = l.BytesSent,
        BytesReceived = l.BytesReceived,
    };
}
