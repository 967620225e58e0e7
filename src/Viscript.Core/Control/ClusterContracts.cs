namespace Viscript.Core.Control;

// Control API contracts of the cluster (GET /api/hosts; docs/viscript.md "Cluster"). Add fields, never rename.

/// <summary>Figures of a host (<c>hosts</c>, the GUI's host list).</summary>
/// <param name="Load1">1-minute load average.</param>
/// <param name="MemoryTotalBytes">Physical memory.</param>
/// <param name="MemoryAvailableBytes">Memory available to new work (MemAvailable).</param>
/// <param name="CpuCount">Processors.</param>
/// <param name="Processes">Processes in the host's table.</param>
/// <param name="Running">Of those, running.</param>
public sealed record HostStats(double? Load1, long? MemoryTotalBytes, long? MemoryAvailableBytes, int CpuCount, int Processes, int Running);

/// <summary>A host of the cluster: this daemon (<paramref name="Local"/>) or an agent of its allow-list.</summary>
/// <param name="Name">Name in the namespace (<c>NAME:ID</c>, <c>NAME:APP</c>).</param>
/// <param name="State"><c>local</c>, <c>connected</c>, <c>unreachable</c> (was connected) or <c>never-seen</c>.</param>
/// <param name="Local">This daemon.</param>
/// <param name="LastSeen">When the agent last sent anything (null: never).</param>
/// <param name="Since">When the agent entered its current state.</param>
/// <param name="Version">viscript version of the host.</param>
/// <param name="Address">Address the agent connects from.</param>
/// <param name="PublicKey">The host's cluster key.</param>
/// <param name="HostName">The machine's own host name, as the agent reported it.</param>
/// <param name="Stats">Last figures (agents send them every few seconds).</param>
/// <param name="Reason">Why the agent is unreachable (its last disconnect).</param>
public sealed record HostInfo(string Name, string State, bool Local, DateTimeOffset? LastSeen, DateTimeOffset? Since, string? Version, string? Address,
    string? PublicKey, string? HostName, HostStats? Stats, string? Reason);
