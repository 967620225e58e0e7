using System.Net;
using Skywire.Core.Crypto;
using Skywire.Protocol;

namespace Skywire.Core.Links;

/// <summary>
/// State of a link. Values are shown in CLIs and logs: never renumber. The transitions are drawn on
/// <see cref="Link"/>, which changes its state only through its one validated transition method;
/// <see cref="LinkStates.IsAllowed"/> is the table.
/// </summary>
public enum LinkState
{
    /// <summary>Handshake in progress (we initiated, or the peer's handshake awaits key confirmation).</summary>
    Connecting = 10,

    /// <summary>Keys confirmed both ways; packets flow.</summary>
    Up = 20,

    /// <summary>Dead: no packet from the peer for <c>DeadAfter</c>, handshake timeout, closed by the peer, or evicted. Reopen to use again.</summary>
    Down = 30,

    /// <summary>Closed locally.</summary>
    Closed = 40,
}

/// <summary>Transition rules of <see cref="LinkState"/> (the diagram is on <see cref="Link"/>).</summary>
public static class LinkStates
{
    /// <summary>Whether a link may go from <paramref name="from"/> to <paramref name="to"/>. Staying in a state is not a transition.</summary>
    public static bool IsAllowed(LinkState from, LinkState to) => (from, to) switch
    {
        (LinkState.Connecting, LinkState.Up or LinkState.Down or LinkState.Closed) => true,
        (LinkState.Up, LinkState.Down or LinkState.Closed) => true,
        (LinkState.Down, LinkState.Connecting or LinkState.Closed) => true,
        (LinkState.Closed, LinkState.Connecting) => true,
        _ => false,
    };
}

/// <summary>A snapshot of one link, with the metrics the link measures itself (probe packets).</summary>
/// <param name="Peer">The peer's key (authenticated by the handshake).</param>
/// <param name="RemoteEndPoint">The peer's UDP address (follows the peer when it roams).</param>
/// <param name="State">Link state.</param>
/// <param name="Initiator">True when this node opened the link.</param>
/// <param name="Aead">The AEAD negotiated for the link, once up.</param>
/// <param name="Rtt">Smoothed round-trip time of probes (EWMA, 1/8), null before the first reply.</param>
/// <param name="LastRtt">The latest probe round trip.</param>
/// <param name="Loss">Fraction of recent probes (up to <c>ProbeWindow</c>) with no reply in time, 0..1.</param>
/// <param name="PacketsSent">Packets sent on the link (all types).</param>
/// <param name="PacketsReceived">Authenticated packets received.</param>
/// <param name="BytesSent">UDP payload bytes sent.</param>
/// <param name="BytesReceived">UDP payload bytes received (authenticated).</param>
/// <param name="UpSince">When the current keys were confirmed.</param>
/// <param name="LastReceived">When the last authenticated packet arrived.</param>
public sealed record LinkInfo(
    PubKey Peer,
    IPEndPoint? RemoteEndPoint,
    LinkState State,
    bool Initiator,
    AeadAlgorithmId? Aead,
    TimeSpan? Rtt,
    TimeSpan? LastRtt,
    double Loss,
    long PacketsSent,
    long PacketsReceived,
    long BytesSent,
    long BytesReceived,
    DateTimeOffset? UpSince,
    DateTimeOffset? LastReceived);

/// <summary>A link went up or down.</summary>
public sealed class LinkEventArgs : EventArgs
{
    /// <summary>Creates the event.</summary>
    public LinkEventArgs(LinkInfo link, string reason)
    {
        Link = link;
        Reason = reason;
    }

    /// <summary>The peer.</summary>
    public PubKey Peer => Link.Peer;

    /// <summary>The link after the change.</summary>
    public LinkInfo Link { get; }

    /// <summary>Why ("handshake complete", "timeout", "closed by peer", ...).</summary>
    public string Reason { get; }
}
