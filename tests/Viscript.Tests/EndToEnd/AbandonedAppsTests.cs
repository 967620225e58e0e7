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
