namespace Skywire.Apps.Vpn;

/// <summary>Packet counters of one VPN endpoint (updated with Interlocked; read any time).</summary>
public sealed class VpnStatistics
{
    internal long _fromTun;
    internal long _toTun;
    internal long _noPeer;
    internal long _malformed;
    internal long _refused;
    internal long _tunErrors;
    internal long _peerErrors;
    internal long _tooBig;
    internal long _coalesced;

    /// <summary>Packets read from the TUN and sent into the mesh.</summary>
    public long FromTun => Interlocked.Read(ref _fromTun);

    /// <summary>Packets from the mesh written to the TUN.</summary>
    public long ToTun => Interlocked.Read(ref _toTun);

    /// <summary>Packets from the TUN dropped because no peer has their destination (or the tunnel is down).</summary>
    public long NoPeer => Interlocked.Read(ref _noPeer);

    /// <summary>Datagrams or TUN reads that were not one well-formed IP packet, dropped.</summary>
    public long Malformed => Interlocked.Read(ref _malformed);

    /// <summary>Packets from a peer with an address that is not theirs (spoofed source, or not for us), dropped.</summary>
    public long Refused => Interlocked.Read(ref _refused);

    /// <summary>Packets the TUN device refused.</summary>
    public long TunErrors => Interlocked.Read(ref _tunErrors);

    /// <summary>Batches lost because a peer's datagram connection failed.</summary>
    public long PeerErrors => Interlocked.Read(ref _peerErrors);

    /// <summary>Packets from the TUN larger than the tunnel's path carries, answered with ICMP "too big" (or dropped).</summary>
    public long TooBig => Interlocked.Read(ref _tooBig);

    /// <summary>Packets from the mesh written to the TUN inside a coalesced TCP super-packet (not counting each run's first).</summary>
    public long Coalesced => Interlocked.Read(ref _coalesced);

    /// <inheritdoc/>
    public override string ToString() =>
        $"from-tun {FromTun}, to-tun {ToTun}, no-peer {NoPeer}, malformed {Malformed}, refused {Refused}, tun-errors {TunErrors}, peer-errors {PeerErrors}, too-big {TooBig}, coalesced {Coalesced}";
}
