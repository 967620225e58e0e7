using Microsoft.Extensions.Logging;

namespace Skywire.Core.Manager.Store;

public sealed partial class MeshStoreSync
{
    private static partial class Log
    {
        [LoggerMessage(EventId = 2328, Level = LogLevel.Warning, Message = "The answer to command {Id} could not be written to the mesh store (its sender times out): {Reason}")]
        public static partial void AckNotWritten(ILogger logger, string id, string reason);

        [LoggerMessage(EventId = 2322, Level = LogLevel.Warning, Message = "Ignored a malformed value in the mesh store at '{Key}'")]
        public static partial void ValueIgnored(ILogger logger, string key);

        [LoggerMessage(EventId = 2323, Level = LogLevel.Warning, Message = "A change from the mesh store at '{Key}' was not applied: {Reason}")]
        public static partial void ApplyFailed(ILogger logger, string key, string reason);

        [LoggerMessage(EventId = 2324, Level = LogLevel.Warning, Message = "Manager {Manager} left the mesh store; its routes are taken over once their ends are online")]
        public static partial void ManagerGone(ILogger logger, string manager);

        [LoggerMessage(EventId = 2325, Level = LogLevel.Information, Message = "Route {SessionId:x} taken over from manager {Manager}")]
        public static partial void RouteTakenOver(ILogger logger, ulong sessionId, string manager);

        [LoggerMessage(EventId = 2326, Level = LogLevel.Information, Message = "Route {SessionId:x} of manager {Manager} removed from the mesh store: its owner is gone and its ends did not come back")]
        public static partial void OrphanRemoved(ILogger logger, ulong sessionId, string manager);

        [LoggerMessage(EventId = 2327, Level = LogLevel.Debug, Message = "A label of route {SessionId:x} was taken by another manager meanwhile; drawing others")]
        public static partial void LabelTaken(ILogger logger, ulong sessionId);
    }
}
