using System.Net;
using System.Net.Sockets;
using Skywire.Protocol.AppApi;
using Skywire.Protocol.Links;
using Skywire.Protocol.Sessions;

namespace Skywire.Apps.Vpn;

/// <summary>
/// The tunnel MTU from the path (docs/vpn.md "MTU"). A tunnel packet crosses every hop as one UDP datagram of the same
/// size (relays rewrite the label only), so the mesh adds a fixed overhead per packet (link + routed header, session
/// seal, flow header): the node's largest datagram is its UDP payload limit less that overhead. That limit fits a
/// 1500-byte link; when a link of this node's cannot carry it unfragmented (the MTU of the interface, or of the
/// route, toward a link peer, less the IP and UDP headers), the tunnel MTU is lowered by the difference, so a
/// full-size tunnel packet is never fragmented or dropped on that link.
/// </summary>
public static class PathMtu
{
    /// <summary>What the mesh adds to a tunnel packet on the wire (UDP payload less the largest datagram).</summary>
    public static int Overhead { get; } =
        LinkLimits.DefaultMaxUdpPayload - (SessionLimits.MaxDatagram(LinkLimits.DefaultMaxUdpPayload) - FlowDatagram.HeaderLength);

    /// <summary>
    /// The tunnel MTU: at most <paramref name="bound"/> and the node's largest datagram, lowered to what the links
    /// toward the node's underlay peers carry. <paramref name="linkMtu"/> gives the IP MTU toward an address (null:
    /// unknown). <paramref name="limitedBy"/> names the link that lowered it, or is null.
    /// </summary>
    public static int Derive(NodeInfoMessage info, int bound, Func<IPAddress, int?> linkMtu, out string? limitedBy)
    {
        ArgumentNullException.ThrowIfNull(info);
        ArgumentNullException.ThrowIfNull(linkMtu);
        limitedBy = null;
        var mtu = Math.Min(bound, info.MaxDatagram);
        var udpPayload = info.MaxDatagram + Overhead;
        foreach (var text in info.Underlay)
        {
            if (!IPAddress.TryParse(text, out var peer) || IPAddress.IsLoopback(peer) || linkMtu(peer) is not { } ipMtu)
            {
                continue;
            }

            var carried = ipMtu - (peer.AddressFamily == AddressFamily.InterNetworkV6 ? 48 : 28);
            var limit = info.MaxDatagram - Math.Max(0, udpPayload - carried);
            if (limit < mtu)
            {
                mtu = limit;
                limitedBy = $"the link toward {peer} carries IP packets of {ipMtu} bytes";
            }
        }

        return mtu;
    }
}
