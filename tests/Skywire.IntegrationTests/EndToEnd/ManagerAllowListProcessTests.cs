using System.Diagnostics;
using System.Text.RegularExpressions;
using Skywire.Core.Crypto;

namespace Skywire.IntegrationTests.EndToEnd;

/// <summary>The built `skywire manager --allow-nodes FILE` with real `skywire node` processes on loopback.</summary>
public sealed partial class ManagerAllowListProcessTests : IDisposable
{
    private static readonly TimeSpan Limit = TimeSpan.FromSeconds(60);
    private readonly string _dir = Directory.CreateTempSubdirectory("skywire-allow-e2e-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    [GeneratedRegex(@"manager ([0-9a-f]{66}) listening on (\S+)")]
    private static partial Regex ManagerLine();

    private string FilePath(string name) => Path.Combine(_dir, name);

    private SkywireProcess Node(string manager, string name) => SkywireProcess.Start(null,
        ["node", "--manager", manager, "--key", FilePath(name + ".json"), "--app-token-file", FilePath(name + ".token")]);

    [Fact]
    public async Task UnlistedNodeExits3_BothSidesLogWhy_SighupAdmitsIt()
    {
        using (var a = KeyFile.LoadOrCreate(FilePath("a.json")))
        {
            File.WriteAllText(FilePath("nodes.allow"), $"# lab\n{a.Public}\n");
        }

        string bKey;
        using (var b = KeyFile.LoadOrCreate(FilePath("b.json")))
        {
            bKey = b.Public.ToString();
        }

        await using var manager = SkywireProcess.Start(null,
            ["manager", "--listen", "127.0.0.1:0", "--key", FilePath("manager.json"), "--allow-nodes", FilePath("nodes.allow")],
            environment: new Dictionary<string, string> { ["SKYWIRE_LOG"] = "Information" });
        var line = ManagerLine().Match(await manager.WaitForLineAsync("manager 0", Limit));
        var address = $"{line.Groups[1].Value}@{line.Groups[2].Value}";
        await manager.WaitForLineAsync("Node allow-list in force: 1 keys", Limit);

        await using (var refused = Node(address, "b"))
        {
            Assert.Equal(3, await refused.WaitForExitAsync(Limit));
            Assert.Contains($"node key {bKey} is not in this manager's node allow-list", refused.Stderr, StringComparison.Ordinal);
            Assert.StartsWith("error: ", refused.Stderr.Split('\n').Last(l => l.Contains("allow-list", StringComparison.Ordinal)), StringComparison.Ordinal);
        }

        var managerRefusal = await manager.WaitForLineAsync($"Refused {bKey}", Limit);
        Assert.Contains("allow-list", managerRefusal, StringComparison.Ordinal);

        await using var listed = Node(address, "a");
        await listed.WaitForLineAsync(" links ", Limit);

        File.AppendAllText(FilePath("nodes.allow"), bKey + "  # added later\n");
        await HangUpAsync(manager.Id);

        // SIGHUP or the file watcher, whichever comes first: either reload admits b.
        await manager.WaitForLineAsync("Node allow-list reloaded: 2 keys", Limit);
        await using var admitted = Node(address, "b");
        await admitted.WaitForLineAsync($"node {bKey} links ", Limit);
        Assert.DoesNotContain("error", listed.Stderr, StringComparison.Ordinal);

        // Revoking a's key disconnects it; its reconnect is refused and it exits 3 with the reason.
        File.WriteAllText(FilePath("nodes.allow"), bKey + "\n");
        await HangUpAsync(manager.Id);
        Assert.Equal(3, await listed.WaitForExitAsync(Limit));
        Assert.Contains("error: manager refused this node: node key", listed.Stderr, StringComparison.Ordinal);
        Assert.False(admitted.HasExited);
    }

    private static async Task HangUpAsync(int pid)
    {
        using var kill = Process.Start("kill", ["-HUP", pid.ToString(System.Globalization.CultureInfo.InvariantCulture)]);
        await kill.WaitForExitAsync(TestContext.Current.CancellationToken);
        Assert.Equal(0, kill.ExitCode);
    }
}
