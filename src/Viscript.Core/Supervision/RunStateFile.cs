using System.Text.Json;
using Microsoft.Extensions.Logging;

namespace Viscript.Core.Supervision;

/// <summary>One run recorded in a run-state file: enough to find it again, and to be sure it is the same process.</summary>
/// <param name="Id">Sequence id in the daemon that started it.</param>
/// <param name="App">App name.</param>
/// <param name="Pid">Pid of the run (its session and process group id when <paramref name="OwnSession"/>).</param>
/// <param name="StartTime">Start time of that pid in clock ticks since boot (/proc/&lt;pid&gt;/stat field 22): a recycled pid has another.</param>
/// <param name="OwnSession">Started through setsid: the run leads its own session and process group.</param>
/// <param name="StopTimeout">The app's stop_timeout at the time.</param>
internal sealed record RunStateEntry(ulong Id, string App, int Pid, long StartTime, bool OwnSession, TimeSpan StopTimeout);

/// <summary>A run-state file whose owner (a viscript daemon) is gone: its apps may still run.</summary>
internal sealed record AbandonedRunState(string Path, int OwnerPid, IReadOnlyList<RunStateEntry> Apps);

/// <summary>
/// The runs a daemon has alive, kept in <c>&lt;log_dir&gt;/run/viscript-&lt;pid&gt;-&lt;random&gt;.json</c> and rewritten
/// (temp file + rename) on every spawn and every handled exit, so that a daemon killed with SIGKILL leaves the list
/// behind. The file names its owner by pid and start time; the next daemon stops the apps of files whose owner is gone
/// (see <see cref="Supervisor.StopAbandonedAppsAsync"/>) and never touches a file whose owner still runs.
/// The folder is created 0700; a folder or file not owned by this user, writable by group or others, or a symlink is
/// neither written nor believed: whoever could plant a file there could otherwise make viscript signal any process.
/// </summary>
internal sealed class RunStateFile
{
    private readonly Lock _gate = new();
    private readonly Dictionary<ulong, RunStateEntry> _entries = [];
    private readonly ILogger _logger;
    private readonly long _ownerStartTime;
    private bool _failed;
    private bool _deleted;

    public RunStateFile(string directory, ILogger logger)
    {
        Directory = directory;
        _logger = logger;
        _ownerStartTime = ProcessTree.ReadStat(Environment.ProcessId)?.StartTime ?? 0;
        FilePath = System.IO.Path.Combine(directory, $"viscript-{Environment.ProcessId}-{Guid.NewGuid().ToString("N")[..8]}.json");
    }

    /// <summary>The folder of run-state files.</summary>
    public string Directory { get; }

    /// <summary>This daemon's file.</summary>
    public string FilePath { get; }

    /// <summary>Records a run that just started (skipped when it already ended: /proc has no start time for it).</summary>
    public void Record(ulong id, string app, int pid, bool ownSession, TimeSpan stopTimeout)
    {
        if (ProcessTree.ReadStat(pid) is not { } stat)
        {
            return;
        }

        lock (_gate)
        {
            _entries[id] = new RunStateEntry(id, app, pid, stat.StartTime, ownSession, stopTimeout);
            Write();
        }
    }

    /// <summary>Drops the run of <paramref name="id"/> with <paramref name="pid"/> (its end and leftovers were handled).</summary>
    public void Forget(ulong id, int pid)
    {
        lock (_gate)
        {
            if (_entries.TryGetValue(id, out var e) && e.Pid == pid)
            {
                _entries.Remove(id);
                Write();
            }
        }
    }

    /// <summary>Removes the file: every app stopped, nothing to find after this daemon.</summary>
    public void Delete()
    {
        lock (_gate)
        {
            _deleted = true;
            TryDelete(FilePath);
        }
    }

    /// <summary>Run-state files in <paramref name="directory"/> whose owner no longer runs (pid gone, or reused by another process).</summary>
    public static List<AbandonedRunState> FindAbandoned(string directory, ILogger logger)
    {
        var result = new List<AbandonedRunState>();
        if (!System.IO.Directory.Exists(directory))
        {
            return result;
        }

        if (!IsTrusted(directory, out var why))
        {
            Supervisor.Log.RunStateUntrusted(logger, directory, why);
            return result;
        }

        foreach (var path in System.IO.Directory.EnumerateFiles(directory, "viscript-*.json"))
        {
            if (!IsTrusted(path, out why))
            {
                Supervisor.Log.RunStateUntrusted(logger, path, why);
                continue;
            }

            if (!TryRead(path, out var ownerPid, out var ownerStart, out var apps))
            {
                Supervisor.Log.RunStateUnreadable(logger, path);
                continue;
            }

            if (!(ProcessTree.ReadStat(ownerPid) is { } owner && owner.StartTime == ownerStart && !owner.IsDead))
            {
                result.Add(new AbandonedRunState(path, ownerPid, apps));
            }
        }

        return result;
    }

    /// <summary>
    /// What of <paramref name="entry"/> still runs, by pid and start time: the run itself if its pid still has the recorded
    /// start time, and the members of its session or group (started no earlier than it). A pid now held by another
    /// process (other start time) means the run ended long ago: nothing is returned, so a recycled pid is never touched.
    /// </summary>
    public static (List<(int Pid, long StartTime)> Processes, bool LeaderAlive) Leftovers(RunStateEntry entry)
    {
        var leader = ProcessTree.ReadStat(entry.Pid);
        if (leader is { } l && l.StartTime != entry.StartTime)
        {
            return ([], false);
        }

        var leaderAlive = leader is { IsDead: false };
        var processes = new List<(int Pid, long StartTime)>();
        if (leaderAlive)
        {
            processes.Add((entry.Pid, entry.StartTime));
        }

        if (entry.OwnSession)
        {
            processes.AddRange(ProcessTree.GroupMembers(entry.Pid).Where(m => m.StartTime >= entry.StartTime));
        }
        else if (leaderAlive)
        {
            processes.AddRange(ProcessTree.Descendants(entry.Pid));
        }

        return (processes, leaderAlive);
    }

    /// <summary>Removes an abandoned file once its apps were dealt with.</summary>
    public static void DeleteAbandoned(string path) => TryDelete(path);

    /// <summary>Whether <paramref name="path"/> is this user's own, not a symlink, and writable by nobody else.</summary>
    public static bool IsTrusted(string path, out string why)
    {
        if (!Native.TryGetOwnerAndMode(path, out var uid, out var mode, out var isSymlink))
        {
            why = "its owner cannot be checked";
            return false;
        }

        why = isSymlink ? "it is a symbolic link"
            : uid != Native.EffectiveUserId ? $"it belongs to uid {uid}, not {Native.EffectiveUserId}"
            : (mode & (UnixFileMode.GroupWrite | UnixFileMode.OtherWrite)) != 0 ? "group or others may write it"
            : "";
        return why.Length == 0;
    }

    private void Write()
    {
        if (_failed || _deleted)
        {
            return;
        }

        if (!OperatingSystem.IsLinux())
        {
            _failed = true; // pids, start times and owners as used here are Linux's
            return;
        }

        var temp = $"{FilePath}.{Guid.NewGuid():N}.tmp";
        try
        {
            System.IO.Directory.CreateDirectory(Directory, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
            if (!IsTrusted(Directory, out var why))
            {
                _failed = true;
                Supervisor.Log.RunStateUntrusted(_logger, Directory, why);
                return;
            }

            using (var stream = new FileStream(temp, new FileStreamOptions
            {
                Mode = FileMode.CreateNew,
                Access = FileAccess.Write,
                Share = FileShare.None,
                UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite,
            }))
            using (var json = new Utf8JsonWriter(stream, new JsonWriterOptions { Indented = true }))
            {
                json.WriteStartObject();
                json.WriteNumber("OwnerPid", Environment.ProcessId);
                json.WriteNumber("OwnerStartTime", _ownerStartTime);
                json.WriteStartArray("Apps");
                foreach (var e in _entries.Values.OrderBy(e => e.Id))
                {
                    json.WriteStartObject();
                    json.WriteNumber("Id", e.Id);
                    json.WriteString("App", e.App);
                    json.WriteNumber("Pid", e.Pid);
                    json.WriteNumber("StartTime", e.StartTime);
                    json.WriteBoolean("OwnSession", e.OwnSession);
                    json.WriteNumber("StopTimeoutMs", (long)e.StopTimeout.TotalMilliseconds);
                    json.WriteEndObject();
                }

                json.WriteEndArray();
                json.WriteEndObject();
            }

            File.Move(temp, FilePath, overwrite: true);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            // Without the file a successor cannot find our apps after a SIGKILL; everything else keeps working.
            TryDelete(temp);
            _failed = true;
            Supervisor.Log.RunStateWriteFailed(_logger, FilePath, ex.Message);
        }
    }

    private static bool TryRead(string path, out int ownerPid, out long ownerStart, out List<RunStateEntry> apps)
    {
        ownerPid = 0;
        ownerStart = 0;
        apps = [];
        try
        {
            using var doc = JsonDocument.Parse(File.ReadAllBytes(path));
            var root = doc.RootElement;
            ownerPid = root.GetProperty("OwnerPid").GetInt32();
            ownerStart = root.GetProperty("OwnerStartTime").GetInt64();
            foreach (var a in root.GetProperty("Apps").EnumerateArray())
            {
                apps.Add(new RunStateEntry(a.GetProperty("Id").GetUInt64(), a.GetProperty("App").GetString() ?? "", a.GetProperty("Pid").GetInt32(),
                    a.GetProperty("StartTime").GetInt64(), a.GetProperty("OwnSession").GetBoolean(),
                    TimeSpan.FromMilliseconds(a.GetProperty("StopTimeoutMs").GetInt64())));
            }

            return ownerPid > 0;
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException or JsonException or KeyNotFoundException or InvalidOperationException or FormatException)
        {
            ownerPid = 0;
            apps = [];
            return false;
        }
    }

    private static void TryDelete(string path)
    {
        try
        {
            File.Delete(path);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
        }
    }
}
