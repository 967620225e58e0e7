using System.Diagnostics;
using System.Globalization;
using Skywire.Core.Crypto;
using Skywire.IntegrationTests.EndToEnd;

namespace Skywire.IntegrationTests.Install;

/// <summary>
/// Issue 18.9: under systemd (Type=notify, the shipped units) the components say READY=1 once they serve and
/// STOPPING=1 on SIGTERM, and log with syslog priorities for journald. The test plays systemd: it binds the
/// notification socket and sets NOTIFY_SOCKET and JOURNAL_STREAM.
/// </summary>
[Trait("Category", "E2E")]
public sealed partial class ServiceReadinessTests() : ExecutableTestBase("skywire-notify-")
{
    private static readonly TimeSpan Limit = TimeSpan.FromSeconds(60);

    [Fact]
    public async Task ManagerAndNode_NotifyReadyOnceServing_AndStoppingOnSigterm_WithJournalPriorities()
    {
        using var notify = new NotifySocket(Dir);
        var systemd = new Dictionary<string, string> { ["NOTIFY_SOCKET"] = notify.Path, ["JOURNAL_STREAM"] = "8:12345", ["SKYWIRE_LOG"] = "Information" };
        string managerKey;
        using (var key = KeyFile.LoadOrCreate(FilePath("manager.json")))
        {
            managerKey = key.Public.ToString();
        }

        await using var manager = SkywireProcess.Start(null, ["manager", "--listen", "127.0.0.1:0", "--key", FilePath("manager.json")], environment: systemd);
        var ready = await notify.ReceiveAsync(Limit);
        Assert.StartsWith("READY=1\nSTATUS=manager " + managerKey + " listening on 127.0.0.1:", ready, StringComparison.Ordinal);
        var port = ManagerLine().Match(await manager.WaitForLineAsync("listening on", Limit)).Groups[1].Value;
        Assert.Contains($"127.0.0.1:{port}", ready, StringComparison.Ordinal);
        // journald: the log lines carry their syslog priority (<6> information) instead of a timestamp.
        Assert.Contains(manager.Stderr.Split('\n'), l => l.StartsWith("<6>", StringComparison.Ordinal));

        // The node is ready only once registered with its manager.
        await using (var node = SkywireProcess.Start(null, ["node", "--manager", $"{managerKey}@127.0.0.1:{port}", "--listen", "127.0.0.1:0",
                         "--app-token-file", FilePath("node.token"), "--key", FilePath("node.json")], environment: systemd))
        {
            var nodeReady = await notify.ReceiveAsync(Limit);
            Assert.StartsWith("READY=1\nSTATUS=node ", nodeReady, StringComparison.Ordinal);
            Assert.Contains(" registered; links 127.0.0.1:", nodeReady, StringComparison.Ordinal);
            Assert.Contains("Registered with the manager", node.Stderr, StringComparison.Ordinal);
        }

        Terminate(manager.Id);
        Assert.Equal("STOPPING=1", await notify.ReceiveAsync(Limit));
        Assert.Equal(0, await manager.WaitForExitAsync(Limit));
    }

    /// <summary>SIGTERM to the process the test started (what systemctl stop sends).</summary>
    internal static void Terminate(int pid)
    {
        using var kill = Process.Start("kill", ["-TERM", pid.ToString(CultureInfo.InvariantCulture)]) ?? throw new InvalidOperationException("kill did not start");
        kill.WaitForExit();
        Assert.Equal(0, kill.ExitCode);
    }
}
