using System.ComponentModel;
using Microsoft.Extensions.Logging;
using Viscript.Signal;

namespace Viscript.Core.Supervision;

/// <summary>
/// Stops one run, escalating: signal SHUTDOWN (when the process is a registered signal client), SIGTERM to its process
/// group, SIGKILL of its group and tree — each step after the app's stop_timeout. A client that does not acknowledge
/// SHUTDOWN goes straight to SIGTERM. Children the run had started when the stop began and that outlive it are killed too.
/// </summary>
internal sealed class StopEscalation(ISignalGateway signal, TimeProvider time, ILogger logger)
{
    /// <summary>SIGKILL cannot be ignored; this bound only guards against a process stuck in the kernel.</summary>
    private static readonly TimeSpan KillWait = TimeSpan.FromSeconds(10);

    /// <summary>
    /// Stops <paramref name="run"/> of process <paramref name="id"/>: the graceful steps first when <paramref name="graceful"/>,
    /// else SIGKILL at once. Returns the pid the client reported to SHUTDOWN, if it did. Completes once the run ended
    /// (or the kill wait ran out).
    /// </summary>
    public async Task<int?> StopAsync(ulong id, ProcessRun run, TimeSpan stopTimeout, bool graceful, CancellationToken cancellationToken, TimeSpan? shutdownWait = null)
    {
        // Whatever of the run's children outlives it is stopped with its session, so that no orphan survives a stop.
        var tree = ProcessTree.Descendants(run.Pid);
        run.StopSnapshot = tree;
        try
        {
            return await EscalateAsync(id, run, stopTimeout, shutdownWait ?? stopTimeout, graceful, cancellationToken);
        }
        finally
        {
            var killed = ProcessTree.KillSurvivors(tree);
            if (killed > 0)
            {
                Supervisor.Log.OrphansKilled(logger, id, killed);
            }
        }
    }

    /// <summary>SIGKILL to the run's process group (when it leads one) and its process tree.</summary>
    public static void KillTree(ProcessRun run)
    {
        if (run.NewSession)
        {
            Native.TrySignalGroup(run.Pid, Native.SigKill);
        }

        try
        {
            run.Process.Kill(entireProcessTree: true);
        }
        catch (Exception ex) when (ex is InvalidOperationException or Win32Exception or ObjectDisposedException or NotSupportedException)
        {
            // Already exited (and possibly disposed by the exit handler).
        }
    }

    /// <summary>Waits for the run's end to be handled; false when <paramref name="timeout"/> ran out first.</summary>
    public static async Task<bool> WaitEndedAsync(ProcessRun run, TimeSpan timeout, TimeProvider time, CancellationToken cancellationToken)
    {
        try
        {
            await run.Ended.Task.WaitAsync(timeout, time, cancellationToken);
            return true;
        }
        catch (TimeoutException)
        {
            return false;
        }
    }

    private async Task<int?> EscalateAsync(ulong id, ProcessRun run, TimeSpan timeout, TimeSpan shutdownWait, bool graceful, CancellationToken cancellationToken)
    {
        int? reportedPid = null;
        if (graceful)
        {
            if (signal.TryGetClient(id, out _))
            {
                var acknowledged = false;
                try
                {
                    reportedPid = await signal.ShutdownAsync(id, cancellationToken);
                    acknowledged = true;
                    Supervisor.Log.StopStep(logger, id, run.Pid, "signal SHUTDOWN acknowledged");
                }
                catch (SignalException ex)
                {
                    Supervisor.Log.StopStepFailed(logger, id, run.Pid, ex.Message);
                }

                // Only a client that acknowledged gets shutdown_wait to wind down; one that did not answer goes straight to SIGTERM.
                if (acknowledged && await WaitEndedAsync(run, shutdownWait, time, cancellationToken))
                {
                    return reportedPid;
                }
            }

            if (run.Ended.Task.IsCompleted)
            {
                return reportedPid;
            }

            SignalRun(run, Native.SigTerm);
            Supervisor.Log.StopStep(logger, id, run.Pid, run.NewSession ? "SIGTERM sent to its process group" : "SIGTERM sent");
            if (await WaitEndedAsync(run, timeout, time, cancellationToken))
            {
                return reportedPid;
            }
        }

        Supervisor.Log.StopStep(logger, id, run.Pid, "killing process tree");
        KillTree(run);
        await WaitEndedAsync(run, KillWait, TimeProvider.System, cancellationToken);
        return reportedPid;
    }

    /// <summary>Signals the whole process group of a run started as a group leader, else the process alone.</summary>
    private static void SignalRun(ProcessRun run, int signalNumber)
    {
        if (!run.NewSession || !Native.TrySignalGroup(run.Pid, signalNumber))
        {
            Native.TrySignal(run.Pid, signalNumber);
        }
    }
}
