namespace Viscript.Core.Supervision;

/// <summary>
/// Life cycle of a managed process, modelled on Supervisor's process states.
/// Every change goes through <see cref="Supervisor"/>'s single <c>TransitionTo</c>, which enforces this table:
/// <code>
///                  REG or start_secs up
///   Created ──► Starting ─────────────────► Running
///                 │  │ ▲                    │    │
///          spawn  │  │ │ backoff elapsed     │    │ exit (policy: restart)
///          failed │  │ │                    │    ▼
///          / max  │  │ └──────────────── Backoff ◄─┘ (also from Starting)
///         retries ▼  │                       │  │
///             Fatal ◄┼───────────────────────┘  │ retries exhausted (from Starting/Running/Backoff)
///                    │ exit (policy: none)      │ stop/kill during backoff
///                    ▼                          │
///                 Exited(code) ◄────────────────┘
///                    ▲
///   sd/kill: Starting|Running ─► Stopping ─┘ (process ended; the stop is flagged as requested)
///   restart: Exited|Fatal ─► Starting
/// </code>
/// A finished process is always <see cref="Exited"/> with its exit code; whether the end was requested
/// (sd, kill, restart, daemon exit) is a separate flag, which the restart policy honours.
/// Values are stable (shown in the control API): never renumber.
/// </summary>
public enum ProcessState
{
    /// <summary>The id is allocated and the first launch not yet attempted (never observed from outside: the launch follows under the same lock).</summary>
    Created = 0,
    /// <summary>Spawned; neither registered over signal nor up for start_secs yet.</summary>
    Starting = 10,
    /// <summary>Registered over signal, or up for start_secs.</summary>
    Running = 20,
    /// <summary>Exited unexpectedly; waiting before the next start.</summary>
    Backoff = 30,
    /// <summary>A stop was requested; waiting for the process to end (escalating SHUTDOWN, SIGTERM, SIGKILL).</summary>
    Stopping = 40,
    /// <summary>Ended (on its own, or on request) and not restarted; the exit code is kept.</summary>
    Exited = 100,
    /// <summary>Could not be started, or failed more often than max_retries in a row.</summary>
    Fatal = 200,
    /// <summary>Not a process viscript launched (a signal client that connected on its own).</summary>
    Unknown = 1000,
}

/// <summary>Transition rules of <see cref="ProcessState"/>.</summary>
public static class ProcessStates
{
    /// <summary>Whether a process in <paramref name="state"/> has a live OS process.</summary>
    public static bool IsActive(this ProcessState state) => state is ProcessState.Starting or ProcessState.Running or ProcessState.Stopping;

    /// <summary>Whether the table in <see cref="ProcessState"/> allows <paramref name="from"/> to <paramref name="to"/>.</summary>
    public static bool IsAllowed(ProcessState from, ProcessState to) => (from, to) switch
    {
        (ProcessState.Created, ProcessState.Starting) => true,
        (ProcessState.Starting, ProcessState.Running or ProcessState.Backoff or ProcessState.Exited or ProcessState.Fatal or ProcessState.Stopping) => true,
        (ProcessState.Running, ProcessState.Backoff or ProcessState.Exited or ProcessState.Fatal or ProcessState.Stopping) => true,
        (ProcessState.Backoff, ProcessState.Starting or ProcessState.Exited or ProcessState.Fatal) => true,
        (ProcessState.Stopping, ProcessState.Exited) => true,
        (ProcessState.Exited or ProcessState.Fatal, ProcessState.Starting) => true,
        _ => false,
    };

    /// <summary>Display text: the state name, with the exit code for Exited.</summary>
    public static string Display(ProcessState state, int? exitCode) => state switch
    {
        ProcessState.Exited when exitCode is not null => $"Exited({exitCode})",
        ProcessState.Unknown => "Remote",
        _ => state.ToString(),
    };
}
