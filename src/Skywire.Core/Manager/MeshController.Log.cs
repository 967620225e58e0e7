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

        [LoggerMessage(EventId = 2105, Level = LogLevel.Warning, Message = "Opening the standing link {From} -> {To} failed (attempt {Attempt}; retrying with backoff): {Reason}")]
        public static partial void LinkReopenFailed(ILogger logger, PubKey from, PubKey to, int attempt, string reason);

        [LoggerMessage(EventId = 2116, Level = LogLevel.Information, Message = "Link intent {A} - {B} withdrawn; the link is closed")]
        public static partial void Unlinked(ILogger logger, PubKey a, PubKey b);

        [LoggerMessage(EventId = 2117, Level = LogLevel.Information, Message = "Standing link {From} -> {To} opened again (attempt {Attempt})")]
        public static partial void LinkReopened(ILogger logger, PubKey from, PubKey to, int attempt);

        [LoggerMessage(EventId = 2118, Level = LogLevel.Information, Message = "Node {Node} reported {Count} links it opened that this manager did not ask for: kept open as standing intents")]
        public static partial void IntentsAdopted(ILogger logger, PubKey node, int count);

        [LoggerMessage(EventId = 2119, Level = LogLevel.Debug, Message = "Node {Node} reported {Count} sessions")]
        public static partial void SessionsReported(ILogger logger, PubKey node, int count);

        [LoggerMessage(EventId = 2120, Level = LogLevel.Information, Message = "Route {SessionId} adopted from its ends' reports: {Path}")]
        public static partial void RouteAdopted(ILogger logger, ulong sessionId, PathText path);

        [LoggerMessage(EventId = 2121, Level = LogLevel.Warning, Message = "Session {SessionId} of {Node} not adopted: the node is at its route limits")]
        public static partial void AdoptRefused(ILogger logger, ulong sessionId, PubKey node);

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
