using System.Net;
using Skywire.Core.Control;
using Skywire.Core.Crypto;
using Skywire.Core.Manager;
using Skywire.Core.Node;
using Skywire.TestKit.Logging;

namespace Skywire.IntegrationTests.Node;

/// <summary>Issue 12.4: <c>--app-token-file</c> pointing at someone else's file must not destroy it.</summary>
public sealed class NodeTokenFileTests : IDisposable
{
    private readonly string _dir = Path.Combine(Path.GetTempPath(), "skywire-nodetoken-" + Guid.NewGuid().ToString("N"));

    public NodeTokenFileTests() => Directory.CreateDirectory(_dir);

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    [Fact]
    public async Task Start_TokenFilePathHoldsAnotherFile_RefusesBeforeBinding_FileUntouched()
    {
        if (OperatingSystem.IsWindows())
        {
            Assert.Skip("Unix modes");
            return;
        }

        using var log = new TestLog(TestContext.Current.TestOutputHelper!.WriteLine);
        var precious = Path.Combine(_dir, "shadow");
        const string content = "root:$6$salt$hash:19000:0:99999:7:::\n";
        File.WriteAllText(precious, content);
        File.SetUnixFileMode(precious, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.GroupRead);

        using var managerKey = KeyPair.Generate();
        await using var manager = new ManagerServer(managerKey, new ManagerOptions { Listen = new IPEndPoint(IPAddress.Loopback, 0) }, log);
        manager.Start();
        using var nodeKey = KeyPair.Generate();
        await using var node = new NodeHost(nodeKey, new NodeOptions { Manager = new ManagerAddress(manager.LocalEndPoint, managerKey.Public), AppTokenFile = precious }, log);

        var ex = await Assert.ThrowsAsync<SecretFileException>(() => node.StartAsync(TestContext.Current.CancellationToken));
        Assert.Contains("refusing to replace", ex.Message, StringComparison.Ordinal);
        Assert.Equal(content, await File.ReadAllTextAsync(precious, TestContext.Current.CancellationToken));
        Assert.Empty(manager.Controller.ListNodes().Nodes);
    }

    [Fact]
    public async Task Start_TwiceOnSameTokenFile_SecondNodeReplacesItsOwnTokenFile()
    {
        using var log = new TestLog(TestContext.Current.TestOutputHelper!.WriteLine);
        var path = Path.Combine(_dir, "token");
        using var managerKey = KeyPair.Generate();
        await using var manager = new ManagerServer(managerKey, new ManagerOptions { Listen = new IPEndPoint(IPAddress.Loopback, 0) }, log);
        manager.Start();
        foreach (var _ in new[] { 1, 2 })
        {
            using var nodeKey = KeyPair.Generate();
            await using var node = new NodeHost(nodeKey, new NodeOptions { Manager = new ManagerAddress(manager.LocalEndPoint, managerKey.Public), AppTokenFile = path }, log);
            await node.StartAsync(TestContext.Current.CancellationToken);
            Assert.Equal(node.AppToken + "\n", await File.ReadAllTextAsync(path, TestContext.Current.CancellationToken));
        }
    }
}
