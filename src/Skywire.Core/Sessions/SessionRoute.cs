using Skywire.Protocol;

namespace Skywire.Core.Sessions;

/// <summary>
/// Where an end-to-end session's packets go and come from, as the manager assigns it
/// (SessionRouteMessage on the control channel). Sent again with new labels on a re-route.
/// </summary>
/// <param name="SessionId">The manager's id of the session; both ends bind it into the handshake.</param>
/// <param name="Peer">The other end node's key; the handshake proves the peer holds it.</param>
/// <param name="Initiator">True on the end that starts the Noise handshake.</param>
/// <param name="OutLink">First hop: the link (peer key) this end sends on.</param>
/// <param name="OutRoute">Route id written on packets this end sends.</param>
/// <param name="InLink">The link packets for this session arrive on.</param>
/// <param name="InRoute">Route id they arrive with.</param>
/// <param name="Lifetime">Lifetime of the local delivery rule; null: until the session closes.</param>
public sealed record SessionRoute(
    ulong SessionId,
    PubKey Peer,
    bool Initiator,
    PubKey OutLink,
    uint OutRoute,
    PubKey InLink,
    uint InRoute,
    TimeSpan? Lifetime = null)
{
    /// <summary>Checks the fields; throws <see cref="ArgumentException"/> listing every problem.</summary>
    public void Validate()
    {
        var errors = new List<string>();
        if (Peer.IsEmpty) { errors.Add("Peer is empty"); }
        if (OutLink.IsEmpty) { errors.Add("OutLink is empty"); }
        if (InLink.IsEmpty) { errors.Add("InLink is empty"); }
        if (OutRoute == 0) { errors.Add("OutRoute 0 is reserved"); }
        if (InRoute == 0) { errors.Add("InRoute 0 is reserved"); }
        if (Lifetime is { } l && l <= TimeSpan.Zero) { errors.Add("Lifetime must be positive"); }
        if (errors.Count > 0)
        {
            throw new ArgumentException("invalid session route: " + string.Join("; ", errors));
        }
    }
}

/// <summary>Receives one plaintext datagram. The span is valid only during the call.</summary>
public delegate void DatagramHandler(ReadOnlySpan<byte> datagram);

/// <summary>Sends routed payloads for sessions (implemented by the node data plane; tests use a fake).</summary>
internal interface IRoutedSender
{
    /// <summary>Largest UDP payload; session packets are built in buffers of this size.</summary>
    int MaxUdpPayload { get; }

    /// <summary>
    /// Sends the routed payload at <c>packet[20..20+payloadLength]</c> on the link to
    /// <paramref name="outLink"/> with <paramref name="routeId"/>; the first 20 bytes and the 16
    /// after the payload are the sender's to fill. False when dropped (link down, ...).
    /// </summary>
    bool SendRouted(PubKey outLink, uint routeId, Span<byte> packet, int payloadLength);

    /// <summary>
    /// Sends <paramref name="count"/> routed packets laid out as for <see cref="SendRouted"/>, packet i at
    /// <c>slots[(i * stride)..]</c> with <c>payloadLengths[i]</c>, in order, on one link. Returns how many
    /// were sent. The default sends one by one; the data plane hands equal-size runs to UDP GSO.
    /// </summary>
    int SendRoutedBatch(PubKey outLink, uint routeId, Span<byte> slots, int stride, ReadOnlySpan<int> payloadLengths, int count)
    {
        var sent = 0;
        for (var i = 0; i < count; i++)
        {
            if (SendRouted(outLink, routeId, slots.Slice(i * stride, stride), payloadLengths[i]))
            {
                sent++;
            }
        }
        return sent;
    }
}
