namespace Viscript.Tests.Support;

/// <summary>Locates built executables relative to the test assembly (same configuration).</summary>
public static class Paths
{
    public static string RepoRoot { get; } = FindRoot();

    /// <summary>Release or Debug, whichever built this test assembly.</summary>
    public static string Configuration { get; } = new DirectoryInfo(AppContext.BaseDirectory.TrimEnd(Path.DirectorySeparatorChar)).Parent!.Name;

    public static string ViscriptDll => Path.Combine(RepoRoot, "src", "Viscript", "bin", Configuration, "net10.0", "viscript.dll");

    /// <summary>
    /// The <c>viscript-cli</c> executable: <c>VISCRIPT_CLI_NATIVE</c> when set (.ci/run points it at the NativeAOT build),
    /// else src/Viscript.Cli's own build (the JIT apphost: the same code).
    /// </summary>
    public static string ViscriptCli => Environment.GetEnvironmentVariable("VISCRIPT_CLI_NATIVE") is { Length: > 0 } native
        ? native
        : Path.Combine(RepoRoot, "src", "Viscript.Cli", "bin", Configuration, "net10.0", "viscript-cli");

    public static string TestApp => Path.Combine(RepoRoot, "tests", "apps", "Viscript.TestApp", "bin", Configuration, "net10.0", "viscript-testapp");

    private static string FindRoot()
    {
        var dir = new DirectoryInfo(AppContext.BaseDirectory);
        while (dir is not null && !File.Exists(Path.Combine(dir.FullName, "Skywire.slnx")))
        {
            dir = dir.Parent;
        }
        return dir?.FullName ?? throw new InvalidOperationException("Skywire.slnx not found above " + AppContext.BaseDirectory);
    }
}

/// <summary>A temporary folder deleted at dispose.</summary>
public sealed class TempDir : IDisposable
{
    public TempDir()
    {
        Path = System.IO.Path.Combine(System.IO.Path.GetTempPath(), "viscript-tests-" + Guid.NewGuid().ToString("N")[..12]);
        Directory.CreateDirectory(Path);
    }

    public string Path { get; }

    public string Write(string name, string content)
    {
        var file = System.IO.Path.Combine(Path, name);
        File.WriteAllText(file, content);
        return file;
    }

    public void Dispose()
    {
        try
        {
            Directory.Delete(Path, recursive: true);
        }
        catch (IOException)
        {
        }
    }
}

/// <summary>Config snippets for the test app.</summary>
public static class TestConfigs
{
    /// <summary>YAML for an app running the test app in <paramref name="mode"/>, with extra YAML lines indented under it.</summary>
    public static string App(string name, string mode, params string[] extra)
    {
        var modeArgs = string.Join(", ", mode.Split(' ').Select(a => "\"" + a + "\""));
        var lines = new List<string>
        {
            $"  {name}:",
            $"    path: {Paths.TestApp}",
            $"    default_args: [{modeArgs}]",
            $"    desc: test app in {mode} mode",
        };
        lines.AddRange(extra.Select(e => "    " + e));
        return string.Join('\n', lines) + "\n";
    }

    public static string Build(params string[] apps) => "apps:\n" + string.Concat(apps) + "settings:\n  runHeadless: true\n";
}

/// <summary>Whether a pid still names a live (non-zombie) process.</summary>
public static class Pids
{
    public static bool IsAlive(int pid)
    {
        try
        {
            var stat = File.ReadAllText($"/proc/{pid}/stat");
            var state = stat[(stat.LastIndexOf(')') + 2)..].Split(' ')[0];
            return state != "Z" && state != "X";
        }
        catch (IOException)
        {
            return false;
        }
    }

    /// <summary>Waits (bounded) until the pid is gone; polling /proc is the only way to observe a process we are not the parent of.</summary>
    public static async Task<bool> WaitGoneAsync(int pid, TimeSpan timeout)
    {
        var deadline = DateTime.UtcNow + timeout;
        while (DateTime.UtcNow < deadline)
        {
            if (!IsAlive(pid))
            {
                return true;
            }
            await Task.Delay(50);
        }
        return !IsAlive(pid);
    }
}

/// <summary>Fields of /proc/PID/stat.</summary>
public readonly record struct ProcStat(int Pid, char State, int Ppid, int Pgrp, int Session, long StartTime)
{
    public static ProcStat? Read(int pid)
    {
        try
        {
            var text = File.ReadAllText($"/proc/{pid}/stat");
            var f = text[(text.LastIndexOf(')') + 2)..].Split(' ');
            var inv = System.Globalization.CultureInfo.InvariantCulture;
            return new ProcStat(pid, f[0][0], int.Parse(f[1], inv), int.Parse(f[2], inv), int.Parse(f[3], inv), long.Parse(f[19], inv));
        }
        catch (IOException)
        {
            return null;
        }
    }

    /// <summary>Whether /proc still has this very process (zombies included; a reused pid has another start time).</summary>
    public bool StillInProc => Read(Pid) is { } now && now.StartTime == StartTime;
}
