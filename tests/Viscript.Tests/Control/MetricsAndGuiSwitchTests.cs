using System.Net;
using System.Text.RegularExpressions;
using Viscript.Daemon;
using Viscript.Tests.Support;

namespace Viscript.Tests.Control;

/// <summary>
/// viscript's <c>/metrics</c> (issue 18.2: the supervisor's meter in the Prometheus text format, behind the control
/// token) and a headless daemon's <c>GET /</c> saying the GUI is off and how to turn it on (issue 18.3).
/// </summary>
public sealed partial class MetricsAndGuiSwitchTests
{
    [GeneratedRegex(@"^(?<name>[a-zA-Z_:][a-zA-Z0-9_:]*)(\{(?<labels>[^}]*)\})? (?<value>[-+0-9.eE]+|NaN|\+Inf|-Inf)( \d+)?$")]
    private static partial Regex Sample();

    /// <summary>Parses the exposition text: every line a comment or a valid sample; returns name{labels} → value.</summary>
    private static Dictionary<string, double> Parse(string text)
    {
        var samples = new Dictionary<string, double>(StringComparer.Ordinal);
        foreach (var line in text.Split('\n', StringSplitOptions.RemoveEmptyEntries))
        {
            if (line.StartsWith('#'))
            {
                Assert.Matches(@"^# (HELP|TYPE|EOF|UNIT)( |$)", line);
                continue;
            }
            var m = Sample().Match(line);
            Assert.True(m.Success, $"not a Prometheus sample: {line}");
            var labels = string.Join(",", m.Groups["labels"].Value.Split(',', StringSplitOptions.RemoveEmptyEntries)
                .Where(l => !l.StartsWith("otel_scope_", StringComparison.Ordinal)).Order(StringComparer.Ordinal));
            samples[$"{m.Groups["name"].Value}{{{labels}}}"] = double.Parse(m.Groups["value"].Value, System.Globalization.CultureInfo.InvariantCulture);
        }
        return samples;
    }

    [Fact]
    public async Task Metrics_CountProcessesByState_StartsExitsAndPings_BehindTheToken()
    {
        // A meter of its own: other tests' supervisors in this process publish on the default one.
        await using var d = await InProcessDaemon.StartAsync(TestConfigs.Build([TestConfigs.App("t", "sleep")]), configure: o => o with { MeterName = "Viscript.Supervisor.Test" + Guid.NewGuid().ToString("N") });
        using var sub = d.Host.Events.Subscribe();
        Assert.Equal(0, (await d.CommandAsync("s", "-n", "2", "t")).Ok!.Code);
        // Both instances register in either order. (Awaiting 2, then 1, on the one subscription was the flake: the wait
        // for 2 read and dropped 1's event whenever 1 registered first, and the wait for 1 then timed out.)
        var registered = new HashSet<ulong>();
        await InProcessDaemon.WaitAsync(sub, e => e.Kind == "registered" && registered.Add(e.Id) && registered.IsSupersetOf([1UL, 2UL]));
        await d.Client.PingAsync(1);
        await d.Client.StopAsync(2);
        // The stop returns when the process has exited; its signal connection is seen closed a moment later.
        await InProcessDaemon.WaitAsync(sub, e => e.Kind == "disconnected" && e.Id == 2);

        using var anonymous = new HttpClient { BaseAddress = d.Http.BaseAddress };
        using (var refused = await anonymous.GetAsync(new Uri("metrics", UriKind.Relative), TestContext.Current.CancellationToken))
        {
            Assert.Equal(HttpStatusCode.Unauthorized, refused.StatusCode);
        }

        var text = await d.Http.GetStringAsync(new Uri("metrics", UriKind.Relative), TestContext.Current.CancellationToken);
        var m = Parse(text);
        Assert.Equal(1, m["viscript_signal_clients{}"]); // id 1 registered; id 2 stopped
        Assert.Equal(1, m["viscript_processes{state=\"exited\"}"]);
        Assert.Equal(2, m["viscript_process_starts_total{app=\"t\"}"]);
        Assert.Equal(1, m["viscript_process_exits_total{app=\"t\",outcome=\"exited\"}"]);
        Assert.Equal(1, m["viscript_signal_ping_duration_seconds_count{}"]);
        Assert.True(m["viscript_processes{state=\"running\"}"] + m["viscript_processes{state=\"starting\"}"] == 1, text);
    }

    [Fact]
    public async Task Headless_Root_SaysTheGuiIsOff_AndHowToTurnItOn_WithoutAToken()
    {
        await using var d = await InProcessDaemon.StartAsync(TestConfigs.Build([TestConfigs.App("t", "sleep")]), configure: o => o with { Headless = true });
        using var anonymous = new HttpClient { BaseAddress = d.Http.BaseAddress };
        using var page = await anonymous.GetAsync(new Uri("/", UriKind.Relative), TestContext.Current.CancellationToken);
        Assert.Equal(HttpStatusCode.NotFound, page.StatusCode);
        Assert.Equal("text/plain", page.Content.Headers.ContentType?.MediaType);
        var text = await page.Content.ReadAsStringAsync(TestContext.Current.CancellationToken);
        Assert.Contains("the web GUI is off", text, StringComparison.Ordinal);
        Assert.Contains("--gui", text, StringComparison.Ordinal);
        Assert.Equal(GuiEndpoints.HeadlessPage, text);
        // Nothing else is open without the token.
        using var api = await anonymous.GetAsync(new Uri("/api/processes", UriKind.Relative), TestContext.Current.CancellationToken);
        Assert.Equal(HttpStatusCode.Unauthorized, api.StatusCode);
    }
}
