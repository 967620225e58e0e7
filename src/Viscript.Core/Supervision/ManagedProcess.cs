using System.Diagnostics;
using Viscript.Core.Config;

namespace Viscript.Core.Supervision;

/// <summary>One sequence id: an app launched by viscript, with its current run and captured output. Mutable state is guarded by <see cref="Gate"/>.</summary>
public sealed class ManagedProcess
{
    internal ManagedProcess(ulong id, AppOptions app, IReadOnlyList<string> arguments, string commandLine, LogBuffer logs)
    {
        Id = id;
        App = app;
        Arguments = arguments;
        CommandLine = commandLine;
        Logs = logs;
    }

    /// <summary>Sequence id, also the signal client id.</summary>
    public ulong Id { get; }

    /// <summary>App configuration used for this id.</summary>
    public AppOptions App { get; }

    /// <summary>Arguments after the executable (including signal flags if configured).</summary>
    public IReadOnlyList<string> Arguments { get; }

    /// <summary>Executable and arguments joined for display.</summary>
    public string CommandLine { get; }

    /// <summary>Captured output of every run of this id.</summary>
    public LogBuffer Logs { get; }

    internal Lock Gate { get; } = new();

    /// <summary>Current state.</summary>
    public ProcessState State { get; internal set; } = ProcessState.Created;

    /// <summary>Whether the current or last run was asked to stop (sd, kill, restart, daemon exit): its end is not a failure and is never restarted.</summary>
    public bool StopRequested { get; internal set; }

    internal ProcessRun? Run { get; set; }

    internal int? LastPid { get; set; }

    internal int? ExitCode { get; set; }

    internal int Failures { get; set; }

    internal int Restarts { get; set; }

    internal CancellationTokenSource? BackoffCts { get; set; }

    internal ProcSample? LastSample { get; set; }

    internal DateTimeOffset LastSampleAt { get; set; }

    internal LogFile? LogFile { get; set; }

    /// <summary>When the last run finished (state Exited or Fatal); null while it runs or waits to.</summary>
    internal DateTimeOffset? EndedAt { get; set; }

    /// <summary>Removed from the table by <c>forget</c>: never started again under this id.</summary>
    internal bool Forgotten { get; set; }
}

/// <summary>One OS process of a <see cref="ManagedProcess"/>.</summary>
internal sealed class ProcessRun(Process process, DateTimeOffset startedAt)
{
    public Process Process { get; } = process;

    public int Pid { get; } = process.Id;

    public DateTimeOffset StartedAt { get; } = startedAt;

    /// <summary>Completes once the exit has been handled (state changed), with the exit code.</summary>
    public TaskCompletionSource<int> Ended { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

    /// <summary>Cancelled when the run ends (stops its start-grace timer).</summary>
    public CancellationTokenSource Cts { get; } = new();

    public Task Pumps { get; set; } = Task.CompletedTask;

    public SemaphoreSlim StdinGate { get; } = new(1, 1);

    /// <summary>Started as a session and process-group leader (through setsid): its pid is also its group id.</summary>
    public bool NewSession { get; init; }

    /// <summary>Descendants seen when a stop began; whatever of them outlives the process is stopped with its session.</summary>
    public List<(int Pid, long StartTime)>? StopSnapshot { get; set; }
}
