using System.Globalization;

namespace Viscript.Core.Supervision;

/// <summary>Descendants of a process from /proc, so that a stop leaves no orphan behind (Linux; empty elsewhere).</summary>
internal static class ProcessTree
{
    /// <summary>Every descendant of <paramref name="root"/>, with its start time (guards against pid reuse).</summary>
    public static List<(int Pid, long StartTime)> Descendants(int root)
    {
        var children = new Dictionary<int, List<(int Pid, long StartTime)>>();
        try
        {
            foreach (var dir in Directory.EnumerateDirectories("/proc"))
            {
                if (!int.TryParse(Path.GetFileName(dir), NumberStyles.None, CultureInfo.InvariantCulture, out var pid) || ReadStat(pid) is not { } stat)
                {
                    continue;
                }
                if (!children.TryGetValue(stat.Ppid, out var list))
                {
                    children[stat.Ppid] = list = [];
                }
                list.Add((pid, stat.StartTime));
            }
        }
        catch (IOException)
        {
        }
        catch (UnauthorizedAccessException)
        {
        }
        var result = new List<(int, long)>();
        var queue = new Queue<int>([root]);
        while (queue.Count > 0 && result.Count < 100_000)
        {
            if (children.TryGetValue(queue.Dequeue(), out var list))
            {
                foreach (var c in list)
                {
                    result.Add(c);
                    queue.Enqueue(c.Pid);
                }
            }
        }
        return result;
    }

    /// <summary>SIGKILLs those of <paramref name="processes"/> that still run with the same start time. Returns how many.</summary>
    public static int KillSurvivors(IEnumerable<(int Pid, long StartTime)> processes)
    {
        var killed = 0;
        foreach (var (pid, start) in processes)
        {
            if (ReadStat(pid) is { } stat && stat.StartTime == start && stat.State is not ('Z' or 'X') && Native.TrySignal(pid, Native.SigKill))
            {
                killed++;
            }
        }
        return killed;
    }

    private static (int Ppid, long StartTime, char State)? ReadStat(int pid)
    {
        try
        {
            var text = File.ReadAllText($"/proc/{pid}/stat");
            var close = text.LastIndexOf(')');
            // After "pid (comm) ": [0]=state [1]=ppid ... [19]=starttime.
            var f = text[(close + 2)..].Split(' ');
            return (int.Parse(f[1], CultureInfo.InvariantCulture), long.Parse(f[19], CultureInfo.InvariantCulture), f[0][0]);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException or FormatException or IndexOutOfRangeException or ArgumentOutOfRangeException)
        {
            return null;
        }
    }
}
