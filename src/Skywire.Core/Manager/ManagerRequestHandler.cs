using System.Text.Json;
using System.Text.Json.Serialization.Metadata;
using Microsoft.Extensions.Logging;
using Skywire.Core.Channels;
using Skywire.Protocol;
using Skywire.Protocol.Control;

namespace Skywire.Core.Manager;

/// <summary>
/// Answers the requests of connected nodes and cli keys (docs/protocol.md §4.4): each role has its own opcodes, every
/// request acts for the caller's own key (the one its connection proved), and every answer fits one frame: lists come
/// whole or by page (<see cref="ManagerListing"/>), and an answer that would still be too large is turned into a
/// <see cref="ControlErrorCode.ReplyTooLarge"/> error instead of being dropped. No sockets: the server feeds it frames.
/// </summary>
internal sealed partial class ManagerRequestHandler(MeshController controller, ManagerLimits limits, ILogger logger)
{
    private static readonly byte[] Ok = JsonSerializer.SerializeToUtf8Bytes(new OkMessage(), ControlJsonContext.Default.OkMessage);

    /// <summary>The largest answer payload (the control channel's frame limit).</summary>
    public int MaxReplySize { get; init; } = ControlProtocol.MaxFrameSize;

    /// <summary>A request from node <paramref name="node"/>.</summary>
    /// <exception cref="ControlException">The request failed (answered as an Error frame).</exception>
    /// <exception cref="JsonException">A malformed payload (a protocol violation: the connection closes).</exception>
    public async ValueTask<byte[]> HandleNodeAsync(PubKey node, byte opcode, ReadOnlyMemory<byte> payload, CancellationToken cancellationToken)
    {
        switch ((ControlOpcode)opcode)
        {
            case ControlOpcode.Ping:
                return Ok;
            case ControlOpcode.LinkReport:
                controller.ReportLinks(node, Parse(payload, ControlJsonContext.Default.LinkReportMessage));
                return Ok;
            case ControlOpcode.AppRegister:
                controller.RegisterApp(node, Parse(payload, ControlJsonContext.Default.AppRegisterMessage));
                return Ok;
            case ControlOpcode.AppUnregister:
                controller.UnregisterApp(node, Parse(payload, ControlJsonContext.Default.AppUnregisterMessage).Name);
                return Ok;
            case ControlOpcode.AppHeartbeat:
                controller.HeartbeatApps(node, Parse(payload, ControlJsonContext.Default.AppHeartbeatMessage).Names);
                return Ok;
            case ControlOpcode.AppList:
                return ListApps(node, Parse(payload, ControlJsonContext.Default.AppListMessage));
            case ControlOpcode.RouteRequest:
                var request = Parse(payload, ControlJsonContext.Default.RouteRequestMessage);
                var result = await controller.RequestRouteAsync(node, controller.ResolveNode(request.To), cancellationToken);
                return Reply(node, opcode, result, ControlJsonContext.Default.RouteResultMessage);
            case ControlOpcode.RouteClose:
                await controller.CloseRouteAsync(node, Parse(payload, ControlJsonContext.Default.RouteCloseMessage).SessionId);
                return Ok;
            case ControlOpcode.SessionReport:
                controller.ReportSessions(node, Parse(payload, ControlJsonContext.Default.SessionReportMessage));
                return Ok;
            case ControlOpcode.MeterReceipt:
                var receipt = await controller.MeterReceiptAsync(node, Parse(payload, ControlJsonContext.Default.MeterMessage), cancellationToken);
                return Reply(node, opcode, receipt, ControlJsonContext.Default.MeterMessage);
            case ControlOpcode.MeterAuth:
                var delivered = await controller.MeterAuthAsync(node, Parse(payload, ControlJsonContext.Default.MeterMessage), cancellationToken);
                return Reply(node, opcode, delivered, ControlJsonContext.Default.MeterMessage);
            default:
                Log.ForbiddenOpcode(logger, node, opcode);
                throw new ControlException(ControlErrorCode.Forbidden, $"opcode 0x{opcode:x2} is not allowed from a node");
        }
    }

    /// <summary>A request from cli key <paramref name="caller"/> (the manager's own key or an admin key).</summary>
    /// <exception cref="ControlException">The request failed (answered as an Error frame).</exception>
    /// <exception cref="JsonException">A malformed payload (a protocol violation: the connection closes).</exception>
    public async ValueTask<byte[]> HandleCliAsync(PubKey caller, byte opcode, ReadOnlyMemory<byte> payload, CancellationToken cancellationToken)
    {
        switch ((ControlOpcode)opcode)
        {
            case ControlOpcode.Ping:
                return Ok;
            case ControlOpcode.ListNodes:
            {
                var request = Parse(payload, ControlJsonContext.Default.ListRequestMessage);
                var all = controller.ListNodes();
                return Reply(caller, opcode, request.Limit is { } limit ? ManagerListing.Page(all, request.After, limit, limits) : all, ControlJsonContext.Default.NodeListMessage);
            }

            case ControlOpcode.ListLinks:
            {
                var request = Parse(payload, ControlJsonContext.Default.ListRequestMessage);
                var all = controller.ListLinks();
                return Reply(caller, opcode, request.Limit is { } limit ? ManagerListing.Page(all, request.After, limit, limits) : all, ControlJsonContext.Default.LinkListMessage);
            }

            case ControlOpcode.ListRoutes:
            {
                var request = Parse(payload, ControlJsonContext.Default.ListRequestMessage);
                var all = controller.ListRoutes();
                return Reply(caller, opcode, request.Limit is { } limit ? ManagerListing.Page(all, request.After, limit, limits) : all, ControlJsonContext.Default.RouteListMessage);
            }

            case ControlOpcode.AppList:
                return ListApps(caller, Parse(payload, ControlJsonContext.Default.AppListMessage));
            case ControlOpcode.LinkNodes:
                var link = Parse(payload, ControlJsonContext.Default.NodePairMessage);
                await controller.LinkNodesAsync(controller.ResolveNode(link.A), controller.ResolveNode(link.B), cancellationToken);
                return Ok;
            case ControlOpcode.UnlinkNodes:
                var unlink = Parse(payload, ControlJsonContext.Default.NodePairMessage);
                await controller.UnlinkNodesAsync(controller.ResolveNode(unlink.A), controller.ResolveNode(unlink.B), cancellationToken);
                return Ok;
            case ControlOpcode.BuildRoute:
                var pair = Parse(payload, ControlJsonContext.Default.NodePairMessage);
                var route = await controller.BuildRouteAsync(controller.ResolveNode(pair.A), controller.ResolveNode(pair.B), cancellationToken);
                return Reply(caller, opcode, route, ControlJsonContext.Default.RouteResultMessage);
            case ControlOpcode.LedgerGrant:
                var granted = controller.Grant(caller, Parse(payload, ControlJsonContext.Default.LedgerGrantMessage));
                return Reply(caller, opcode, granted, ControlJsonContext.Default.LedgerGrantMessage);
            case ControlOpcode.LedgerAct:
                var acted = controller.LedgerAct(caller, Parse(payload, ControlJsonContext.Default.LedgerActMessage));
                return Reply(caller, opcode, acted, ControlJsonContext.Default.LedgerActMessage);
            default:
                Log.ForbiddenOpcode(logger, caller, opcode);
                throw new ControlException(ControlErrorCode.Forbidden, $"opcode 0x{opcode:x2} is not a cli call");
        }
    }

    private byte[] ListApps(PubKey caller, AppListMessage query)
    {
        var all = controller.ListApps(query);
        var reply = query.Limit is { } limit ? ManagerListing.Page(all, query.After, limit, limits) : all;
        return Reply(caller, (byte)ControlOpcode.AppList, reply, ControlJsonContext.Default.AppListResultMessage);
    }

    /// <summary>Serializes an answer; one that would not fit a frame becomes a ReplyTooLarge error (never a dropped answer).</summary>
    private byte[] Reply<T>(PubKey caller, byte opcode, T message, JsonTypeInfo<T> type)
    {
        var bytes = JsonSerializer.SerializeToUtf8Bytes(message, type);
        if (bytes.Length > MaxReplySize)
        {
            Log.ReplyTooLarge(logger, caller, opcode, bytes.Length, MaxReplySize);
            throw new ControlException(ControlErrorCode.ReplyTooLarge,
                $"the answer to 0x{opcode:x2} would be {bytes.Length} bytes, more than the {MaxReplySize}-byte frame: ask page by page (limit, after) or narrow the query");
        }

        return bytes;
    }

    private static T Parse<T>(ReadOnlyMemory<byte> payload, JsonTypeInfo<T> type) =>
        JsonSerializer.Deserialize(payload.Span, type) ?? throw new JsonException("null payload");

    private static partial class Log
    {
        [LoggerMessage(EventId = 2203, Level = LogLevel.Warning, Message = "Dropped forbidden control opcode 0x{Opcode:x2} from {Key}")]
        public static partial void ForbiddenOpcode(ILogger logger, PubKey key, byte opcode);

        [LoggerMessage(EventId = 2210, Level = LogLevel.Warning, Message = "Answer to 0x{Opcode:x2} for {Key} would be {Size} bytes, more than the {Max}-byte frame: answered ReplyTooLarge")]
        public static partial void ReplyTooLarge(ILogger logger, PubKey key, byte opcode, int size, int max);
    }
}
