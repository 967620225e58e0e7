using System.Globalization;
using System.Text;
using Viscript.Core.Control;
using Viscript.Core.Supervision;

namespace Viscript.Core.Commands;

/// <summary>How the interpreter prints: tables, durations, sizes, resource reports, log lines.</summary>
public sealed partial class CommandInterpreter
{
    /// <summary>Text lines of an <c>ru</c> report; <paramref name="label"/> replaces the id in the head (<c>HOST:ID</c>).</summary>
    public static IReadOnlyList<string> FormatResources(ResourceReport r, string? label = null)
    {
        ArgumentNullException.ThrowIfNull(r);
        var lines = new List<string>();
        var head = new StringBuilder($"[ {label ?? r.Id.ToString(CultureInfo.InvariantCulture)} ]");
        if (r.Pid is { } pid)
        {
            head.Append(CultureInfo.InvariantCulture, $" pid {pid}");
        }
        if (r.CpuPercent is { } cpu)
        {
            head.Append(CultureInfo.InvariantCulture, $" cpu {cpu:0.0}%");
        }
        if (r.CpuTimeSeconds is { } t)
        {
            head.Append(CultureInfo.InvariantCulture, $" cputime {t:0.00}s");
        }
        if (r.RssBytes is { } rss)
        {
            head.Append(CultureInfo.InvariantCulture, $" rss {FormatBytes(rss)}");
        }
        if (r.Threads is { } th)
        {
            head.Append(CultureInfo.InvariantCulture, $" threads {th}");
        }
        if (r.OpenFiles is { } files)
        {
            head.Append(CultureInfo.InvariantCulture, $" files {files}");
        }
        lines.Add(head.ToString());
        if (r.Heap is { } h)
        {
            lines.Add($"MemStats HeapAlloc:{h.HeapAlloc} HeapSys:{h.HeapSys} HeapIdle:{h.HeapIdle} HeapInuse:{h.HeapInuse} StackSys:{h.StackSys} StackInuse:{h.StackInuse}");
        }
        else if (r.SignalError is { } err)
        {
            lines.Add($"(signal TOP failed: {err})");
        }
        else
        {
            lines.Add("(not a signal client: no heap figures)");
        }
        return lines;
    }

    /// <summary>How a captured line is printed (stderr lines marked).</summary>
    public static string FormatLogLine(LogLine l)
    {
        ArgumentNullException.ThrowIfNull(l);
        return FormatLogLine(l.Stream, l.Text);
    }

    /// <summary>How a captured line from the control API is printed.</summary>
    public static string FormatLogLine(LogLineInfo l)
    {
        ArgumentNullException.ThrowIfNull(l);
        return FormatLogLine(Enum.TryParse<LogStream>(l.Stream, ignoreCase: true, out var s) ? s : LogStream.Stdout, l.Text);
    }

    private static string FormatLogLine(LogStream stream, string text) => stream switch
    {
        LogStream.Stderr => "[stderr] " + text,
        LogStream.System => "[viscript] " + text,
        _ => text,
    };

    /// <summary>Aligns rows into columns separated by two spaces.</summary>
    public static List<string> Table(IReadOnlyList<string[]> rows)
    {
        ArgumentNullException.ThrowIfNull(rows);
        var widths = new int[rows.Max(r => r.Length)];
        foreach (var r in rows)
        {
            for (var i = 0; i < r.Length; i++)
            {
                widths[i] = Math.Max(widths[i], r[i].Length);
            }
        }
        return rows.Select(r => string.Join("  ", r.Select((cell, i) => i == r.Length - 1 ? cell : cell.PadRight(widths[i]))).TrimEnd()).ToList();
    }

    /// <summary>Uptime as 45s, 3m05s, 2h03m, 4d02h.</summary>
    public static string FormatUptime(double seconds)
    {
        var t = TimeSpan.FromSeconds(Math.Floor(seconds));
        return t.TotalDays >= 1 ? $"{(int)t.TotalDays}d{t.Hours:00}h"
            : t.TotalHours >= 1 ? $"{(int)t.TotalHours}h{t.Minutes:00}m"
            : t.TotalMinutes >= 1 ? $"{(int)t.TotalMinutes}m{t.Seconds:00}s"
            : $"{t.Seconds}s";
    }

    /// <summary>A short duration in the Go style the original printed (1.2034ms, 2.5s).</summary>
    public static string FormatDuration(TimeSpan d) => d.TotalMilliseconds < 1000
        ? string.Create(CultureInfo.InvariantCulture, $"{d.TotalMilliseconds:0.###}ms")
        : string.Create(CultureInfo.InvariantCulture, $"{d.TotalSeconds:0.###}s");

    /// <summary>Bytes as KiB/MiB/GiB.</summary>
    public static string FormatBytes(long bytes) => bytes switch
    {
        >= 1L << 30 => string.Create(CultureInfo.InvariantCulture, $"{bytes / (double)(1L << 30):0.0}GiB"),
        >= 1L << 20 => string.Create(CultureInfo.InvariantCulture, $"{bytes / (double)(1L << 20):0.0}MiB"),
        >= 1L << 10 => string.Create(CultureInfo.InvariantCulture, $"{bytes / 1024.0:0.0}KiB"),
        _ => $"{bytes}B",
    };

    private static readonly string[] s_hostsHeader = ["HOST", "STATE", "SEEN", "VERSION", "LOAD", "MEMORY", "RUNNING", "ADDRESS"];

    /// <summary>The <c>hosts</c> table.</summary>
    public static List<string> FormatHosts(IReadOnlyList<HostInfo> hosts, DateTimeOffset now)
    {
        ArgumentNullException.ThrowIfNull(hosts);
        var rows = new List<string[]> { s_hostsHeader };
        foreach (var h in hosts)
        {
            var seen = h.Local ? "now" : h.LastSeen is { } t ? FormatUptime(Math.Max(0, (now - t).TotalSeconds)) + " ago" : "-";
            var s = h.Stats;
            var memory = s?.MemoryTotalBytes is { } total
                ? $"{FormatBytes(total - (s.MemoryAvailableBytes ?? 0))}/{FormatBytes(total)}"
                : "-";
            rows.Add([
                h.Name,
                h.State,
                seen,
                h.Version ?? "-",
                s?.Load1 is { } load ? load.ToString("0.00", CultureInfo.InvariantCulture) : "-",
                memory,
                s is null ? "-" : $"{s.Running}/{s.Processes}",
                h.Address ?? "-",
            ]);
        }
        return Table(rows);
    }
}
