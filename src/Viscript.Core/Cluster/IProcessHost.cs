using Viscript.Core.Control;

namespace Viscript.Core.Cluster;

/// <summary>
/// One host's processes as the command interpreter and the control API act on them: this daemon's supervisor
/// (<see cref="LocalProcessHost"/>) or an agent reached over the agent protocol (<see cref="RemoteHost"/>). Failures
/// are <see cref="ViscriptException"/>s with the same codes on both (an agent's own error code travels back as it is);
/// a host that cannot be reached fails with <see cref="ErrorCode.HostUnreachable"/>.
/// </summary>
public interface IProcessHost
{
    /// <summary>Name in the namespace (<c>NAME:ID</c>).</summary>
    string Name { get; }

    /// <summary>This daemon's own supervisor.</summary>
    bool IsLocal { get; }

    /// <summary>Configured apps (sorted by name); an agent's as it last reported them.</summary>
    IReadOnlyList<AppInfo> Apps { get; }

    /// <summary>The process table (<see cref="ProcessInfo.Host"/> not set); an agent's as it last reported it.</summary>
    IReadOnlyList<ProcessInfo> List();

    /// <summary>Starts an app under a new id.</summary>
    Task<ProcessInfo> StartAsync(string app, IReadOnlyList<string>? args, CancellationToken cancellationToken = default);

    /// <summary>One process.</summary>
    Task<ProcessInfo> GetAsync(ulong id, CancellationToken cancellationToken = default);

    /// <summary>Signal round trip.</summary>
    Task<TimeSpan> PingAsync(ulong id, CancellationToken cancellationToken = default);

    /// <summary>Resource usage (<c>ru</c>).</summary>
    Task<ResourceReport> ResourceUsageAsync(ulong id, CancellationToken cancellationToken = default);

    /// <summary>Graceful stop (<c>sd</c>).</summary>
    Task<StopReport> StopAsync(ulong id, CancellationToken cancellationToken = default);

    /// <summary>SIGKILL of the process tree.</summary>
    Task<StopReport> KillAsync(ulong id, CancellationToken cancellationToken = default);

    /// <summary>Stop, then start again under the same id.</summary>
    Task<StopReport> RestartAsync(ulong id, CancellationToken cancellationToken = default);

    /// <summary>The last <paramref name="count"/> captured lines.</summary>
    Task<IReadOnlyList<LogLineInfo>> LogsAsync(ulong id, int count, CancellationToken cancellationToken = default);

    /// <summary>
    /// The last <paramref name="tail"/> lines, then new ones (<c>line</c>, and <c>partial</c> for unfinished lines), until
    /// the process stops running (a final <c>end</c> item with its state) or the caller cancels.
    /// </summary>
    IAsyncEnumerable<LogStreamItem> FollowAsync(ulong id, int tail, CancellationToken cancellationToken = default);

    /// <summary>One line to the process's stdin.</summary>
    Task WriteInputAsync(ulong id, string line, CancellationToken cancellationToken = default);

    /// <summary>The process, if it can be attached to (launched by viscript and running).</summary>
    Task<ProcessInfo> GetAttachableAsync(ulong id, CancellationToken cancellationToken = default);

    /// <summary>CPU and memory history of every process.</summary>
    Task<IReadOnlyList<SampleSeries>> SamplesAsync(CancellationToken cancellationToken = default);
}
