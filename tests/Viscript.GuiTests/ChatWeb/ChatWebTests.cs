using System.Text.RegularExpressions;
using Microsoft.Playwright;
using Viscript.GuiTests.Support;
using static Microsoft.Playwright.Assertions;

namespace Viscript.GuiTests.ChatWeb;

/// <summary>
/// Sky-Messenger in the browser (<c>skywire chat web</c>, docs/messenger.md "Sky-Messenger in the browser"), end to end
/// through the built executables: a messenger, two chat pages under two keys, each in its own browser context (its own
/// cookie jar and storage: two browsers as far as the pages can tell) of Debian's Chromium. Messages go both ways with live
/// delivery and receipts; nicknames and fingerprints show; one side is killed, the other writes to it, and when it comes
/// back the messages arrive (stored by the messenger) and the writer sees them delivered.
/// </summary>
public sealed partial class ChatWebTests(BrowserFixture browser)
{
    [GeneratedRegex(@"^chat web: open (http://\S+)$")]
    private static partial Regex OpenLine();

    [GeneratedRegex(@"^chat web: (0[23][0-9a-f]{64}) \(fingerprint ([0-9a-f ]+)\)")]
    private static partial Regex KeyLine();

    private sealed record ChatSide(SkywireProcess Process, string Link, string Key, string Fingerprint);

    private static async Task<ChatSide> StartChatAsync(string dir, string messenger, string name)
    {
        var process = SkywireProcess.Start(dir, "chat", "--messenger", messenger, "--key", Path.Combine(dir, name + ".key"),
            "web", "--listen", "127.0.0.1:0", "--data", Path.Combine(dir, name + "-data"));
        var keyLine = KeyLine().Match(await process.WaitForLineAsync(l => KeyLine().IsMatch(l)));
        var link = OpenLine().Match(await process.WaitForLineAsync(l => OpenLine().IsMatch(l))).Groups[1].Value;
        return new ChatSide(process, link, keyLine.Groups[1].Value, keyLine.Groups[2].Value);
    }

    private static ILocator Message(IPage page, string text, bool outgoing) =>
        page.Locator($"#messages li.msg.{(outgoing ? "out" : "in")}").Filter(new LocatorFilterOptions { HasText = text });

    private static async Task SendAsync(IPage page, string text)
    {
        await page.Locator("#compose-text").FillAsync(text);
        await page.Locator("#compose-text").PressAsync("Enter");
        await Expect(Message(page, text, outgoing: true)).ToHaveCountAsync(1);
    }

    [Fact]
    public async Task Two_browsers_two_keys_chat_both_ways_and_offline_messages_arrive_on_return()
    {
        var dir = Directory.CreateDirectory(Path.Combine(Path.GetTempPath(), "skywire-chatweb-" + Guid.NewGuid().ToString("N")[..12])).FullName;
        IPage? pageA = null, pageB = null;
        try
        {
            await using var messenger = SkywireProcess.Start(dir, "messenger", "--listen", "127.0.0.1:0", "--key", Path.Combine(dir, "messenger.key"));
            var listening = (await messenger.WaitForLineAsync(l => l.StartsWith("messenger ", StringComparison.Ordinal) && l.Contains(" listening on ", StringComparison.Ordinal))).Split(' ');
            var messengerAddress = $"{listening[1]}@{listening[4]}";

            var a = await StartChatAsync(dir, messengerAddress, "alice");
            await using var aliceProcess = a.Process;
            var b = await StartChatAsync(dir, messengerAddress, "bob");
            var bobProcess = b.Process;
            try
            {
                List<string> errorsA;
                (pageA, errorsA) = await browser.NewPageAsync();
                (pageB, _) = await browser.NewPageAsync();
                Assert.NotSame(pageA.Context, pageB.Context);

                // Sign-in: the link's token leaves the address bar, becomes an HttpOnly SameSite=Strict cookie that is not the
                // token, and the page's script holds nothing.
                await pageA.GotoAsync(a.Link);
                await Expect(pageA.Locator("#my-key")).ToHaveTextAsync(a.Key);
                await Expect(pageA.Locator("#my-fingerprint")).ToHaveTextAsync(a.Fingerprint);
                await Expect(pageA.Locator("#status")).ToHaveTextAsync("connected to the messenger");
                Assert.DoesNotContain("token", pageA.Url, StringComparison.Ordinal);
                var token = a.Link[(a.Link.IndexOf("#token=", StringComparison.Ordinal) + 7)..];
                var cookie = Assert.Single(await pageA.Context.CookiesAsync());
                Assert.True(cookie.HttpOnly);
                Assert.Equal(SameSiteAttribute.Strict, cookie.SameSite);
                Assert.NotEqual(token, cookie.Value);
                Assert.Equal("", await pageA.EvaluateAsync<string>("() => document.cookie"));
                Assert.Equal(0, await pageA.EvaluateAsync<int>("() => sessionStorage.length + localStorage.length"));
                Assert.DoesNotContain(token, await pageA.ContentAsync(), StringComparison.Ordinal);

                await pageB.GotoAsync(b.Link);
                await Expect(pageB.Locator("#my-fingerprint")).ToHaveTextAsync(b.Fingerprint);

                // Alice adds Bob by key with a nickname; his fingerprint on her page is the one his own page shows.
                await pageA.Locator("#add-key").FillAsync(b.Key);
                await pageA.Locator("#add-nick").FillAsync("Bob");
                await pageA.Locator("#add-contact").ClickAsync();
                await Expect(pageA.Locator($"#contacts li[data-key=\"{b.Key}\"]")).ToHaveTextAsync("Bob");
                await Expect(pageA.Locator("#peer-key")).ToHaveTextAsync(b.Key);
                await Expect(pageA.Locator("#peer-fingerprint")).ToHaveTextAsync(b.Fingerprint);

                // Alice -> Bob: live on Bob's page (an unknown key, unread), delivered on Alice's.
                await SendAsync(pageA, "hello Bob");
                var aliceOnB = pageB.Locator($"#contacts li[data-key=\"{a.Key}\"]");
                await Expect(aliceOnB.Locator(".unread")).ToHaveTextAsync("1");
                await aliceOnB.ClickAsync();
                await Expect(Message(pageB, "hello Bob", outgoing: false)).ToHaveCountAsync(1);
                await Expect(pageB.Locator("#peer-fingerprint")).ToHaveTextAsync(a.Fingerprint);
                await Expect(Message(pageA, "hello Bob", outgoing: true)).ToHaveAttributeAsync("data-state", "delivered");

                // Bob names her and answers: live on Alice's page, delivered on Bob's.
                await pageB.Locator("#rename-nick").FillAsync("Alice");
                await pageB.Locator("#rename-form button").ClickAsync();
                await Expect(aliceOnB).ToHaveTextAsync("Alice");
                await SendAsync(pageB, "hi Alice");
                await Expect(Message(pageA, "hi Alice", outgoing: false)).ToHaveCountAsync(1);
                await Expect(Message(pageB, "hi Alice", outgoing: true)).ToHaveAttributeAsync("data-state", "delivered");

                // Bob goes offline (his chat process is killed); Alice writes twice: sent, not delivered.
                await pageB.CloseAsync();
                pageB = null;
                await bobProcess.DisposeAsync();
                await SendAsync(pageA, "are you there?");
                await SendAsync(pageA, "second while offline");
                await Expect(Message(pageA, "are you there?", outgoing: true)).ToHaveAttributeAsync("data-state", "sent");
                await pageA.ScreenshotAsync(new PageScreenshotOptions { Path = Path.Combine(Paths.Artifacts, "chat-offline.png") });

                // Bob comes back (same key, same data): the stored messages arrive, his history and nickname are kept, and
                // Alice's page turns them to delivered.
                b = await StartChatAsync(dir, messengerAddress, "bob");
                bobProcess = b.Process;
                (pageB, _) = await browser.NewPageAsync();
                await pageB.GotoAsync(b.Link);
                var aliceAgain = pageB.Locator($"#contacts li[data-key=\"{a.Key}\"]");
                await Expect(aliceAgain.Locator(".name")).ToHaveTextAsync("Alice");
                await aliceAgain.ClickAsync();
                await Expect(Message(pageB, "hello Bob", outgoing: false)).ToHaveCountAsync(1);
                await Expect(Message(pageB, "are you there?", outgoing: false)).ToHaveCountAsync(1);
                await Expect(Message(pageB, "second while offline", outgoing: false)).ToHaveCountAsync(1);
                await Expect(Message(pageB, "are you there?", outgoing: false).Locator(".stored")).ToHaveCountAsync(1);
                await Expect(Message(pageA, "are you there?", outgoing: true)).ToHaveAttributeAsync("data-state", "delivered");
                await Expect(Message(pageA, "second while offline", outgoing: true)).ToHaveAttributeAsync("data-state", "delivered");

                // And Bob can answer at once.
                await SendAsync(pageB, "back now");
                await Expect(Message(pageA, "back now", outgoing: false)).ToHaveCountAsync(1);
                await pageA.ScreenshotAsync(new PageScreenshotOptions { Path = Path.Combine(Paths.Artifacts, "chat-both-ways.png") });
                lock (errorsA)
                {
                    Assert.True(errorsA.Count == 0, string.Join("\n", errorsA));
                }
            }
            finally
            {
                await bobProcess.DisposeAsync();
            }
        }
        finally
        {
            if (pageA is not null)
            {
                await pageA.CloseAsync();
            }

            if (pageB is not null)
            {
                await pageB.CloseAsync();
            }

            try
            {
                Directory.Delete(dir, recursive: true);
            }
            catch (IOException)
            {
                // A process still closing its files: the temp folder is left behind.
            }
        }
    }
}
