using System.CommandLine;
using System.Net;
using Microsoft.Extensions.Logging;
using Skywire.Apps.Vpn;
using Skywire.Core.AppApi;
using Skywire.Core.Sdk;

namespace Skywire.Commands;

/// <summary>The <c>skywire app vpn-server</c> and <c>skywire app vpn-client</c> commands (docs/vpn.md).</summary>
internal static class VpnCommands
{
    private const int Ok = 0, Failure = 1, Usage = 2;

    public static IReadOnlyList<Command> Create(Func<ILoggerFactory> logging) => [Server(logging, null), Client(logging, null)];

    /// <summary>
    /// The vpn-server or vpn-client command run inside a node's process (`skywire node --vpn-server/--vpn-client
    /// "OPTIONS"`): no --node-apps/--token-file (the node is <paramref name="inNode"/>'s, set before the command is
    /// invoked), no signal client of its own (the node's answers viscript), and the packets skip the app API connection.
    /// </summary>
    public static Command InNode(bool server, Func<ILoggerFactory> logging, VpnInNode inNode) => server ? Server(logging, inNode) : Client(logging, inNode);

    private static (Option<string> NodeApps, Option<string> TokenFile, Option<string> Name, Option<string> Device, Option<int> Mtu) Common(string defaultName, bool inNode)
    {
        var nodeApps = new Option<string>("--node-apps") { Description = "The node's app API address (ip:port on loopback).", Required = !inNode, Hidden = inNode };
        var tokenFile = new Option<string>("--token-file") { Description = "The node's app token file.", Required = !inNode, Hidden = inNode };
        var name = new Option<string>("--name") { Description = $"This app's name in the app tracker (default {defaultName}).", DefaultValueFactory = _ => defaultName };
        var device = new Option<string>("--tun") { Description = "TUN device name, at most 15 characters; %d is numbered by the kernel (default skyvpn%d).", DefaultValueFactory = _ => "skyvpn%d" };
        var mtu = new Option<int>("--mtu") { Description = "Upper bound of the tunnel MTU (default 1500; the mesh path's largest datagram lowers it).", DefaultValueFactory = _ => 1500 };
        device.Validators.Add(r =>
        {
            var v = r.GetValueOrDefault<string>();
            if (string.IsNullOrEmpty(v) || v.Length > 15 || v.Any(c => c is '/' or ' ' || char.IsControl(c)))
            {
                r.AddError("--tun must be 1 to 15 characters without '/' or spaces");
            }
        });
        mtu.Validators.Add(r =>
        {
            if (r.GetValueOrDefault<int>() is < 576 or > 65535)
            {
                r.AddError("--mtu must be 576 to 65535");
            }
        });
        return (nodeApps, tokenFile, name, device, mtu);
    }

    private static Command Server(Func<ILoggerFactory> logging, VpnInNode? inNode)
    {
        var (nodeApps, tokenFile, name, device, mtu) = Common(VpnServer.ServerType, inNode is not null);
        var subnet = new Option<string>("--subnet") { Description = "IPv4 subnet of the VPN (default 10.66.0.0/24): this server takes the first address, clients the rest.", DefaultValueFactory = _ => "10.66.0.0/24" };
        var allow = new Option<string[]>("--allow") { Description = "Client node key (66 hex) allowed; repeat for more. Default: any node.", AllowMultipleArgumentsPerToken = true };
        var passcode = new Option<string?>("--passcode") { Description = "Passcode clients must send (--passcode of vpn-client)." };
        var subnet6 = new Option<string>("--subnet6")
        {
            Description = $"IPv6 subnet of the VPN, /48 to /126 (default {VpnServerOptions.DefaultSubnet6}, unique local): this server takes the first address, clients the rest.",
            DefaultValueFactory = _ => VpnServerOptions.DefaultSubnet6.ToString(),
        };
        var noIpv6 = new Option<bool>("--no-ipv6") { Description = "IPv4 only: no IPv6 addresses, routes or NAT66." };
        var noNat = new Option<bool>("--no-nat") { Description = "Do not forward client traffic out of this host (no IPv4/IPv6 forwarding, no nftables masquerade)." };
        var dns = new Option<string[]>("--dns") { Description = "Resolver address (IPv4 or IPv6) pushed to clients, reachable through the tunnel; repeat for more.", AllowMultipleArgumentsPerToken = true };
        var command = new Command("vpn-server", "VPN exit: a TUN device with the subnets' first addresses, one IPv4 and one IPv6 address per client key, NAT out of this host (needs root).")
        {
            nodeApps, tokenFile, name, device, mtu, subnet, subnet6, noIpv6, allow, passcode, noNat, dns,
        };
        command.Validators.Add(result =>
        {
            foreach (var key in result.GetValue(allow) ?? [])
            {
                if (key.Length != 66 || !key.All(Uri.IsHexDigit))
                {
                    result.AddError($"--allow '{key}' is not a node key (66 hex characters)");
                }
            }

            var s = result.GetValue(subnet) is { Length: > 0 } given ? given : "10.66.0.0/24";
            if (!IPNetwork.TryParse(s, out var network) || network.BaseAddress.AddressFamily != System.Net.Sockets.AddressFamily.InterNetwork || network.PrefixLength is < 8 or > 30)
            {
                result.AddError($"--subnet '{s}' is not an IPv4 subnet from /8 to /30 (e.g. 10.66.0.0/24)");
            }

            var s6 = result.GetValue(subnet6) is { Length: > 0 } given6 ? given6 : VpnServerOptions.DefaultSubnet6.ToString();
            if (!IPNetwork.TryParse(s6, out var network6) || network6.BaseAddress.AddressFamily != System.Net.Sockets.AddressFamily.InterNetworkV6
                || !AddressPool.IsUsable(network6) || network6.BaseAddress.IsIPv4MappedToIPv6)
            {
                result.AddError($"--subnet6 '{s6}' is not an IPv6 subnet from /48 to /126 (e.g. fd66:736b:7977::/64)");
            }

            foreach (var d in result.GetValue(dns) ?? [])
            {
                if (!IPAddress.TryParse(d, out _))
                {
                    result.AddError($"--dns '{d}' is not an IP address");
                }
            }
        });
        command.SetAction(async (parse, cancellationToken) =>
        {
            var binding = inNode is not null ? inNode.Bind(parse.GetValue(name) ?? VpnServer.ServerType)
                : Bind(parse.GetValue(nodeApps)!, parse.GetValue(tokenFile)!, parse.GetValue(name) ?? VpnServer.ServerType);
            if (binding is null)
            {
                return Usage;
            }

            var options = VpnServerOptions.Default with
            {
                Device = parse.GetValue(device) ?? "skyvpn%d",
                Mtu = parse.GetValue(mtu),
                Subnet = IPNetwork.Parse(parse.GetValue(subnet) ?? "10.66.0.0/24"),
                Subnet6 = parse.GetValue(noIpv6) ? null : IPNetwork.Parse(parse.GetValue(subnet6) ?? VpnServerOptions.DefaultSubnet6.ToString()),
                AllowedClients = new HashSet<string>(parse.GetValue(allow) ?? [], StringComparer.OrdinalIgnoreCase),
                Passcode = parse.GetValue(passcode),
                Nat = !parse.GetValue(noNat),
                DnsServers = [.. (parse.GetValue(dns) ?? []).Select(IPAddress.Parse)],
            };
            using var loggers = logging();
            await using var signal = inNode is null ? Viscript.Signal.SignalClient.StartFromEnvironment() : null;
            using var stop = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, signal?.ShutdownToken ?? CancellationToken.None);
            var server = new VpnServer(options, loggers.CreateLogger("vpn-server"));
            return await RunAsync(() => server.RunAsync(binding,
                (ready, tun) => Console.Error.WriteLine($"vpn-server ready as {ready} on {tun}, subnet {options.Subnet} gateway {server.Pool.Gateway}"
                    + (server.IPv6 ? $", subnet6 {server.Pool6!.Subnet} gateway6 {server.Pool6.Gateway}" : "")), stop.Token));
        });
        return command;
    }

    private static Command Client(Func<ILoggerFactory> logging, VpnInNode? inNode)
    {
        var (nodeApps, tokenFile, name, device, mtu) = Common(VpnClient.ClientType, inNode is not null);
        var server = new Option<string?>("--server") { Description = "The exit as NODEKEY/APPNAME. Default: the first vpn-server in the app tracker." };
        var route = new Option<string[]>("--route") { Description = "Subnet to send through the tunnel (IPv4 or IPv6, e.g. 10.1.0.0/16 or 2001:db8::/32); repeat for more.", AllowMultipleArgumentsPerToken = true };
        var all = new Option<bool>("--all") { Description = "Send everything, IPv4 and IPv6, through the tunnel (the mesh's own underlay peers keep their routes)." };
        var passcode = new Option<string?>("--passcode") { Description = "Passcode the vpn-server expects." };
        var killSwitch = new Option<bool>("--kill-switch")
        {
            Description = "Nothing leaves this host outside the tunnel while the app runs, also while the tunnel is down (the node's own mesh traffic excepted). A killed app leaves it on: nft delete table inet skywire_vpnc_DEVICE.",
        };
        var dns = new Option<bool>("--dns") { Description = "Use the resolvers the vpn-server pushes (IPv4, and IPv6 when the tunnel carries it): routed into the tunnel and written to /etc/resolv.conf (put back at exit)." };
        var netns = new Option<string?>("--netns")
        {
            Description = "Put the tunnel into this network namespace (made beforehand with `ip netns add NAME`): only programs there (`ip netns exec NAME ...`) use the VPN; routes, kill switch and DNS apply inside it.",
        };
        var command = new Command("vpn-client", "VPN entry: a TUN device with the addresses the vpn-server leases, routes into the tunnel (needs root).")
        {
            nodeApps, tokenFile, name, device, mtu, server, route, all, passcode, killSwitch, dns, netns,
        };
        command.Validators.Add(result =>
        {
            foreach (var r in result.GetValue(route) ?? [])
            {
                if (!IPNetwork.TryParse(r, out _))
                {
                    result.AddError($"--route '{r}' is not a subnet (e.g. 10.1.0.0/16 or 2001:db8::/32)");
                }
            }

            if (result.GetValue(netns) is { } n && (n.Length == 0 || n.Contains('/', StringComparison.Ordinal) || !File.Exists(Path.Combine("/var/run/netns", n))))
            {
                result.AddError($"--netns '{n}': no such network namespace (make it first: ip netns add {n})");
            }

            if (result.GetValue(server) is { } s)
            {
                try
                {
                    Skywire.Apps.Socks.SocksApps.ParseTarget(s);
                }
                catch (FormatException ex)
                {
                    result.AddError("--server " + ex.Message);
                }
            }
        });
        command.SetAction(async (parse, cancellationToken) =>
        {
            var binding = inNode is not null ? inNode.Bind(parse.GetValue(name) ?? VpnClient.ClientType)
                : Bind(parse.GetValue(nodeApps)!, parse.GetValue(tokenFile)!, parse.GetValue(name) ?? VpnClient.ClientType);
            if (binding is null)
            {
                return Usage;
            }

            var options = VpnClientOptions.Default with
            {
                Device = parse.GetValue(device) ?? "skyvpn%d",
                Mtu = parse.GetValue(mtu),
                Routes = [.. (parse.GetValue(route) ?? []).Select(r => IPNetwork.Parse(r))],
                All = parse.GetValue(all),
                Passcode = parse.GetValue(passcode),
                KillSwitch = parse.GetValue(killSwitch),
                ApplyDns = parse.GetValue(dns),
                Namespace = parse.GetValue(netns),
            };
            using var loggers = logging();
            await using var signal = inNode is null ? Viscript.Signal.SignalClient.StartFromEnvironment() : null;
            using var stop = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, signal?.ShutdownToken ?? CancellationToken.None);
            var client = new VpnClient(options, loggers.CreateLogger("vpn-client"));
            return await RunAsync(() => client.RunAsync(binding, parse.GetValue(server), state => Console.Error.WriteLine($"vpn-client up: {state}"), stop.Token));
        });
        return command;
    }

    private static VpnAppBinding? Bind(string nodeApps, string tokenFile, string name)
    {
        if (!IPEndPoint.TryParse(nodeApps, out var endPoint))
        {
            Console.Error.WriteLine($"error: --node-apps '{nodeApps}' is not ip:port");
            return null;
        }

        try
        {
            return new VpnAppBinding(endPoint, SkywireApp.ReadTokenFile(tokenFile), name);
        }
        catch (AppApiException ex)
        {
            Console.Error.WriteLine($"error: {ex.Message}");
            return null;
        }
    }

    private static async Task<int> RunAsync(Func<Task> run)
    {
        try
        {
            await run();
            return Ok;
        }
        catch (OperationCanceledException)
        {
            Console.Error.WriteLine("vpn stopped");
            return Ok;
        }
        catch (VpnRefusedException ex)
        {
            Console.Error.WriteLine($"error: {ex.Message}");
            return Failure;
        }
        catch (AppApiException ex)
        {
            Console.Error.WriteLine($"error: {ex.Message} ({ex.Code})");
            return Failure;
        }
        catch (Exception ex) when (ex is IOException or System.Net.Sockets.SocketException or InvalidDataException or PlatformNotSupportedException)
        {
            Console.Error.WriteLine($"error: {ex.Message}");
            return Failure;
        }
    }
}

/// <summary>The node a vpn command runs inside (`skywire node --vpn-server/--vpn-client`); set once the node is up.</summary>
internal sealed class VpnInNode
{
    /// <summary>The node, set before the command is invoked.</summary>
    public Skywire.Core.Node.NodeHost? Node { get; set; }

    /// <summary>The app's binding: the node's app API for control, its datagram flows attached in this process.</summary>
    public VpnAppBinding Bind(string name)
    {
        var node = Node ?? throw new InvalidOperationException("the node is not running yet");
        return new VpnAppBinding(node.AppsEndPoint, node.AppToken, name) { InProcess = node.AttachDatagrams };
    }
}
