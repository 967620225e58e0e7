using System.Collections.Concurrent;
using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Skywire.Apps.Vpn.Packets;
using Skywire.Core.AppApi;
using Skywire.Core.Sdk;

namespace Skywire.Apps.Vpn;

/// <summary>
/// The vpn-server app (docs/vpn.md): registers as type <c>vpn-server</c>, owns one TUN device holding the first
/// address of its IPv4 subnet and of its IPv6 subnet, leases each client key one address of each (kept across
/// reconnects), and moves IP packets between the TUN and each client's datagram flow. With NAT on, client traffic
/// leaves this host masqueraded (NAT44 and NAT66; nftables table made at start and deleted at exit, forwarding restored).
/// </summary>
public sealed class VpnServer
{
    /// <summary>Tracker type of the exit app.</summary>
    public const string ServerType = "vpn-server";

    private const int ParallelAccepts = 2;
    private static readonly TimeSpan HelloLimit = TimeSpan.FromSeconds(15);

    private readonly VpnServerOptions _options;
    private readonly ILogger _logger;
    // By each of the client's tunnel addresses (IpPacket.Key): one peer appears once per family.
    private readonly ConcurrentDictionary<UInt128, VpnPeer> _peers = new();
    private volatile bool _ipv6;
    private int _mtu; // this side's path MTU now (the device's MTU)

    /// <param name="options">Options.</param>
    /// <param name="logger">Logger.</param>
    public VpnServer(VpnServerOptions options, ILogger? logger = null)
    {
        ArgumentNullException.ThrowIfNull(options);
        _options = options;
        _logger = logger ?? NullLogger.Instance;
        Pool = new AddressPool(options.Subnet);
        Pool6 = options.Subnet6 is { } subnet6 ? new AddressPool(subnet6) : null;
    }

    /// <summary>The IPv4 address leases.</summary>
    public AddressPool Pool { get; }

    /// <summary>The IPv6 address leases (null: IPv4 only).</summary>
    public AddressPool? Pool6 { get; }

    /// <summary>Whether the server hands out IPv6 addresses (known once running: needs an IPv6 pool, a host with IPv6 and a tunnel MTU of at least 1280).</summary>
    public bool IPv6 => _ipv6;

    /// <summary>Packet counters.</summary>
    public VpnStatistics Statistics { get; } = new();

    /// <summary>Clients connected now.</summary>
    public int Clients => _peers.Values.Distinct().Count();

    /// <summary>Connected clients whose packets go inside the node's process (<see cref="VpnAppBinding.InProcess"/>).</summary>
    public int ClientsInProcess => _peers.Values.Distinct().Count(p => p.InProcess);

    /// <summary>
    /// Registers and serves clients until cancelled or the node goes away; undoes every host change on the way out.
    /// <paramref name="onReady"/> gets <c>NODEKEY/NAME</c> and the device name once serving.
    /// </summary>
    /// <exception cref="AppApiException">The node refused or could not be reached.</exception>
    /// <exception cref="IOException">The TUN device or the host's network could not be set up.</exception>
    public async Task RunAsync(VpnAppBinding binding, Action<string, string>? onReady = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(binding);
        await using var app = await SkywireApp.ConnectAsync(binding.NodeApps, binding.Token, cancellationToken);
        var info = await app.GetNodeInfoAsync(cancellationToken);
        var mtu = PathMtu.Derive(info, _options.Mtu, _options.ConfigureHost ? HostNetwork.MtuToward : _ => null, out var limitedBy);
        if (limitedBy is not null)
        {
            VpnLog.MtuFromPath(_logger, mtu, limitedBy);
        }

        if (mtu < VpnDefaults.MinMtu)
        {
            throw new IOException($"the tunnel MTU would be {mtu} (the mesh carries datagrams of at most {info.MaxDatagram} bytes{(limitedBy is null ? "" : "; " + limitedBy)}): too small for an IP tunnel (at least {VpnDefaults.MinMtu})");
        }

        // IPv6 needs a host with IPv6 and a tunnel MTU of at least 1280; otherwise the server is IPv4 only.
        _ipv6 = Pool6 is not null && mtu >= VpnDefaults.MinMtu6 && (!_options.ConfigureHost || HostNetwork.HasIPv6);
        if (Pool6 is not null && !_ipv6)
        {
            VpnLog.NoIPv6(_logger, mtu < VpnDefaults.MinMtu6 ? $"the tunnel MTU {mtu} is below 1280" : "this host has no IPv6");
        }

        using var host = new HostNetwork(_logger);
        using var tun = _options.OpenTun(_options.Device);
        VpnLog.TunOpened(_logger, tun.Name, tun.Offloads ? "offloads on (TSO super-packets cut on read, TCP segments coalesced on write)" : "offloads off (one packet per read and write)");
        if (_options.ConfigureHost)
        {
            host.ConfigureDevice(tun.Name, Pool.Gateway, Pool.Subnet.PrefixLength, mtu, _ipv6, Pool6?.Gateway, Pool6?.Subnet.PrefixLength ?? 0);
            if (_options.Nat)
            {
                host.EnableForwarding(HostNetwork.IPv4Forwarding);
                var nat6 = "";
                if (_ipv6)
                {
                    host.EnableForwarding(HostNetwork.IPv6Forwarding);
                    nat6 = $"    ip6 saddr {Pool6!.Subnet} oifname != \"{tun.Name}\" masquerade\n";
                }

                var table = "skywire_vpn_" + tun.Name;
                host.AddNftTable(table, string.Create(CultureInfo.InvariantCulture, $$"""
                      chain postrouting {
                        type nat hook postrouting priority srcnat; policy accept;
                        ip saddr {{Pool.Subnet}} oifname != "{{tun.Name}}" masquerade
                    {{nat6}}  }
                      chain forward {
                        type filter hook forward priority mangle; policy accept;
                        tcp flags syn tcp option maxseg size set rt mtu
                      }
                    """), family: "inet");
                VpnLog.NatOn(_logger, _ipv6 ? $"{Pool.Subnet} and {Pool6!.Subnet}" : Pool.Subnet.ToString(), table);
            }
        }

        Volatile.Write(ref _mtu, mtu);
        using var reader = new TunReader(tun, Route, Statistics, _logger);
        reader.Start();
        await app.RegisterAsync(binding.Name, ServerType, cancellationToken);
        VpnLog.Registered(_logger, ServerType, app.NodeKey, binding.Name, tun.Name);
        onReady?.Invoke($"{app.NodeKey}/{binding.Name}", tun.Name);

        using var stopWatch = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        var watch = WatchMtuAsync(app, host, tun.Name, stopWatch.Token);
        try
        {
            await app.ServeStreamsAsync((stream, stopping) => ServeAsync(app, binding, stream, tun, stopping), ParallelAccepts, cancellationToken);
        }
        finally
        {
            await stopWatch.CancelAsync();
            await watch;
            foreach (var peer in _peers.Values.Distinct())
            {
                peer.Dispose();
            }

            VpnLog.Stopped(_logger, Statistics);
        }
    }

    private VpnPeer? Route(ReadOnlySpan<byte> packet) =>
        _peers.TryGetValue(IpPacket.Key(IpPacket.Destination(packet)), out var peer) ? peer : null;

    /// <summary>One client: hello, checks, address, then its datagram flow until the stream ends.</summary>
    private async Task ServeAsync(SkywireApp app, VpnAppBinding binding, SkywireStream stream, Tun.ITunDevice tun, CancellationToken cancellationToken)
    {
        var mtu = Volatile.Read(ref _mtu);
        await using var _ = stream;
        var client = stream.RemoteNode;
        try
        {
            VpnHello hello;
            using (var helloLimit = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken))
            {
                helloLimit.CancelAfter(HelloLimit);
                try
                {
                    hello = await VpnProtocol.ReadAsync(stream, VpnJsonContext.Default.VpnHello, helloLimit.Token);
                }
                catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
                {
                    VpnLog.BadHello(_logger, client, "no hello in time");
                    return;
                }
            }

            var refusal = Check(hello, client, stream);
            var address = refusal is null ? Pool.Lease(client) : null;
            var address6 = refusal is null && _ipv6 ? Pool6!.Lease(client) : null;
            if (refusal is null && (address is null || (_ipv6 && address6 is null)))
            {
                refusal = $"the address pool {(address is null ? Pool.Subnet : Pool6!.Subnet)} is full";
            }

            if (refusal is not null)
            {
                VpnLog.ClientRefused(_logger, client, refusal);
                await VpnProtocol.WriteAsync(stream, new VpnWelcome { Error = refusal }, VpnJsonContext.Default.VpnWelcome, cancellationToken);
                await stream.CompleteWritesAsync(cancellationToken);
                return;
            }

            await VpnProtocol.WriteAsync(stream, new VpnWelcome
            {
                Address = address!.ToString(),
                PrefixLength = Pool.Subnet.PrefixLength,
                Gateway = Pool.Gateway.ToString(),
                Mtu = mtu,
                Dns = _options.DnsServers.Count > 0 ? _options.DnsServers[0].ToString() : null,
                DnsServers = _options.DnsServers.Count > 0 ? [.. _options.DnsServers.Select(d => d.ToString())] : null,
                Address6 = address6?.ToString(),
                PrefixLength6 = address6 is null ? 0 : Pool6!.Subnet.PrefixLength,
                Gateway6 = address6 is null ? null : Pool6!.Gateway.ToString(),
            }, VpnJsonContext.Default.VpnWelcome, cancellationToken);

            var datagrams = await VpnDatagrams.OpenAsync(app, stream, binding, cancellationToken);
            var key = IpPacket.Key(address);
            UInt128? key6 = address6 is null ? null : IpPacket.Key(address6);
            using var peer = new VpnPeer(client[..Math.Min(12, client.Length)], datagrams, tun, key, key6, addressIsSource: true, Statistics, _logger)
            {
                Control = stream,
                RemoteMtu = hello.Mtu > 0 ? hello.Mtu : int.MaxValue,
            };
            peer.Mtu = Math.Min(mtu, peer.RemoteMtu);
            peer.Start();
            if (_peers.TryGetValue(key, out var previous))
            {
                // The same client again (it restarted before its old stream was seen to end): the new tunnel wins.
                previous.Dispose();
            }

            _peers[key] = peer;
            if (key6 is { } k6)
            {
                _peers[k6] = peer;
            }

            VpnLog.ClientConnected(_logger, client, address6 is null ? address.ToString() : $"{address} and {address6}");
            try
            {
                // The client sends nothing after its hello but MTU updates; the stream's end is the tunnel's.
                var ended = VpnProtocol.ReadUpdatesAsync(stream, update =>
                {
                    peer.RemoteMtu = update.Mtu > 0 ? update.Mtu : int.MaxValue;
                    peer.Mtu = Math.Min(Volatile.Read(ref _mtu), peer.RemoteMtu);
                }, cancellationToken);
                await Task.WhenAny(ended, peer.Closed, Task.Delay(Timeout.Infinite, cancellationToken));
            }
            finally
            {
                _peers.TryRemove(new KeyValuePair<UInt128, VpnPeer>(key, peer));
                if (key6 is { } removed6)
                {
                    _peers.TryRemove(new KeyValuePair<UInt128, VpnPeer>(removed6, peer));
                }

                VpnLog.ClientLeft(_logger, client, Statistics);
            }
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
        }
        catch (Exception ex) when (ex is IOException or InvalidDataException or AppApiException)
        {
            VpnLog.BadHello(_logger, client, ex.Message);
        }
    }

    private string? Check(VpnHello hello, string client, SkywireStream stream)
    {
        if (hello.Version != VpnProtocol.Version)
        {
            return $"protocol version {hello.Version} is not supported (this server speaks {VpnProtocol.Version})";
        }

        if (_options.AllowedClients.Count > 0 && !_options.AllowedClients.Contains(client))
        {
            return "this node key is not on the server's allow-list";
        }

        if (_options.Passcode is { } expected)
        {
            var given = Encoding.UTF8.GetBytes(hello.Passcode ?? "");
            if (!CryptographicOperations.FixedTimeEquals(SHA256.HashData(given), SHA256.HashData(Encoding.UTF8.GetBytes(expected))))
            {
                return "wrong passcode";
            }
        }

        return stream.DatagramHandle is null ? "the stream cannot carry datagrams (relayed by a messenger?)" : null;
    }

    /// <summary>
    /// Measures the path MTU again every <see cref="VpnServerOptions.MtuRecheck"/>: when a link of this node's was made
    /// or changed since, the device's MTU and every client's limit follow, and each client is told (<see cref="VpnUpdate"/>).
    /// </summary>
    private async Task WatchMtuAsync(SkywireApp app, HostNetwork host, string device, CancellationToken cancellationToken)
    {
        if (_options.MtuRecheck == Timeout.InfiniteTimeSpan)
        {
            return;
        }

        try
        {
            while (true)
            {
                await Task.Delay(_options.MtuRecheck, cancellationToken);
                var info = await app.GetNodeInfoAsync(cancellationToken);
                var mtu = Math.Max(VpnDefaults.MinMtu, PathMtu.Derive(info, _options.Mtu, _options.ConfigureHost ? HostNetwork.MtuToward : _ => null, out var limitedBy));
                if (mtu == Volatile.Read(ref _mtu))
                {
                    continue;
                }

                VpnLog.MtuChanged(_logger, mtu, limitedBy ?? "no link of this node's is narrower now");
                if (_options.ConfigureHost)
                {
                    host.SetMtu(device, mtu);
                }

                Volatile.Write(ref _mtu, mtu);
                foreach (var peer in _peers.Values.Distinct())
                {
                    peer.Mtu = Math.Min(mtu, peer.RemoteMtu);
                    if (peer.Control is { } control)
                    {
                        try
                        {
                            await VpnProtocol.WriteAsync(control, new VpnUpdate { Mtu = mtu }, VpnJsonContext.Default.VpnUpdate, cancellationToken);
                        }
                        catch (Exception ex) when (ex is IOException or ObjectDisposedException)
                        {
                            // That client is leaving; its tunnel ends on its own.
                        }
                    }
                }
            }
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
        }
        catch (Exception ex) when (ex is IOException or AppApiException)
        {
            VpnLog.MtuWatchFailed(_logger, ex.Message);
        }
    }
}
