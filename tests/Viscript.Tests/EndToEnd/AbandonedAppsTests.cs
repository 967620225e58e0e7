using Viscript.Tests.Support;

namespace Viscript.Tests.EndToEnd;

/// <summary>
/// Issue 12.6: viscript killed with SIGKILL cannot stop its apps; the next viscript on the same config (same log
/// folder) finds them in the run-state file, checks each pid's start time, and stops them before it starts its own.
/// </summary>
[Trait("Category", "E2E")]
public sealed class AbandonedAppsTests : ExeTestBase
{
    // The app leads its session (setsid) and has a child in it; neither writes, so neither notices viscript's death.
    private string Config() => Dir.Write("config.yaml", """
        apps:
          keeper:
            path: /bin/sh
            default_args: ["-c", "sleep 1000 & exec sleep 1000"]
            autostart: true
            stop_timeout: 2s
        settings:
          runHeadless: true
        """);

    [Fact]
    public async Task AfterKillMinus9_TheNextViscriptStopsThePredecessorsApps_ThenStartsItsOwn()
    {
        var config = Config();
        var leftovers = new List<ProcStat>();
        try
        {
            int firstPid;
            await using (var first = await DaemonProcess.StartAsync(config))
            {
                firstPid = await RunningPidAsync(first);
                leftovers.Add(ProcStat.Read(firstPid)!.Value);
                leftovers.Add(await SessionMemberAsync(firstPid));
                first.Signal(9);
                Assert.Equal(137, await first.WaitForExitAsync());
            }

            // The predecessor is gone; its app and the app's child are not.
            Assert.All(leftovers, p => Assert.True(p.StillInProc && Pids.IsAlive(p.Pid), $"pid {p.Pid} should have outlived viscript's SIGKILL"));

            await using var second = await DaemonProcess.StartAsync(config);
            foreach (var p in leftovers)
            {
                Assert.True(await WaitGoneAsync(p), $"pid {p.Pid} ({p.State}) left by the killed viscript still runs");
            }

            var newPid = await RunningPidAsync(second);
            Assert.NotEqual(firstPid, newPid);
            Assert.Contains($"pid {firstPid}", second.Stderr, StringComparison.Ordinal);
            Assert.Contains("ended without stopping", second.Stderr, StringComparison.Ordinal);
        }
        finally
        {
            // Whatever a failed run left is this test's to stop, by pid and start time.
            foreach (var p in leftovers.Where(p => p.StillInProc))
            {
                Viscript.Core.Supervision.Native.TrySignal(p.Pid, 9);
            }
        }
    }

    [Fact]
    public async Task AfterKillMinus9_AppsStartedByHand_RestartAlways_IgnoringSigterm_OrForking_AreAllStopped_NoneStartedAgain()
    {
        // None is autostart: the next viscript must stop every one (the one ignoring SIGTERM by SIGKILL after its
        // stop_timeout; the forker's double-forked grandchild with its session) and start none of them again.
        var config = Dir.Write("config.yaml", """
            apps:
              always:
                path: /bin/sleep
                default_args: ["1000"]
                restart: always
                stop_timeout: 2s
              stubborn:
                path: /bin/sh
                default_args: ["-c", "trap '' TERM; sleep 1000"]
                stop_timeout: 2s
              forker:
                path: /bin/sh
                default_args: ["-c", "sleep 1000 & (sleep 1000 &); exec sleep 1000"]
                stop_timeout: 2s
            settings:
              runHeadless: true
            """);
        var leftovers = new List<ProcStat>();
        try
        {
            await using (var first = await DaemonProcess.StartAsync(config))
            {
                (string App, int SessionSize)[] apps = [("always", 1), ("stubborn", 2), ("forker", 3)];
                for (var i = 0; i < apps.Length; i++)
                {
                    var s = await first.CliAsync("s", apps[i].App);
                    Assert.True(s.ExitCode == 0, s.ToString());
                    var pid = PidOf(await first.CliAsync("la"), (ulong)(i + 1));
                    leftovers.AddRange(await SessionAsync(pid, apps[i].SessionSize));
                }
                first.Signal(9);
                Assert.Equal(137, await first.WaitForExitAsync());
            }
            Assert.All(leftovers, p => Assert.True(p.StillInProc && Pids.IsAlive(p.Pid), $"pid {p.Pid} should have outlived viscript's SIGKILL"));

            await using var second = await DaemonProcess.StartAsync(config);
            foreach (var p in leftovers)
            {
                Assert.True(await WaitGoneAsync(p), $"pid {p.Pid} ({p.State}) left by the killed viscript still runs");
            }
            foreach (var app in new[] { "always", "stubborn", "forker" })
            {
                Assert.Contains($"({app}) pid ", second.Stderr, StringComparison.Ordinal);
            }
            // Nothing was started again (no duplicate): the new daemon lists no process at all.
            var la = await second.CliAsync("la", "-a");
            Assert.True(la.ExitCode == 0, la.ToString());
            Assert.StartsWith("No external apps running.", la.Stdout, StringComparison.Ordinal);
        }
        finally
        {
            foreach (var p in leftovers.Where(p => p.StillInProc))
            {
                Viscript.Core.Supervision.Native.TrySignal(p.Pid, 9);
            }
        }
    }

    /// <summary>Runs viscript with SIGHUP at its default disposition whatever the test run's parent ignores (nohup).</summary>
    private static readonly string[] HupDefault = ["env", "--default-signal=HUP"];

    [Fact]
    public async Task Sighup_AClosedTerminal_StopsTheAppsLikeSigterm_InsteadOfOrphaningThem()
    {
        var config = Config();
        // A test run under nohup (or any parent that ignores SIGHUP) would make the daemon inherit SIGHUP as ignored,
        // which viscript honours: env(1) gives it the default disposition, as a login shell's children have.
        await using var d = await DaemonProcess.StartWrappedAsync(config, HupDefault);
        var pid = await RunningPidAsync(d);
        var leftovers = new List<ProcStat> { ProcStat.Read(pid)!.Value, await SessionMemberAsync(pid) };
        try
        {
            var ignored = File.ReadAllLines($"/proc/{d.Pid}/status").Single(l => l.StartsWith("SigIgn:", StringComparison.Ordinal));
            Assert.Equal(0UL, Convert.ToUInt64(ignored["SigIgn:".Length..].Trim(), 16) & 1);

            d.Signal(1);
            Assert.Equal(0, await d.WaitForExitAsync());
            Assert.Contains(d.Lines, l => l == "viscript: stopped.");
            foreach (var p in leftovers)
            {
                Assert.True(await WaitGoneAsync(p), $"pid {p.Pid} outlived viscript's SIGHUP");
            }
        }
        finally
        {
            foreach (var p in leftovers.Where(p => p.StillInProc))
            {
                Viscript.Core.Supervision.Native.TrySignal(p.Pid, 9);
            }
        }
    }

    [Fact]
    public async Task ClosedTerminal_TheDaemonStopsItsAppsAndExits_InsteadOfDyingOrCrashingOnTheHangup()
    {
        // viscript with its REPL on a pseudo-terminal (script(1)); killing script closes the terminal's master side, so the
        // kernel sends SIGHUP to viscript and every later read or write on the terminal fails with EIO.
        Assert.SkipUnless(File.Exists("/usr/bin/script"), "needs script(1) (util-linux) for a pseudo-terminal");
        var config = Config();
        string[] daemon = [.. HupDefault, "dotnet", Paths.ViscriptDll, "--headless", "--config", config, "--signal", "127.0.0.1:0", "--control", "127.0.0.1:0"];
        var psi = new System.Diagnostics.ProcessStartInfo("/usr/bin/script")
        {
            RedirectStandardInput = true,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (var a in new[] { "-q", "-f", "-e", "-c", string.Join(' ', daemon.Select(x => "'" + x.Replace("'", "'\\''", StringComparison.Ordinal) + "'")), "/dev/null" })
        {
            psi.ArgumentList.Add(a);
        }
        psi.Environment["XDG_RUNTIME_DIR"] = Path.Combine(Dir.Path, "run");
        psi.Environment["TERM"] = "xterm";
        psi.Environment.Remove("VISCRIPT_CONTROL");
        psi.Environment.Remove("VISCRIPT_TOKEN");
        psi.Environment.Remove("VISCRIPT_TOKEN_FILE");

        using var script = System.Diagnostics.Process.Start(psi)!;
        var output = new System.Text.StringBuilder();
        var reader = Task.Run(async () =>
        {
            var buffer = new char[4096];
            int n;
            while ((n = await script.StandardOutput.ReadAsync(buffer)) > 0)
            {
                lock (output)
                {
                    output.Append(buffer, 0, n);
                }
            }
        });
        var leftovers = new List<ProcStat>();
        ProcStat? viscript = null;
        try
        {
            var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(90);
            System.Text.RegularExpressions.Match started;
            while (true)
            {
                string text;
                lock (output)
                {
                    text = output.ToString();
                }
                started = System.Text.RegularExpressions.Regex.Match(text, @"viscript: signal \S+ control \S+ pid (\d+)");
                if (started.Success && text.Contains("keeper: Starting -> Running", StringComparison.Ordinal))
                {
                    break;
                }
                Assert.True(DateTime.UtcNow < deadline && !script.HasExited, $"viscript did not start its app on the terminal:\n{text}");
                await Task.Delay(50);
            }
            viscript = ProcStat.Read(int.Parse(started.Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture));
            Assert.NotNull(viscript);
            var app = Directory.EnumerateDirectories("/proc")
                .Select(p => int.TryParse(Path.GetFileName(p), out var pid) ? ProcStat.Read(pid) : null)
                .OfType<ProcStat>()
                .Single(p => p.Ppid == viscript.Value.Pid && p.Session == p.Pid);
            leftovers.Add(app);
            leftovers.Add(await SessionMemberAsync(app.Pid));

            script.Kill(entireProcessTree: false);
            await script.WaitForExitAsync(TestContext.Current.CancellationToken);

            foreach (var p in leftovers)
            {
                Assert.True(await WaitGoneAsync(p), $"pid {p.Pid} outlived its viscript's terminal");
            }
            Assert.True(await WaitGoneAsync(viscript.Value), "viscript still runs after its terminal closed");
        }
        finally
        {
            foreach (var p in leftovers.Append(viscript ?? default).Where(p => p.Pid != 0 && p.StillInProc))
            {
                Viscript.Core.Supervision.Native.TrySignal(p.Pid, 9);
            }
            if (!script.HasExited)
            {
                script.Kill(entireProcessTree: true);
            }
            await reader.WaitAsync(TimeSpan.FromSeconds(30), TestContext.Current.CancellationToken);
        }
    }

    /// <summary>The <paramref name="size"/> members of the session <paramref name="leader"/> leads (leader included), once all exist.</summary>
    private static async Task<List<ProcStat>> SessionAsync(int leader, int size)
    {
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(30);
        while (DateTime.UtcNow < deadline)
        {
            var members = Directory.EnumerateDirectories("/proc")
                .Select(p => int.TryParse(Path.GetFileName(p), out var pid) ? ProcStat.Read(pid) : null)
                .OfType<ProcStat>()
                .Where(s => s.Session == leader)
                .ToList();
            if (members.Count >= size)
            {
                return members;
            }
            await Task.Delay(50);
        }
        throw new TimeoutException($"session {leader} did not reach {size} processes");
    }

    /// <summary>The pid of app id 1, once autostart has started it.</summary>
    private static async Task<int> RunningPidAsync(DaemonProcess d)
    {
        await d.WaitForLineAsync("Added external app (ID: 1,", seconds: 60);
        var la = await d.CliAsync("la");
        Assert.True(la.ExitCode == 0, la.ToString());
        return PidOf(la, 1);
    }

    /// <summary>The other member of the app's session (the background sleep), once the shell has started it.</summary>
    private static async Task<ProcStat> SessionMemberAsync(int leader)
    {
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(30);
        while (DateTime.UtcNow < deadline)
        {
            var member = Directory.EnumerateDirectories("/proc")
                .Select(p => int.TryParse(Path.GetFileName(p), out var pid) ? ProcStat.Read(pid) : null)
                .OfType<ProcStat>()
                .FirstOrDefault(s => s.Session == leader && s.Pid != leader);
            if (member.Pid != 0)
            {
                return member;
            }
            await Task.Delay(50);
        }
        throw new TimeoutException($"no second process in session {leader}");
    }

    /// <summary>Bounded wait until the process is gone (or a zombie); /proc is the only way to watch a process that is not our child.</summary>
    private static async Task<bool> WaitGoneAsync(ProcStat p)
    {
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(60);
        while (DateTime.UtcNow < deadline)
        {
            if (!p.StillInProc || !Pids.IsAlive(p.Pid))
            {
                return true;
            }
            await Task.Delay(50);
        }
        return false;
    }
}
