using System.Globalization;

namespace Viscript.Core.Supervision;

/// <summary>One row of /proc: the fields a cleanup needs.</summary>
internal readonly record struct ProcEntry(int Pid, int Ppid, int Pgrp, int Session, long StartTime, char State)
{
    public bool IsDead => State is 'Z' or 'X';
}

/// <summary>
/// Processes from /proc, so that a stop leaves no orphan behind (Linux; empty elsewhere): the descendants of a process,
/// the members of an app's session or process group, the children of viscript itself.
/// </summary>
internal static class ProcessTree
{
    /// <summary>Every process /proc shows.</summary>
    public static List<ProcEntry> Snapshot()
    {
        var all = new List<ProcEntry>();
        try
        {
            foreach (var dir in Directory.EnumerateDirectories("/proc"))
            {
                if (int.TryParse(Path.GetFileName(dir), NumberStyles.None, CultureInfo.InvariantCulture, out var pid) && ReadStat(pid) is { } e)
                {
                    all.Add(e);
                }
            }
        }
        catch (IOException)
        {
        }
        catch (UnauthorizedAccessException)
        {
        }
        return all;
    }

    /// <summary>Every descendant of <paramref name="root"/>, with its start time (guards against pid reuse).</summary>
    public static List<(int Pid, long StartTime)> Descendants(int root) => Descendants(Snapshot(), root);

    /// <summary>Every descendant of <paramref name="root"/> in <paramref name="all"/>.</summary>
    public static List<(int Pid, long StartTime)> Descendants(List<ProcEntry> all, int root)
    {
        var children = all.ToLookup(e => e.Ppid);
        var result = new List<(int, long)>();
        var queue = new Queue<int>([root]);
        while (queue.Count > 0 && result.Count < 100_000)
        {
            foreach (var c in children[queue.Dequeue()])
            {
                result.Add((c.Pid, c.StartTime));
                queue.Enqueue(c.Pid);
            }
        }
        return result;
    }

    /// <summary>
    /// Live processes that belong to the app whose leader was <paramref name="leader"/>: members of its session or process
    /// group (it was started as a session leader, so both ids equal its pid), other than the leader itself, plus their descendants.
    /// While such members exist the kernel does not reuse the id, so the match cannot hit a stranger.
    /// </summary>
    public static List<(int Pid, long StartTime)> GroupMembers(int leader)
    {
        var all = Snapshot();
        var members = all.Where(e => e.Pid != leader && !e.IsDead && (e.Session == leader || e.Pgrp == leader)).Select(e => (e.Pid, e.StartTime)).ToList();
        var seen = members.Select(m => m.Pid).ToHashSet();
        foreach (var m in members.ToList())
        {
            foreach (var d in Descendants(all, m.Pid))
            {
                if (seen.Add(d.Pid))
                {
                    members.Add(d);
                }
            }
        }
        return members;
    }

    /// <summary>The direct children of <paramref name="parent"/>.</summary>
    public static List<ProcEntry> ChildrenOf(int parent) => Snapshot().Where(e => e.Ppid == parent).ToList();

    /// <summary>Whether <paramref name="pid"/> still runs with the same start time (a zombie counts as gone).</summary>
    public static bool IsAlive(int pid, long startTime) => ReadStat(pid) is { } e && e.StartTime == startTime && !e.IsDead;

    /// <summary>Whether /proc still has an entry for <paramref name="pid"/> with that start time (zombies included).</summary>
    public static bool Exists(int pid, long startTime) => ReadStat(pid) is { } e && e.StartTime == startTime;

    /// <summary>Sends <paramref name="signal"/> to those of <paramref name="processes"/> that still run with the same start time. Returns how many.</summary>
    public static int SignalSurvivors(IEnumerable<(int Pid, long StartTime)> processes, int signal)
    {
        var count = 0;
        foreach (var (pid, start) in processes)
        {
            if (pid != Environment.ProcessId && IsAlive(pid, start) && Native.TrySignal(pid, signal))
            {
                count++;
            }
        }
        return count;
    }

    /// <summary>SIGKILLs those of <paramref name="processes"/> that still run with the same start time. Returns how many.</summary>
    public static int KillSurvivors(IEnumerable<(int Pid, long StartTime)> processes) => SignalSurvivors(processes, Native.SigKill);

    public static ProcEntry? ReadStat(int pid)
    {
        try
        {
            var text = File.ReadAllText($"/proc/{pid}/stat");
            var close = text.LastIndexOf(')');
            // After "pid (comm) ": [0]=state [1]=ppid [2]=pgrp [3]=session ... [19]=starttime.
            var f = text[(close + 2)..].Split(' ');
            return new ProcEntry(pid, int.Parse(f[1], CultureInfo.InvariantCulture), int.Parse(f[2], CultureInfo.InvariantCulture),
                int.Parse(f[3], CultureInfo.InvariantCulture), long.Parse(f[19], CultureInfo.InvariantCulture), f[0][0]);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException or FormatException or IndexOutOfRangeException or ArgumentOutOfRangeException)
        {
            return null;
        }
    }
}
