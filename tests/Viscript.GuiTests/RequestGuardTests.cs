using System.Net;
using System.Net.Http.Json;
using Viscript.Core.Control;
using Viscript.GuiTests.Support;

namespace Viscript.GuiTests;

/// <summary>Cross-site and DNS-rebinding guard, the static files and the sampler endpoints over plain HTTP.</summary>
public sealed class RequestGuardTests
{
    [Fact]
    public async Task Cross_origin_and_foreign_host_requests_are_refused_same_origin_passes()
    {
        await using var daemon = await GuiDaemon.StartAsync();
        var ct = TestContext.Current.CancellationToken;
        var origin = daemon.Url.TrimEnd('/');

        using (var evil = new HttpRequestMessage(HttpMethod.Post, "api/shutdown"))
        {
            evil.Headers.Add("Origin", "http://evil.example");
            using var r = await daemon.Http.SendAsync(evil, ct);
            Assert.Equal(HttpStatusCode.Unauthorized, r.StatusCode);
            Assert.Contains("Cross-origin", await r.Content.ReadAsStringAsync(ct), StringComparison.Ordinal);
        }
        using (var rebinding = new HttpRequestMessage(HttpMethod.Get, "api/processes"))
        {
            rebinding.Headers.Host = "evil.example:" + new Uri(daemon.Url).Port;
            using var r = await daemon.Http.SendAsync(rebinding, ct);
            Assert.Equal(HttpStatusCode.Unauthorized, r.StatusCode);
        }
        using (var same = new HttpRequestMessage(HttpMethod.Post, "api/command") { Content = JsonContent.Create(new { line = "apps" }) })
        {
            same.Headers.Add("Origin", origin);
            using var r = await daemon.Http.SendAsync(same, ct);
            Assert.Equal(HttpStatusCode.OK, r.StatusCode);
        }
        // The daemon is still up after the refused shutdown.
        Assert.Equal(HttpStatusCode.OK, (await daemon.Http.GetAsync("api/info", ct)).StatusCode);
    }

    [Fact]
    public async Task Page_and_libraries_are_served_and_samples_follow_a_process()
    {
        await using var daemon = await GuiDaemon.StartAsync();
        var ct = TestContext.Current.CancellationToken;
        var index = await daemon.Http.GetAsync("", ct);
        Assert.Equal(HttpStatusCode.OK, index.StatusCode);
        Assert.Contains("default-src 'self'", index.Headers.GetValues("Content-Security-Policy").Single(), StringComparison.Ordinal);
        var html = await index.Content.ReadAsStringAsync(ct);
        Assert.Contains("Start testapp", html, StringComparison.Ordinal);
        Assert.Contains("data-needs-token=\"false\"", html, StringComparison.Ordinal);

        // Anonymous, or with the token in the query (never accepted, issue 11.7): the page renders without any data.
        using (var anonymous = new HttpClient { BaseAddress = new Uri(daemon.Url) })
        {
            foreach (var path in new[] { "", "?token=" + Uri.EscapeDataString(daemon.Token) })
            {
                var empty = await anonymous.GetStringAsync(path, ct);
                Assert.DoesNotContain("Start testapp", empty, StringComparison.Ordinal);
                Assert.Contains("data-needs-token=\"true\"", empty, StringComparison.Ordinal);
            }
        }
        Assert.DoesNotContain("{{", html, StringComparison.Ordinal);
        foreach (var lib in new[] { "js/main.js", "js/api.js", "js/dom.js", "js/format.js", "js/pane.js", "js/terminals.js", "js/menu.js", "js/processes.js",
            "js/charts.js", "js/topology.js", "style.css", "lib/xterm.mjs", "lib/addon-fit.mjs", "lib/xterm.css" })
        {
            using var r = await daemon.Http.GetAsync(lib, ct);
            Assert.True(r.IsSuccessStatusCode, $"{lib}: {(int)r.StatusCode}");
        }

        Assert.Equal(1UL, (await daemon.Client.StartAsync("testapp", null, ct)).Id);
        // Samples are taken every 2 s by the daemon; wait (bounded) for two, so CPU has a value.
        SampleSeries series = null!;
        var deadline = DateTime.UtcNow.AddSeconds(30);
        while (DateTime.UtcNow < deadline)
        {
            series = await daemon.Client.SamplesAsync(1, ct);
            if (series.Samples.Any(s => s.CpuPercent is not null))
            {
                break;
            }
            await Task.Delay(200, ct);
        }
        Assert.True(series.Samples.Count >= 2, "expected two samples within 30 s");
        Assert.Equal("testapp", series.App);
        Assert.All(series.Samples, s => Assert.True(s.RssBytes > 0));
        Assert.Equal(1UL, (await daemon.Client.SamplesAsync(ct))[0].Id);

        var missing = await Assert.ThrowsAsync<ViscriptApiException>(() => daemon.Client.SamplesAsync(42, ct));
        Assert.Equal(HttpStatusCode.NotFound, missing.Status);
        Assert.False((await daemon.Client.TopologyAsync(ct)).Configured);
    }
}
