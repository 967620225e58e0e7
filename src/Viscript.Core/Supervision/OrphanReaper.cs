using System.Diagnostics;
using Microsoft.Extensions.Logging;

namespace Viscript.Core.Supervision;

/// <summary>
/// Child-subreaper mode (Linux prctl, the viscript executable only): orphans of the apps are re-parented to this
/// process; they are reaped here (after a stop, and once a second for those that die on their own), and on daemon exit
/// whatever is still below the process is killed. Also knows which children are runs of ours (the runtime reaps those),
/// so that it never reaps one: a spawn goes through <see cref="Start"/>, under the same gate as a reap.
/// Without the subreaper flag it only starts processes and waits for leftovers to go.
/// </summary>
internal sealed class OrphanReaper : IAsyncDisposable
{
    private readonly Lock _spawnGate = new();
    private readonly HashSet<int> _ownPids = [];
    private readonly CancellationTokenSource _loopCts = new();
    private readonly ILogger _logger;
    private readonly Task _loop = Task.CompletedTask;

    /// <summary>Turns subreaper mode on when <paramref name="becomeSubreaper"/> and the OS allows it.</summary>
    public OrphanReaper(bool becomeSubreaper, ILogger logger)
    {
        _logger = logger;
        if (becomeSubreaper && Native.TrySetChildSubreaper())
        {
            IsSubreaper = true;
            _loop = LoopAsync(_loopCts.Token);
        }
    }

    /// <summary>Whether orphans come back to this process.</summary>
    public bool IsSubreaper { get; }

    /// <summary>Starts <paramref name="process"/> and records its pid before the reaper can see it.</summary>
    public void Start(Process process)
    {
        lock (_spawnGate)
        {
            process.Start();
            _ownPids.Add(process.Id);
        }
    }

    /// <summary>The runtime has reaped run <paramref name="pid"/>: from now on the pid is not ours.</summary>
    public void Forget(int pid)
    {
        lock (_spawnGate)
        {
            _ownPids.Remove(pid);
        }
    }

    /// <summary>Subreaper only: reaps zombie children that are not runs of ours. Returns how many.</summary>
    public int ReapOrphans()
    {
        if (!IsSubreaper)
        {
            return 0;
        }

        var reaped = 0;
        lock (_spawnGate)
        {
            if (!Native.HasZombieChild())
            {
                return 0;
            }

            foreach (var child in ProcessTree.ChildrenOf(Environment.ProcessId))
            {
                if (child.IsDead && !_ownPids.Contains(child.Pid) && Native.TryReap(child.Pid))
                {
                    Supervisor.Log.OrphanReaped(_logger, child.Pid);
                    reaped++;
                }
            }
        }

        return reaped;
    }

    /// <summary>
    /// Waits (real time, bounded) until none of <paramref name="processes"/> runs, reaping orphans meanwhile; /proc
    /// offers no wait for processes that are not our children. In subreaper mode a dead orphan counts as gone once reaped.
    /// </summary>
    public async Task<bool> WaitGoneAsync(IReadOnlyCollection<(int Pid, long StartTime)> processes, TimeSpan timeout)
    {
        var deadline = TimeProvider.System.GetTimestamp() + (long)(timeout.TotalSeconds * TimeProvider.System.TimestampFrequency);
        while (true)
        {
            ReapOrphans();
            if (processes.All(x => IsGone(x.Pid, x.StartTime)))
            {
                return true;
            }

            if (TimeProvider.System.GetTimestamp() >= deadline)
            {
                return false;
            }

            await Task.Delay(20, CancellationToken.None);
        }
    }

    /// <summary>Subreaper only: after every app stopped, kills and reaps whatever is still below this process.</summary>
    public async Task KillStragglersAsync()
    {
        if (!IsSubreaper)
        {
            return;
        }

        var rest = ProcessTree.Descendants(Environment.ProcessId);
        lock (_spawnGate)
        {
            rest.RemoveAll(r => _ownPids.Contains(r.Pid));
        }

        if (rest.Count == 0)
        {
            ReapOrphans();
            return;
        }

        var killed = ProcessTree.KillSurvivors(rest);
        Supervisor.Log.StragglersKilled(_logger, killed);
        await WaitGoneAsync(rest, TimeSpan.FromSeconds(5));
    }

    /// <inheritdoc/>
    public async ValueTask DisposeAsync()
    {
        await _loopCts.CancelAsync();
        await _loop;
        _loopCts.Dispose();
    }

    private bool IsGone(int pid, long startTime) => IsSubreaper
        ? !ProcessTree.Exists(pid, startTime) || (!IsOurChild(pid) && !ProcessTree.IsAlive(pid, startTime))
        : !ProcessTree.IsAlive(pid, startTime);

    private static bool IsOurChild(int pid) => ProcessTree.ReadStat(pid) is { } e && e.Ppid == Environment.ProcessId;

    /// <summary>Reaps orphans that died on their own (a daemonized grandchild that exited), once a second.</summary>
    private async Task LoopAsync(CancellationToken cancellationToken)
    {
        using var timer = new PeriodicTimer(TimeSpan.FromSeconds(1), TimeProvider.System);
        try
        {
            while (await timer.WaitForNextTickAsync(cancellationToken))
            {
                ReapOrphans();
            }
        }
        catch (OperationCanceledException)
        {
        }
    }
}
