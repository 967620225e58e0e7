using System.Globalization;
using System.Text.RegularExpressions;
using Skywire.Core.Crypto;
using Skywire.IntegrationTests.EndToEnd;

namespace Skywire.IntegrationTests.Metrics;

/// <summary>
/// Issue 18.2 through the executables: a manager, two nodes and a messenger, each with <c>--metrics 127.0.0.1:0</c>;
/// every endpoint is scraped, parsed as the Prometheus text format, and holds the series docs/operations.md lists,
/// with values that follow what the mesh did (links up, nodes online, a message queued for an offline key).
/// </summary>
[Trait("Category", "E2E")]
public sealed partial class MetricsScrapeTests() : ExecutableTestBase("skywire-metrics-")
{
    private static readonly TimeSpan Limit = TimeSpan.FromSeconds(60);

    [Fact]
    public async Task EveryComponent_ServesPrometheusText_WithTheDocumentedSeries()
    {
        string managerKey;
        using (var key = KeyFile.LoadOrCreate(FilePath("manager.json")))
        {
            managerKey = key.Public.ToString();
        }

        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(30) };
        var processes = new List<SkywireProcess>();
        try
        {
            var manager = SkywireProcess.Start(null, ["manager", "--listen", "127.0.0.1:0", "--key", FilePath("manager.json"), "--auto-link", "--metrics", "127.0.0.1:0"]);
            processes.Add(manager);
            var messenger = SkywireProcess.Start(null, ["messenger", "--listen", "127.0.0.1:0", "--key", FilePath("messenger.json"), "--metrics", "127.0.0.1:0"]);
            processes.Add(messenger);
            var managerMetrics = await MetricsUrlAsync(manager);
            Assert.Equal("127.0.0.1", managerMetrics.Host);
            var port = ManagerLine().Match(await manager.WaitForLineAsync("listening on", Limit)).Groups[1].Value;
            var managerAt = $"{managerKey}@127.0.0.1:{port}";

            var nodes = new[] { "a", "b" }.Select(name =>
            {
                var node = SkywireProcess.Start(null, ["node", "--manager", managerAt, "--listen", "127.0.0.1:0", "--app-token-file", FilePath(name + ".token"),
                    "--key", FilePath(name + ".json"), "--metrics", "0"]);
                processes.Add(node);
                return node;
            }).ToList();
            var nodeMetrics = new List<Uri>();
            foreach (var node in nodes)
            {
                var url = await MetricsUrlAsync(node);
                Assert.Equal("127.0.0.1", url.Host); // `--metrics PORT` binds loopback: the figures name keys and peers
                nodeMetrics.Add(url);
            }

            // The manager sees both nodes online and the auto-link up (as the nodes report it).
            var m = await ScrapeUntilAsync(http, managerMetrics, s =>
                s.Value("skywire_manager_nodes", ("state", "online")) == 2 && s.Value("skywire_manager_links", ("state", "up")) >= 2);
            foreach (var name in new[] { "skywire_manager_apps", "skywire_manager_routes_installed", "skywire_manager_route_hops", "skywire_manager_connections" })
            {
                Assert.True(m.Has(name), $"manager: no {name}");
            }

            // Each node: the link to the other with packets both ways, handshakes, the data plane's drops by reason.
            foreach (var url in nodeMetrics)
            {
                var n = await ScrapeUntilAsync(http, url, s =>
                    s.Samples.Any(x => x.Name == "skywire_link_packets_total" && x.Labels.GetValueOrDefault("direction") == "received" && x.Value > 0));
                Assert.Equal("gauge", n.Types["skywire_link_rtt_seconds"]);
                Assert.Equal("counter", n.Types["skywire_link_packets_total"]);
                Assert.True(n.Value("skywire_link_handshakes_total", ("result", "completed")) >= 1);
                Assert.Equal(1, n.Value("skywire_dataplane_links_up"));
                Assert.Contains(n.Samples, x => x.Name == "skywire_dataplane_packets_dropped_total" && x.Labels.GetValueOrDefault("reason") == "bad_mac");
                foreach (var name in new[] { "skywire_rules_installed", "skywire_sessions_active", "skywire_sessions_ended_total", "skywire_streams_active",
                             "skywire_mux_packets_in_flight", "skywire_mux_retransmitted_bytes_total", "skywire_mux_packets_lost_total",
                             "skywire_mux_retransmission_timeouts_total", "skywire_mux_packets_dropped_total", "skywire_app_api_connections",
                             "skywire_link_bytes_total", "skywire_streams_moved_to_direct_total" })
                {
                    Assert.True(n.Has(name), $"node: no {name}");
                }
            }

            // The messenger: a message for a key that is not connected is queued, and the figures say so.
            var messengerLine = await messenger.WaitForStdoutLineAsync("listening on", Limit);
            var messengerParts = messengerLine.Split(' ');
            using var offline = KeyPair.Generate();
            using var you = KeyPair.Generate();
            // An in-process client with a generous connect timeout (a fresh chat process JIT-compiling its crypto can
            // outlast the CLI's 10 s under heavy load); it stays connected until the scrape has seen the message.
            await using var client = await Core.Messenger.MessengerClient.ConnectAsync(
                new Core.Messenger.MessengerClientOptions { EndPoint = System.Net.IPEndPoint.Parse(messengerParts[4]), MessengerKey = Protocol.PubKey.Parse(messengerParts[1]), ConnectTimeout = Limit },
                you, null, TestContext.Current.CancellationToken);
            await client.SendAsync(offline.Public, "see you later", TestContext.Current.CancellationToken);

            var messengerMetrics = await MetricsUrlAsync(messenger);
            // (The queue's gauge and the outcome's counter are two updates: a scrape may fall between them.)
            var g = await ScrapeUntilAsync(http, messengerMetrics, s =>
                s.Value("skywire_messenger_queued_messages") == 1 && s.Value("skywire_messenger_messages_total", ("outcome", "queued")) >= 1);
            Assert.Equal(1, g.Value("skywire_messenger_messages_total", ("outcome", "queued")));
            Assert.Equal(0, g.Value("skywire_messenger_messages_dropped_total", ("reason", "QueueFull")));
            Assert.True(g.Has("skywire_messenger_connections"));
            Assert.True(g.Value("skywire_messenger_queued_bytes") > 0);
        }
        finally
        {
            foreach (var p in processes)
            {
                await p.DisposeAsync();
            }
        }
    }

    [Fact]
    public async Task MetricsPortInUse_IsReported_AndTheComponentDoesNotStart()
    {
        using var busy = new System.Net.Sockets.TcpListener(System.Net.IPAddress.Loopback, 0);
        busy.Start();
        var address = busy.LocalEndpoint.ToString()!;
        await using var manager = SkywireProcess.Start(null, ["manager", "--listen", "127.0.0.1:0", "--key", FilePath("m.json"), "--metrics", address]);
        Assert.Equal(1, await manager.WaitForExitAsync(Limit));
        Assert.Contains($"metrics endpoint (HTTP, --metrics) cannot listen on {address}: address already in use", manager.Stderr, StringComparison.Ordinal);
        Assert.False(File.Exists(FilePath("m.json")));
    }

    private static async Task<Uri> MetricsUrlAsync(SkywireProcess process) =>
        new(MetricsLine().Match(await process.WaitForLineAsync("metrics on http://", Limit)).Groups[1].Value);

    private static async Task<Scrape> ScrapeUntilAsync(HttpClient http, Uri url, Func<Scrape, bool> condition)
    {
        var deadline = DateTime.UtcNow + Limit;
        while (true)
        {
            using var response = await http.GetAsync(url, TestContext.Current.CancellationToken);
            Assert.True(response.IsSuccessStatusCode, $"{url}: {response.StatusCode}");
            Assert.StartsWith("text/plain", response.Content.Headers.ContentType?.MediaType, StringComparison.Ordinal);
            var scrape = Scrape.Parse(await response.Content.ReadAsStringAsync(TestContext.Current.CancellationToken));
            if (condition(scrape))
            {
                return scrape;
            }

            Assert.True(DateTime.UtcNow < deadline, $"{url}: condition not met within {Limit}");
            await Task.Delay(TimeSpan.FromMilliseconds(250), TestContext.Current.CancellationToken); // polling interval, not synchronisation
        }
    }

    [GeneratedRegex(@"metrics on (http://\S+/metrics)")]
    private static partial Regex MetricsLine();

    /// <summary>A parsed exposition (Prometheus text format 0.0.4): every sample line must parse and belong to a typed family.</summary>
    private sealed partial record Scrape(IReadOnlyList<Sample> Samples, IReadOnlyDictionary<string, string> Types)
    {
        public static Scrape Parse(string text)
        {
            var samples = new List<Sample>();
            var types = new Dictionary<string, string>(StringComparer.Ordinal);
            foreach (var line in text.Split('\n', StringSplitOptions.RemoveEmptyEntries))
            {
                if (line.StartsWith("# TYPE ", StringComparison.Ordinal))
                {
                    var parts = line.Split(' ');
                    Assert.Contains(parts[3], new[] { "counter", "gauge", "histogram", "summary", "untyped" });
                    types[parts[2]] = parts[3];
                    continue;
                }

                if (line.StartsWith('#'))
                {
                    continue;
                }

                var m = SampleLine().Match(line);
                Assert.True(m.Success, "not a sample line: " + line);
                var labels = LabelPair().Matches(m.Groups["labels"].Value).ToDictionary(l => l.Groups[1].Value, l => l.Groups[2].Value, StringComparer.Ordinal);
                var name = m.Groups["name"].Value;
                Assert.True(types.ContainsKey(name) || types.Keys.Any(t => name.StartsWith(t + "_", StringComparison.Ordinal)), "sample without # TYPE: " + line);
                samples.Add(new Sample(name, labels, double.Parse(m.Groups["value"].Value, CultureInfo.InvariantCulture)));
            }

            return new Scrape(samples, types);
        }

        public bool Has(string name) => Samples.Any(s => s.Name == name);

        public double? Value(string name, params (string Key, string Value)[] labels) =>
            Samples.Where(s => s.Name == name && labels.All(l => s.Labels.GetValueOrDefault(l.Key) == l.Value)).Select(s => (double?)s.Value).FirstOrDefault();

        [GeneratedRegex(@"^(?<name>[a-zA-Z_:][a-zA-Z0-9_:]*)(\{(?<labels>.*)\})? (?<value>[-+0-9.eE]+|NaN|[+-]Inf)( \d+)?$")]
        private static partial Regex SampleLine();

        [GeneratedRegex("([a-zA-Z_][a-zA-Z0-9_]*)=\"((?:[^\"\\\\]|\\\\.)*)\"")]
        private static partial Regex LabelPair();
    }

    private sealed record Sample(string Name, IReadOnlyDictionary<string, string> Labels, double Value);
}
