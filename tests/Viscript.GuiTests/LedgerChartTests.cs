using Microsoft.Playwright;
using Skywire.Core.Crypto;
using Skywire.Core.Metering;
using Skywire.Protocol.Metering;
using Viscript.GuiTests.Support;
using static Microsoft.Playwright.Assertions;

namespace Viscript.GuiTests;

/// <summary>
/// Issue 15's operator view in the GUI: viscript started with <c>--ledger DIR</c> charts each node's earnings and spending
/// from that ledger (<c>skywire ledger epochs DIR --json</c>), here a ledger with one settled 3-hop route whose figures are
/// known from its signed terms.
/// </summary>
public sealed class LedgerChartTests(BrowserFixture browser)
{
    [Fact]
    public async Task Earnings_and_spending_per_node_are_charted_from_the_ledger()
    {
        var dir = Directory.CreateTempSubdirectory("viscript-gui-ledger-");
        using var manager = KeyPair.Generate();
        KeyPair[] nodes = [KeyPair.Generate(), KeyPair.Generate(), KeyPair.Generate(), KeyPair.Generate()];
        try
        {
            var now = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds();
            var terms = MeteringSigner.AcceptAsSource(MeteringSigner.SignAsManager(new RouteTerms
            {
                Manager = manager.Public,
                RouteId = [.. Enumerable.Range(0, 16).Select(i => (byte)(i + 1))],
                CreatedMs = now - 60_000,
                ExpiresMs = now + 3_600_000,
                Source = nodes[0].Public,
                Destination = nodes[3].Public,
                Relays = [new RelayPrice(nodes[1].Public, 1_000_000, 1_000_000), new RelayPrice(nodes[2].Public, 2_000_000, 2_000_000)],
                DestinationPriceForward = 5_000_000,
                DestinationPriceReverse = 5_000_000,
                FeeBps = 100,
                MaxSpend = 50_000_000,
                WindowBytes = 1UL << 30,
            }, manager), nodes[0]);
            using (var store = FileLedgerStore.Open(dir.FullName, writable: true))
            {
                File.WriteAllText(Path.Combine(dir.FullName, "manager.pub"), manager.Public + "\n");
                var ledger = Ledger.Open(store, manager.Public);
                Assert.Equal(LedgerStatus.Accepted, ledger.Grant(nodes[0].Public, 100_000_000, now).Status);
                Assert.Equal(LedgerStatus.Accepted, ledger.OpenRoute(terms.Encode(), now).Status);
                for (var hop = 0; hop < 3; hop++)
                {
                    var receipt = new HopReceipt { TermsId = terms.TermsId, Hop = hop, Direction = MeteringDirection.Forward, Seq = 1, EndMs = now, Bytes = 1UL << 30, Frames = 1000, Final = true };
                    receipt = MeteringSigner.CountersignAsSender(MeteringSigner.SignAsReceiver(receipt, terms, nodes[hop + 1]), terms, nodes[hop]);
                    Assert.Equal(LedgerStatus.Accepted, ledger.SubmitReceipt(receipt.Encode(), now).Status);
                }

                ledger.CloseEpoch(manager, now + 1);
            }

            // 1 GiB forward over every hop: relay 1 earns 1 SKY, relay 2 2 SKY, the exit 5 SKY; the source spends 8 SKY + 1 % fee.
            await using var daemon = await GuiDaemon.StartAsync(null, null, "--ledger", dir.FullName);
            var (page, errors) = await browser.NewPageAsync();
            try
            {
                await page.GotoAsync(daemon.SignInUrl);
                var chart = page.Locator("#ledger");
                await Expect(page.Locator("#ledger-section")).ToBeVisibleAsync();
                await Expect(chart.Locator("svg polyline[data-kind=earned]")).ToHaveCountAsync(3);
                await Expect(chart.Locator("svg polyline[data-kind=spent]")).ToHaveCountAsync(1);
                await Expect(chart.Locator($"svg polyline[data-kind=spent][data-node=\"{nodes[0].Public}\"]")).ToHaveCountAsync(1);
                await Expect(chart.Locator($".legend [data-node=\"{nodes[3].Public}\"]")).ToContainTextAsync("earned 5,000,000");
                await Expect(chart.Locator($".legend [data-node=\"{nodes[1].Public}\"]")).ToContainTextAsync("earned 1,000,000");
                await Expect(chart.Locator($".legend [data-node=\"{nodes[0].Public}\"]")).ToContainTextAsync("spent 8,080,000");
                await chart.ScreenshotAsync(new LocatorScreenshotOptions { Path = Path.Combine(Paths.Artifacts, "ledger.png") });
                Assert.Empty(errors);
            }
            finally
            {
                await page.CloseAsync();
            }
        }
        finally
        {
            foreach (var n in nodes)
            {
                n.Dispose();
            }

            dir.Delete(recursive: true);
        }
    }

    [Fact]
    public async Task Without_a_ledger_the_section_stays_hidden()
    {
        await using var daemon = await GuiDaemon.StartAsync(null, null);
        var (page, errors) = await browser.NewPageAsync();
        try
        {
            await page.GotoAsync(daemon.SignInUrl);
            await Expect(page.Locator("#topology")).ToContainTextAsync("No Skywire manager configured");
            await Expect(page.Locator("#ledger-section")).ToBeHiddenAsync();
            Assert.Empty(errors);
        }
        finally
        {
            await page.CloseAsync();
        }
    }
}
