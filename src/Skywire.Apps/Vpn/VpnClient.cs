using System.Globalization;
using System.Net;
using System.Text;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Skywire.Core.AppApi;
using Skywire.Core.Sdk;
using Skywire.Protocol.AppApi;

namespace Skywire.Apps.Vpn;

/// <summary>
/// The vpn-client app (docs/vpn.md): registers as type <c>vpn-client</c>, dials a vpn-server (given, or the first one
/// in the app tracker), creates its TUN device with the address the server leased it and an MTU that fits the path,
/// routes the chosen subnets (or everything, keeping the mesh's own underlay peers outside) into it, and moves IP
/// packets between the TUN and the tunnel's datagram flow. When the tunnel breaks it dials again, keeping the device
/// and its routes (packets meanwhile are dropped, not sent around the tunnel). Everything is undone at exit.
/// </summary>
public sealed class VpnClient
{
    /// <summary>Tracker type of the entry app.</summary>
    public const string ClientType = "vpn-client";

    private static readonly TimeSpan MaxReconnectDelay = TimeSpan.FromSeconds(10);

    private readonly VpnClientOptions _options;
    private readonly ILogger _logger;
    private volatile VpnPeer? _current;

    /// <param name="options">Options.</param>
    /// <param name="logger">Logger.</param>
    public VpnClient(VpnClientOptions options, ILogger? logger = null)
    {
        ArgumentNullException.ThrowIfNull(options);
        _options = options;
        _logger = logger ?? NullLogger.Instance;
    }

    /// <summary>Packet counters.</summary>
    public VpnStatistics Statistics { get; } = new();

    /// <summary>Tunnels made so far (1 after the first connect; more after reconnects).</summary>
    public int Connects { get; private set; }

    /// <summary>True while the tunnel is up with its packets inside the node's process (<see cref="VpnAppBinding.InProcess"/>).</summary>
    public bool InProcess => _current?.InProcess ?? false;

    /// <summary>
    /// Runs until cancelled. <paramref name="onUp"/> is called each time the tunnel comes up.
    /// </summary>
    /// <exception cref="AppApiException">The node refused, or no vpn-server is registered.</exception>
    /// <exception cref="VpnRefusedException">The server refused this client (allow-list, passcode, full pool).</exception>
    /// <exception cref="IOException">The TUN device or the host's routes could not be set up.</exception>
    public async Task RunAsync(VpnAppBinding binding, string? server, Action<VpnClientState>? onUp = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(binding);
        var target = server is null ? ((string Node, string App)?)null : Socks.SocksApps.ParseTarget(server);
        await using var app = await SkywireApp.ConnectAsync(binding.NodeApps, binding.Token, cancellationToken);
        await app.RegisterAsync(binding.Name, ClientType, cancellationToken);
        var (node, exit) = target ?? await PickServerAsync(app, cancellationToken);
        var info = await app.GetNodeInfoAsync(cancellationToken);
        Func<IPAddress, int?> linkMtu = _options.ConfigureHost ? HostNetwork.MtuToward : _ => null;
        var pathMtu = PathMtu.Derive(info, _options.Mtu, linkMtu, out var limitedBy);
        var deviceMtu = 0;
        if (limitedBy is not null)
        {
            VpnLog.MtuFromPath(_logger, pathMtu, limitedBy);
        }

        using var host = new HostNetwork(_logger, _options.Namespace);
        using var tun = _options.OpenTun(_options.Device);
        VpnLog.TunOpened(_logger, tun.Name, tun.Offloads ? "offloads on (TSO super-packets cut on read, TCP segments coalesced on write)" : "offloads off (one packet per read and write)");
        if (_options.ConfigureHost)
        {
            host.TakeIntoNamespace(tun.Name);
        }

        // Only packets from the client's own tunnel addresses go to the server (the kernel's own IPv6 chatter and
        // packets of a family the tunnel does not carry are dropped here, counted no-peer).
        using var reader = new TunReader(tun, packet => _current is { } peer && peer.Owns(packet, bySource: true) ? peer : null, Statistics, _logger);
        VpnLog.Registered(_logger, ClientType, app.NodeKey, binding.Name, tun.Name);
        if (_options.ConfigureHost)
        {
            // Before the first dial: nothing leaks while the tunnel is not up yet either.
            GuardHost(host, tun.Name, info);
        }

        string? configured = null;
        var delay = _options.ReconnectDelay;
        try
        {
            while (true)
            {
                string reason;
                try
                {
                    await using var stream = await app.DialAsync(node, exit, cancellationToken);
                    await VpnProtocol.WriteAsync(stream, new VpnHello { Passcode = _options.Passcode, Mtu = pathMtu }, VpnJsonContext.Default.VpnHello, cancellationToken);
                    var welcome = await VpnProtocol.ReadAsync(stream, VpnJsonContext.Default.VpnWelcome, cancellationToken);
                    if (welcome.Error is { } error)
                    {
                        throw new VpnRefusedException($"{node}/{exit} refused this client: {error}");
                    }

                    if (!IPAddress.TryParse(welcome.Address, out var address) || address.AddressFamily != System.Net.Sockets.AddressFamily.InterNetwork
                        || welcome.PrefixLength is < 8 or > 30)
                    {
                        throw new InvalidDataException($"the server sent an unusable address '{welcome.Address}/{welcome.PrefixLength}'");
                    }

                    IPAddress? address6 = null;
                    if (welcome.Address6 is { } given6 && (!IPAddress.TryParse(given6, out address6) || address6.AddressFamily != System.Net.Sockets.AddressFamily.InterNetworkV6
                        || welcome.PrefixLength6 is < 48 or > 126))
                    {
                        throw new InvalidDataException($"the server sent an unusable IPv6 address '{given6}/{welcome.PrefixLength6}'");
                    }

                    var datagrams = await VpnDatagrams.OpenAsync(app, stream, binding, cancellationToken);
                    var mtu = Math.Min(Math.Min(welcome.Mtu, datagrams.MaxDatagram), pathMtu);
                    if (mtu < VpnDefaults.MinMtu)
                    {
                        datagrams.Dispose();
                        throw new VpnRefusedException($"the tunnel MTU would be {mtu}: too small for IPv4 (at least {VpnDefaults.MinMtu})");
                    }

                    if (address6 is not null && mtu < VpnDefaults.MinMtu6)
                    {
                        VpnLog.NoIPv6(_logger, $"the tunnel MTU {mtu} is below 1280");
                        address6 = null;
                    }

                    var cidr = $"{address}/{welcome.PrefixLength}";
                    var cidr6 = address6 is null ? null : $"{address6}/{welcome.PrefixLength6}";
                    if (configured != cidr + cidr6 && _options.ConfigureHost)
                    {
                        Configure(host, tun.Name, address, welcome.PrefixLength, address6, welcome.PrefixLength6, mtu, info, first: configured is null);
                        deviceMtu = mtu;
                        if (configured is null && _options.ApplyDns)
                        {
                            ApplyDns(host, tun.Name, Resolvers(welcome), address6 is not null);
                        }
                    }

                    if (deviceMtu != mtu)
                    {
                        // A reconnect with another MTU than before (the path or the server changed meanwhile).
                        if (_options.ConfigureHost && configured is not null)
                        {
                            host.SetMtu(tun.Name, mtu);
                        }

                        deviceMtu = mtu;
                    }

                    configured = cidr + cidr6;
                    using var peer = new VpnPeer("server", datagrams, tun, Packets.IpPacket.Key(address), address6 is null ? null : Packets.IpPacket.Key(address6),
                        addressIsSource: false, Statistics, _logger)
                    {
                        RemoteMtu = welcome.Mtu > 0 ? welcome.Mtu : int.MaxValue,
                    };
                    peer.Mtu = mtu;
                    peer.Start();
                    _current = peer;
                    if (Connects++ == 0)
                    {
                        reader.Start();
                    }

                    delay = _options.ReconnectDelay;
                    var resolvers = Resolvers(welcome);
                    var state = new VpnClientState(tun.Name, cidr, welcome.Gateway, mtu, $"{node}/{exit}",
                        resolvers.Count == 0 ? null : string.Join(',', resolvers), cidr6, address6 is null ? null : welcome.Gateway6);
                    VpnLog.ClientUp(_logger, state);
                    onUp?.Invoke(state);

                    // The path MTU follows links made or gone since (this node's, measured here; the server's, in its
                    // updates): the device's MTU and the largest packet sent are the smaller of both sides'.
                    var retune = new Lock();
                    void Retune(string why)
                    {
                        lock (retune)
                        {
                            var next = Math.Max(VpnDefaults.MinMtu, Math.Min(Math.Min(peer.RemoteMtu, datagrams.MaxDatagram), pathMtu));
                            if (next == deviceMtu)
                            {
                                return;
                            }

                            VpnLog.MtuChanged(_logger, next, why);
                            peer.Mtu = next;
                            if (_options.ConfigureHost)
                            {
                                host.SetMtu(tun.Name, next);
                            }

                            deviceMtu = next;
                        }
                    }

                    var ended = VpnProtocol.ReadUpdatesAsync(stream, update =>
                    {
                        if (update.Mtu > 0)
                        {
                            peer.RemoteMtu = update.Mtu;
                            Retune($"the server's path MTU is {update.Mtu} now");
                        }
                    }, cancellationToken);
                    while (true)
                    {
                        var tick = Task.Delay(_options.MtuRecheck, cancellationToken);
                        var done = await Task.WhenAny(ended, peer.Closed, tick);
                        cancellationToken.ThrowIfCancellationRequested();
                        if (done != tick)
                        {
                            break;
                        }

                        var fresh = PathMtu.Derive(await app.GetNodeInfoAsync(cancellationToken), _options.Mtu, linkMtu, out var why);
                        if (fresh != pathMtu)
                        {
                            pathMtu = fresh;
                            await VpnProtocol.WriteAsync(stream, new VpnUpdate { Mtu = fresh }, VpnJsonContext.Default.VpnUpdate, cancellationToken);
                            Retune(why ?? "no link of this node's is narrower now");
                        }
                    }

                    reason = "the stream ended";
                }
                catch (Exception ex) when (ex is IOException or InvalidDataException or AppApiException && !cancellationToken.IsCancellationRequested)
                {
                    reason = ex.Message;
                }
                finally
                {
                    _current = null;
                }

                VpnLog.ClientDown(_logger, $"{node}/{exit}", reason, delay);
                await Task.Delay(delay, cancellationToken);
                delay = TimeSpan.FromTicks(Math.Min(delay.Ticks * 2, MaxReconnectDelay.Ticks));
            }
        }
        finally
        {
            VpnLog.Stopped(_logger, Statistics);
        }
    }

    /// <summary>
    /// Addresses, MTU and routes; the device's own routes go with it, pinned underlay routes are undone by
    /// <paramref name="host"/>. The device carries IPv6 when the server leased an IPv6 address, when an IPv6 route is
    /// asked for, or with <see cref="VpnClientOptions.All"/> (then IPv6 without a server address is dropped at the
    /// device instead of leaking around the tunnel).
    /// </summary>
    private void Configure(HostNetwork host, string device, IPAddress address, int prefixLength, IPAddress? address6, int prefixLength6, int mtu,
        NodeInfoMessage info, bool first)
    {
        if (!first)
        {
            host.Ip("addr", "flush", "dev", device);
        }

        var ipv6 = HostNetwork.HasIPv6 && mtu >= VpnDefaults.MinMtu6
            && (address6 is not null || _options.All || _options.Routes.Any(r => r.BaseAddress.AddressFamily == System.Net.Sockets.AddressFamily.InterNetworkV6));
        host.ConfigureDevice(device, address, prefixLength, mtu, ipv6, address6, prefixLength6);
        if (!first)
        {
            return;
        }

        if (_options.All)
        {
            // The mesh's own traffic (link peers, manager, messenger) keeps its route outside the tunnel.
            foreach (var underlay in info.Underlay)
            {
                if (IPAddress.TryParse(underlay, out var peer))
                {
                    host.PinRoute(peer, device);
                }
            }

            foreach (var half in ipv6 ? new[] { "0.0.0.0/1", "128.0.0.0/1", "::/1", "8000::/1" } : ["0.0.0.0/1", "128.0.0.0/1"])
            {
                var network = IPNetwork.Parse(half);
                host.AddRoute(network, device, goesWithDevice: true);
                VpnLog.RouteAdded(_logger, network);
            }
        }

        foreach (var route in _options.Routes)
        {
            if (route.BaseAddress.AddressFamily == System.Net.Sockets.AddressFamily.InterNetworkV6 && !ipv6)
            {
                VpnLog.NoIPv6(_logger, $"route {route} not added (the tunnel MTU {mtu} is below 1280, or this host has no IPv6)");
                continue;
            }

            host.AddRoute(route, device, goesWithDevice: true);
            VpnLog.RouteAdded(_logger, route);
        }
    }

    /// <summary>
    /// The client's nftables table (family inet, so IPv6 too): the TCP MSS of SYNs forwarded into the tunnel clamped to
    /// its MTU (hosts this one routes for), and with <see cref="VpnClientOptions.KillSwitch"/> an output policy of drop
    /// that lets through only loopback, the tunnel, and the node's own mesh traffic: UDP from its link port (links to
    /// any peer, also ones made later) and anything to the underlay addresses it talks to now (manager, messenger, peers).
    /// </summary>
    private void GuardHost(HostNetwork host, string device, NodeInfoMessage info)
    {
        var table = "skywire_vpnc_" + device;
        var body = new StringBuilder();
        body.Append(CultureInfo.InvariantCulture, $"  chain forward {{\n    type filter hook forward priority mangle; policy accept;\n");
        body.Append(CultureInfo.InvariantCulture, $"    oifname \"{device}\" tcp flags syn tcp option maxseg size set rt mtu\n  }}\n");
        if (_options.KillSwitch)
        {
            body.Append(CultureInfo.InvariantCulture, $"  chain output {{\n    type filter hook output priority filter; policy drop;\n");
            body.Append(CultureInfo.InvariantCulture, $"    oifname \"lo\" accept\n    oifname \"{device}\" accept\n");

            // IPv6 neighbour discovery on the underlay: without it an IPv6 link peer becomes unreachable once its
            // neighbour entry expires. (IPv4's ARP is not IP: this table does not see it.)
            body.Append("    icmpv6 type { nd-neighbor-solicit, nd-neighbor-advert, nd-router-solicit } accept\n");
            if (IPEndPoint.TryParse(info.LinkAddress, out var link) && link.Port != 0)
            {
                body.Append(CultureInfo.InvariantCulture, $"    udp sport {link.Port} accept\n");
            }

            foreach (var underlay in info.Underlay)
            {
                if (IPAddress.TryParse(underlay, out var peer))
                {
                    var family = peer.AddressFamily == System.Net.Sockets.AddressFamily.InterNetworkV6 ? "ip6" : "ip";
                    body.Append(CultureInfo.InvariantCulture, $"    {family} daddr {peer} accept\n");
                }
            }

            body.Append("  }\n");
        }

        host.AddNftTable(table, body.ToString(), family: "inet");
        if (_options.KillSwitch)
        {
            VpnLog.KillSwitchOn(_logger, table);
        }
    }

    /// <summary>The resolvers a welcome pushes (a version-1 server sends only <see cref="VpnWelcome.Dns"/>); unparsable ones skipped.</summary>
    private static List<IPAddress> Resolvers(VpnWelcome welcome)
    {
        var list = new List<IPAddress>();
        foreach (var text in welcome.DnsServers ?? (welcome.Dns is null ? [] : [welcome.Dns]))
        {
            if (IPAddress.TryParse(text, out var address) && !list.Contains(address))
            {
                list.Add(address);
            }
        }

        return list;
    }

    /// <summary>
    /// The pushed resolvers: each reached through the tunnel (an IPv6 one only when the tunnel carries IPv6), and
    /// written to the resolver file (put back at exit).
    /// </summary>
    private void ApplyDns(HostNetwork host, string device, List<IPAddress> resolvers, bool ipv6)
    {
        var usable = resolvers.Where(d => ipv6 || d.AddressFamily == System.Net.Sockets.AddressFamily.InterNetwork).ToList();
        if (usable.Count == 0)
        {
            return;
        }

        foreach (var dns in usable)
        {
            if (!_options.All && !_options.Routes.Any(r => r.Contains(dns)))
            {
                host.AddRoute(new IPNetwork(dns, dns.AddressFamily == System.Net.Sockets.AddressFamily.InterNetwork ? 32 : 128), device, goesWithDevice: true);
            }
        }

        var names = string.Join(", ", usable);
        try
        {
            // In a namespace: the file `ip netns exec` bind-mounts over /etc/resolv.conf for programs started there.
            var path = _options.Namespace is { } ns && _options.ResolvConf == VpnClientOptions.Default.ResolvConf ? $"/etc/netns/{ns}/resolv.conf" : _options.ResolvConf;
            if (host.ApplyResolver(usable, path) is { } reason)
            {
                VpnLog.DnsNotApplied(_logger, names, reason);
                return;
            }

            VpnLog.DnsApplied(_logger, names, path);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            VpnLog.DnsNotApplied(_logger, names, ex.Message);
        }
    }

    private static async Task<(string Node, string App)> PickServerAsync(SkywireApp app, CancellationToken cancellationToken)
    {
        var servers = await app.ListAppsAsync("type", VpnServer.ServerType, cancellationToken);
        var pick = servers.Where(s => !string.Equals(s.Node, app.NodeKey, StringComparison.OrdinalIgnoreCase))
            .OrderBy(s => s.Node, StringComparer.Ordinal).ThenBy(s => s.Name, StringComparer.Ordinal).FirstOrDefault();
        return pick is null
            ? throw new AppApiException(AppApiErrorCode.NotFound, "no vpn-server on another node is registered in the app tracker; give --server NODEKEY/APPNAME")
            : (pick.Node, pick.Name);
    }
}

/// <summary>The vpn-server refused this client, or the tunnel cannot work; dialing again would not help.</summary>
public sealed class VpnRefusedException(string message) : Exception(message);
