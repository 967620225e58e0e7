namespace Skywire.Core.Metering;

/// <summary>
/// Cumulative counters of one route direction at one node, as the data path keeps them (a forwarding rule's counters,
/// a session's send meter). Read by the hop meters when a receipt is due; never written by them.
/// </summary>
public interface IHopCounter
{
    /// <summary>Routed payload bytes counted so far.</summary>
    ulong Bytes { get; }

    /// <summary>Routed packets counted so far.</summary>
    ulong Frames { get; }
}
