using System.CommandLine;
using Skywire.Core.Manager;
using Skywire.Protocol;

namespace Skywire.Commands;

internal static class ManagerCommand
{
    public static Command Create()
    {
        var listen = new Option<string>("--listen") { Description = "Control listener ip:port.", DefaultValueFactory = _ => "127.0.0.1:5999" };
        var keyFile = new Option<string>("--key") { Description = "Manager key file (created on first run).", Required = true };
        var admins = new Option<string[]>("--admin") { Description = "Public key allowed to use `skywire cli` (repeatable); the manager's own key always is.", AllowMultipleArgumentsPerToken = true };
        var autoLink = new Option<bool>("--auto-link") { Description = "Ask every new node to link to every node already online." };
        var ruleTtl = new Option<int>("--rule-ttl") { Description = "Lifetime of installed rules, seconds (refreshed at a third of it).", DefaultValueFactory = _ => 60 };
        var appTtl = new Option<int>("--app-ttl") { Description = "Seconds without heartbeat before an app leaves the tracker.", DefaultValueFactory = _ => 15 };
        var command = new Command("manager", "Run a node manager: registry, links, routes, app tracker.") { listen, keyFile, admins, autoLink, ruleTtl, appTtl };
        command.SetAction(async (parse, cancellationToken) =>
        {
            if (!Common.TryParseEndPoint(parse.GetValue(listen)!, out var endPoint, "--listen"))
            {
                return Common.Usage;
            }

            var adminKeys = parse.GetValue(admins) ?? [];
            foreach (var admin in adminKeys)
            {
                if (!PubKey.TryParse(admin, out _))
                {
                    Console.Error.WriteLine($"error: --admin '{admin}' is not a public key (66 hex characters)");
                    return Common.Usage;
                }
            }

            using var key = Common.LoadKey(parse.GetValue(keyFile)!);
            if (key is null)
            {
                return Common.Failure;
            }

            using var logging = Common.Logging();
            var ttl = TimeSpan.FromSeconds(Math.Max(3, parse.GetValue(ruleTtl)));
            var options = new ManagerOptions
            {
                Listen = endPoint,
                Admins = adminKeys,
                AutoLink = parse.GetValue(autoLink),
                RuleLifetime = ttl,
                RefreshInterval = ttl / 3,
                AppTtl = TimeSpan.FromSeconds(Math.Max(2, parse.GetValue(appTtl))),
            };
            await using var server = new ManagerServer(key, options, logging);
            try
            {
                server.Start();
            }
            catch (System.Net.Sockets.SocketException ex)
            {
                Console.Error.WriteLine($"error: cannot listen on {endPoint}: {ex.Message}");
                return Common.Failure;
            }

            await using var signal = SignalHook.Start();
            Console.Error.WriteLine($"manager {key.Public} listening on {server.LocalEndPoint}");
            try
            {
                using var stop = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, signal.ShutdownToken);
                await Task.Delay(Timeout.Infinite, stop.Token);
            }
            catch (OperationCanceledException)
            {
            }

            return Common.Ok;
        });
        return command;
    }
}
