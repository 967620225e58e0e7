using System.Net;
using Microsoft.Extensions.Logging;
using Skywire.Core.Crypto;
using Skywire.Protocol;

namespace Skywire.Core.DataPlane;

/// <summary>
/// The log events of the data plane's parts (one class, so their EventIds stay unique and in range:
/// 1000-1079 links and forwarding, 1080-1099 sessions (SecureSession); 1011 is <c>SocketUdpBind</c>'s).
/// </summary>
internal static partial class DataPlaneLog
{
    [LoggerMessage(EventId = 1000, Level = LogLevel.Information, Message = "Data plane of {LocalKey} listening on udp {EndPoint} (AEAD {Aead})")]
    public static partial void Started(ILogger logger, PubKey localKey, IPEndPoint endPoint, AeadAlgorithmId aead);

    [LoggerMessage(EventId = 1001, Level = LogLevel.Information, Message = "Link to {Peer} up ({EndPoint}): {Reason}")]
    public static partial void LinkUp(ILogger logger, PubKey peer, IPEndPoint? endPoint, string reason);

    [LoggerMessage(EventId = 1002, Level = LogLevel.Warning, Message = "Link to {Peer} down: {Reason}")]
    public static partial void LinkDown(ILogger logger, PubKey peer, string reason);

    [LoggerMessage(EventId = 1003, Level = LogLevel.Debug, Message = "Link handshake from {From} rejected: {Reason}")]
    public static partial void HandshakeRejected(ILogger logger, SocketAddress from, string reason);

    [LoggerMessage(EventId = 1004, Level = LogLevel.Debug, Message = "Link handshake from {Peer} at {From} answered")]
    public static partial void HandshakeAnswered(ILogger logger, PubKey peer, SocketAddress from);

    [LoggerMessage(EventId = 1008, Level = LogLevel.Debug, Message = "Link handshake from {From} rejected: unsupported AEAD {Aead}")]
    public static partial void UnsupportedAead(ILogger logger, SocketAddress from, byte aead);

    [LoggerMessage(EventId = 1009, Level = LogLevel.Information, Message = "Link handshake from {Peer} at {From} refused by policy")]
    public static partial void PeerRefused(ILogger logger, PubKey peer, SocketAddress from);

    [LoggerMessage(EventId = 1010, Level = LogLevel.Information, Message = "UDP offloads: GSO {Gso}, GRO {Gro}")]
    public static partial void Offloads(ILogger logger, bool gso, bool gro);

    [LoggerMessage(EventId = 1005, Level = LogLevel.Error, Message = "UDP receive failed; the receive thread stops")]
    public static partial void ReceiveFailed(ILogger logger, Exception exception);

    [LoggerMessage(EventId = 1006, Level = LogLevel.Error, Message = "Unexpected error while handling a packet (dropped)")]
    public static partial void PacketHandlerFailed(ILogger logger, Exception exception);

    [LoggerMessage(EventId = 1007, Level = LogLevel.Error, Message = "Data plane maintenance tick failed")]
    public static partial void MaintenanceFailed(ILogger logger, Exception exception);

    [LoggerMessage(EventId = 1050, Level = LogLevel.Debug, Message = "Rule {InLink}/{InRoute} -> {OutLink}/{OutRoute} installed for {Lifetime}")]
    public static partial void RuleInstalled(ILogger logger, PubKey inLink, uint inRoute, PubKey outLink, uint outRoute, TimeSpan lifetime);

    [LoggerMessage(EventId = 1012, Level = LogLevel.Debug, Message = "Link to {Peer} evicted to make room for a new peer's link (the link table is full)")]
    public static partial void LinkEvicted(ILogger logger, PubKey peer);

    [LoggerMessage(EventId = 1013, Level = LogLevel.Debug, Message = "Link handshake from {Peer} at {From} refused: the link table is full of links that must stay")]
    public static partial void TableFull(ILogger logger, PubKey peer, SocketAddress from);

    [LoggerMessage(EventId = 1014, Level = LogLevel.Warning, Message = "{Count} up/down events of links this node did not open were not logged in the last second (more than 10 a second: a handshake flood?); the counters LinksEvicted and TableFull tell more")]
    public static partial void StrangerLinkEventsSuppressed(ILogger logger, long count);

    [LoggerMessage(EventId = 1083, Level = LogLevel.Information, Message = "Session {SessionId} closed: {Reason}")]
    public static partial void SessionClosed(ILogger logger, ulong sessionId, string reason);
}
