using System.Net;
using Skywire.Core.Channels;
using Skywire.Core.Control;
using Skywire.Core.DataPlane;
using Skywire.Core.Sessions.Mux;

namespace Skywire.Core.Node;

/// <summary>Settings of a node process.</summary>
public sealed record NodeOptions
{
    /// <summary>The manager to register with, and its pinned key.</summary>
    public required ManagerAddress Manager { get; init; }

    /// <summary>
    /// More managers of the same mesh (several managers sharing one store; docs/operations.md "Several managers"). The
    /// node talks to one manager at a time: it tries <see cref="Manager"/> first, and when the one it uses cannot be
    /// reached it goes on to the next in the list at once, before backing off. Each entry pins its key (usually the
    /// one cluster key all the managers share).
    /// </summary>
    public IReadOnlyList<ManagerAddress> AlternateManagers { get; init; } = [];

    /// <summary><see cref="Manager"/> then <see cref="AlternateManagers"/>.</summary>
    public IReadOnlyList<ManagerAddress> AllManagers => [Manager, .. AlternateManagers];

    /// <summary>UDP address the links bind (port 0 picks one). This address is what the manager gives peers.</summary>
    public IPEndPoint LinkListen { get; init; } = new(IPAddress.Loopback, 0);

    /// <summary>Link address told to the manager (and so to peers) instead of the bound one: behind NAT, a wildcard bind, or a test relay.</summary>
    public IPEndPoint? AdvertisedLinkAddress { get; init; }

    /// <summary>App API address; loopback only (port 0 picks one).</summary>
    public IPEndPoint AppsListen { get; init; } = new(IPAddress.Loopback, 0);

    /// <summary>
    /// Where the app token is written (mode 0600, atomically: <see cref="AppTokenFile"/>); an existing file there is
    /// replaced only if it is a previous token file. Null keeps the token in memory only (tests).
    /// </summary>
    public string? AppTokenFile { get; init; }

    /// <summary>
    /// Connections the app API holds at once (every mesh stream of a local app is one), in all and per source address
    /// (default 4096 for both: the app API is loopback only). Unauthenticated ones make room first.
    /// </summary>
    public ListenerLimits AppConnections { get; init; } = new() { MaxConnections = 4096, MaxConnectionsPerSource = 4096 };

    /// <summary>How long to wait for the manager's handshake and hello answer.</summary>
    public TimeSpan ConnectTimeout { get; init; } = TimeSpan.FromSeconds(10);

    /// <summary>Smallest delay before reconnecting to the manager after the connection drops (grows with jitter up to <see cref="MaxReconnectDelay"/>: <see cref="Channels.Backoff"/>).</summary>
    public TimeSpan ReconnectDelay { get; init; } = TimeSpan.FromMilliseconds(250);

    /// <summary>Largest delay between reconnection attempts to the manager (default 10 s).</summary>
    public TimeSpan MaxReconnectDelay { get; init; } = TimeSpan.FromSeconds(10);

    /// <summary>
    /// Most links one link report carries (default 4096, which always fits the 1 MiB control frame): with more, the
    /// report keeps the links that are up, measured and carrying traffic, and the node logs how many it left out.
    /// </summary>
    public int MaxReportedLinks { get; init; } = 4096;

    /// <summary>How long a dial waits for the route and the end-to-end handshake.</summary>
    public TimeSpan DialTimeout { get; init; } = TimeSpan.FromSeconds(15);

    /// <summary>
    /// How long a session whose first hop's link is down (no packet for <c>DataPlane.DeadAfter</c>) waits for a new
    /// route from the manager, or for the link to come back, before it is closed as broken and its apps get their reset
    /// (docs/protocol.md §7, "How soon a break is reported"). Counted only while the node is connected to its manager.
    /// Zero: only the multiplexer's idle timeout ends such a session.
    /// </summary>
    public TimeSpan DeadHopGrace { get; init; } = TimeSpan.FromSeconds(5);

    /// <summary>Data plane settings (links, probes, dead-link detection).</summary>
    public DataPlaneOptions DataPlane { get; init; } = DataPlaneOptions.Default;

    /// <summary>Stream multiplexer settings of end-to-end sessions.</summary>
    public MuxOptions Mux { get; init; } = MuxOptions.Default;

    /// <summary>
    /// A messenger to register at with the node key (docs/messenger.md "Node integration"): when the manager has no
    /// route to a dialled node (another cluster), the dial goes through the messenger, and apps here accept streams
    /// that arrive through it. Null: mesh only.
    /// </summary>
    public Messenger.MessengerClientOptions? Messenger { get; init; }

    /// <summary>
    /// How long a dial to another cluster's node tries a direct link brokered by the messenger (offer, answer, link
    /// handshake, session handshake) before it falls back to a relayed messenger stream (docs/messenger.md "Direct links
    /// between clusters"). Zero: never try, always relay, and refuse other nodes' offers.
    /// </summary>
    public TimeSpan DirectLinkTimeout { get; init; } = TimeSpan.FromSeconds(3);

    /// <summary>
    /// How soon after a dial fell back to the messenger's relay this node tries a direct link again, to move the
    /// relayed streams onto it (docs/messenger.md "Relayed streams move to a direct link"); each failed try doubles the
    /// wait, up to <see cref="RelayUpgradeMaxInterval"/>, with ±20 % jitter. Zero: relayed streams stay relayed.
    /// </summary>
    public TimeSpan RelayUpgradeInterval { get; init; } = TimeSpan.FromSeconds(10);

    /// <summary>Longest wait between two tries of <see cref="RelayUpgradeInterval"/>.</summary>
    public TimeSpan RelayUpgradeMaxInterval { get; init; } = TimeSpan.FromMinutes(2);

    /// <summary>What this node accepts as a metered route's source, and where it journals metering (docs/metering.md "Live path").</summary>
    public Metering.NodeMeteringOptions Metering { get; init; } = Skywire.Core.Metering.NodeMeteringOptions.Default;

    /// <summary>Clock.</summary>
    public TimeProvider TimeProvider { get; init; } = TimeProvider.System;
}
