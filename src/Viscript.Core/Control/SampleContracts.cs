namespace Viscript.Core.Control;

// Control API contracts of the resource sampler (GET /api/samples, GET /api/processes/{id}/samples). Add fields, never rename.

/// <summary>One OS-level reading of a process.</summary>
/// <param name="Time">When.</param>
/// <param name="Pid">Pid read, or null when the process was not running (a gap in the chart).</param>
/// <param name="CpuPercent">CPU use since the previous sample of the same pid, percent of one core (null for the first sample of a run).</param>
/// <param name="RssBytes">Resident memory, or null when not running.</param>
/// <param name="Threads">Threads, or null when not running.</param>
public sealed record ResourceSample(DateTimeOffset Time, int? Pid, double? CpuPercent, long? RssBytes, int? Threads);

/// <summary>The recent history of one process, oldest first.</summary>
/// <param name="Id">Process id.</param>
/// <param name="App">App name.</param>
/// <param name="IntervalSeconds">Seconds between samples.</param>
/// <param name="Samples">Readings, oldest first (at most the sampler's window).</param>
/// <param name="Host">The host of the process in a cluster (null on a daemon without agents).</param>
public sealed record SampleSeries(ulong Id, string? App, double IntervalSeconds, IReadOnlyList<ResourceSample> Samples, string? Host = null);
