using Microsoft.Playwright;
using Viscript.Core.Control;
using Viscript.GuiTests.Support;
using static Microsoft.Playwright.Assertions;

namespace Viscript.GuiTests;

/// <summary>The web GUI in Debian's headless Chromium against the built viscript in GUI mode.</summary>
public sealed class GuiEndToEndTests(BrowserFixture browser)
{
    private static ILocator Row(IPage page, int id) => page.Locator($"#processes tbody tr[data-id=\"{id}\"]");

    private static ILocator Screen(IPage page, int pane = 1) => page.Locator($".pane[data-term=\"{pane}\"] .xterm-rows");

    private static async Task TypeLineAsync(IPage page, string line, int pane = 1)
    {
        await page.Locator($".pane[data-term=\"{pane}\"] .pane-body").ClickAsync();
        await page.Keyboard.TypeAsync(line);
        await page.Keyboard.PressAsync("Enter");
    }

    [Fact]
    public async Task StartMenu_table_terminal_la_and_sd_action()
    {
        await using var daemon = await GuiDaemon.StartAsync();
        var (page, errors) = await browser.NewPageAsync();
        try
        {
            await page.GotoAsync(daemon.SignInUrl);
            await Expect(page.Locator(".pane[data-term=\"1\"] .xterm-rows")).ToContainTextAsync("? for help");
            await Expect(page.Locator("#processes tbody tr.empty")).ToBeVisibleAsync();

            // Start menu: one entry per app with its help text and an arguments field.
            await page.Locator("#start-button").ClickAsync();
            var menu = page.Locator("#start-menu");
            await Expect(menu).ToBeVisibleAsync();
            await Expect(menu.Locator("button.start-app")).ToHaveTextAsync(["Start echo", "Start testapp"]);
            await Expect(menu.Locator("li[data-app=\"testapp\"] .help")).ToContainTextAsync("Sleeps until shut down");
            await Expect(menu.Locator("input.args[data-app=\"testapp\"]")).ToHaveAttributeAsync("placeholder", "sleep");
            await page.ScreenshotAsync(new PageScreenshotOptions { Path = Path.Combine(Paths.Artifacts, "start-menu.png") });
            await menu.Locator("button.start-app[data-app=\"testapp\"]").ClickAsync();
            await Expect(menu).ToBeHiddenAsync();

            // The start went through the focused terminal, like the original start menu; the table follows.
            await Expect(Screen(page)).ToContainTextAsync("Added external app (ID: 1");
            await Expect(Row(page, 1).Locator("td.app")).ToHaveTextAsync("testapp");
            await Expect(Row(page, 1).Locator("td.state")).ToHaveTextAsync("Running");
            await Expect(Row(page, 1).Locator("td.pid")).ToHaveTextAsync(new System.Text.RegularExpressions.Regex(@"^\d+$"));
            // The sampler has read /proc at least once: memory shows, CPU follows from the second sample.
            await Expect(Row(page, 1).Locator("td.mem")).ToHaveTextAsync(new System.Text.RegularExpressions.Regex(@"\d.*(KiB|MiB)"));
            await Expect(Row(page, 1).Locator("td.cpu")).ToHaveTextAsync(new System.Text.RegularExpressions.Regex(@"^\d+\.\d %$"));
            await Expect(page.Locator("#mem-chart polyline")).ToHaveCountAsync(1);

            // la in the terminal pane.
            await TypeLineAsync(page, "la");
            await Expect(Screen(page)).ToContainTextAsync("ID  APP      PID");
            await Expect(Screen(page)).ToContainTextAsync(new System.Text.RegularExpressions.Regex(@"1\s+testapp\s+\d+\s+Running\s+yes"));

            // History: Up recalls "la"; the edited line runs as typed.
            await page.Keyboard.PressAsync("ArrowUp");
            await page.Keyboard.PressAsync("Backspace");
            await page.Keyboard.PressAsync("Backspace");
            await page.Keyboard.TypeAsync("ping 1");
            await page.Keyboard.PressAsync("Enter");
            await Expect(Screen(page)).ToContainTextAsync("ping time");

            // Actions: ru then sd, output in the panel; sd ends the app: Exited(code), flagged as stopped on request.
            await Row(page, 1).Locator("button[data-action=\"ru\"]").ClickAsync();
            await Expect(page.Locator("#action-output")).ToContainTextAsync("[ 1 ]");
            await Row(page, 1).Locator("button[data-action=\"sd\"]").ClickAsync();
            await Expect(page.Locator("#action-output")).ToContainTextAsync("shutdown pid");
            await Expect(Row(page, 1)).ToHaveAttributeAsync("data-state", "Exited");
            await Expect(Row(page, 1).Locator("td.state")).ToHaveTextAsync(new System.Text.RegularExpressions.Regex(@"^Exited\(\d+\)$"));
            await Expect(Row(page, 1)).ToHaveAttributeAsync("data-stop-requested", "true");
            await Expect(Row(page, 1).Locator("td.cpu")).ToHaveTextAsync("-");

            await page.ScreenshotAsync(new PageScreenshotOptions { Path = Path.Combine(Paths.Artifacts, "start-la-sd.png"), FullPage = true });
            Assert.Empty(errors);

            // The daemon agrees.
            var list = await daemon.Client.ProcessesAsync(TestContext.Current.CancellationToken);
            Assert.Equal("Exited", list[0].State);
            Assert.True(list[0].StopRequested);
        }
        finally
        {
            await page.CloseAsync();
        }
    }

    [Fact]
    public async Task Terminal_attach_sends_lines_and_ctrl_z_detaches_then_clear_and_panes()
    {
        await using var daemon = await GuiDaemon.StartAsync();
        var (page, errors) = await browser.NewPageAsync();
        try
        {
            await page.GotoAsync(daemon.SignInUrl);
            await Expect(Screen(page)).ToContainTextAsync("? for help");
            await TypeLineAsync(page, "start -a echo");
            await Expect(page.Locator(".pane[data-term=\"1\"] .pane-mode")).ToContainTextAsync("attached to 1");
            await Expect(Screen(page)).ToContainTextAsync("testapp echo ready");
            await page.Keyboard.TypeAsync("hello from the browser");
            await page.Keyboard.PressAsync("Enter");
            await Expect(Screen(page)).ToContainTextAsync("echo: hello from the browser");
            await page.Keyboard.PressAsync("Control+z");
            await Expect(Screen(page)).ToContainTextAsync("Detached from 1.");
            await Expect(page.Locator(".pane[data-term=\"1\"] .pane-mode")).ToHaveTextAsync("");

            // Back at the prompt: commands run again, and the echo app is still running.
            await page.Keyboard.TypeAsync("la");
            await page.Keyboard.PressAsync("Enter");
            await Expect(Screen(page)).ToContainTextAsync(new System.Text.RegularExpressions.Regex(@"1\s+echo\s+\d+\s+Running"));

            // Errors show in the pane, with the daemon's message.
            await page.Keyboard.TypeAsync("ping 99");
            await page.Keyboard.PressAsync("Enter");
            // Typed ahead while the command runs: kept, and run after it.
            await page.Keyboard.TypeAsync("apps");
            await page.Keyboard.PressAsync("Enter");
            await Expect(Screen(page)).ToContainTextAsync("No process with id 99");
            await Expect(Screen(page)).ToContainTextAsync("echoes its input");

            // A line longer than the pane wraps; editing at its start still runs the whole line.
            var longName = new string('x', 250);
            await page.Keyboard.TypeAsync("elp " + longName);
            await page.Keyboard.PressAsync("Home");
            await page.Keyboard.TypeAsync("h");
            await page.Keyboard.PressAsync("End");
            await page.Keyboard.TypeAsync("y");
            await page.Keyboard.PressAsync("Enter");
            var answer = await Assert.ThrowsAsync<ViscriptApiException>(() => daemon.Client.CommandAsync("help " + longName + "y", TestContext.Current.CancellationToken));
            var expected = answer.Problem!.Detail;
            await Expect(Screen(page)).ToContainTextAsync(expected[..20]);
            // Wrapped rows read back as one line exactly once: no stale copy of the line from a redraw.
            var rows = await Screen(page).Locator(":scope > div").AllInnerTextsAsync();
            var screen = string.Concat(rows).Replace('\u00a0', ' ');
            var typed = "> help " + longName + "y";
            Assert.Single(System.Text.RegularExpressions.Regex.Matches(screen, System.Text.RegularExpressions.Regex.Escape(typed)));
            Assert.DoesNotContain("> elp", screen, StringComparison.Ordinal);
            await page.ScreenshotAsync(new PageScreenshotOptions { Path = Path.Combine(Paths.Artifacts, "long-line.png") });

            // clear empties the pane.
            await page.Keyboard.TypeAsync("clear");
            await page.Keyboard.PressAsync("Enter");
            await Expect(Screen(page)).Not.ToContainTextAsync("echo: hello");

            // A second pane (new_term), its own prompt; close_term closes it; the taskbar follows.
            await page.Keyboard.TypeAsync("nt");
            await page.Keyboard.PressAsync("Enter");
            await Expect(page.Locator(".pane")).ToHaveCountAsync(2);
            await Expect(page.Locator("#tasks button.task")).ToHaveTextAsync(["Terminal 1", "Terminal 2"]);
            await Expect(page.Locator(".pane[data-term=\"2\"]")).ToHaveClassAsync(new System.Text.RegularExpressions.Regex("focused"));
            await page.Keyboard.TypeAsync("lt");
            await page.Keyboard.PressAsync("Enter");
            await Expect(Screen(page, 2)).ToContainTextAsync("2 Terminals:");

            // Panes move (the taskbar follows) and enlarge to the full width; the terminal refits to its new size.
            await page.Locator(".pane[data-term=\"2\"] .pane-earlier").ClickAsync();
            await Expect(page.Locator("#tasks button.task")).ToHaveTextAsync(["Terminal 2", "Terminal 1"]);
            Assert.Equal(["2", "1"], await page.Locator("#terminals > .pane").EvaluateAllAsync<string[]>("els => els.map(e => e.dataset.term)"));
            var pane1 = page.Locator(".pane[data-term=\"1\"]");
            var narrow = (await pane1.BoundingBoxAsync())!.Width;
            var screenWidth = await pane1.Locator(".xterm-screen").EvaluateAsync<double>("e => e.getBoundingClientRect().width");
            await pane1.Locator(".pane-large").ClickAsync();
            await Expect(pane1).ToHaveClassAsync(new System.Text.RegularExpressions.Regex(@"\blarge\b"));
            Assert.True((await pane1.BoundingBoxAsync())!.Width > narrow * 1.6, "the enlarged pane does not span the width");
            await page.WaitForFunctionAsync($"() => document.querySelector('.pane[data-term=\"1\"] .xterm-screen').getBoundingClientRect().width > {screenWidth.ToString(System.Globalization.CultureInfo.InvariantCulture)} * 1.6");
            await page.Locator(".pane[data-term=\"1\"] .pane-earlier").ClickAsync();
            Assert.Equal(["1", "2"], await page.Locator("#terminals > .pane").EvaluateAllAsync<string[]>("els => els.map(e => e.dataset.term)"));
            await page.ScreenshotAsync(new PageScreenshotOptions { Path = Path.Combine(Paths.Artifacts, "panes-moved-large.png") });
            await page.Locator(".pane[data-term=\"1\"] .pane-close").ClickAsync();
            await Expect(page.Locator(".pane")).ToHaveCountAsync(1);
            await Expect(page.Locator("#tasks button.task")).ToHaveTextAsync(["Terminal 2"]);

            await page.ScreenshotAsync(new PageScreenshotOptions { Path = Path.Combine(Paths.Artifacts, "attach-panes.png") });
            // The only console errors are Chromium's notes on the failed (404) ping request; no script error.
            Assert.All(errors, e => Assert.StartsWith("console error: Failed to load resource: the server responded with a status of 404", e, StringComparison.Ordinal));
        }
        finally
        {
            await page.CloseAsync();
        }
    }

    [Fact]
    public async Task Attach_shows_a_prompt_before_its_newline()
    {
        const string config = """
            apps:
              prompt:
                path: /bin/sh
                default_args: ["-c", "read go; printf 'name? '; read name; echo \"hello $name\"; read end"]
            settings:
              runHeadless: false
            """;
        await using var daemon = await GuiDaemon.StartAsync(config);
        var (page, errors) = await browser.NewPageAsync();
        try
        {
            await page.GotoAsync(daemon.SignInUrl);
            await Expect(Screen(page)).ToContainTextAsync("? for help");
            await TypeLineAsync(page, "start -a prompt");
            await Expect(page.Locator(".pane[data-term=\"1\"] .pane-mode")).ToContainTextAsync("attached to 1");
            await page.Keyboard.TypeAsync("go");
            await page.Keyboard.PressAsync("Enter");
            // The prompt has no newline: it shows at once, at the start of the input row.
            var promptRow = Screen(page).Locator(":scope > div", new() { HasTextRegex = new System.Text.RegularExpressions.Regex(@"^name\?") });
            await Expect(promptRow).ToHaveCountAsync(1);
            await page.Keyboard.TypeAsync("bob");
            await Expect(promptRow).ToHaveTextAsync(new System.Text.RegularExpressions.Regex(@"^name\?\s+bob\s*$"));
            await page.Keyboard.PressAsync("Enter");
            // The answer starts a new row; the prompt row is kept once, not repeated.
            await Expect(Screen(page).Locator(":scope > div", new() { HasTextRegex = new System.Text.RegularExpressions.Regex(@"^hello\sbob") })).ToHaveCountAsync(1);
            await Expect(promptRow).ToHaveCountAsync(1);
            await page.ScreenshotAsync(new PageScreenshotOptions { Path = Path.Combine(Paths.Artifacts, "attach-prompt.png") });
            Assert.Empty(errors);
        }
        finally
        {
            await page.CloseAsync();
        }
    }

    [Fact]
    public async Task First_paint_has_apps_and_states_without_javascript()
    {
        await using var daemon = await GuiDaemon.StartAsync();
        Assert.Equal(1UL, (await daemon.Client.StartAsync("testapp", null, TestContext.Current.CancellationToken)).Id);
        var context = await browser.Browser.NewContextAsync(new BrowserNewContextOptions { JavaScriptEnabled = false });
        try
        {
            // A browser that signed in before: its session cookie makes the server fill in the data.
            await context.AddCookiesAsync([daemon.SessionCookie]);
            var page = await context.NewPageAsync();
            await page.GotoAsync(daemon.SignInUrl);
            await Expect(page.Locator("#apps button.start-app")).ToHaveTextAsync(["Start echo", "Start testapp"]);
            await Expect(Row(page, 1).Locator("td.app")).ToHaveTextAsync("testapp");
            await Expect(Row(page, 1).Locator("td.state")).ToHaveTextAsync(new System.Text.RegularExpressions.Regex("^(Starting|Running)$"));
        }
        finally
        {
            await context.CloseAsync();
        }
    }

    [Fact]
    public async Task SignIn_link_is_exchanged_once_for_an_httponly_cookie_and_a_query_token_is_ignored()
    {
        await using var daemon = await GuiDaemon.StartAsync();
        var (page, errors) = await browser.NewPageAsync();
        try
        {
            // Without signing in: the page loads (it holds no data) but shows no apps and asks for the token.
            await page.GotoAsync(daemon.Url);
            await Expect(page.Locator("#token-box")).ToBeVisibleAsync();
            await Expect(page.Locator("#apps button.start-app")).ToHaveCountAsync(0);

            // A token in the query is not accepted (issue 11.7): no data, still asking.
            await page.GotoAsync(daemon.Url + "?token=" + daemon.Token);
            await Expect(page.Locator("#token-box")).ToBeVisibleAsync();
            await Expect(page.Locator("#apps button.start-app")).ToHaveCountAsync(0);

            // The sign-in link: the fragment never reaches the server; the page removes it and trades it for a cookie.
            await page.GotoAsync(daemon.SignInUrl);
            await Expect(page.Locator("#apps button.start-app")).ToHaveTextAsync(["Start echo", "Start testapp"]);
            await Expect(page.Locator("#token-box")).ToBeHiddenAsync();
            Assert.DoesNotContain("token", page.Url, StringComparison.Ordinal);
            await Expect(page.Locator("#status")).ToHaveTextAsync("live");
            var cookie = Assert.Single(await page.Context.CookiesAsync(), c => c.Name == $"viscript-session-{daemon.Port}");
            Assert.True(cookie.HttpOnly);
            Assert.Equal(SameSiteAttribute.Strict, cookie.SameSite);
            Assert.NotEqual(daemon.Token, cookie.Value);
            // The page's script can see neither the cookie nor the token anywhere.
            Assert.Equal("", await page.EvaluateAsync<string>("() => document.cookie"));
            Assert.Equal(0, await page.EvaluateAsync<int>("() => sessionStorage.length + localStorage.length"));

            await TypeLineAsync(page, "apps");
            await Expect(Screen(page)).ToContainTextAsync("echoes its input");
            await page.ReloadAsync();
            await Expect(page.Locator("#apps button.start-app")).ToHaveCountAsync(2);
            await Expect(page.Locator("#token-box")).ToBeHiddenAsync();
            Assert.DoesNotContain(errors, e => !e.Contains("401", StringComparison.Ordinal));
        }
        finally
        {
            await page.CloseAsync();
        }
    }

    [Fact]
    public async Task SignIn_form_takes_the_pasted_token()
    {
        await using var daemon = await GuiDaemon.StartAsync();
        var (page, _) = await browser.NewPageAsync();
        try
        {
            await page.GotoAsync(daemon.Url);
            await page.Locator("#token-input").FillAsync("not-the-token");
            await page.Locator("#token-box button[type=submit]").ClickAsync();
            await Expect(page.Locator("#token-error")).ToBeVisibleAsync();
            await page.Locator("#token-input").FillAsync(daemon.Token);
            await page.Locator("#token-box button[type=submit]").ClickAsync();
            await Expect(page.Locator("#apps button.start-app")).ToHaveTextAsync(["Start echo", "Start testapp"]);
            await Expect(page.Locator("#token-box")).ToBeHiddenAsync();
        }
        finally
        {
            await page.CloseAsync();
        }
    }
}
