using System.CommandLine;
using System.Globalization;
using System.Text.Json;
using Skywire.Core.Channels;
using Skywire.Core.Control;
using Viscript.Core.Control;
using ViscriptJson = Viscript.Core.Control.ControlJsonContext;

namespace Skywire.Commands;

/// <summary>
/// <c>skywire cli topology [--json] [--watch] [--interval S]</c>: nodes, links and routes in one answer. With
/// <c>--json</c> one <see cref="TopologyDocument"/> per line (docs/gui.md "Topology"): the contract viscript's topology
/// view reads. <c>--watch</c> keeps one connection to the manager and prints a document every interval until the
/// manager goes away or the reader does (then it exits 1, and viscript restarts it with backoff).
/// </summary>
internal static class TopologyCommand
{
    public static Command Create(Func<ParseResult, Func<FrameConnection, CancellationToken, Task>, CancellationToken, Task<int>> run, Option<string> manager)
    {
        var json = new Option<bool>("--json") { Description = "One JSON document per line (nodes, links, routes), the contract of viscript's topology view." };
        var watch = new Option<bool>("--watch") { Description = "Keep the connection and print the topology every --interval seconds until stopped." };
        var interval = new Option<double>("--interval") { Description = "Seconds between documents with --watch.", DefaultValueFactory = _ => 2 };
        var command = new Command("topology", "Nodes, links and routes in one answer (--json: the document viscript's GUI draws).") { json, watch, interval };
        command.SetAction(async (parse, ct) =>
        {
            if (parse.GetValue(interval) is < 0.1 or > 3600)
            {
                Console.Error.WriteLine("error: --interval must be 0.1 to 3600 seconds");
                return Common.Usage;
            }
            var asJson = parse.GetValue(json);
            var label = parse.GetValue(manager);
            void Report(string error)
            {
                if (asJson)
                {
                    // The reader of the JSON stream gets the reason as a document, not only on stderr.
                    Console.Out.WriteLine(ErrorLine(label, error));
                    Console.Out.Flush();
                }
            }
            try
            {
                return await run(parse, async (c, t) =>
                {
                    try
                    {
                        await LoopAsync(c, t);
                    }
                    catch (ControlException ex)
                    {
                        Report(ex.Message);
                        throw;
                    }
                }, ct);
            }
            catch (Exception ex) when (ex is IOException or System.Net.Sockets.SocketException or TimeoutException)
            {
                Report("manager connection failed: " + ex.Message);
                Console.Error.WriteLine($"error: manager connection failed: {ex.Message}");
                return Common.Failure;
            }

            async Task LoopAsync(FrameConnection c, CancellationToken t)
            {
                do
                {
                    var doc = await FetchAsync(c, label, t);
                    if (asJson)
                    {
                        Console.Out.WriteLine(JsonSerializer.Serialize(doc, ViscriptJson.Default.TopologyDocument));
                    }
                    else
                    {
                        PrintTable(doc);
                    }
                    await Console.Out.FlushAsync(t);
                    if (parse.GetValue(watch))
                    {
                        await Task.Delay(TimeSpan.FromSeconds(parse.GetValue(interval)), t);
                    }
                }
                while (parse.GetValue(watch) && !t.IsCancellationRequested);
            }
        });
        return command;
    }

    /// <summary>A failure as the one-line document a JSON reader expects.</summary>
    public static string ErrorLine(string? manager, string error) =>
        JsonSerializer.Serialize(new TopologyDocument(manager, error, null, null, null), ViscriptJson.Default.TopologyDocument);

    private static async Task<TopologyDocument> FetchAsync(FrameConnection c, string? manager, CancellationToken ct)
    {
        // Every page of each list (the manager pages long answers).
        var nodes = await ManagerQueries.ListNodesAsync(c, ct);
        var links = await ManagerQueries.ListLinksAsync(c, ct);
        var routes = await ManagerQueries.ListRoutesAsync(c, ct);
        return new TopologyDocument(manager, null,
            [.. nodes.Select(n => new TopologyNode(n.Key, n.LinkAddress, n.Online, n.Apps))],
            [.. links.Select(l => new TopologyLink(l.From, l.To, l.Up, l.RttMicros / 1000.0, l.Loss))],
            [.. routes.Select(r => new TopologyRoute(r.SessionId.ToString("x16", CultureInfo.InvariantCulture), r.From, r.To, r.Path, r.Reroutes))]);
    }

    private static void PrintTable(TopologyDocument doc)
    {
        Console.WriteLine($"{doc.Nodes!.Count} nodes, {doc.Links!.Count} links, {doc.Routes!.Count} routes");
        Common.Table(["NODE", "LINK ADDRESS", "STATE", "APPS"], doc.Nodes.Select(n => (IReadOnlyList<string>)[n.Key, n.LinkAddress, n.Online ? "online" : "offline", string.Join(",", n.Apps)]));
        Common.Table(["FROM", "TO", "STATE", "RTT MS"], doc.Links.Select(l => (IReadOnlyList<string>)[l.From[..12], l.To[..12], l.Up ? "up" : "down", l.RttMs.ToString("0.00", CultureInfo.InvariantCulture)]));
        Common.Table(["SESSION", "PATH"], doc.Routes.Select(r => (IReadOnlyList<string>)[r.SessionId, string.Join(" > ", r.Path.Select(p => p[..12]))]));
    }
}
