using System.Buffers.Binary;
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
/// The vpn-server app (docs/vpn.md): registers as type <c>vpn-server</c>, owns one TUN device holding the subnet's
/// first address, leases each client key one address (kept across reconnects), and moves IP packets between the TUN
/// and each client's datagram flow. With NAT on, client traffic leaves this host masqueraded (nftables table made at
/// start and deleted at exit, IPv4 forwarding restored).
/// </summary>
public sealed class VpnServer
{
    /// <summary>Tracker type of the exit app.</summary>
    public const string ServerType = "vpn-server";

    private const int ParallelAccepts = 2;
    private static readonly TimeSpan HelloLimit = TimeSpan.FromSeconds(15);

    private readonly VpnServerOptions _options;
    private readonly ILogger _logger;
    private readonly ConcurrentDictionary<uint, VpnPeer> _peers = new();

    /// <param name="options">Options.</param>
    /// <param name="logger">Logger.</param>
    public VpnServer(VpnServerOptions options, ILogger? logger = null)
    {
        ArgumentNullException.ThrowIfNull(options);
        _options = options;
        _logger = logger ?? NullLogger.Instance;
        Pool = new AddressPool(options.Subnet);
    }

    /// <summary>The address leases.</summary>
    public AddressPool Pool { get; }

    /// <summary>Packet counters.</summary>
    public VpnStatistics Statistics { get; } = new();

    /// <summary>Clients connected now.</summary>
    public int Clients => _peers.Count;

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
        var mtu = Math.Min(_options.Mtu, info.MaxDatagram);
        if (mtu < VpnDefaults.MinMtu)
        {
            throw new IOException($"the mesh carries datagrams of at most {info.MaxDatagram} bytes: too small for an IP tunnel (at least {VpnDefaults.MinMtu})");
        }

        using var host = new HostNetwork(_logger);
        using var tun = _options.OpenTun(_options.Device);
        if (_options.ConfigureHost)
        {
            HostNetwork.ConfigureDevice(tun.Name, Pool.Gateway, Pool.Subnet.PrefixLength, mtu);
            if (_options.Nat)
            {
                host.EnableForwarding();
                var table = "skywire_vpn_" + tun.Name;
                host.AddNftTable(table, string.Create(CultureInfo.InvariantCulture, $$"""
                      chain postrouting {
                        type nat hook postrouting priority srcnat; policy accept;
                        ip saddr {{Pool.Subnet}} oifname != "{{tun.Name}}" masquerade
                      }
                      chain forward {
                        type filter hook forward priority mangle; policy accept;
                        tcp flags syn tcp option maxseg size set rt mtu
                      }
                    """));
                VpnLog.NatOn(_logger, Pool.Subnet, table);
            }
        }

        using var reader = new TunReader(tun, Route, Statistics, _logger);
        reader.Start();
        await app.RegisterAsync(binding.Name, ServerType, cancellationToken);
        VpnLog.Registered(_logger, ServerType, app.NodeKey, binding.Name, tun.Name);
        onReady?.Invoke($"{app.NodeKey}/{binding.Name}", tun.Name);

        try
        {
            await app.ServeStreamsAsync((stream, stopping) => ServeAsync(app, stream, tun, mtu, stopping), ParallelAccepts, cancellationToken);
        }
        finally
        {
            foreach (var peer in _peers.Values)
            {
                peer.Dispose();
            }

            VpnLog.Stopped(_logger, Statistics);
        }
    }

    private VpnPeer? Route(ReadOnlySpan<byte> packet) =>
        IpPacket.Version(packet) == 4 && _peers.TryGetValue(BinaryPrimitives.ReadUInt32BigEndian(IpPacket.Destination(packet)), out var peer) ? peer : null;

    /// <summary>One client: hello, checks, address, then its datagram flow until the stream ends.</summary>
    private async Task ServeAsync(SkywireApp app, SkywireStream stream, Tun.ITunDevice tun, int mtu, CancellationToken cancellationToken)
    {
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
            if (refusal is null && address is null)
            {
                refusal = $"the address pool {Pool.Subnet} is full";
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
                Dns = _options.Dns?.ToString(),
            }, VpnJsonContext.Default.VpnWelcome, cancellationToken);

            var datagrams = await app.OpenDatagramsAsync(stream, cancellationToken);
            var key = AddressPool.ToUInt(address);
            using var peer = new VpnPeer(client[..Math.Min(12, client.Length)], datagrams, tun, key, addressIsSource: true, Statistics, _logger);
            peer.Start();
            if (_peers.TryGetValue(key, out var previous))
            {
                // The same client again (it restarted before its old stream was seen to end): the new tunnel wins.
                previous.Dispose();
            }

            _peers[key] = peer;
            VpnLog.ClientConnected(_logger, client, address);
            try
            {
                var ended = WaitForEndAsync(stream, cancellationToken);
                await Task.WhenAny(ended, peer.Closed, Task.Delay(Timeout.Infinite, cancellationToken));
            }
            finally
            {
                _peers.TryRemove(new KeyValuePair<uint, VpnPeer>(key, peer));
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

    /// <summary>Completes when the client closes its stream (it sends nothing after the hello).</summary>
    private static async Task WaitForEndAsync(SkywireStream stream, CancellationToken cancellationToken)
    {
        var buffer = new byte[256];
        try
        {
            while (await stream.ReadAsync(buffer, cancellationToken) > 0)
            {
            }
        }
        catch (IOException)
        {
        }
    }
}
