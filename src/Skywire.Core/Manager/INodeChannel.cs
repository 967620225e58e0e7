using Skywire.Core.Channels;
using Skywire.Protocol.Control;

namespace Skywire.Core.Manager;

/// <summary>What the manager can ask of a connected node (the control channel, or a test double).</summary>
public interface INodeChannel
{
    /// <summary>Ask the node to open a link to a peer.</summary>
    Task OpenLinkAsync(OpenLinkMessage message, CancellationToken cancellationToken);

    /// <summary>Ask the node to close its link to a peer.</summary>
    Task CloseLinkAsync(CloseLinkMessage message, CancellationToken cancellationToken);

    /// <summary>Install or refresh forwarding rules.</summary>
    Task InstallRulesAsync(InstallRulesMessage message, CancellationToken cancellationToken);

    /// <summary>Remove forwarding rules (best effort).</summary>
    Task RemoveRulesAsync(RemoveRulesMessage message, CancellationToken cancellationToken);

    /// <summary>Tell an end node the labels of its session (new or re-routed).</summary>
    Task SessionRouteAsync(SessionRouteMessage message, CancellationToken cancellationToken);

    /// <summary>Tell an end node its session's route is gone for good.</summary>
    Task RouteClosedAsync(RouteCloseMessage message, CancellationToken cancellationToken);

    /// <summary>A metering call (<see cref="ControlOpcode.MeterTerms"/> … <see cref="ControlOpcode.MeterCaps"/>; docs/metering.md "Live path").</summary>
    Task<MeterMessage> MeterAsync(ControlOpcode opcode, MeterMessage message, CancellationToken cancellationToken) =>
        throw new ControlException(ControlErrorCode.Unavailable, "this node channel does not carry metering calls");
}
