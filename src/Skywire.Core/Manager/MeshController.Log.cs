using Microsoft.Extensions.Logging;
using Skywire.Protocol;

namespace Skywire.Core.Manager;

public sealed partial class MeshController
{
    private static partial class Log
    {
        [LoggerMessage(EventId = 2100, Level = LogLevel.Information, Message = "Node {Node} registered (links at {LinkAddress})")]
        public static partial void NodeRegistered(ILogger logger, PubKey node, string linkAddress);

        [LoggerMessage(EventId = 2101, Level = LogLevel.Information, Message = "Node {Node} went offline")]
        public static partial void NodeGone(ILogger logger, PubKey node);

        [LoggerMessage(EventId = 2102, Level = LogLevel.Information, Message = "App {Name} ({Type}) registered on {Node}")]
        public static partial void AppRegistered(ILogger logger, string name, string type, PubKey node);

        [LoggerMessage(EventId = 2103, Level = LogLevel.Information, Message = "App {Name} on {Node} expired (no heartbeat)")]
        public static partial void AppExpired(ILogger logger, string name, PubKey node);

        [LoggerMessage(EventId = 2104, Level = LogLevel.Information, Message = "Asked {From} to link to {To}")]
        public static partial void LinkRequested(ILogger logger, PubKey from, PubKey to);

        [LoggerMessage(EventId = 2105, Level = LogLevel.Warning, Message = "Auto-link {From} -> {To} failed: {Reason}")]
        public static partial void AutoLinkFailed(ILogger logger, PubKey from, PubKey to, string reason);

        [LoggerMessage(EventId = 2106, Level = LogLevel.Information, Message = "Route {SessionId} built: {Path}")]
        public static partial void RouteBuilt(ILogger logger, ulong sessionId, PathText path);

        [LoggerMessage(EventId = 2107, Level = LogLevel.Information, Message = "Route {SessionId} re-routed: {Path}")]
        public static partial void Rerouted(ILogger logger, ulong sessionId, PathText path);

        [LoggerMessage(EventId = 2108, Level = LogLevel.Warning, Message = "Route {SessionId} is broken and has no alternate path yet")]
        public static partial void NoAlternate(ILogger logger, ulong sessionId);

        [LoggerMessage(EventId = 2109, Level = LogLevel.Warning, Message = "Re-route of {SessionId} failed: {Reason}")]
        public static partial void RerouteFailed(ILogger logger, ulong sessionId, string reason);

        [LoggerMessage(EventId = 2110, Level = LogLevel.Information, Message = "Route {SessionId} closed: {Reason}")]
        public static partial void RouteClosed(ILogger logger, ulong sessionId, string reason);

        [LoggerMessage(EventId = 2111, Level = LogLevel.Warning, Message = "Refresh of route {SessionId} failed: {Reason}")]
        public static partial void RefreshFailed(ILogger logger, ulong sessionId, string reason);

        [LoggerMessage(EventId = 2112, Level = LogLevel.Warning, Message = "Link report of {Node} refused: it names {Count} links to registered nodes, more than the {Limit} a node may report; its links age out of the route graph")]
        public static partial void LinkReportRefused(ILogger logger, PubKey node, int count, int limit);

        [LoggerMessage(EventId = 2113, Level = LogLevel.Warning, Message = "App registration of {Node} refused: it has {Limit} apps, the most a node may have")]
        public static partial void AppLimit(ILogger logger, PubKey node, int limit);

        [LoggerMessage(EventId = 2114, Level = LogLevel.Warning, Message = "Route request of {Node} refused: {Reason}")]
        public static partial void RouteLimit(ILogger logger, PubKey node, string reason);

        [LoggerMessage(EventId = 2115, Level = LogLevel.Information, Message = "Node {Node} forgotten (offline too long)")]
        public static partial void NodeForgotten(ILogger logger, PubKey node);
    }
}
