using System.Diagnostics;
using System.Runtime;

namespace Viscript.Signal.Internal;

/// <summary>
/// Builds a TOP reply: Go <c>runtime.MemStats</c> names filled from the .NET GC (mapping in docs/signal.md), plus our
/// fields (Rss, CpuTimeMs, Threads, GcCount0/1/2, Pid, OpenFiles).
/// </summary>
internal static class ResourceUsageCollector
{
    // Linux reserves this much per thread stack by default; the CLR does not report stack use, so StackSys is an estimate.
    private const long StackReservePerThread = 1024 * 1024;

    public static byte[] Collect(ulong? rid)
    {
        var info = GC.GetGCMemoryInfo(GCKind.Any);
        if (info.Index == 0)
        {
            // The GC fills GCMemoryInfo at the end of a collection: before the first one every figure reads 0 (issue
            // 18.6). A process that has not collected yet is young and its heap small, so one gen0 collection costs
            // microseconds and makes HeapSys/HeapIdle/HeapInuse real; it happens at most once per process.
            GC.Collect(0, GCCollectionMode.Forced, blocking: true);
            info = GC.GetGCMemoryInfo(GCKind.Any);
        }

        var heapAlloc = (ulong)Math.Max(0, GC.GetTotalMemory(forceFullCollection: false));
        var heapSys = (ulong)Math.Max(0, info.TotalCommittedBytes);
        var heapInuse = (ulong)Math.Max(0, info.HeapSizeBytes);
        if (heapInuse > heapSys)
        {
            heapSys = heapInuse;
        }

        var threads = CountThreads();
        var stackSys = (ulong)(threads * StackReservePerThread);
        var rss = (ulong)Math.Max(0, Environment.WorkingSet);
        var gen0 = GC.CollectionCount(0);
        var gcPauseNs = (ulong)GC.GetTotalPauseDuration().Ticks * 100;

        return SignalJson.Write(w =>
        {
            w.WriteStartObject();
            w.WriteNumber("Alloc", heapAlloc);
            w.WriteNumber("TotalAlloc", GC.GetTotalAllocatedBytes(precise: false));
            w.WriteNumber("Sys", heapSys + stackSys);
            w.WriteNumber("Mallocs", 0);
            w.WriteNumber("Frees", 0);
            w.WriteNumber("HeapAlloc", heapAlloc);
            w.WriteNumber("HeapSys", heapSys);
            w.WriteNumber("HeapIdle", heapSys - heapInuse);
            w.WriteNumber("HeapInuse", heapInuse);
            w.WriteNumber("HeapReleased", 0);
            w.WriteNumber("HeapObjects", 0);
            w.WriteNumber("StackInuse", stackSys);
            w.WriteNumber("StackSys", stackSys);
            w.WriteNumber("NextGC", Math.Max(0, info.HighMemoryLoadThresholdBytes));
            w.WriteNumber("PauseTotalNs", gcPauseNs);
            w.WriteNumber("NumGC", gen0);
            w.WriteNumber("NumForcedGC", 0);
            w.WriteNumber("GCCPUFraction", info.PauseTimePercentage / 100.0);
            w.WriteBoolean("EnableGC", true);
            w.WriteBoolean("DebugGC", false);

            // Our fields.
            w.WriteNumber("Rss", rss);
            w.WriteNumber("CpuTimeMs", (long)Environment.CpuUsage.TotalTime.TotalMilliseconds);
            w.WriteNumber("Threads", threads);
            w.WriteNumber("GcCount0", gen0);
            w.WriteNumber("GcCount1", GC.CollectionCount(1));
            w.WriteNumber("GcCount2", GC.CollectionCount(2));
            w.WriteNumber("Pid", Environment.ProcessId);
            if (CountOpenFiles() is { } files)
            {
                w.WriteNumber("OpenFiles", files);
            }

            w.WriteString("GcMode", GCSettings.IsServerGC ? "server" : "workstation");
            if (rid is { } value)
            {
                w.WriteNumber("Rid", value);
            }

            w.WriteEndObject();
        });
    }

    private static int CountThreads()
    {
        try
        {
            if (OperatingSystem.IsLinux())
            {
                foreach (var line in File.ReadLines("/proc/self/status"))
                {
                    if (line.StartsWith("Threads:", StringComparison.Ordinal) && int.TryParse(line.AsSpan(8).Trim(), out var count))
                    {
                        return count;
                    }
                }
            }

            using var process = Process.GetCurrentProcess();
            return process.Threads.Count;
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException or InvalidOperationException or NotSupportedException)
        {
            return 0;
        }
    }

    private static int? CountOpenFiles()
    {
        if (!OperatingSystem.IsLinux())
        {
            return null;
        }

        try
        {
            return Directory.EnumerateFileSystemEntries("/proc/self/fd").Count();
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            return null;
        }
    }

    /// <summary>Writes a reply body that only echoes the request id (PING), or <c>null</c> for the original.</summary>
    public static byte[] Empty(ulong? rid) => rid is { } value
        ? SignalJson.Write(w =>
        {
            w.WriteStartObject();
            w.WriteNumber("Rid", value);
            w.WriteEndObject();
        })
        : SignalJson.Null;

    public static byte[] Shutdown(ulong? rid) => SignalJson.Write(w =>
    {
        w.WriteStartObject();
        w.WriteNumber("Pid", Environment.ProcessId);
        if (rid is { } value)
        {
            w.WriteNumber("Rid", value);
        }

        w.WriteEndObject();
    });
}
