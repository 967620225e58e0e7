using System.CommandLine;
using System.Runtime.InteropServices;
using Microsoft.Extensions.Logging;
using Skywire.Core.Channels;
using Skywire.Core.Diagnostics;
using Skywire.Metrics;
using Skywire.Core.Manager;
using Skywire.Core.Metering;
using Skywire.Core.Manager.Store;
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
        var allowNode = new Option<string[]>("--allow-node") { Description = "Only nodes with these public keys may join (repeatable). Without --allow-node/--allow-nodes any node that proves a key may join.", AllowMultipleArgumentsPerToken = true };
        var maxApps = new Option<int>("--max-apps-per-node") { Description = "Apps one node may have in the tracker (docs/protocol.md §4.6).", DefaultValueFactory = _ => ManagerLimits.Default.MaxAppsPerNode };
        var maxLinks = new Option<int>("--max-links-per-node") { Description = "Links one node may report; raise it above the node count for a larger --auto-link mesh.", DefaultValueFactory = _ => ManagerLimits.Default.MaxLinksPerNode };
        var maxRoutes = new Option<int>("--max-routes-per-node") { Description = "Live routes one node may have asked for.", DefaultValueFactory = _ => ManagerLimits.Default.MaxRoutesPerNode };
        var store = new Option<string?>("--store") { Description = "Where the manager keeps the mesh state: none (default: this process only), file:PATH (persisted, so the manager survives its own restart), or etcd://HOST:PORT[,HOST:PORT...][/PREFIX] to share it with other managers of the same mesh (give them all the same --key; docs/operations.md \"Several managers\")." };
        var metrics = MetricsOption.Create();
        var allowNodes = new Option<string?>("--allow-nodes") { Description = "File of node public keys allowed to join, one per line, # comments. Re-read on SIGHUP and when the file changes; nodes no longer listed are disconnected." };
        var command = new Command("manager", "Run a node manager: registry, links, routes, app tracker.\n" +
            "Security: a manager reachable from other hosts should name its nodes (--allow-node/--allow-nodes); without a list it warns at start when --listen is not loopback.")
        {
            listen, keyFile, admins, autoLink, ruleTtl, appTtl, allowNode, allowNodes, maxApps, maxLinks, maxRoutes, store, metrics,
        };
        var metering = new MeteringOptionsCli.Manager();
        metering.AddTo(command);
        command.SetAction(async (parse, cancellationToken) =>
        {
            if (!Common.TryParseEndPoint(parse.GetValue(listen)!, out var endPoint, "--listen")
                || !MetricsOption.TryGet(parse, metrics, Console.Error, out var metricsEndPoint)
                || !metering.TryGet(parse, out var meteringOptions))
            {
                return Common.Usage;
            }

            if (meteringOptions is not null && parse.GetValue(store) is { } storeText && storeText.StartsWith("etcd://", StringComparison.OrdinalIgnoreCase))
            {
                // docs/architecture.md "What stays out of the store": the ledger has one writer, which holds the terms
                // and gets the receipts of the routes it built; with several managers some would reach another one.
                Console.Error.WriteLine("error: --ledger meters a mesh with one manager and cannot be combined with --store etcd://... (several managers): "
                    + "metering has no failover to another manager and no settlement across ledgers. Use --store file:PATH or no --store; a restarted "
                    + "manager on the same --ledger adopts the metered routes with new terms (docs/metering.md \"Decisions\")");
                return Common.Usage;
            }

            var limits = ManagerLimits.Default with
            {
                MaxAppsPerNode = parse.GetValue(maxApps),
                MaxLinksPerNode = parse.GetValue(maxLinks),
                MaxRoutesPerNode = parse.GetValue(maxRoutes),
            };
            if (limits.MaxAppsPerNode < 1 || limits.MaxLinksPerNode < 1 || limits.MaxRoutesPerNode < 1)
            {
                Console.Error.WriteLine("error: --max-apps-per-node, --max-links-per-node and --max-routes-per-node must be at least 1");
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

            var allowedKeys = new List<PubKey>();
            foreach (var text in parse.GetValue(allowNode) ?? [])
            {
                if (!PubKey.TryParse(text, out var allowed))
                {
                    Console.Error.WriteLine($"error: --allow-node '{text}' is not a public key (66 hex characters)");
                    return Common.Usage;
                }

                allowedKeys.Add(allowed);
            }

            var allowFile = parse.GetValue(allowNodes);
            NodeAllowList? allowList = null;
            if (allowedKeys.Count > 0 || allowFile is not null)
            {
                try
                {
                    allowList = new NodeAllowList(allowedKeys, allowFile);
                }
                catch (NodeAllowListException ex)
                {
                    Console.Error.WriteLine($"error: --allow-nodes: {ex.Message}");
                    return Common.Usage;
                }
            }

            using var pending = Common.OpenKey(parse.GetValue(keyFile)!);
            if (pending is null)
            {
                return Common.Failure;
            }

            var key = pending.Key;

            using var logging = Common.Logging();
            IMeshStore? meshStore;
            try
            {
                meshStore = OpenStore(parse.GetValue(store), logging);
            }
            catch (Exception ex) when (ex is FormatException or StoreUnavailableException)
            {
                Console.Error.WriteLine($"error: --store: {ex.Message}");
                return Common.Usage;
            }

            await using var storeLifetime = meshStore;
            var ttl = TimeSpan.FromSeconds(Math.Max(3, parse.GetValue(ruleTtl)));
            var options = new ManagerOptions
            {
                Listen = endPoint,
                Admins = adminKeys,
                AutoLink = parse.GetValue(autoLink),
                RuleLifetime = ttl,
                RefreshInterval = ttl / 3,
                AppTtl = TimeSpan.FromSeconds(Math.Max(2, parse.GetValue(appTtl))),
                AllowedNodes = allowList,
                WatchAllowedNodesFile = allowFile is not null,
                Limits = limits,
                Metering = meteringOptions,
                Store = meshStore,
            };
            ManagerServer created;
            try
            {
                created = new ManagerServer(key, options, logging);
            }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException or LedgerVerificationException)
            {
                Console.Error.WriteLine($"error: --ledger {meteringOptions?.LedgerDirectory}: {ex.Message}");
                return Common.Failure;
            }

            await using var server = created;
            try
            {
                ListenerBindException.Bind("manager control listener (TCP, --listen)", endPoint, server.Start);
            }
            catch (ListenerBindException ex)
            {
                Console.Error.WriteLine($"error: {ex.Message}");
                return Common.Failure;
            }

            var (metricsOk, metricsServer) = await MetricsOption.StartAsync(metricsEndPoint, "skywire-manager", [SkywireMeters.Manager, SkywireMeters.Signal], Console.Error, cancellationToken);
            await using var metricsLifetime = metricsServer;
            if (!metricsOk || !pending.Commit())
            {
                return Common.Failure;
            }

            // SIGHUP re-reads the allow-list file (errors are logged; the old list stays). Without a file, SIGHUP keeps its default.
            using var sighup = allowFile is null ? null : PosixSignalRegistration.Create(PosixSignal.SIGHUP, context =>
            {
                context.Cancel = true;
                try
                {
                    server.ReloadAllowedNodes();
                }
                catch (NodeAllowListException)
                {
                }
            });
            await using var signal = SignalHook.Start();
            Console.Error.WriteLine($"manager {key.Public} listening on {server.LocalEndPoint}{(meshStore is null ? "" : $", mesh state in {meshStore.Description}")}");
            ServiceReadiness.Ready($"manager {key.Public} listening on {server.LocalEndPoint}");
            try
            {
                using var stop = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, signal.ShutdownToken);
                await Task.Delay(Timeout.Infinite, stop.Token);
            }
            catch (OperationCanceledException)
            {
            }

            ServiceReadiness.Stopping();

            return Common.Ok;
        });
        return command;
    }

    /// <summary>The store named by --store: null (none), an embedded store persisted to a file, or etcd.</summary>
    /// <exception cref="FormatException">Not a store address.</exception>
    /// <exception cref="StoreUnavailableException">The state file cannot be read.</exception>
    internal static IMeshStore? OpenStore(string? text, ILoggerFactory logging)
    {
        if (string.IsNullOrWhiteSpace(text) || text == "none")
        {
            return null;
        }

        if (text.StartsWith("file:", StringComparison.Ordinal))
        {
            var path = text["file:".Length..];
            return path.Length == 0 ? throw new FormatException("file: needs a path (file:/var/lib/skywire/manager-state.json)") : new EmbeddedStore(path, logging.CreateLogger<EmbeddedStore>());
        }

        if (text.StartsWith("etcd://", StringComparison.OrdinalIgnoreCase))
        {
            return new EtcdStore(EtcdStoreOptions.Parse(text), logging.CreateLogger<EtcdStore>());
        }

        throw new FormatException($"'{text}' is not a store (none, file:PATH, etcd://HOST:PORT[,HOST:PORT...][/PREFIX])");
    }
}
