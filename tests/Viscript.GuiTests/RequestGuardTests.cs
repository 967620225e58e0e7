using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
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
        Assert.DoesNotContain("{{", html, StringComparison.Ordinal);
        foreach (var lib in new[] { "app.js", "style.css", "lib/xterm.mjs", "lib/addon-fit.mjs", "lib/xterm.css" })
        {
            using var r = await daemon.Http.GetAsync(lib, ct);
            Assert.True(r.IsSuccessStatusCode, $"{lib}: {(int)r.StatusCode}");
        }

        using (var start = await daemon.Http.PostAsJsonAsync("api/processes", new { app = "testapp" }, ct))
        {
            Assert.Equal(HttpStatusCode.Created, start.StatusCode);
        }
        // Samples are taken every 2 s by the daemon; wait (bounded) for two, so CPU has a value.
        JsonElement series = default;
        var deadline = DateTime.UtcNow.AddSeconds(30);
        while (DateTime.UtcNow < deadline)
        {
            series = await daemon.Http.GetFromJsonAsync<JsonElement>("api/processes/1/samples", ct);
            if (series.GetProperty("samples").EnumerateArray().Any(s => s.GetProperty("cpuPercent").ValueKind == JsonValueKind.Number))
            {
                break;
            }
            await Task.Delay(200, ct);
        }
        var samples = series.GetProperty("samples").EnumerateArray().ToList();
        Assert.True(samples.Count >= 2, "expected two samples within 30 s");
        Assert.Equal("testapp", series.GetProperty("app").GetString());
        Assert.All(samples, s => Assert.True(s.GetProperty("rssBytes").GetInt64() > 0));
        var all = await daemon.Http.GetFromJsonAsync<JsonElement>("api/samples", ct);
        Assert.Equal(1UL, all[0].GetProperty("id").GetUInt64());

        using var missing = await daemon.Http.GetAsync("api/processes/42/samples", ct);
        Assert.Equal(HttpStatusCode.NotFound, missing.StatusCode);
        var topology = await daemon.Http.GetFromJsonAsync<JsonElement>("api/topology", ct);
        Assert.False(topology.GetProperty("configured").GetBoolean());
    }
}
