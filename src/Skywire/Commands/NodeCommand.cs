using System.CommandLine;
using Skywire.Core.Channels;
using Skywire.Core.DataPlane;
using Skywire.Core.Diagnostics;
using Skywire.Metrics;
using Skywire.Core.Node;
using Skywire.Protocol.Control;

namespace Skywire.Commands;

internal static class NodeCommand
{
    public static Command Create()
    {
        var manager = new Option<string>("--manager") { Description = "Manager address host:port, or PUBKEY@host:port; several managers of one mesh (a shared store) as a comma-separated list, tried in order (the node fails over to the next).", Required = true };
        var managerKey = new Option<string?>("--manager-key") { Description = "The manager's public key (66 hex), pinned: a manager with another key is refused." };
        var listen = new Option<string>("--listen") { Description = "UDP address for links (ip:port; port 0 picks one). Peers are told this address.", DefaultValueFactory = _ => "127.0.0.1:0" };
        var advertise = new Option<string?>("--advertise") { Description = "Link address (ip:port) told to the manager and so to peers instead of the --listen one: NAT port forwarding, a wildcard bind, or an impairment relay in front of the node." };
        var apps = new Option<string>("--apps") { Description = "App API address (loopback only; port 0 picks one).", DefaultValueFactory = _ => "127.0.0.1:0" };
        var tokenFile = new Option<string>("--app-token-file") { Description = "Where to write the app token (mode 0600) that local apps present. An existing file is replaced only if it is a previous token file (regular, ours, mode 0600, a token).", Required = true };
        var keyFile = new Option<string>("--key") { Description = "Node key file (created on first run).", Required = true };
        var messenger = new Option<string?>("--messenger") { Description = "Messenger host:port or PUBKEY@host:port: dials to nodes the manager has no route to (another cluster) go through it." };
        var messengerKey = new Option<string?>("--messenger-key") { Description = "The messenger's public key (66 hex), pinned." };
        var noOffload = new Option<bool>("--no-udp-offload") { Description = "Send and receive one UDP datagram per system call (no Linux GSO/GRO batching; for comparisons and odd NICs)." };
        var maxLinks = new Option<int>("--max-links") { Description = "Most links the node keeps; strangers' idle or unconfirmed links are evicted beyond it, links it opened or that carry routes never are.", DefaultValueFactory = _ => DataPlaneOptions.Default.MaxLinks };
        var directTimeout = new Option<int>("--direct-timeout") { Description = "Milliseconds a dial to another cluster's node tries a direct link brokered by the messenger before relaying through it (0: always relay, refuse offers).", DefaultValueFactory = _ => 3000 };
        var metrics = MetricsOption.Create();
        var relayUpgrade = new Option<int>("--relay-upgrade") { Description = "Seconds after a dial fell back to the messenger's relay before a direct link is tried again, to move the relayed streams onto it; doubles per failed try up to 120 (0: relayed streams stay relayed).", DefaultValueFactory = _ => 10 };
        var command = new Command("node", "Run a node: registers with the manager, opens links, forwards, serves the app API.") { manager, managerKey, listen, advertise, apps, tokenFile, keyFile, messenger, messengerKey, noOffload, maxLinks, directTimeout, relayUpgrade, metrics };
        var metering = new MeteringOptionsCli.Node();
        metering.AddTo(command);
        var vpnOptions = new NodeVpn();
        vpnOptions.AddTo(command);
        command.SetAction(async (parse, cancellationToken) =>
        {
            var managerList = parse.GetValue(manager)!.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
                .Select(m => Common.ParseManager(m, parse.GetValue(managerKey))).ToList();
            var address = managerList.Count > 0 && managerList.All(m => m is not null) ? managerList[0] : null;
            if (address is null
                || !Common.TryParseEndPoint(parse.GetValue(listen)!, out var linkEndPoint, "--listen")
                || !Common.TryParseEndPoint(parse.GetValue(apps)!, out var appsEndPoint, "--apps")
                || !MetricsOption.TryGet(parse, metrics, Console.Error, out var metricsEndPoint))
            {
                return Common.Usage;
            }

            System.Net.IPEndPoint? advertised = null;
            if (parse.GetValue(advertise) is { } advertiseText && !Common.TryParseEndPoint(advertiseText, out advertised, "--advertise"))
            {
                return Common.Usage;
            }

            if (!System.Net.IPAddress.IsLoopback(appsEndPoint.Address))
            {
                Console.Error.WriteLine($"error: --apps must be a loopback address (the app API is local only), not {appsEndPoint}");
                return Common.Usage;
            }

            var direct = parse.GetValue(directTimeout);
            if (direct is < 0 or > 60_000)
            {
                Console.Error.WriteLine($"error: --direct-timeout must be 0..60000 milliseconds, not {direct}");
                return Common.Usage;
            }

            var upgrade = parse.GetValue(relayUpgrade);
            if (upgrade is < 0 or > 3600)
            {
                Console.Error.WriteLine($"error: --relay-upgrade must be 0..3600 seconds, not {upgrade}");
                return Common.Usage;
            }

            var linkCap = parse.GetValue(maxLinks);
            if (linkCap < 1)
            {
                Console.Error.WriteLine($"error: --max-links must be at least 1, not {linkCap}");
                return Common.Usage;
            }

            Skywire.Core.Messenger.MessengerClientOptions? viaMessenger;
            try
            {
                viaMessenger = MessengerCommands.ClientOptionsFrom(parse.GetValue(messenger), parse.GetValue(messengerKey));
            }
            catch (FormatException ex)
            {
                Console.Error.WriteLine("error: " + ex.Message);
                return Common.Usage;
            }

            var vpn = vpnOptions;
            if (!vpn.TryParse(parse, Console.Error))
            {
                return Common.Usage;
            }

            using var pending = Common.OpenKey(parse.GetValue(keyFile)!);
            if (pending is null)
            {
                return Common.Failure;
            }

            var key = pending.Key;

            using var logging = Common.Logging();
            var options = new NodeOptions { Manager = address, AlternateManagers = [.. managerList.Skip(1).Select(m => m!)], LinkListen = linkEndPoint, AppsListen = appsEndPoint, AppTokenFile = parse.GetValue(tokenFile), Messenger = viaMessenger, AdvertisedLinkAddress = advertised,
                DirectLinkTimeout = TimeSpan.FromMilliseconds(direct), RelayUpgradeInterval = TimeSpan.FromSeconds(upgrade),
                RelayUpgradeMaxInterval = TimeSpan.FromSeconds(Math.Max(upgrade, 120)), Metering = metering.Get(parse, parse.GetValue(keyFile)!) };
            options = options with { DataPlane = options.DataPlane with { MaxLinks = linkCap } };
            if (parse.GetValue(noOffload))
            {
                options = options with { DataPlane = options.DataPlane with { UdpOffload = false } };
            }

            // The metrics listener binds first (its bind error comes before the node talks to anyone); the meters
            // the node creates next are picked up as they appear.
            var (metricsOk, metricsServer) = await MetricsOption.StartAsync(metricsEndPoint, "skywire-node", [SkywireMeters.Node, SkywireMeters.DataPlane, SkywireMeters.Signal], Console.Error, cancellationToken);
            await using var metricsLifetime = metricsServer;
            if (!metricsOk)
            {
                return Common.Failure;
            }

            await using var node = new NodeHost(key, options, logging);
            try
            {
                await node.StartAsync(cancellationToken);
            }
            catch (ControlException ex)
            {
                Console.Error.WriteLine(ex.Code == ControlErrorCode.Forbidden
                    ? $"error: manager refused or key mismatch: {ex.Message}"
                    : $"error: cannot register with the manager: {ex.Message}");

                // A refusal names this node's key (e.g. for the manager's allow-list): keep that key, so the next run
                // is the node the operator allowed. Any other failure leaves no key file behind.
                if (ex.Code == ControlErrorCode.Forbidden)
                {
                    pending.Commit();
                }

                return Common.ExitCode(ex.Code);
            }
            catch (ListenerBindException ex)
            {
                Console.Error.WriteLine($"error: {ex.Message} ({(ex.Listener.StartsWith("links", StringComparison.Ordinal) ? "--listen" : "--apps")})");
                return Common.Failure;
            }
            catch (Skywire.Core.Crypto.SecretFileException ex)
            {
                Console.Error.WriteLine($"error: --app-token-file {ex.Message}");
                return Common.Failure;
            }

            if (!pending.Commit())
            {
                return Common.Failure;
            }

            await using var signal = SignalHook.Start();
            Console.Error.WriteLine($"node {key.Public} links {node.LinkEndPoint} apps {node.AppsEndPoint}");
            ServiceReadiness.Ready($"node {key.Public} registered; links {node.LinkEndPoint} apps {node.AppsEndPoint}");
            using var stop = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, signal.ShutdownToken);

            // vpn apps inside this process (--vpn-server/--vpn-client) stop before the node does (their teardown
            // still talks to it); one that ends by itself stops the node.
            var vpnApps = vpn.Any ? vpn.RunAsync(node, stop.Token) : null;
            var code = Common.Ok;
            try
            {
                await (vpnApps is null ? node.Completion : Task.WhenAny(node.Completion, vpnApps)).WaitAsync(stop.Token);
                if (node.Completion.IsCompleted)
                {
                    await node.Completion;
                }
            }
            catch (OperationCanceledException)
            {
            }
            catch (ControlException ex)
            {
                Console.Error.WriteLine($"error: manager refused this node: {ex.Message}");
                code = Common.ExitCode(ex.Code);
            }
            finally
            {
                if (vpnApps is not null)
                {
                    await stop.CancelAsync();
                    var appCode = await vpnApps;
                    code = code == Common.Ok ? appCode : code;
                }
            }

            ServiceReadiness.Stopping();
            return code;
        });
        return command;
    }
}
