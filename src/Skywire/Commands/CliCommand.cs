using System.CommandLine;
using Microsoft.Extensions.Logging.Abstractions;
using Skywire.Core.Control;
using Skywire.Core.Channels;
using Skywire.Protocol.Control;

namespace Skywire.Commands;

internal static class CliCommand
{
    public static Command Create()
    {
        var manager = new Option<string>("--manager") { Description = "Manager address host:port or PUBKEY@host:port.", Required = true, Recursive = true };
        var managerKey = new Option<string?>("--manager-key") { Description = "The manager's public key (pinned).", Recursive = true };
        var keyFile = new Option<string>("--key") { Description = "Your key file; the manager must know its key (its own or an --admin key).", Required = true, Recursive = true };
        var cli = new Command("cli", "Query and steer a manager (authenticated by your key).") { manager, managerKey, keyFile };

        Command Query(string name, string description, Func<FrameConnection, CancellationToken, Task> run)
        {
            var command = new Command(name, description);
            command.SetAction((parse, ct) => RunAsync(parse, manager, managerKey, keyFile, run, ct));
            return command;
        }

        cli.Subcommands.Add(Query("nodes", "List registered nodes.", async (c, ct) =>
        {
            var nodes = await ManagerQueries.ListNodesAsync(c, ct);
            Common.Table(["KEY", "LINK ADDRESS", "STATE", "APPS"], nodes.Select(n => (IReadOnlyList<string>)[n.Key, n.LinkAddress, n.Online ? "online" : "offline", string.Join(",", n.Apps)]));
        }));
        cli.Subcommands.Add(Query("links", "List links as their nodes report them; ROUTED says whether the manager routes over the link (both ends report it up, recently).", async (c, ct) =>
        {
            var links = await ManagerQueries.ListLinksAsync(c, ct);
            Common.Table(["FROM", "TO", "STATE", "ROUTED", "RTT MS", "LOSS %"], links.Select(l => (IReadOnlyList<string>)[l.From, l.To, l.Up ? "up" : "down", l.Confirmed ? "yes" : "no", (l.RttMicros / 1000.0).ToString("0.00"), (l.Loss * 100).ToString("0.0")]));
        }));
        cli.Subcommands.Add(Query("routes", "List live routes.", async (c, ct) =>
        {
            var routes = await ManagerQueries.ListRoutesAsync(c, ct);
            Common.Table(["SESSION", "FROM", "TO", "HOPS", "REROUTES", "PATH"], routes.Select(r => (IReadOnlyList<string>)[r.SessionId.ToString("x16"), r.From[..12], r.To[..12], (r.Path.Count - 1).ToString(), r.Reroutes.ToString(), string.Join(" > ", r.Path.Select(p => p[..12]))]));
        }));

        var by = new Option<string>("--by") { Description = "all, name or type.", DefaultValueFactory = _ => "all" };
        by.AcceptOnlyFromAmong("all", "name", "type");
        var value = new Option<string?>("--value") { Description = "The name or type to look for." };
        var apps = new Command("apps", "List apps from the tracker.") { by, value };
        apps.SetAction((parse, ct) => RunAsync(parse, manager, managerKey, keyFile, async (c, t) =>
        {
            var list = await ManagerQueries.ListAppsAsync(c, parse.GetValue(by)!, parse.GetValue(value), t);
            Common.Table(["NAME", "TYPE", "NODE"], list.Select(a => (IReadOnlyList<string>)[a.Name, a.Type, a.Node]));
        }, ct));
        cli.Subcommands.Add(apps);

        var a = new Argument<string>("A") { Description = "Node key or unique prefix." };
        var b = new Argument<string>("B") { Description = "Node key or unique prefix." };
        var link = new Command("link", "Ask node A to open a link to node B. The link stands: the manager opens it again whenever both nodes are online and it is down (until `cli unlink`).") { a, b };
        link.SetAction((parse, ct) => RunAsync(parse, manager, managerKey, keyFile, async (c, t) =>
        {
            await c.RequestAsync((byte)ControlOpcode.LinkNodes, new NodePairMessage { A = parse.GetValue(a)!, B = parse.GetValue(b)! }, ControlJsonContext.Default.NodePairMessage, ControlJsonContext.Default.OkMessage, t);
            Console.WriteLine("link requested");
        }, ct));
        cli.Subcommands.Add(link);

        var ua = new Argument<string>("A") { Description = "Node key or unique prefix." };
        var ub = new Argument<string>("B") { Description = "Node key or unique prefix." };
        var unlink = new Command("unlink", "Withdraw the standing link between nodes A and B and close it.") { ua, ub };
        unlink.SetAction((parse, ct) => RunAsync(parse, manager, managerKey, keyFile, async (c, t) =>
        {
            await c.RequestAsync((byte)ControlOpcode.UnlinkNodes, new NodePairMessage { A = parse.GetValue(ua)!, B = parse.GetValue(ub)! }, ControlJsonContext.Default.NodePairMessage, ControlJsonContext.Default.OkMessage, t);
            Console.WriteLine("link withdrawn");
        }, ct));
        cli.Subcommands.Add(unlink);

        var ra = new Argument<string>("A") { Description = "Source node key or unique prefix." };
        var rb = new Argument<string>("B") { Description = "Destination node key or unique prefix." };
        var route = new Command("route", "Compute and install a route from A to B; prints the path.") { ra, rb };
        route.SetAction((parse, ct) => RunAsync(parse, manager, managerKey, keyFile, async (c, t) =>
        {
            var r = await c.RequestAsync((byte)ControlOpcode.BuildRoute, new NodePairMessage { A = parse.GetValue(ra)!, B = parse.GetValue(rb)! }, ControlJsonContext.Default.NodePairMessage, ControlJsonContext.Default.RouteResultMessage, t);
            Console.WriteLine($"session {r.SessionId:x16}, {r.Path.Count - 1} hop(s)");
            Common.Table(["HOP", "NODE"], r.Path.Select((p, i) => (IReadOnlyList<string>)[i.ToString(), p]));
        }, ct));
        cli.Subcommands.Add(route);

        // Owned by the viscript side of the team (docs/gui.md "Topology"): the document viscript's GUI draws.
        cli.Subcommands.Add(TopologyCommand.Create((parse, run, ct) => RunAsync(parse, manager, managerKey, keyFile, run, ct), manager));
        return cli;
    }

    private static async Task<int> RunAsync(ParseResult parse, Option<string> manager, Option<string?> managerKey, Option<string> keyFile, Func<FrameConnection, CancellationToken, Task> run, CancellationToken cancellationToken)
    {
        var address = Common.ParseManager(parse.GetValue(manager)!, parse.GetValue(managerKey));
        if (address is null)
        {
            return Common.Usage;
        }

        using var key = Common.LoadKey(parse.GetValue(keyFile)!, create: false);
        if (key is null)
        {
            return Common.Failure;
        }

        try
        {
            var (connection, _) = await ControlClient.ConnectAsync(address, key, "cli", null,
                (_, _, _) => throw new ControlException(ControlErrorCode.Forbidden, "the cli serves no requests"), NullLogger.Instance, TimeSpan.FromSeconds(10), cancellationToken);
            await using (connection)
            {
                await run(connection, cancellationToken);
            }

            return Common.Ok;
        }
        catch (ControlException ex)
        {
            Console.Error.WriteLine($"error: {ex.Message}");
            return Common.ExitCode(ex.Code);
        }
    }
}
