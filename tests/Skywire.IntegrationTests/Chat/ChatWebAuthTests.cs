using System.Net;
using System.Text.RegularExpressions;
using Skywire.IntegrationTests.EndToEnd;
using Skywire.IntegrationTests.Messenger;

namespace Skywire.IntegrationTests.Chat;

/// <summary>
/// The listener of <c>skywire chat web</c> (docs/operations.md "8. Threat model", docs/messenger.md "Sky-Messenger in the
/// browser"), through the built executable with a plain HTTP client: nothing under /api without the session cookie, a
/// wrong token gets no cookie, another Origin and a non-loopback Host (DNS rebinding) are refused even with the cookie.
/// </summary>
[Trait("Category", "E2E")]
public sealed partial class ChatWebAuthTests() : ExecutableTestBase("skywire-chat-web-auth-")
{
    private static readonly TimeSpan Limit = TimeSpan.FromSeconds(60);

    [Fact]
    public async Task Api_NeedsTheSessionCookie_WrongTokenGetsNone_ForeignOriginAndHostAreRefused()
    {
        await using var messenger = new MessengerHarness();
        await using var web = SkywireProcess.Start(null, ["chat", "--messenger", $"{messenger.Server.Key}@{messenger.Server.LocalEndPoint}",
            "--key", FilePath("alice.json"), "web", "--listen", "127.0.0.1:0", "--data", FilePath("data")]);
        var link = LinkLine().Match(await web.WaitForStdoutLineAsync("chat web: open http://", Limit));
        Assert.True(link.Success, web.StdoutText);
        var (origin, token) = (link.Groups[1].Value, link.Groups[2].Value);

        using var http = new HttpClient(new HttpClientHandler { UseCookies = false }) { BaseAddress = new Uri(origin), Timeout = Limit };
        var ct = TestContext.Current.CancellationToken;

        // No cookie: 401 on every /api call.
        Assert.Equal(HttpStatusCode.Unauthorized, (await http.GetAsync("/api/state", ct)).StatusCode);
        using (var post = new HttpRequestMessage(HttpMethod.Post, "/api/messages") { Content = new StringContent("""{"to":"x","text":"y"}""") })
        {
            Assert.Equal(HttpStatusCode.Unauthorized, (await http.SendAsync(post, ct)).StatusCode);
        }

        // A wrong token gets 401 and no cookie; the right one a cookie that is not the token.
        using (var wrong = Session("Bearer " + new string('A', token.Length)))
        {
            var answer = await http.SendAsync(wrong, ct);
            Assert.Equal(HttpStatusCode.Unauthorized, answer.StatusCode);
            Assert.False(answer.Headers.Contains("Set-Cookie"));
        }
        string cookie;
        using (var right = Session("Bearer " + token))
        {
            var answer = await http.SendAsync(right, ct);
            Assert.True(answer.IsSuccessStatusCode, $"{answer.StatusCode}");
            cookie = answer.Headers.GetValues("Set-Cookie").Single().Split(';')[0];
            Assert.DoesNotContain(token, cookie, StringComparison.Ordinal);
        }
        using (var state = WithCookie(HttpMethod.Get, "/api/state", cookie))
        {
            Assert.Equal(HttpStatusCode.OK, (await http.SendAsync(state, ct)).StatusCode);
        }

        // With the cookie, but from another origin, or through a name that is not loopback (DNS rebinding): 403.
        using (var foreign = WithCookie(HttpMethod.Get, "/api/state", cookie))
        {
            foreign.Headers.Add("Origin", "http://evil.example");
            Assert.Equal(HttpStatusCode.Forbidden, (await http.SendAsync(foreign, ct)).StatusCode);
        }
        using (var rebound = WithCookie(HttpMethod.Get, "/api/state", cookie))
        {
            rebound.Headers.Host = "evil.example:" + new Uri(origin).Port;
            Assert.Equal(HttpStatusCode.Forbidden, (await http.SendAsync(rebound, ct)).StatusCode);
        }
        using (var foreignSession = Session("Bearer " + token))
        {
            foreignSession.Headers.Add("Origin", "http://evil.example");
            var answer = await http.SendAsync(foreignSession, ct);
            Assert.Equal(HttpStatusCode.Forbidden, answer.StatusCode);
            Assert.False(answer.Headers.Contains("Set-Cookie"));
        }
    }

    private static HttpRequestMessage Session(string authorization)
    {
        var request = new HttpRequestMessage(HttpMethod.Post, "/api/session");
        request.Headers.TryAddWithoutValidation("Authorization", authorization);
        return request;
    }

    private static HttpRequestMessage WithCookie(HttpMethod method, string path, string cookie)
    {
        var request = new HttpRequestMessage(method, path);
        request.Headers.Add("Cookie", cookie);
        return request;
    }

    [GeneratedRegex(@"chat web: open (http://127\.0\.0\.1:\d+)/#token=(\S+)")]
    private static partial Regex LinkLine();
}
