using System.Text.RegularExpressions;
using Microsoft.Playwright;
using Viscript.GuiTests.Support;
using static Microsoft.Playwright.Assertions;

namespace Viscript.GuiTests;

/// <summary>
/// The GUI of a cluster primary (docs/viscript.md "Cluster", docs/gui.md): two built viscript executables on loopback,
/// the second joined to the first as agent <c>b</c> (pinned keys, allow-list). From the primary's page: the host list
/// shows both hosts with their state, the start menu starts an app of the agent's own config on the agent, and the
/// process table shows it with its host, its CPU/memory from the agent's sampler, and the actions work on it.
/// </summary>
public sealed class ClusterGuiTests(BrowserFixture browser)
{
    private static string AgentConfig() => $"""
        apps:
          bapp:
            path: {Paths.TestApp}
            default_args: ["sleep"]
            desc: an app only the agent has
        settings:
          runHeadless: false
        """;

    [Fact]
    public async Task Primary_lists_the_agent_and_starts_an_app_on_it_from_the_start_menu()
    {
        var ct = TestContext.Current.CancellationToken;
        var keys = Directory.CreateDirectory(Path.Combine(Path.GetTempPath(), "viscript-gui-keys-" + Guid.NewGuid().ToString("N")[..12])).FullName;
        try
        {
            var primaryKeyFile = Path.Combine(keys, "primary.key");
            var agentKeyFile = Path.Combine(keys, "agent.key");
            var primaryKey = (await GuiDaemon.RunOnceAsync("key", "--cluster-key", primaryKeyFile)).Trim();
            var agentKey = (await GuiDaemon.RunOnceAsync("key", "--cluster-key", agentKeyFile)).Trim();
            var allow = Path.Combine(keys, "agents.allow");
            await File.WriteAllTextAsync(allow, $"b {agentKey}\n", ct);

            await using var primary = await GuiDaemon.StartAsync(null, null,
                "--name", "main", "--cluster-key", primaryKeyFile, "--agents", "127.0.0.1:0", "--agents-allow", allow);
            var clusterLine = await primary.WaitForLineAsync(l => l.StartsWith("viscript: cluster primary", StringComparison.Ordinal));
            var agentsAddress = clusterLine.Split(' ')[5];
            await using var agent = await GuiDaemon.StartAsync(AgentConfig(), null,
                "--cluster-key", agentKeyFile, "--join", agentsAddress, "--primary-key", primaryKey);

            var (page, errors) = await browser.NewPageAsync();
            try
            {
                await page.GotoAsync(primary.SignInUrl);

                // The host list: this host and the agent, with their states and figures.
                var hosts = page.Locator("#hosts tbody");
                await Expect(hosts.Locator("tr[data-host=\"main\"] td.state")).ToHaveTextAsync("local");
                await Expect(hosts.Locator("tr[data-host=\"b\"] td.state")).ToHaveTextAsync("connected");
                await Expect(hosts.Locator("tr[data-host=\"b\"] td.load")).ToHaveTextAsync(new Regex(@"^\d+\.\d\d$"));
                await Expect(hosts.Locator("tr[data-host=\"b\"] td.mem")).ToHaveTextAsync(new Regex(@"iB / .*iB$"));

                // Start menu: choose host b; the list is b's own config, and starting types `start b:bapp`.
                await page.Locator("#start-button").ClickAsync();
                var menu = page.Locator("#start-menu");
                await Expect(menu.Locator("#start-host-pick")).ToBeVisibleAsync();
                await Expect(menu.Locator("button.start-app")).ToHaveTextAsync(["Start echo", "Start testapp"]);
                await menu.Locator("#start-host").SelectOptionAsync("b");
                await Expect(menu.Locator("button.start-app")).ToHaveTextAsync(["Start bapp"]);
                await menu.Locator("button.start-app[data-app=\"bapp\"]").ClickAsync();
                await Expect(menu).ToBeHiddenAsync();
                await Expect(page.Locator(".pane[data-term=\"1\"] .xterm-rows")).ToContainTextAsync("Added external app (ID: b:1");

                // The table: the row carries its host; CPU and memory come from the agent's sampler.
                var row = page.Locator("#processes tbody tr[data-id=\"b:1\"]");
                await Expect(row.Locator("td.host")).ToHaveTextAsync("b");
                await Expect(row.Locator("td.app")).ToHaveTextAsync("bapp");
                await Expect(row.Locator("td.state")).ToHaveTextAsync("Running");
                await Expect(row.Locator("td.mem")).ToHaveTextAsync(new Regex(@"\d.*(KiB|MiB)"));
                await Expect(row.Locator("td.cpu")).ToHaveTextAsync(new Regex(@"^\d+\.\d %$"));
                // Nothing runs on this host: its charts are empty; the charts of host b show bapp.
                await Expect(page.Locator("#mem-chart polyline")).ToHaveCountAsync(0);
                await page.Locator("#chart-host").SelectOptionAsync("b");
                await Expect(page.Locator("#mem-chart polyline")).ToHaveCountAsync(1);
                await Expect(page.Locator("#chart-legend")).ToContainTextAsync("bapp #1");

                // Actions on the remote row go to HOST:ID.
                await row.Locator("button[data-action=\"ping\"]").ClickAsync();
                await Expect(page.Locator("#action-output")).ToContainTextAsync("ping time");
                await row.Locator("button[data-action=\"sd\"]").ClickAsync();
                await Expect(row).ToHaveAttributeAsync("data-state", "Exited");
                await page.ScreenshotAsync(new PageScreenshotOptions { Path = Path.Combine(Paths.Artifacts, "cluster.png"), FullPage = true });
                Assert.Empty(errors);

                // The agent's own daemon agrees: the app ran there and was stopped on request.
                var list = await agent.Client.ProcessesAsync(ct);
                Assert.Equal("bapp", Assert.Single(list).App);
                Assert.Equal("Exited", list[0].State);
                Assert.True(list[0].StopRequested);
                Assert.DoesNotContain(await primary.Client.ProcessesAsync(ct), p => p.Host == "main");
            }
            finally
            {
                await page.CloseAsync();
            }
        }
        finally
        {
            Directory.Delete(keys, recursive: true);
        }
    }
}
