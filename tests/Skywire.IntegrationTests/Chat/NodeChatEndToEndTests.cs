using Skywire.Core.Crypto;
using Skywire.IntegrationTests.EndToEnd;

namespace Skywire.IntegrationTests.Chat;

/// <summary>
/// `skywire app chat` through the built executables on loopback: a manager (auto-link), two nodes, a listening chat
/// app beside one and a sending chat app beside the other. Every process is stopped by its own handle.
/// </summary>
[Trait("Category", "E2E")]
public sealed partial class NodeChatEndToEndTests() : ExecutableTestBase("skywire-chat-e2e-")
{
    private static readonly TimeSpan Limit = TimeSpan.FromSeconds(60);

    private static async Task<(int Code, string Out, string Err)> RunAsync(params string[] args)
    {
        await using var p = SkywireProcess.Start(null, args);
        var code = await p.WaitForExitAsync(Limit);
        return (code, p.StdoutText, p.Stderr);
    }

    [Fact]
    public async Task AppChat_Executables_ListenerPrintsTheMessageWithTheSenderNodeKey()
    {
        string managerKey;
        using (var key = KeyFile.LoadOrCreate(FilePath("manager.json")))
        {
            managerKey = key.Public.ToString();
        }

        var processes = new List<SkywireProcess>();
        try
        {
            var manager = SkywireProcess.Start(null, ["manager", "--listen", "127.0.0.1:0", "--key", FilePath("manager.json"), "--auto-link"]);
            processes.Add(manager);
            var port = ManagerLine().Match(await manager.WaitForLineAsync("listening on", Limit)).Groups[1].Value;
            var managerAt = $"{managerKey}@127.0.0.1:{port}";

            // Both nodes start at once (process start-up is most of this test's time).
            var starting = new[] { "a", "b" }.Select(name =>
            {
                var node = SkywireProcess.Start(null, ["node", "--manager", managerAt, "--listen", "127.0.0.1:0", "--apps", "127.0.0.1:0",
                    "--app-token-file", FilePath(name + ".token"), "--key", FilePath(name + ".json")]);
                processes.Add(node);
                return (Node: node, Token: FilePath(name + ".token"));
            }).ToList();
            var nodes = new List<(string Key, string Apps, string Token)>();
            foreach (var (node, token) in starting)
            {
                var m = NodeLine().Match(await node.WaitForLineAsync("apps 127.0.0.1", Limit));
                nodes.Add((m.Groups[1].Value, "127.0.0.1:" + m.Groups[2].Value, token));
            }

            // The listener registers while the auto-link comes up; the send needs the link up at both ends (the manager routes over it).
            var listener = SkywireProcess.Start(null, ["app", "chat", "--node-apps", nodes[1].Apps, "--token-file", nodes[1].Token, "listen"]);
            processes.Add(listener);
            var linked = WaitForLinksUpAsync(managerAt, expected: 2);
            Assert.EndsWith($"listening as {nodes[1].Key}/chat", await listener.WaitForLineAsync("listening as", Limit), StringComparison.Ordinal);
            await linked;

            // A message, and at the same time one to an app that is not there (a clear error, exit code 1).
            const string text = "héllo from a\nsecond line";
            var sending = RunAsync("app", "chat", "--node-apps", nodes[0].Apps, "--token-file", nodes[0].Token, "send", $"{nodes[1].Key}/chat", text);
            var missing = await RunAsync("app", "chat", "--node-apps", nodes[0].Apps, "--token-file", nodes[0].Token, "send", $"{nodes[1].Key}/nobody", "hi");
            var send = await sending;
            Assert.True(send.Code == 0, $"send failed ({send.Code}):\n{send.Err}");
            Assert.Equal(1, missing.Code);
            Assert.Contains("no app 'nobody'", missing.Err, StringComparison.Ordinal);

            // One line: the sender's node key (it dials without registering a name), a space, the text escaped; nothing else.
            var line = await listener.WaitForStdoutLineAsync("héllo", Limit);
            Assert.Equal($"{nodes[0].Key} héllo from a\\nsecond line", line);
            Assert.Single(listener.StdoutText.Split('\n', StringSplitOptions.RemoveEmptyEntries));
        }
        finally
        {
            foreach (var p in processes)
            {
                await p.DisposeAsync();
            }
        }
    }

    private async Task WaitForLinksUpAsync(string managerAt, int expected)
    {
        var deadline = DateTime.UtcNow + Limit;
        while (true)
        {
            var links = await RunAsync("cli", "--manager", managerAt, "--key", FilePath("manager.json"), "links");
            Assert.Equal(0, links.Code);
            if (links.Out.Split('\n').Count(l => l.Contains(" up ", StringComparison.Ordinal)) >= expected)
            {
                return;
            }

            Assert.True(DateTime.UtcNow < deadline, "links not up:\n" + links.Out);
        }
    }
}
