using System.Globalization;

namespace Viscript.Core.Supervision;

/// <summary>One reading of a process's resource usage from /proc.</summary>
/// <param name="CpuTime">User plus system CPU time.</param>
/// <param name="RssBytes">Resident set size.</param>
/// <param name="Threads">Thread count.</param>
/// <param name="OpenFiles">Open file descriptors (null when /proc/pid/fd is not readable).</param>
public sealed record ProcSample(TimeSpan CpuTime, long RssBytes, int Threads, int? OpenFiles);

/// <summary>Reads /proc/&lt;pid&gt; (Linux). Works for any process, signal client or not.</summary>
public static class ProcStats
{
    // USER_HZ is 100 on every Linux ABI .NET supports; /proc/pid/stat counts CPU time in those ticks.
    private const double TicksPerSecond = 100;

    /// <summary>Reads the figures, or returns null when the process is gone or /proc is unavailable.</summary>
    public static ProcSample? TryRead(int pid)
    {
        try
        {
            var stat = File.ReadAllText($"/proc/{pid}/stat");
            // The command name (field 2) is in parentheses and may contain spaces: parse after the last ')'.
            var close = stat.LastIndexOf(')');
            if (close < 0)
            {
                return null;
            }
            var fields = stat[(close + 2)..].Split(' ');
            // After the name: [0]=state(3) ... [11]=utime(14) [12]=stime(15) [17]=num_threads(20) [21]=rss pages(24).
            var utime = long.Parse(fields[11], CultureInfo.InvariantCulture);
            var stime = long.Parse(fields[12], CultureInfo.InvariantCulture);
            var threads = int.Parse(fields[17], CultureInfo.InvariantCulture);
            var rssPages = long.Parse(fields[21], CultureInfo.InvariantCulture);
            int? files = null;
            try
            {
                files = Directory.GetFileSystemEntries($"/proc/{pid}/fd").Length;
            }
            catch (UnauthorizedAccessException)
            {
            }
            catch (IOException)
            {
            }
            return new ProcSample(TimeSpan.FromSeconds((utime + stime) / TicksPerSecond), rssPages * Environment.SystemPageSize, threads, files);
        }
        catch (IOException)
        {
            return null;
        }
        catch (UnauthorizedAccessException)
        {
            return null;
        }
        catch (FormatException)
        {
            return null;
        }
        catch (IndexOutOfRangeException)
        {
            return null;
        }
    }
}
