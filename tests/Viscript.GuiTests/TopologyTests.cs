using System.Net;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Playwright;
using Skywire.Core.Control;
using Skywire.Core.Channels;
using Skywire.Core.Crypto;
using Skywire.Core.Manager;
using Skywire.Protocol.Control;
using Viscript.GuiTests.Support;
using static Microsoft.Playwright.Assertions;

namespace Viscript.GuiTests;

/// <summary>The topology view against a real manager (in-process, loopback) with three registered nodes, two links and a route.</summary>
public sealed class TopologyTests(BrowserFixture browser)
{
    private static readonly TimeSpan Limit = TimeSpan.FromSeconds(20);

    // Fake nodes accept every manager command (open link, install rules, ...).
    private static ValueTask<byte[]> AcceptAll(byte opcode, ReadOnlyMemory<byte> payload, CancellationToken ct) => ValueTask.FromResult("{}"u8.ToArray());

    [Fact]
    public async Task Mesh_is_drawn_with_nodes_links_latency_and_routes()
    {
        var ct = TestContext.Current.CancellationToken;
        using var managerKey = KeyPair.Generate();
        using var admin = KeyPair.Generate();
        await using var manager = new ManagerServer(managerKey, new ManagerOptions { Listen = new IPEndPoint(IPAddress.Loopback, 0), Admins = [admin.Public.ToString()] });
        manager.Start();
        var address = new ManagerAddress(manager.LocalEndPoint, managerKey.Public);

        var keys = new[] { KeyPair.Generate(), KeyPair.Generate(), KeyPair.Generate() };
        var connections = new List<FrameConnection>();
        try
        {
            for (var i = 0; i < keys.Length; i++)
            {
                var (c, _) = await ControlClient.ConnectAsync(address, keys[i], "node", $"127.0.0.1:{4100 + i}", AcceptAll, NullLogger.Instance, Limit, ct);
                connections.Add(c);
            }
            string K(int i) => keys[i].Public.ToString();
            LinkState Link(int peer, long rttMicros) => new() { Peer = K(peer), Up = true, RttMicros = rttMicros };
            var reports = new[]
            {
                new LinkReportMessage { Links = [Link(1, 1500)] },
                new LinkReportMessage { Links = [Link(0, 1500), Link(2, 2500)] },
                new LinkReportMessage { Links = [Link(1, 2500)] },
            };
            for (var i = 0; i < keys.Length; i++)
            {
                await connections[i].RequestAsync((byte)ControlOpcode.LinkReport, reports[i], ControlJsonContext.Default.LinkReportMessage, ControlJsonContext.Default.OkMessage, ct).WaitAsync(Limit, ct);
            }
            var (cli, _) = await ControlClient.ConnectAsync(address, admin, "cli", null, AcceptAll, NullLogger.Instance, Limit, ct);
            await using (cli)
            {
                var route = await cli.RequestAsync((byte)ControlOpcode.BuildRoute, new NodePairMessage { A = K(0), B = K(2) }, ControlJsonContext.Default.NodePairMessage, ControlJsonContext.Default.RouteResultMessage, ct).WaitAsync(Limit, ct);
                Assert.Equal(3, route.Path.Count);
            }

            var keyDir = Directory.CreateTempSubdirectory("viscript-gui-key-");
            try
            {
                var keyFile = Path.Combine(keyDir.FullName, "admin.key");
                KeyFile.Save(keyFile, admin);
                await using var daemon = await GuiDaemon.StartAsync(null, null, "--manager", $"{managerKey.Public}@{manager.LocalEndPoint}", "--manager-key-file", keyFile);
                var (page, errors) = await browser.NewPageAsync();
                try
                {
                    await page.GotoAsync(daemon.SignInUrl);
                    var topo = page.Locator("#topology");
                    await Expect(topo.Locator("svg g.node")).ToHaveCountAsync(3);
                    await Expect(topo.Locator("svg g.node.online")).ToHaveCountAsync(3);
                    await Expect(topo.Locator($"svg g.node[data-key=\"{K(1)}\"] text")).ToHaveTextAsync(K(1)[..8]);
                    // One latency label per linked pair (both ends report the link).
                    await Expect(topo.Locator("svg .rtt")).ToHaveCountAsync(2);
                    await Expect(topo.Locator("svg .rtt", new() { HasTextString = "1.5 ms" })).ToHaveCountAsync(1);
                    await Expect(topo.Locator("svg .rtt", new() { HasTextString = "2.5 ms" })).ToHaveCountAsync(1);
                    await Expect(topo.Locator("svg polyline.route")).ToHaveCountAsync(1);
                    await Expect(topo.Locator("ul.routes li")).ToContainTextAsync($"{K(0)[..8]} \u2192 {K(1)[..8]} \u2192 {K(2)[..8]}");
                    await Expect(topo).ToContainTextAsync("3 nodes, 4 links, 1 routes");
                    await topo.ScreenshotAsync(new LocatorScreenshotOptions { Path = Path.Combine(Paths.Artifacts, "topology.png") });
                    Assert.Empty(errors);
                }
                finally
                {
                    await page.CloseAsync();
                }
            }
            finally
            {
                keyDir.Delete(recursive: true);
            }
        }
        finally
        {
            foreach (var c in connections)
            {
                await c.DisposeAsync();
            }
            foreach (var k in keys)
            {
                k.Dispose();
            }
        }
    }

    [Fact]
    public async Task A_manager_that_refuses_the_key_is_reported_not_drawn()
    {
        var ct = TestContext.Current.CancellationToken;
        using var managerKey = KeyPair.Generate();
        using var stranger = KeyPair.Generate();
        await using var manager = new ManagerServer(managerKey, new ManagerOptions { Listen = new IPEndPoint(IPAddress.Loopback, 0) });
        manager.Start();
        var keyDir = Directory.CreateTempSubdirectory("viscript-gui-key-");
        try
        {
            var keyFile = Path.Combine(keyDir.FullName, "stranger.key");
            KeyFile.Save(keyFile, stranger);
            await using var daemon = await GuiDaemon.StartAsync(null, null, "--manager", $"{managerKey.Public}@{manager.LocalEndPoint}", "--manager-key-file", keyFile);
            // The topology command (skywire cli ... topology --json --watch) reports the manager's refusal; viscript keeps
            // restarting it with backoff and shows the reason.
            Viscript.Core.Control.TopologyView topology;
            var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(60);
            do
            {
                topology = await daemon.Client.TopologyAsync(ct);
                if (topology.Error?.Contains("not an admin", StringComparison.Ordinal) == true)
                {
                    break;
                }
                await Task.Delay(200, ct);
            }
            while (DateTime.UtcNow < deadline);
            Assert.True(topology.Configured);
            Assert.Contains("not an admin", topology.Error, StringComparison.Ordinal);
            Assert.Empty(topology.Nodes);
        }
        finally
        {
            keyDir.Delete(recursive: true);
        }
    }
}
