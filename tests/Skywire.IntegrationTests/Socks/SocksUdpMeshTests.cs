using System.Collections.Concurrent;
using System.Net;
using System.Net.Sockets;
using System.Threading.Channels;
using Skywire.Apps.Socks;
using Skywire.Core.Sdk;
using Skywire.IntegrationTests.Mesh;

namespace Skywire.IntegrationTests.Socks;

/// <summary>
/// SOCKS5 UDP ASSOCIATE across a 2-hop in-process mesh (entry - relay - exit): UDP echo servers on loopback reached
/// through socks-client and socks-server, the association's lifetime, and malformed or foreign datagrams.
/// </summary>
public sealed class SocksUdpMeshTests : IAsyncLifetime
{
    private static readonly TimeSpan Limit = MeshHarness.Limit;
    private readonly CancellationTokenSource _stop = new();
    private readonly Channel<Task> _handlers = Channel.CreateUnbounded<Task>();
    private readonly UdpEcho _echo4 = new(IPAddress.Loopback);
    private readonly UdpEcho _echo6 = new(IPAddress.IPv6Loopback);
    private MeshHarness _mesh = null!;
    private SkywireApp _exitApp = null!;
    private SkywireApp _entryApp = null!;
    private SocksClient _client = null!;
    private Task _accepting = null!;
    private IPEndPoint _proxy = null!;

    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    // The dial (route, session handshake) and the exit's answer may be slow on a loaded host: an upper bound only.
    private static SocksClientOptions ClientOptions => SocksClientOptions.Default with
    {
        Listen = new IPEndPoint(IPAddress.Loopback, 0),
        ReplyTimeout = TimeSpan.FromMinutes(2),
    };

    public async ValueTask InitializeAsync()
    {
        _mesh = MeshHarness.Start();
        var nodes = await _mesh.AddNodesAsync(3);
        var (entry, relay, exit) = (nodes[0], nodes[1], nodes[2]);
        await _mesh.LinkAsync(entry, relay);
        await _mesh.LinkAsync(relay, exit);

        // The exit serves each stream with its own SocksServer call, so a test can await the end of an association there.
        _exitApp = await SkywireApp.ConnectAsync(exit.AppsEndPoint, exit.AppToken, Ct);
        await _exitApp.RegisterAsync("exit", SocksApps.ServerType, Ct);
        var server = new SocksServer(SocksServerOptions.Default with { AllowLoopbackTargets = true });
        _accepting = Task.Run(async () =>
        {
            while (!_stop.IsCancellationRequested)
            {
                var stream = await _exitApp.AcceptAsync(_stop.Token);
                _handlers.Writer.TryWrite(server.HandleStreamAsync(stream, stream.RemoteNode, _stop.Token));
            }
        });

        _entryApp = await SkywireApp.ConnectAsync(entry.AppsEndPoint, entry.AppToken, Ct);
        await _entryApp.RegisterAsync("entry", SocksApps.ClientType, Ct);
        var exitKey = exit.NodeKey;
        _client = new SocksClient(ClientOptions,
            async ct => await _entryApp.DialAsync(exitKey, "exit", ct));
        _proxy = _client.Start();
    }

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync();
        await _client.DisposeAsync();
        // The accept loop ends by its cancelled accept (or sees the cancellation between two accepts), nothing else.
        var ended = await Record.ExceptionAsync(() => _accepting.WaitAsync(Limit));
        Assert.True(ended is null or OperationCanceledException, $"the exit's accept loop ended with {ended}");

        await _entryApp.DisposeAsync();
        await _exitApp.DisposeAsync();
        await _mesh.DisposeAsync();
        _echo4.Dispose();
        _echo6.Dispose();
    }

    [Fact]
    public async Task SeveralTargets_OneAssociation_ByteExactReplies_FromTheRightSource()
    {
        await using var association = await UdpAssociation.OpenAsync(_proxy, Ct);
        var targets = new[]
        {
            (Send: SocksEndpoint.FromIP(IPAddress.Loopback, (ushort)_echo4.Port), From: SocksEndpoint.FromIP(IPAddress.Loopback, (ushort)_echo4.Port)),
            (Send: SocksEndpoint.FromIP(IPAddress.IPv6Loopback, (ushort)_echo6.Port), From: SocksEndpoint.FromIP(IPAddress.IPv6Loopback, (ushort)_echo6.Port)),
            // A name, resolved at the exit (IPv4 first).
            (Send: SocksEndpoint.FromHost("localhost", (ushort)_echo4.Port), From: SocksEndpoint.FromIP(IPAddress.Loopback, (ushort)_echo4.Port)),
        };
        var random = new Random(1928);
        foreach (var size in new[] { 1, 17, 512, 1400, 9000, 60_000 })
        {
            foreach (var (send, from) in targets)
            {
                var payload = new byte[size];
                random.NextBytes(payload);
                var (source, data) = await association.ExchangeAsync(send, payload, Ct);
                Assert.Equal(from, source);
                Assert.Equal(payload, data);
            }
        }
    }

    [Fact]
    public async Task ClosingTheTcpControlConnection_EndsTheAssociation_AtBothEnds()
    {
        var association = await UdpAssociation.OpenAsync(_proxy, Ct);
        var (_, data) = await association.ExchangeAsync(SocksEndpoint.FromIP(IPAddress.Loopback, (ushort)_echo4.Port), [1, 2, 3], Ct);
        Assert.Equal([1, 2, 3], data);
        var exitSide = await _handlers.Reader.ReadAsync(Ct).AsTask().WaitAsync(Limit, Ct);
        Assert.False(exitSide.IsCompleted);

        association.Control.Dispose();

        // The exit's handler ends only when the client has closed the association's mesh stream, which it does
        // after closing its relay socket: then a datagram to the relay port is refused (ICMP port unreachable).
        await exitSide.WaitAsync(Limit, Ct);
        Assert.True(await IsClosedAsync(association.Udp), "the relay port still takes datagrams");
        association.Udp.Dispose();
    }

    [Fact]
    public async Task MalformedAndForeignDatagrams_AreDropped_TheAssociationGoesOn()
    {
        await using var association = await UdpAssociation.OpenAsync(_proxy, Ct);
        var echo = SocksEndpoint.FromIP(IPAddress.Loopback, (ushort)_echo4.Port);
        Assert.Equal("pin"u8.ToArray(), (await association.ExchangeAsync(echo, "pin"u8.ToArray(), Ct)).Data);

        var valid = UdpAssociation.Encode(echo, "dropped"u8.ToArray());
        var malformed = new List<byte[]>();
        var fragment = (byte[])valid.Clone();
        fragment[2] = 1;
        malformed.Add(fragment);
        var reserved = (byte[])valid.Clone();
        reserved[0] = 0x80;
        malformed.Add(reserved);
        for (var cut = 0; cut < 10; cut++)
        {
            malformed.Add(valid[..cut]);
        }

        var random = new Random(6);
        while (malformed.Count < 300)
        {
            var mutated = (byte[])valid.Clone();
            mutated[random.Next(10)] = (byte)random.Next(256);
            if (random.Next(4) == 0)
            {
                mutated = new byte[random.Next(0, 64)];
                random.NextBytes(mutated);
            }

            // Keep only what the header rules reject (a mutation may still be a valid datagram to some address).
            if (SocksUdpCodec.TryReadRequest(mutated, out _, out _) != SocksUdpDrop.None)
            {
                malformed.Add(mutated);
            }
        }

        foreach (var datagram in malformed)
        {
            association.Udp.Send(datagram);
        }

        // Another local socket (another port) sending a valid datagram: not the client that asked.
        using (var intruder = new UdpClient(new IPEndPoint(IPAddress.Loopback, 0)))
        {
            intruder.Send(UdpAssociation.Encode(echo, "intruder"u8.ToArray()), association.Relay);
        }

        // Datagrams to the relay are handled in arrival order, and the echo server sees the survivors in order:
        // once the last one's answer is back, any earlier datagram that got through would have been echoed first.
        Assert.Equal("final"u8.ToArray(), (await association.ExchangeAsync(echo, "final"u8.ToArray(), Ct)).Data);
        Assert.Equal(["final", "pin"], _echo4.Received.Select(p => System.Text.Encoding.ASCII.GetString(p)).Distinct().Order());
    }

    [Fact]
    public async Task UdpAssociate_RefusedByTheExit_GetsItsReplyCode()
    {
        // An exit with an allow-list that does not include the entry node refuses the association like a CONNECT.
        await using var app = await SkywireApp.ConnectAsync(_mesh.Nodes[2].AppsEndPoint, _mesh.Nodes[2].AppToken, Ct);
        await app.RegisterAsync("strict", SocksApps.ServerType, Ct);
        var strict = new SocksServer(SocksServerOptions.Default with { AllowedClients = new HashSet<string> { new('0', 66) } });
        var serving = Task.Run(async () =>
        {
            var stream = await app.AcceptAsync(Ct);
            await strict.HandleStreamAsync(stream, stream.RemoteNode, Ct);
        });
        var exitKey = _mesh.Nodes[2].NodeKey;
        await using var client = new SocksClient(ClientOptions,
            async ct => await _entryApp.DialAsync(exitKey, "strict", ct));
        using var tunnel = await SocksTestClient.ConnectAsync(client.Start(), SocksEndpoint.Unspecified, Ct, command: SocksCommand.UdpAssociate);
        Assert.Equal(SocksReplyCode.NotAllowedByRuleset, tunnel.Reply);
        await serving.WaitAsync(Limit, Ct);
    }

    /// <summary>
    /// True once a datagram to the relay is answered by ICMP port unreachable (a connected UDP socket then fails
    /// with ConnectionRefused). The probe is resent in case a socket close is still being completed.
    /// </summary>
    private static async Task<bool> IsClosedAsync(UdpClient udp)
    {
        for (var attempt = 0; attempt < 10; attempt++)
        {
            udp.Send([0, 0, 0, 1, 127, 0, 0, 1, 0, 7, 42]);
            using var wait = CancellationTokenSource.CreateLinkedTokenSource(Ct);
            wait.CancelAfter(TimeSpan.FromSeconds(3));
            try
            {
                await udp.ReceiveAsync(wait.Token);
            }
            catch (SocketException ex) when (ex.SocketErrorCode == SocketError.ConnectionRefused)
            {
                return true;
            }
            catch (OperationCanceledException) when (!Ct.IsCancellationRequested)
            {
            }
        }

        return false;
    }

    /// <summary>A SOCKS5 UDP client: the TCP control connection and a connected UDP socket to the relay.</summary>
    internal sealed class UdpAssociation : IAsyncDisposable
    {
        private UdpAssociation(NetworkStream control, UdpClient udp, IPEndPoint relay)
        {
            Control = control;
            Udp = udp;
            Relay = relay;
        }

        public NetworkStream Control { get; }

        public UdpClient Udp { get; }

        public IPEndPoint Relay { get; }

        public static async Task<UdpAssociation> OpenAsync(IPEndPoint proxy, CancellationToken cancellationToken)
        {
            var udp = new UdpClient(new IPEndPoint(IPAddress.Loopback, 0));
            var self = (IPEndPoint)udp.Client.LocalEndPoint!;
            // DST.ADDR/DST.PORT: where this client will send from.
            var tunnel = await SocksTestClient.ConnectAsync(proxy, SocksEndpoint.FromIP(self), cancellationToken, command: SocksCommand.UdpAssociate);
            Assert.Equal(SocksReplyCode.Succeeded, tunnel.Reply);
            var relay = tunnel.Bound ?? throw new InvalidOperationException("no BND in the reply");
            udp.Connect(relay);
            return new UdpAssociation(tunnel.Stream, udp, relay);
        }

        public static byte[] Encode(SocksEndpoint destination, byte[] data)
        {
            var buffer = new byte[SocksUdpCodec.MaxHeaderSize + data.Length];
            var header = SocksUdpCodec.WriteReplyHeader(buffer, destination);
            data.CopyTo(buffer, header);
            return buffer[..(header + data.Length)];
        }

        /// <summary>Sends <paramref name="data"/> to <paramref name="destination"/> and returns the echo (resent if a datagram was lost).</summary>
        public async Task<(SocksEndpoint Source, byte[] Data)> ExchangeAsync(SocksEndpoint destination, byte[] data, CancellationToken cancellationToken)
        {
            var datagram = Encode(destination, data);
            for (var attempt = 0; ; attempt++)
            {
                await Udp.SendAsync(datagram, cancellationToken);
                using var wait = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
                wait.CancelAfter(TimeSpan.FromSeconds(attempt < 5 ? 5 : 30));
                try
                {
                    while (true)
                    {
                        var reply = (await Udp.ReceiveAsync(wait.Token)).Buffer;
                        Assert.Equal(SocksUdpDrop.None, SocksUdpCodec.TryReadRequest(reply, out var source, out var header));
                        if (reply.AsSpan(header).SequenceEqual(data))
                        {
                            return (source, reply[header..]);
                        }

                        // A late echo of an earlier resend: skip it.
                    }
                }
                catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested && attempt < 5)
                {
                    // UDP may lose a datagram on a loaded host: send it again.
                }
            }
        }

        public async ValueTask DisposeAsync()
        {
            await Control.DisposeAsync();
            Udp.Dispose();
        }
    }

    /// <summary>A UDP echo server on a loopback address; records every payload it got.</summary>
    internal sealed class UdpEcho : IDisposable
    {
        private readonly UdpClient _udp;
        private readonly Task _loop;

        public UdpEcho(IPAddress address)
        {
            _udp = new UdpClient(new IPEndPoint(address, 0));
            Port = ((IPEndPoint)_udp.Client.LocalEndPoint!).Port;
            _loop = Task.Run(async () =>
            {
                try
                {
                    while (true)
                    {
                        var received = await _udp.ReceiveAsync();
                        Received.Enqueue(received.Buffer);
                        await _udp.SendAsync(received.Buffer, received.RemoteEndPoint);
                    }
                }
                catch (Exception ex) when (ex is SocketException or ObjectDisposedException)
                {
                }
            });
        }

        public int Port { get; }

        public ConcurrentQueue<byte[]> Received { get; } = new();

        public void Dispose()
        {
            _udp.Dispose();
            _loop.Wait(TimeSpan.FromSeconds(10));
        }
    }
}
