using System.Globalization;

namespace Viscript.Signal.Internal;

/// <summary>
/// How many connections a listener may hold without taking the process to its descriptor limit (Linux; elsewhere
/// unknown). At the limit the .NET runtime cannot start a thread (a new thread reads /sys and /proc while it
/// initialises); when the thread pool must add a worker then, the process aborts with "Out of memory." So a listener
/// never takes the last descriptors: it keeps to half of those free when it starts, less a reserve for everything else.
/// </summary>
internal static class DescriptorBudget
{
    /// <summary>Descriptors always left to the rest of the process (threads, files, child pipes, other listeners).</summary>
    public const int Reserve = 32;

    /// <summary>The share of free descriptors one listener may take, or null when the limit cannot be read.</summary>
    public static int? ConnectionsAllowed() =>
        TryReadSoftLimit() is { } limit && TryCountOpen() is { } open ? Allowed(limit, open) : null;

    /// <summary>Half of <paramref name="limit"/> - <paramref name="open"/>, less the reserve; at least 1.</summary>
    public static int Allowed(long limit, int open) => (int)Math.Clamp((limit - open - Reserve) / 2, 1, int.MaxValue);

    /// <summary>The soft RLIMIT_NOFILE from /proc/self/limits ("Max open files  1024  4096  files"); null if unlimited or unreadable.</summary>
    public static long? TryReadSoftLimit()
    {
        try
        {
            foreach (var line in File.ReadLines("/proc/self/limits"))
            {
                if (line.StartsWith("Max open files", StringComparison.Ordinal))
                {
                    var fields = line["Max open files".Length..].Split(' ', StringSplitOptions.RemoveEmptyEntries);
                    return fields.Length > 0 && long.TryParse(fields[0], NumberStyles.None, CultureInfo.InvariantCulture, out var soft) ? soft : null;
                }
            }
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
        }

        return null;
    }

    /// <summary>Descriptors the process can still open (soft limit minus those open), or null when that cannot be told.</summary>
    public static long? Free() => TryReadSoftLimit() is { } limit && TryCountOpen() is { } open ? limit - open : null;

    private static int? TryCountOpen()
    {
        try
        {
            return Directory.GetFileSystemEntries("/proc/self/fd").Length;
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            return null;
        }
    }
}
