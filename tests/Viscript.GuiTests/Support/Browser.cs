using Microsoft.Playwright;

[assembly: AssemblyFixture(typeof(Viscript.GuiTests.Support.BrowserFixture))]

namespace Viscript.GuiTests.Support;

/// <summary>
/// One headless Debian Chromium for the whole test assembly (no browser download), a fresh context per page.
/// Playwright launches it with a fresh temporary user-data-dir of its own and deletes it on close.
/// </summary>
public sealed class BrowserFixture : IAsyncLifetime
{
    public const string ChromiumPath = "/usr/bin/chromium";

    private IPlaywright? _playwright;

    /// <summary>The browser.</summary>
    public IBrowser Browser { get; private set; } = null!;

    public async ValueTask InitializeAsync()
    {
        if (!File.Exists(ChromiumPath))
        {
            throw new InvalidOperationException($"{ChromiumPath} is missing: apt-get install chromium (.ci/run does).");
        }
        // Upper bounds for a loaded 2-core machine; assertions return as soon as they hold.
        Assertions.SetDefaultExpectTimeout(20_000);
        _playwright = await Playwright.CreateAsync();
        Browser = await _playwright.Chromium.LaunchAsync(new BrowserTypeLaunchOptions
        {
            ExecutablePath = ChromiumPath,
            Headless = true,
            Args = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic"],
            Timeout = 60_000,
        });
    }

    /// <summary>A new page in its own tab; each test closes its pages. Page errors and console errors are collected.</summary>
    public async Task<(IPage Page, List<string> Errors)> NewPageAsync()
    {
        var context = await Browser.NewContextAsync(new BrowserNewContextOptions { ViewportSize = new ViewportSize { Width = 1400, Height = 900 } });
        var page = await context.NewPageAsync();
        page.Close += (_, _) => _ = context.CloseAsync();
        page.SetDefaultTimeout(30_000);
        var errors = new List<string>();
        page.PageError += (_, e) =>
        {
            lock (errors)
            {
                errors.Add("page error: " + e);
            }
        };
        page.Console += (_, m) =>
        {
            if (m.Type == "error")
            {
                lock (errors)
                {
                    errors.Add("console error: " + m.Text);
                }
            }
        };
        return (page, errors);
    }

    public async ValueTask DisposeAsync()
    {
        if (Browser is not null)
        {
            await Browser.CloseAsync();
        }
        _playwright?.Dispose();
    }
}
