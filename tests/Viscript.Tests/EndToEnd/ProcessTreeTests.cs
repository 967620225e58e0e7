using Viscript.Tests.Support;

namespace Viscript.Tests.EndToEnd;

/// <summary>
/// The built executable as a child subreaper: apps that double-fork leave neither orphan nor zombie after sd, a natural
/// exit, quit or SIGTERM. Through the executable only: the test process itself must not become a subreaper.
/// </summary>
[Trait("Category", "E2E")]
public sealed class ExeProcessTreeTests : ExeTestBase
{

    // A grandchild orphaned at once (its subshell exits), one that ignores SIGTERM, one that leaves the session (setsid).
    private const string Tree =
        "(sleep 1000 & echo grandchild $!); (trap '' TERM; exec sleep 1000) & echo stubborn $!; (setsid sleep 1000 & echo escaped $!)";

    private string Config() => Dir.Write("config.yaml", $$"""
        apps:
          tree:
            path: /bin/sh
            default_args: ["-c", "{{Tree}}; exec sleep 1000"]
            stop_timeout: 1s
          quick:
            path: /bin/sh
            default_args: ["-c", "{{Tree}}; read line; echo bye"]
            stop_timeout: 1s
        settings:
          runHeadless: true
        """);

    /// <summary>Follows the app's output over the control API (SSE) until the three pids are printed.</summary>
    private static async Task<Dictionary<string, ProcStat>> TreePidsAsync(DaemonProcess d, ulong id)
    {
        using var client = d.Client();
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        using var stream = await client.OpenLogFollowAsync(id, 100, cts.Token);
        var pids = new Dictionary<string, ProcStat>();
        await foreach (var item in stream.ReadAllAsync(cts.Token))
        {
            if (item is { Kind: "line", Line.Text: var text } && text.Split(' ') is [var name and ("grandchild" or "stubborn" or "escaped"), var pid])
            {
                pids[name] = ProcStat.Read(int.Parse(pid, System.Globalization.CultureInfo.InvariantCulture)) ?? throw new InvalidOperationException($"{name} {pid} is not running");
            }
            if (pids.Count == 3)
            {
                break;
            }
        }
        Assert.Equal(3, pids.Count);
        return pids;
    }

    private static List<ProcStat> ZombieChildren(int parent) => Directory.EnumerateDirectories("/proc")
        .Select(p => int.TryParse(Path.GetFileName(p), out var pid) ? ProcStat.Read(pid) : null)
        .OfType<ProcStat>().Where(s => s.Ppid == parent && s.State == 'Z').ToList();

    [Fact]
    public async Task Sd_LeavesNoOrphanAndNoZombie_ThenQuitKillsWhatLeftTheSession()
    {
        var d = await DaemonProcess.StartAsync(Config());
        await using (d)
        {
            Assert.Equal(0, (await d.CliAsync("s", "tree")).ExitCode);
            var pids = await TreePidsAsync(d, 1);
            // The orphaned grandchild was re-parented to viscript (child subreaper), not to init.
            Assert.Equal(d.Pid, ProcStat.Read(pids["grandchild"].Pid)!.Value.Ppid);

            var sd = await d.CliAsync("sd", "1");
            Assert.True(sd.ExitCode == 0, sd.ToString());
            Assert.Equal("[ 1 ] tree Exited(143)", sd.Lines[1]);
            // When sd answers, the group is gone from /proc: killed and reaped (not left as a zombie).
            Assert.False(pids["grandchild"].StillInProc, "grandchild still in /proc after sd");
            Assert.False(pids["stubborn"].StillInProc, "the grandchild ignoring SIGTERM is still in /proc after sd");
            Assert.Empty(ZombieChildren(d.Pid));
            // The one that left the session (setsid) cannot be told apart from other orphans: it stays until the daemon exits.
            Assert.True(pids["escaped"].StillInProc);

            await d.Stdin.WriteLineAsync("quit");
            Assert.Equal(0, await d.WaitForExitAsync());
            Assert.False(pids["escaped"].StillInProc, "the process that left the session survived quit");
        }
    }

    [Fact]
    public async Task NaturalExit_StopsLeftovers_AndSigtermOfViscriptLeavesNothing()
    {
        var d = await DaemonProcess.StartAsync(Config());
        await using (d)
        {
            Assert.Equal(0, (await d.CliAsync("s", "quick")).ExitCode);
            var quick = await TreePidsAsync(d, 1);
            Assert.Equal(0, (await d.CliAsync("s", "tree")).ExitCode);
            var tree = await TreePidsAsync(d, 2);
            var treePid = ProcStat.Read(PidOf(await d.CliAsync("la"), 2))!.Value;

            // The app ends on its own: Exited(0), not flagged as requested, and its session went with it.
            using (var client = d.Client())
            {
                await client.WriteInputAsync(1, "go");
            }
            await d.WaitForLineAsync(l => l.Contains("[ 1 ] quick: ", StringComparison.Ordinal) && l.Contains(" -> Exited(0)", StringComparison.Ordinal));
            Assert.False(quick["grandchild"].StillInProc, "grandchild of an app that exited survived");
            Assert.False(quick["stubborn"].StillInProc, "stubborn grandchild of an app that exited survived");
            Assert.Empty(ZombieChildren(d.Pid));

            d.Signal(15);
            Assert.Equal(0, await d.WaitForExitAsync());
            foreach (var p in new[] { treePid, tree["grandchild"], tree["stubborn"], tree["escaped"], quick["escaped"] })
            {
                Assert.False(p.StillInProc, $"pid {p.Pid} survived SIGTERM of viscript");
            }
        }
    }
}
