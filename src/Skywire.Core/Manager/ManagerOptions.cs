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

    /// <summary>Clock for expiry and refresh.</summary>
    public TimeProvider TimeProvider { get; init; } = TimeProvider.System;

    /// <summary>Defaults.</summary>
    public static ManagerOptions Default { get; } = new();
}
