using Microsoft.Extensions.Logging;

namespace Viscript.Core.Supervision;

/// <summary>
/// Stops what an app left behind when its own process ended (like systemd's <c>KillMode=control-group</c>): members of
/// its session and process group, and the tree seen when a stop began. SIGTERM, up to stop_timeout (real time), then
/// SIGKILL; in subreaper mode the re-parented orphans are reaped, so none stays a zombie. Processes are matched by pid
/// and start time, so a recycled pid is never signalled.
/// </summary>
internal sealed class LeftoverStopper(OrphanReaper reaper, ILogger logger)
{
    /// <summary>After <paramref name="run"/>'s process ended: stops its session or group and what the stop snapshot still finds.</summary>
    public Task StopAfterRunAsync(ulong id, ProcessRun run, TimeSpan stopTimeout)
    {
        var leftovers = run.NewSession ? ProcessTree.GroupMembers(run.Pid) : [];
        if (run.StopSnapshot is { } snapshot)
        {
            leftovers.AddRange(snapshot.Where(s => !leftovers.Contains(s) && ProcessTree.IsAlive(s.Pid, s.StartTime)));
        }

        return StopAsync(id, run.Pid, run.NewSession, leftovers, stopTimeout);
    }

    /// <summary>
    /// SIGTERM to <paramref name="leftovers"/> (and to process group <paramref name="leader"/> when <paramref name="signalGroup"/>),
    /// wait up to <paramref name="stopTimeout"/>, then SIGKILL. The group is signalled only while a member is known to run:
    /// the kernel does not reuse a group's id while it has members.
    /// </summary>
    public async Task StopAsync(ulong id, int leader, bool signalGroup, List<(int Pid, long StartTime)> leftovers, TimeSpan stopTimeout)
    {
        if (leftovers.Count == 0)
        {
            reaper.ReapOrphans();
            return;
        }

        Supervisor.Log.LeftoversStopping(logger, id, leader, leftovers.Count);
        if (signalGroup)
        {
            Native.TrySignalGroup(leader, Native.SigTerm);
        }

        ProcessTree.SignalSurvivors(leftovers, Native.SigTerm);
        if (await reaper.WaitGoneAsync(leftovers, stopTimeout))
        {
            return;
        }

        if (signalGroup)
        {
            Native.TrySignalGroup(leader, Native.SigKill);
        }

        var killed = ProcessTree.KillSurvivors(leftovers);
        Supervisor.Log.OrphansKilled(logger, id, killed);
        if (!await reaper.WaitGoneAsync(leftovers, TimeSpan.FromSeconds(5)))
        {
            Supervisor.Log.LeftoversSurvived(logger, id, leader, leftovers.Count(l => ProcessTree.IsAlive(l.Pid, l.StartTime)));
        }
    }
}
