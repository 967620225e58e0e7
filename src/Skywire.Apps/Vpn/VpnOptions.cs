using System.Net;
using Skywire.Apps.Vpn.Tun;

namespace Skywire.Apps.Vpn;

/// <summary>Where a VPN app finds its node: the app API address and token (docs/protocol.md §7).</summary>
/// <param name="NodeApps">The node's app API address (loopback).</param>
/// <param name="Token">The node's app token. Never logged.</param>
/// <param name="Name">This app's name in the tracker.</param>
public sealed record VpnAppBinding(IPEndPoint NodeApps, string Token, string Name)
{
    /// <summary>
    /// Set when the app runs inside its node's process (`skywire node --vpn-server/--vpn-client`): attaches to a
    /// stream's datagram flow by its handle (<see cref="Skywire.Core.Node.NodeHost.AttachDatagrams"/>), so the packets
    /// skip the app API connection. Null: the app API's datagram connection (docs/protocol.md §7.1).
    /// </summary>
    public Func<string, Skywire.Core.AppApi.InProcessDatagrams?>? InProcess { get; init; }

    /// <inheritdoc />
    public override string ToString() => $"VpnAppBinding {{ NodeApps = {NodeApps}, Name = {Name} }}";
}

/// <summary>How the vpn-server runs.</summary>
public sealed record VpnServerOptions
{
    /// <summary>The default <see cref="Subnet6"/>: fd66:736b:7977::/64 (unique local, "sky" in hex after fd66). Declared before <see cref="Default"/>, which uses it.</summary>
    public static IPNetwork DefaultSubnet6 { get; } = IPNetwork.Parse("fd66:736b:7977::/64");

    /// <summary>The defaults.</summary>
    public static VpnServerOptions Default { get; } = new();

    /// <summary>TUN device name; <c>%d</c> lets the kernel number it.</summary>
    public string Device { get; init; } = "skyvpn%d";

    /// <summary>The VPN subnet: the server takes its first address, clients the rest.</summary>
    public IPNetwork Subnet { get; init; } = IPNetwork.Parse("10.66.0.0/24");

    /// <summary>
    /// The IPv6 subnet (a unique local /64 by default; null: IPv4 only): the server takes its first address, clients
    /// the rest, one per key like IPv4. Ignored on a host without IPv6.
    /// </summary>
    public IPNetwork? Subnet6 { get; init; } = DefaultSubnet6;

    /// <summary>Upper bound of the tunnel MTU (the path's largest datagram may lower it).</summary>
    public int Mtu { get; init; } = 1500;

    /// <summary>Client node keys allowed; empty allows any.</summary>
    public IReadOnlySet<string> AllowedClients { get; init; } = new HashSet<string>();

    /// <summary>Passcode clients must send, if any. Never logged.</summary>
    public string? Passcode { get; init; }

    /// <summary>Forward client traffic out of this host with NAT (IPv4/IPv6 forwarding + nftables masquerade, NAT66 for IPv6).</summary>
    public bool Nat { get; init; } = true;

    /// <summary>Resolver addresses (IPv4 or IPv6) pushed to clients.</summary>
    public IReadOnlyList<IPAddress> DnsServers { get; init; } = [];

    /// <summary>Set the device's address and MTU, forwarding and NAT on the host (off only in tests with an in-memory TUN).</summary>
    public bool ConfigureHost { get; init; } = true;

    /// <summary>
    /// How often the path MTU is measured again while running (links made or gone since; docs/vpn.md "MTU").
    /// <see cref="Timeout.InfiniteTimeSpan"/>: never.
    /// </summary>
    public TimeSpan MtuRecheck { get; init; } = TimeSpan.FromSeconds(15);

    /// <summary>Opens the TUN device (Linux by default; tests give an in-memory one).</summary>
    public Func<string, ITunDevice> OpenTun { get; init; } = VpnDefaults.OpenTun;

    /// <inheritdoc/>
    public override string ToString() => $"VpnServerOptions {{ Device = {Device}, Subnet = {Subnet}, Subnet6 = {Subnet6}, Mtu = {Mtu}, Nat = {Nat}, Allowed = {AllowedClients.Count} }}";
}

/// <summary>How the vpn-client runs.</summary>
public sealed record VpnClientOptions
{
    /// <summary>The defaults.</summary>
    public static VpnClientOptions Default { get; } = new();

    /// <summary>TUN device name; <c>%d</c> lets the kernel number it.</summary>
    public string Device { get; init; } = "skyvpn%d";

    /// <summary>Subnets (IPv4 or IPv6) routed into the tunnel.</summary>
    public IReadOnlyList<IPNetwork> Routes { get; init; } = [];

    /// <summary>
    /// Route everything into the tunnel (0.0.0.0/1 + 128.0.0.0/1, and ::/1 + 8000::/1 — also when the server has no
    /// IPv6, so IPv6 does not leak around the tunnel), keeping the node's own underlay peers on their current routes so
    /// the mesh does not route into itself.
    /// </summary>
    public bool All { get; init; }

    /// <summary>Passcode the server expects. Never logged.</summary>
    public string? Passcode { get; init; }

    /// <summary>
    /// Kill switch: while the app runs (also while the tunnel is down and being dialed again) nothing leaves the host
    /// except through the tunnel, on loopback, or as the node's own mesh traffic (its link port, its manager and
    /// messenger, its link peers). IPv4 and IPv6. Removed at a normal exit; a killed app leaves it in place (fail closed).
    /// </summary>
    public bool KillSwitch { get; init; }

    /// <summary>Apply the resolver the server pushes: route it into the tunnel and write it to <see cref="ResolvConf"/> (put back at exit).</summary>
    public bool ApplyDns { get; init; }

    /// <summary>The resolver file <see cref="ApplyDns"/> rewrites.</summary>
    public string ResolvConf { get; init; } = "/etc/resolv.conf";

    /// <summary>Upper bound of the tunnel MTU.</summary>
    public int Mtu { get; init; } = 1500;

    /// <summary>
    /// A named network namespace (<c>ip netns add NAME</c>, made beforehand) to put the tunnel in: the TUN device is
    /// moved there and its addresses, routes, nftables table and resolver (<c>/etc/netns/NAME/resolv.conf</c>) are set
    /// there, so only programs in that namespace use the VPN. Null: this process's namespace.
    /// </summary>
    public string? Namespace { get; init; }

    /// <summary>Set the device's address, MTU and routes on the host (off only in tests with an in-memory TUN).</summary>
    public bool ConfigureHost { get; init; } = true;

    /// <summary>First wait before dialing again after the tunnel broke (doubles up to 10 s).</summary>
    public TimeSpan ReconnectDelay { get; init; } = TimeSpan.FromMilliseconds(500);

    /// <summary>
    /// How often the path MTU is measured again while running (links made or gone since; docs/vpn.md "MTU").
    /// <see cref="Timeout.InfiniteTimeSpan"/>: never.
    /// </summary>
    public TimeSpan MtuRecheck { get; init; } = TimeSpan.FromSeconds(15);

    /// <summary>Opens the TUN device (Linux by default; tests give an in-memory one).</summary>
    public Func<string, ITunDevice> OpenTun { get; init; } = VpnDefaults.OpenTun;

    /// <inheritdoc/>
    public override string ToString() => $"VpnClientOptions {{ Device = {Device}, Routes = {Routes.Count}, All = {All}, KillSwitch = {KillSwitch}, ApplyDns = {ApplyDns}, Mtu = {Mtu}, Namespace = {Namespace} }}";
}

/// <summary>What a running vpn-client reports once its tunnel is up.</summary>
/// <param name="Device">The TUN device.</param>
/// <param name="Address">The client's address and prefix.</param>
/// <param name="Gateway">The server's tunnel address.</param>
/// <param name="Mtu">The tunnel MTU.</param>
/// <param name="Server">The server as NODEKEY/APPNAME.</param>
/// <param name="Dns">The resolvers the server pushed, if any (comma-separated).</param>
/// <param name="Address6">The client's IPv6 address and prefix, when the server has IPv6.</param>
/// <param name="Gateway6">The server's IPv6 tunnel address, when it has IPv6.</param>
public sealed record VpnClientState(string Device, string Address, string Gateway, int Mtu, string Server, string? Dns, string? Address6 = null, string? Gateway6 = null)
{
    /// <inheritdoc/>
    public override string ToString() => $"device {Device} address {Address} gateway {Gateway} mtu {Mtu} server {Server}"
        + (Address6 is null ? "" : $" address6 {Address6} gateway6 {Gateway6}") + (Dns is null ? "" : $" dns {Dns}");
}

internal static class VpnDefaults
{
    // SKYWIRE_VPN_OFFLOAD=0 opens the device without IFF_VNET_HDR offloads (one packet per read and write; docs/vpn.md).
    public static ITunDevice OpenTun(string name) => OperatingSystem.IsLinux()
        ? LinuxTunDevice.Open(name, offloads: Environment.GetEnvironmentVariable("SKYWIRE_VPN_OFFLOAD") != "0")
        : throw new PlatformNotSupportedException("the VPN's TUN device is implemented for Linux only");

    /// <summary>IPv4 needs 576; below that the tunnel is useless.</summary>
    public const int MinMtu = 576;

    /// <summary>IPv6 needs 1280 (RFC 8200 §5); a smaller tunnel carries IPv4 only.</summary>
    public const int MinMtu6 = 1280;
}
