using Microsoft.Extensions.Logging;

namespace Skywire.Apps.Vpn;

/// <summary>The VPN's log messages (EventIds 6200–6229).</summary>
internal static partial class VpnLog
{
    [LoggerMessage(EventId = 6200, Level = LogLevel.Information, Message = "{Type} registered as {Node}/{Name}, device {Device}")]
    public static partial void Registered(ILogger logger, string type, string node, string name, string device);

    [LoggerMessage(EventId = 6201, Level = LogLevel.Information, Message = "vpn-server: client {Client} connected, address {Address}")]
    public static partial void ClientConnected(ILogger logger, string client, string address);

    [LoggerMessage(EventId = 6202, Level = LogLevel.Warning, Message = "vpn-server: client {Client} refused: {Reason}")]
    public static partial void ClientRefused(ILogger logger, string client, string reason);

    [LoggerMessage(EventId = 6203, Level = LogLevel.Information, Message = "vpn-server: client {Client} left ({Statistics})")]
    public static partial void ClientLeft(ILogger logger, string client, VpnStatistics statistics);

    [LoggerMessage(EventId = 6204, Level = LogLevel.Warning, Message = "vpn: tunnel to {Peer} failed: {Reason}")]
    public static partial void PeerFailed(ILogger logger, string peer, string reason);

    [LoggerMessage(EventId = 6205, Level = LogLevel.Error, Message = "vpn: reading TUN device {Device} failed: {Reason}")]
    public static partial void TunReadFailed(ILogger logger, string device, string reason);

    [LoggerMessage(EventId = 6206, Level = LogLevel.Warning, Message = "vpn: undoing {What} failed: {Reason}")]
    public static partial void UndoFailed(ILogger logger, string what, string reason);

    [LoggerMessage(EventId = 6207, Level = LogLevel.Information, Message = "vpn-client: tunnel up, {State}")]
    public static partial void ClientUp(ILogger logger, VpnClientState state);

    [LoggerMessage(EventId = 6208, Level = LogLevel.Warning, Message = "vpn-client: tunnel to {Server} down ({Reason}); dialing again in {Delay}")]
    public static partial void ClientDown(ILogger logger, string server, string reason, TimeSpan delay);

    [LoggerMessage(EventId = 6209, Level = LogLevel.Information, Message = "vpn-server: NAT on for {Subnet} (nftables table {Table})")]
    public static partial void NatOn(ILogger logger, string subnet, string table);

    [LoggerMessage(EventId = 6210, Level = LogLevel.Warning, Message = "vpn-server: client {Client} failed: {Reason}")]
    public static partial void BadHello(ILogger logger, string client, string reason);

    [LoggerMessage(EventId = 6211, Level = LogLevel.Information, Message = "vpn: stopped, {Statistics}")]
    public static partial void Stopped(ILogger logger, VpnStatistics statistics);

    [LoggerMessage(EventId = 6213, Level = LogLevel.Information, Message = "vpn-client: kill switch on (nftables table {Table}): nothing leaves this host outside the tunnel but the node's own mesh traffic")]
    public static partial void KillSwitchOn(ILogger logger, string table);

    [LoggerMessage(EventId = 6214, Level = LogLevel.Information, Message = "vpn-client: resolver {Dns} applied ({Path}, put back at exit)")]
    public static partial void DnsApplied(ILogger logger, string dns, string path);

    [LoggerMessage(EventId = 6215, Level = LogLevel.Warning, Message = "vpn-client: resolver {Dns} not applied: {Reason}")]
    public static partial void DnsNotApplied(ILogger logger, string dns, string reason);

    [LoggerMessage(EventId = 6217, Level = LogLevel.Information, Message = "vpn: tunnel MTU {Mtu}: {Reason}")]
    public static partial void MtuFromPath(ILogger logger, int mtu, string reason);

    [LoggerMessage(EventId = 6218, Level = LogLevel.Information, Message = "vpn: the path changed, tunnel MTU now {Mtu}: {Reason}")]
    public static partial void MtuChanged(ILogger logger, int mtu, string reason);

    [LoggerMessage(EventId = 6219, Level = LogLevel.Warning, Message = "vpn: measuring the path MTU again failed, no more checks: {Reason}")]
    public static partial void MtuWatchFailed(ILogger logger, string reason);

    [LoggerMessage(EventId = 6220, Level = LogLevel.Information, Message = "vpn: TUN device {Device}: {Offloads}")]
    public static partial void TunOpened(ILogger logger, string device, string offloads);

    [LoggerMessage(EventId = 6216, Level = LogLevel.Warning, Message = "vpn: IPv4 only: {Reason}")]
    public static partial void NoIPv6(ILogger logger, string reason);

    [LoggerMessage(EventId = 6212, Level = LogLevel.Information, Message = "vpn-client: route {Route} into the tunnel")]
    public static partial void RouteAdded(ILogger logger, System.Net.IPNetwork route);

    [LoggerMessage(EventId = 6221, Level = LogLevel.Information, Message = "vpn: the tunnel with {Peer} carries its packets inside the node's process (no app API connection)")]
    public static partial void PacketPathInProcess(ILogger logger, string peer);
}
