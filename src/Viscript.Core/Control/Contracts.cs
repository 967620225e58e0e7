namespace Viscript.Core.Control;

// Control API contracts (JSON, camelCase on the wire). The CLI and the web GUI read these shapes: add fields, never rename.

/// <summary>A configured app (<c>GET /api/apps</c>).</summary>
public sealed record AppInfo(string Name, string Path, IReadOnlyList<string> DefaultArgs, string Description, string Help, bool Daemon, string Restart, bool Autostart)
{
    /// <summary>The groups the app belongs to (<c>groups:</c> in config.yaml; <c>start -g GROUP</c>); null or empty = none.</summary>
    public IReadOnlyList<string>? Groups { get; init; }
}

/// <summary>A managed process or a signal client viscript did not launch (<c>GET /api/processes</c>).</summary>
/// <param name="Id">Sequence id (= signal client id).</param>
/// <param name="App">App name, or null for a client viscript did not launch.</param>
/// <param name="Pid">OS process id of the current or last run.</param>
/// <param name="State">State name (<c>Starting</c>, <c>Running</c>, ..., <c>Remote</c> for clients viscript did not launch).</param>
/// <param name="StateCode">Numeric ProcessState.</param>
/// <param name="Display">State as <c>la</c> shows it, e.g. <c>Exited(1)</c>.</param>
/// <param name="ExitCode">Exit code of the last run, if it ended.</param>
/// <param name="SignalRegistered">Whether a signal client with this id is connected.</param>
/// <param name="Remote">True for signal clients viscript did not launch.</param>
/// <param name="RemoteEndPoint">Address of the signal connection, if registered.</param>
/// <param name="StartedAt">Start of the current run (or registration time for remote clients).</param>
/// <param name="UptimeSeconds">Seconds since <paramref name="StartedAt"/> while running.</param>
/// <param name="CommandLine">Full command line.</param>
/// <param name="Restarts">Automatic restarts so far.</param>
/// <param name="Daemon">App's daemon flag.</param>
/// <param name="StopRequested">The current or last run was asked to stop (sd, kill, restart, daemon exit): an <c>Exited</c> process with this flag ended on request.</param>
/// <param name="Host">In a cluster: the host the process runs on (docs/viscript.md "Cluster"); address it as <c>HOST:ID</c>. Null on a daemon without agents.</param>
/// <param name="EndedAt">When the last run finished (Exited or Fatal); null while it runs. <c>la</c> hides rows finished long ago.</param>
public sealed record ProcessInfo(
    ulong Id,
    string? App,
    int? Pid,
    string State,
    int StateCode,
    string Display,
    int? ExitCode,
    bool SignalRegistered,
    bool Remote,
    string? RemoteEndPoint,
    DateTimeOffset? StartedAt,
    double? UptimeSeconds,
    string CommandLine,
    int Restarts,
    bool Daemon,
    bool StopRequested,
    string? Host = null,
    DateTimeOffset? EndedAt = null);

/// <summary>Something happened (<c>GET /api/events</c>, shown in the REPL).</summary>
/// <param name="Time">When.</param>
/// <param name="Kind"><c>state</c>, <c>registered</c>, <c>disconnected</c> or <c>diagnostic</c>.</param>
/// <param name="Id">Process or signal client id (0 for daemon-wide events).</param>
/// <param name="App">App name if known.</param>
/// <param name="From">Previous state (state events).</param>
/// <param name="To">New state display (state events).</param>
/// <param name="Pid">Pid if known.</param>
/// <param name="ExitCode">Exit code for Exited/Backoff/Fatal after an exit.</param>
/// <param name="Message">Human-readable text.</param>
/// <param name="StopRequested">State events: the run was asked to stop (an <c>Exited</c> that follows a stop request).</param>
/// <param name="Host">The agent the event comes from (cluster), or null for this daemon's own processes. Kind <c>host</c>: the agent whose state changed.</param>
public sealed record ProcessEvent(DateTimeOffset Time, string Kind, ulong Id, string? App, string? From, string? To, int? Pid, int? ExitCode, string Message, bool StopRequested = false, string? Host = null);

/// <summary>Answer of <c>ru</c>.</summary>
/// <param name="Id">Id.</param>
/// <param name="Pid">Pid (null for remote clients).</param>
/// <param name="CpuPercent">CPU use since the previous <c>ru</c> of this process (or since start), percent of one core.</param>
/// <param name="CpuTimeSeconds">Total CPU time.</param>
/// <param name="RssBytes">Resident memory.</param>
/// <param name="Threads">Threads.</param>
/// <param name="OpenFiles">Open file descriptors.</param>
/// <param name="Heap">Heap figures from signal TOP when the process is a signal client.</param>
/// <param name="SignalError">Why TOP failed, if it was tried and failed.</param>
public sealed record ResourceReport(ulong Id, int? Pid, double? CpuPercent, double? CpuTimeSeconds, long? RssBytes, int? Threads, int? OpenFiles, HeapReport? Heap, string? SignalError);

/// <summary>Heap figures from a signal TOP reply (Go MemStats names).</summary>
public sealed record HeapReport(ulong HeapAlloc, ulong HeapSys, ulong HeapIdle, ulong HeapInuse, ulong StackSys, ulong StackInuse, ulong? Rss, double? CpuTimeSeconds, int? Threads);

/// <summary><c>POST /api/command</c> body: either a raw line (parsed with the REPL's quoting rules) or pre-split arguments.</summary>
public sealed record CommandRequest(string? Line, IReadOnlyList<string>? Args);

/// <summary>Result of a command: the text lines the REPL would print. On failure the same data comes as problem+json with <c>code</c>.</summary>
/// <param name="Code">0 on success, else the error code (= CLI exit code).</param>
/// <param name="Lines">Output lines.</param>
/// <param name="Action">Terminal action for an interactive front-end (<c>attach</c>, <c>follow</c>, <c>clear</c>, <c>quit</c>), else null.</param>
/// <param name="TargetId">Process id the action applies to (on its host).</param>
/// <param name="Target">The action's target as the control API addresses it: the id, or <c>HOST:ID</c> for a process on an agent.</param>
public sealed record CommandResponse(int Code, IReadOnlyList<string> Lines, string? Action, ulong? TargetId, string? Target = null);

/// <summary><c>POST /api/processes</c> body; <paramref name="Host"/> names an agent (null: this host).</summary>
public sealed record StartRequest(string App, IReadOnlyList<string>? Args, string? Host = null);

/// <summary>Answer of ping.</summary>
public sealed record PingReport(ulong Id, double Milliseconds);

/// <summary>Answer of shutdown/kill/restart: the pid acted on and the state afterwards.</summary>
public sealed record StopReport(ulong Id, int? Pid, int? ReportedPid, ProcessInfo Process);

/// <summary><c>GET /api/info</c>; <paramref name="Name"/> is this host's name in the cluster, <paramref name="PublicKey"/> its cluster key (null when it has none).</summary>
public sealed record DaemonInfo(string Version, int Pid, string? SignalAddress, string ControlUrl, string? ConfigFile, bool Headless, string? Name = null, string? PublicKey = null);

/// <summary>A captured output line on the control API.</summary>
/// <param name="Seq">Position in the process's output (0 for a partial line).</param>
/// <param name="Time">When it was read.</param>
/// <param name="Stream"><c>stdout</c>, <c>stderr</c> or <c>system</c>.</param>
/// <param name="Text">The line without its end-of-line.</param>
/// <param name="Partial">An unfinished line (SSE event <c>partial</c>): everything written since the last newline; the complete line follows as a <c>line</c> event.</param>
public sealed record LogLineInfo(long Seq, DateTimeOffset Time, string Stream, string Text, bool Partial = false);

/// <summary>Error body (<c>application/problem+json</c>, RFC 9457) with the stable <see cref="ErrorCode"/> in <c>code</c>.</summary>
/// <param name="Type">URI naming the error kind (<c>urn:viscript:error:&lt;slug&gt;</c>).</param>
/// <param name="Title">Short kind text.</param>
/// <param name="Status">HTTP status.</param>
/// <param name="Detail">The message.</param>
/// <param name="Code">Stable error code = CLI exit code.</param>
/// <param name="Lines">For <c>/api/command</c>: the lines the REPL would print.</param>
public sealed record ProblemBody(string Type, string Title, int Status, string Detail, int Code, IReadOnlyList<string>? Lines);

/// <summary><c>POST /api/processes/{id}/stdin</c> body.</summary>
public sealed record InputRequest(string Line);

/// <summary>Data of the SSE <c>end</c> event that closes a followed log: the process stopped running.</summary>
/// <param name="Id">Process id.</param>
/// <param name="State">Its state as <c>la</c> shows it (e.g. <c>Exited(0)</c>).</param>
public sealed record LogEndInfo(ulong Id, string? State);
