using System.ComponentModel;
using System.Diagnostics;
using System.Globalization;

namespace Viscript.Core.Supervision;

/// <summary>
/// Spawns one run of an app: as the leader of a new session and process group (through <c>setsid</c>, which execs in
/// place, so the pid is the app's), with pipes on stdin/stdout/stderr, the app's environment plus the signal variables,
/// and (<see cref="StartPumps"/>) an <see cref="OutputPump"/> on each output pipe. Knows nothing of states: the supervisor decides what a failure means.
/// </summary>
internal sealed class ProcessLauncher(ISignalGateway signal, OrphanReaper reaper, bool newSession, string baseDirectory, TimeProvider time)
{
    /// <summary>setsid(1) from util-linux, which starts a program as a session leader (null when missing or not Linux).</summary>
    public static string? SetsidPath { get; } = OperatingSystem.IsLinux()
        ? new[] { "/usr/bin/setsid", "/bin/setsid" }.FirstOrDefault(IsExecutableFile)
        : null;

    /// <summary>Whether runs lead their own session (setsid requested and available).</summary>
    public bool NewSession => newSession && SetsidPath is not null;

    /// <summary>Starts a run of <paramref name="p"/>; returns it, or the OS's reason in <paramref name="error"/>.</summary>
    public ProcessRun? Launch(ManagedProcess p, out string? error)
    {
        var app = p.App;
        var setsid = NewSession ? SetsidPath : null;
        string? executable = app.Path;
        if (setsid is not null && (executable = ResolveExecutable(app.Path)) is null)
        {
            // setsid would only report a missing program through its exit code: check first, so that the start fails at once.
            error = $"An error occurred trying to start process '{app.Path}': No such executable file (looked in PATH for a bare name).";
            return null;
        }

        var process = new Process { StartInfo = BuildStartInfo(p, setsid, executable!), EnableRaisingEvents = true };
        try
        {
            // The reaper records the pid under its gate: it never sees a child of ours before that.
            reaper.Start(process);
        }
        catch (Exception ex) when (ex is Win32Exception or InvalidOperationException or IOException or UnauthorizedAccessException)
        {
            process.Dispose();
            error = ex.Message;
            return null;
        }

        error = null;
        return new ProcessRun(process, time.GetUtcNow()) { NewSession = setsid is not null };
    }

    /// <summary>Starts reading the run's stdout and stderr into <paramref name="p"/>'s buffer and log file.</summary>
    public static void StartPumps(ManagedProcess p, ProcessRun run) =>
        run.Pumps = Task.WhenAll(
            Task.Run(() => OutputPump.RunAsync(run.Process.StandardOutput.BaseStream, LogStream.Stdout, p.Logs, p.LogFile)),
            Task.Run(() => OutputPump.RunAsync(run.Process.StandardError.BaseStream, LogStream.Stderr, p.Logs, p.LogFile)));

    /// <summary>The file a start would execute: a path with a slash as is, a bare name through PATH; null if it is not an executable file.</summary>
    public static string? ResolveExecutable(string path)
    {
        if (path.Contains('/', StringComparison.Ordinal))
        {
            var full = Path.GetFullPath(path);
            return IsExecutableFile(full) ? full : null;
        }

        foreach (var dir in (Environment.GetEnvironmentVariable("PATH") ?? "/usr/local/bin:/usr/bin:/bin").Split(':', StringSplitOptions.RemoveEmptyEntries))
        {
            var candidate = Path.Combine(Path.GetFullPath(dir), path);
            if (IsExecutableFile(candidate))
            {
                return candidate;
            }
        }

        return null;
    }

    private ProcessStartInfo BuildStartInfo(ManagedProcess p, string? setsid, string executable)
    {
        var app = p.App;
        var psi = new ProcessStartInfo(setsid ?? app.Path)
        {
            UseShellExecute = false,
            RedirectStandardInput = true,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            WorkingDirectory = app.WorkingDirectory ?? baseDirectory,
        };
        if (setsid is not null)
        {
            // setsid execs the program in place (the child is not a group leader, so it does not fork): the pid stays the app's.
            psi.ArgumentList.Add("--");
            psi.ArgumentList.Add(executable);
        }

        foreach (var arg in p.Arguments)
        {
            psi.ArgumentList.Add(arg);
        }

        foreach (var (k, v) in app.Environment)
        {
            psi.Environment[k] = v;
        }

        if (signal.ClientAddress is { } address)
        {
            psi.Environment["SIGNAL_CLIENT"] = "true";
            psi.Environment["SIGNAL_CLIENT_ID"] = p.Id.ToString(CultureInfo.InvariantCulture);
            psi.Environment["SIGNAL_SERVER_ADDRESS"] = address;
            if (signal.ClientToken is { } token)
            {
                psi.Environment["SIGNAL_TOKEN"] = token;
            }
        }

        return psi;
    }

    private static bool IsExecutableFile(string path)
    {
        try
        {
            const UnixFileMode anyExecute = UnixFileMode.UserExecute | UnixFileMode.GroupExecute | UnixFileMode.OtherExecute;
            return File.Exists(path) && (OperatingSystem.IsWindows() || (File.GetUnixFileMode(path) & anyExecute) != 0);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException or ArgumentException)
        {
            return false;
        }
    }
}
