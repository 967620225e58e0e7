namespace Viscript.Core.Supervision;

/// <summary>Options of a <see cref="Supervisor"/>.</summary>
public sealed record SupervisorOptions
{
    /// <summary>Clock for start grace, backoff and stop timeouts.</summary>
    public TimeProvider TimeProvider { get; init; } = TimeProvider.System;

    /// <summary>Write each process's output to a file in the log folder.</summary>
    public bool WriteLogFiles { get; init; } = true;

    /// <summary>Log folder; overrides the config's (default: <c>logs</c> next to the config).</summary>
    public string? LogDirectory { get; init; }

    /// <summary>Upper bound of a daemon shutdown: after it every remaining process tree is killed.</summary>
    public TimeSpan ShutdownTimeout { get; init; } = TimeSpan.FromSeconds(30);

    /// <summary>
    /// Start every app as the leader of a new session and process group (through <c>setsid</c>, Linux), so that stop signals
    /// reach every process it started and its leftovers are found when it ends. Default on; without setsid apps share viscript's group.
    /// </summary>
    public bool NewSession { get; init; } = true;

    /// <summary>
    /// Make this process a child subreaper (Linux prctl): orphans of the apps are re-parented to it and reaped here, and on
    /// daemon exit whatever is left below it is killed. Changes the whole process: only for the viscript executable, not for a host that also runs other children.
    /// </summary>
    public bool ChildSubreaper { get; init; }

    /// <summary>
    /// Keep the list of running apps (pid, start time, process group) in a run-state file under
    /// <c>&lt;log folder&gt;/run</c>, so that a daemon started after this one was killed (SIGKILL) can stop the apps it
    /// left (<see cref="Supervisor.StopAbandonedAppsAsync"/>). For the viscript daemon; in-process hosts leave it off.
    /// </summary>
    public bool RecordRunState { get; init; }

    /// <summary>
    /// Name of the meter of the supervisor's instruments (<see cref="Supervisor.MeterName"/> by default). Metric readers
    /// select meters by name, so hosts that run several supervisors in one process (tests) give each its own.
    /// </summary>
    public string MeterName { get; init; } = SupervisorMetrics.MeterName;

    /// <summary>Default options.</summary>
    public static SupervisorOptions Default { get; } = new();
}
