using System.Globalization;

namespace Viscript.Daemon.Listening;

/// <summary>The process's soft limit of open file descriptors (RLIMIT_NOFILE, from /proc/self/limits) and its use.</summary>
internal static class DescriptorLimit
{
    /// <summary>Descriptors open now (entries of /proc/self/fd), or 0 when that cannot be read.</summary>
    public static long Open()
    {
        try
        {
            return Directory.GetFileSystemEntries("/proc/self/fd").Length;
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            return 0;
        }
    }

    /// <summary>The soft limit, or <paramref name="fallback"/> when it cannot be read (not Linux) or is unlimited.</summary>
    public static long Soft(long fallback = 1024)
    {
        try
        {
            foreach (var line in File.ReadLines("/proc/self/limits"))
            {
                if (!line.StartsWith("Max open files", StringComparison.Ordinal))
                {
                    continue;
                }
                var fields = line["Max open files".Length..].Split(' ', StringSplitOptions.RemoveEmptyEntries);
                return fields.Length > 0 && long.TryParse(fields[0], NumberStyles.None, CultureInfo.InvariantCulture, out var soft) ? soft : fallback;
            }
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
        }
        return fallback;
    }
}
