using System.Net;

namespace Skywire.Core.Manager;

/// <summary>Settings of a node manager.</summary>
public sealed record ManagerOptions
{
    /// <summary>Control listener (loopback by default).</summary>
    public IPEndPoint Listen { get; init; } = new(IPAddress.Loopback, 5999);

    /// <summary>Keys (66 hex) allowed to use cli calls, besides the manager's own key.</summary>
    public IReadOnlyCollection<string> Admins { get; init; } = [];

    /// <summary>
    /// Node keys allowed to register (docs/operations.md "Who may join"). Null: any node that proves a key may
    /// join (the manager warns at start when it listens on a non-loopback address).
    /// </summary>
    public NodeAllowList? AllowedNodes { get; init; }

    /// <summary>With an allow-list file, reload it when the file changes (besides <see cref="ManagerServer.ReloadAllowedNodes"/>).</summary>
    public bool WatchAllowedNodesFile { get; init; }

    /// <summary>Lifetime of an installed rule; live routes are refreshed well before it ends.</summary>
    public TimeSpan RuleLifetime { get; init; } = TimeSpan.FromSeconds(60);

    /// <summary>How often rules of live routes are re-installed.</summary>
    public TimeSpan RefreshInterval { get; init; } = TimeSpan.FromSeconds(20);

    /// <summary>An app with no heartbeat for this long leaves the tracker.</summary>
    public TimeSpan AppTtl { get; init; } = TimeSpan.FromSeconds(15);

    /// <summary>How often nodes report link metrics and app heartbeats (sent to them in the hello answer).</summary>
    public TimeSpan ReportInterval { get; init; } = TimeSpan.FromSeconds(1);

    /// <summary>How long a new connection may take to handshake and say hello.</summary>
    public TimeSpan HelloTimeout { get; init; } = TimeSpan.FromSeconds(10);

    /// <summary>Connections the listener holds at once, in all and per source address (unauthenticated ones make room first).</summary>
    public Channels.ListenerLimits Connections { get; init; } = Channels.ListenerLimits.Default;

    /// <summary>How long the manager waits for a node to answer a command.</summary>
    public TimeSpan CommandTimeout { get; init; } = TimeSpan.FromSeconds(10);

    /// <summary>When set, every newly registered node is asked to link to every node already online.</summary>
    public bool AutoLink { get; init; }

    /// <summary>
    /// A link report counts for routing only this long after it arrived (docs/protocol.md §4.5): a link enters the
    /// route graph when both of its ends reported it up within this bound. Nodes report every
    /// <see cref="ReportInterval"/>, so this is several intervals. Default 10 s.
    /// </summary>
    public TimeSpan LinkReportMaxAge { get; init; } = TimeSpan.FromSeconds(10);

    /// <summary>Smallest delay between attempts to re-open a standing link (grows with jitter up to <see cref="MaxLinkRetryDelay"/>). Default 1 s.</summary>
    public TimeSpan LinkRetryDelay { get; init; } = TimeSpan.FromSeconds(1);

    /// <summary>Largest delay between attempts to re-open a standing link. Default 10 s.</summary>
    public TimeSpan MaxLinkRetryDelay { get; init; } = TimeSpan.FromSeconds(10);

    /// <summary>
    /// How long a route is kept after one of its ends lost its control connection while a neighbour still reports an
    /// up link to that end (the end may only have lost the manager: it comes back and reports the session). Default 30 s.
    /// </summary>
    public TimeSpan EndOfflineGrace { get; init; } = TimeSpan.FromSeconds(30);

    /// <summary>An offline node (and what it reported) is forgotten this long after it went offline. Default 1 h.</summary>
    public TimeSpan OfflineNodeRetention { get; init; } = TimeSpan.FromHours(1);

    /// <summary>
    /// Where the manager shares its state with other managers of the same mesh (docs/architecture.md "Manager state"):
    /// an <see cref="Store.EtcdStore"/>, or an <see cref="Store.EmbeddedStore"/> (persisted to a file, so that a single
    /// manager survives its own restart). Null: the state lives in this process only (one manager). Owned by the caller.
    /// </summary>
    public Store.IMeshStore? Store { get; init; }

    /// <summary>Per-node limits and reply sizes (docs/protocol.md §4.6).</summary>
    public ManagerLimits Limits { get; init; } = ManagerLimits.Default;

    /// <summary>Clock for expiry and refresh.</summary>
    public TimeProvider TimeProvider { get; init; } = TimeProvider.System;

    /// <summary>Metering of routes and the ledger (docs/metering.md "Live path"); null: routes are not metered (the default).</summary>
    public Metering.ManagerMeteringOptions? Metering { get; init; }

    /// <summary>Defaults.</summary>
    public static ManagerOptions Default { get; } = new();
}

/// <summary>
/// What one node may hold in the manager, and how large a reply page is (docs/protocol.md §4.6). A request beyond a
/// limit is answered with <see cref="Protocol.Control.ControlErrorCode.LimitExceeded"/> and changes nothing.
/// </summary>
public sealed record ManagerLimits
{
    /// <summary>Apps one node may have in the tracker. Default 128.</summary>
    public int MaxAppsPerNode { get; init; } = 128;

    /// <summary>
    /// Links one node may report (entries naming registered nodes; others are ignored). A larger report is refused
    /// whole and the node's previous report ages out. Default 1024 (a full mesh of 1025 nodes with --auto-link).
    /// </summary>
    public int MaxLinksPerNode { get; init; } = 1024;

    /// <summary>
    /// Offline nodes the registry remembers; beyond it the longest offline are forgotten at once (keys that register
    /// and leave, one after another, do not grow the registry without bound). Default 4096.
    /// </summary>
    public int MaxOfflineNodes { get; init; } = 4096;

    /// <summary>Live routes a node may have asked for (RouteRequest) and not closed. Default 512.</summary>
    public int MaxRoutesPerNode { get; init; } = 512;

    /// <summary>Live routes a node may have asked for to one and the same peer. Default 8.</summary>
    public int MaxRoutesPerPair { get; init; } = 8;

    /// <summary>Route requests of one node being built at once; more are refused at once, not queued. Default 4.</summary>
    public int MaxRouteRequestsInFlight { get; init; } = 4;

    /// <summary>Most items in one page of a list reply, whatever the request's limit. Default 1000.</summary>
    public int MaxPageItems { get; init; } = 1000;

    /// <summary>
    /// Serialized size one page of a list reply stays under. Default 56 KiB, so a page of apps also fits the app API's
    /// 64 KiB frames when a node relays it to an app.
    /// </summary>
    public int ReplyPageBytes { get; init; } = 56 * 1024;

    /// <summary>Defaults.</summary>
    public static ManagerLimits Default { get; } = new();
}
