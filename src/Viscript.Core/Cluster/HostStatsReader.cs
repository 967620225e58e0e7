using System.Globalization;
using Viscript.Core.Control;

namespace Viscript.Core.Cluster;

/// <summary>Reads a host's load and memory (Linux /proc; null figures elsewhere).</summary>
public static class HostStatsReader
{
    /// <summary>The figures now, with the process counts of <paramref name="processes"/>.</summary>
    public static HostStats Read(IReadOnlyList<ProcessInfo> processes)
    {
        double? load = null;
        long? total = null;
        long? available = null;
        try
        {
            if (File.Exists("/proc/loadavg")
                && double.TryParse(File.ReadAllText("/proc/loadavg").Split(' ')[0], NumberStyles.Float, CultureInfo.InvariantCulture, out var l))
            {
                load = l;
            }
            if (File.Exists("/proc/meminfo"))
            {
                foreach (var line in File.ReadLines("/proc/meminfo"))
                {
                    if (line.StartsWith("MemTotal:", StringComparison.Ordinal))
                    {
                        total = Kilobytes(line);
                    }
                    else if (line.StartsWith("MemAvailable:", StringComparison.Ordinal))
                    {
                        available = Kilobytes(line);
                    }
                }
            }
        }
        catch (IOException)
        {
        }
        return new HostStats(load, total, available, Environment.ProcessorCount, processes.Count, processes.Count(p => p.State == "Running"));
    }

    private static long? Kilobytes(string line)
    {
        var parts = line.Split(' ', StringSplitOptions.RemoveEmptyEntries);
        return parts.Length >= 2 && long.TryParse(parts[1], NumberStyles.None, CultureInfo.InvariantCulture, out var kb) ? kb * 1024 : null;
    }
}
