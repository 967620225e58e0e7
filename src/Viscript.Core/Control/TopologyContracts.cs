namespace Viscript.Core.Control;

// Control API contracts of the topology view (GET /api/topology; docs/gui.md "Topology"). Add fields, never rename.
// The same shapes, one JSON document per line, are what a topology command prints (`skywire cli topology --json --watch`).

/// <summary>A mesh node.</summary>
/// <param name="Key">Public key (66 hex characters).</param>
/// <param name="LinkAddress">UDP address of its links.</param>
/// <param name="Online">Registered with the manager now.</param>
/// <param name="Apps">Names of its registered apps.</param>
public sealed record TopologyNode(string Key, string LinkAddress, bool Online, IReadOnlyList<string> Apps);

/// <summary>A link as one of its ends reports it.</summary>
public sealed record TopologyLink(string From, string To, bool Up, double RttMs, double Loss);

/// <summary>A live route: the node keys from source to destination.</summary>
public sealed record TopologyRoute(string SessionId, string From, string To, IReadOnlyList<string> Path, int Reroutes);

/// <summary>
/// <c>GET /api/topology</c>: the mesh as the configured source last reported it. <paramref name="Configured"/> is false
/// when viscript has no topology source; <paramref name="Error"/> says why the source could not report (the last
/// nodes, links and routes are then empty).
/// </summary>
public sealed record TopologyView(bool Configured, string? Manager, string? Error, DateTimeOffset? FetchedAt,
    IReadOnlyList<TopologyNode> Nodes, IReadOnlyList<TopologyLink> Links, IReadOnlyList<TopologyRoute> Routes)
{
    /// <summary>No source configured.</summary>
    public static TopologyView NotConfigured { get; } = new(false, null, null, null, [], [], []);
}

/// <summary>
/// One line of a topology command's output: a snapshot (<see cref="Nodes"/>, <see cref="Links"/>, <see cref="Routes"/>)
/// or, when the source failed, <see cref="Error"/> alone.
/// </summary>
public sealed record TopologyDocument(string? Manager, string? Error, IReadOnlyList<TopologyNode>? Nodes, IReadOnlyList<TopologyLink>? Links, IReadOnlyList<TopologyRoute>? Routes);
