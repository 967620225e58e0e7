using System.Buffers.Binary;
using System.Net;
using Skywire.Apps.Vpn;
using Skywire.Apps.Vpn.Packets;
using Skywire.Core.Node;
using Skywire.IntegrationTests.Mesh;
using Skywire.Protocol.AppApi;

namespace Skywire.IntegrationTests.Vpn;

/// <summary>
/// vpn-server and vpn-client in this process over an in-process mesh, with in-memory TUN devices: packets both ways
/// across 1 and 3 hops, a client off the allow-list or with a wrong passcode is refused, and malformed or spoofed
/// datagrams from a rogue client are dropped and counted while the tunnel goes on.
/// </summary>
public sealed class VpnInProcessTests
{
    private static readonly TimeSpan Limit = MeshHarness.Limit;
    private const string Behind = "10.78.0.2";
    private const string Behind6 = "fd78::2";

    private sealed class Running(VpnServer server, InMemoryTunDevice serverTun, Task serverTask, CancellationTokenSource stop) : IAsyncDisposable
    {
        public VpnServer Server => server;

        public InMemoryTunDevice ServerTun => serverTun;

        public async ValueTask DisposeAsync()
        {
            await stop.CancelAsync();
            await serverTask.WaitAsync(Limit);
            Assert.True(serverTun.IsDisposed, "the server's TUN device was not closed");
            stop.Dispose();
        }
    }

    // inNode: the app runs "inside the node's process" (`skywire node --vpn-server`): its packets skip the app API.
    private static VpnAppBinding Binding(NodeHost node, string name, bool inNode) =>
        new(node.AppsEndPoint, node.AppToken, name) { InProcess = inNode ? node.AttachDatagrams : null };

    private static async Task<Running> StartServerAsync(NodeHost node, VpnServerOptions? options = null, bool inNode = false)
    {
        var tun = new InMemoryTunDevice("skysrv%d");
        var server = new VpnServer((options ?? VpnServerOptions.Default) with { ConfigureHost = false, OpenTun = _ => tun });
        var stop = new CancellationTokenSource();
        var ready = new TaskCompletionSource();
        var task = server.RunAsync(Binding(node, "vpn", inNode), (_, _) => ready.TrySetResult(), stop.Token);
        await Task.WhenAny(ready.Task, task).WaitAsync(Limit);
        if (task.IsFaulted)
        {
            await task;
        }

        return new Running(server, tun, task, stop);
    }

    private static async Task<(VpnClient Client, InMemoryTunDevice Tun, VpnClientState State, Task Run)> StartClientAsync(NodeHost node, NodeHost server,
        CancellationToken cancellationToken, string? passcode = null, bool inNode = false)
    {
        // In the node's process the client's device takes coalesced TCP (as a Linux TUN does): TCP segments are held
        // until the node's receive burst ends, so a lost end-of-burst call would keep them from the host.
        var tun = new InMemoryTunDevice("skycli%d") { Offloads = inNode };
        var client = new VpnClient(VpnClientOptions.Default with { ConfigureHost = false, OpenTun = _ => tun, Passcode = passcode });
        var up = new TaskCompletionSource<VpnClientState>();
        var run = client.RunAsync(Binding(node, "cli", inNode), $"{server.NodeKey}/vpn", s => up.TrySetResult(s), cancellationToken);
        await Task.WhenAny(up.Task, run).WaitAsync(Limit);
        if (run.IsCompleted)
        {
            await run;
        }

        return (client, tun, await up.Task, run);
    }

    /// <summary>Injects <paramref name="packet"/> at <paramref name="from"/> (again while lost) until it comes out of <paramref name="to"/>.</summary>
    private static async Task CrossAsync(InMemoryTunDevice from, InMemoryTunDevice to, byte[] packet)
    {
        var deadline = DateTime.UtcNow + Limit;
        while (true)
        {
            from.Inject(packet);
            using var wait = new CancellationTokenSource(TimeSpan.FromMilliseconds(500));
            try
            {
                while (true)
                {
                    var got = await to.Written.ReadAsync(wait.Token);
                    if (got.AsSpan().SequenceEqual(packet))
                    {
                        return;
                    }
                }
            }
            catch (OperationCanceledException)
            {
                Assert.True(DateTime.UtcNow < deadline, "the packet did not cross the tunnel");
            }
        }
    }

    [Theory]
    [InlineData(1, false)]
    [InlineData(3, false)]
    [InlineData(1, true)]
    [InlineData(3, true)]
    public async Task Packets_CrossBothWays(int hops, bool inNode)
    {
        await using var mesh = MeshHarness.Start();
        var nodes = await mesh.AddNodesAsync(hops + 1);
        for (var i = 0; i < hops; i++)
        {
            await mesh.LinkAsync(nodes[i], nodes[i + 1]);
        }

        await using var running = await StartServerAsync(nodes[^1], inNode: inNode);
        using var stop = new CancellationTokenSource();
        var (client, tun, state, run) = await StartClientAsync(nodes[0], nodes[^1], stop.Token, inNode: inNode);
        Assert.Equal(inNode, client.InProcess);
        await MeshHarness.WaitUntilAsync(() => running.Server.Clients == 1, "the server has the client");
        Assert.Equal(inNode ? 1 : 0, running.Server.ClientsInProcess);
        Assert.Equal("10.66.0.2/24", state.Address);
        Assert.Equal("10.66.0.1", state.Gateway);
        Assert.Equal(nodes[0].DataPlane.MaxSessionDatagram - FlowDatagramHeader, state.Mtu);

        var address = state.Address.Split('/')[0];
        await CrossAsync(tun, running.ServerTun, VpnPacketTestsPackets.Udp4(address, Behind, 1000));
        await CrossAsync(running.ServerTun, tun, VpnPacketTestsPackets.Udp4(Behind, address, state.Mtu - 28));

        // IPv6 beside it, largest packet too; a packet from another IPv6 source is not sent by the client.
        Assert.Equal("fd66:736b:7977::2/64", state.Address6);
        Assert.Equal("fd66:736b:7977::1", state.Gateway6);
        var address6 = state.Address6!.Split('/')[0];
        await CrossAsync(tun, running.ServerTun, VpnPacketTestsPackets.Udp6(address6, Behind6, 1000));
        await CrossAsync(running.ServerTun, tun, VpnPacketTestsPackets.Udp6(Behind6, address6, state.Mtu - 48));
        // TCP segments (held for coalescing where the device offloads) reach the host, both ways, one after another,
        // each sent once: a held segment must be written when the receive burst ends, not when the next one comes.
        for (var i = 0; i < 3; i++)
        {
            var segment = VpnPacketTestsPackets.TcpAck4(Behind, address, (uint)(1000 + (i * 100)), 100);
            running.ServerTun.Inject(segment);
            using (var once = new CancellationTokenSource(Limit))
            {
                // (A late copy of an earlier test packet may come first.)
                while (!(await tun.Written.ReadAsync(once.Token)).AsSpan().SequenceEqual(segment))
                {
                }
            }

            await CrossAsync(tun, running.ServerTun, VpnPacketTestsPackets.TcpAck4(address, Behind, (uint)(5000 + (i * 100)), 100));
        }

        var noPeer = client.Statistics.NoPeer;
        tun.Inject(VpnPacketTestsPackets.Udp6("fe80::1", Behind6, 10));
        await MeshHarness.WaitUntilAsync(() => client.Statistics.NoPeer > noPeer, "the foreign IPv6 source dropped at the client");
        Assert.Equal(1, running.Server.Clients);

        await stop.CancelAsync();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => run.WaitAsync(Limit));
        Assert.True(tun.IsDisposed);
        Assert.True(client.Statistics.FromTun >= 1 && client.Statistics.ToTun >= 1);
    }

    /// <summary>
    /// The relay on the tunnel's route dies while packets flow: the manager re-routes the session over the other relay
    /// and the tunnel carries on — same tunnel, same address (so TCP connections inside it survive), no re-dial.
    /// </summary>
    [Fact]
    public async Task RelayKilled_TunnelCarriesOnOverNewRoute()
    {
        await using var mesh = MeshHarness.Start();
        var n = await mesh.AddNodesAsync(4);
        var (a, b, c, d) = (n[0], n[1], n[2], n[3]);
        await mesh.LinkAsync(a, b);
        await mesh.LinkAsync(b, d);
        await mesh.LinkAsync(a, c);
        await mesh.LinkAsync(c, d);
        await using var running = await StartServerAsync(d);
        using var stop = new CancellationTokenSource();
        var (client, tun, state, run) = await StartClientAsync(a, d, stop.Token);
        var address = state.Address.Split('/')[0];
        await CrossAsync(tun, running.ServerTun, VpnPacketTestsPackets.Udp4(address, Behind, 500));

        // Traffic keeps flowing while the relay dies.
        using var flowing = new CancellationTokenSource();
        var pump = Task.Run(async () =>
        {
            var i = 0;
            while (!flowing.IsCancellationRequested)
            {
                tun.Inject(VpnPacketTestsPackets.Udp4(address, Behind, 100 + (i++ % 1000)));
                await Task.Delay(2);
            }
        });
        var route = mesh.Manager.Controller.ListRoutes().Routes.Single();
        var victim = route.Path[1];
        await mesh.RemoveNodeAsync(mesh.Nodes.Single(x => x.NodeKey == victim));
        await MeshHarness.WaitUntilAsync(() => mesh.Manager.Controller.ListRoutes().Routes.SingleOrDefault() is { } r && !r.Path.Contains(victim), "re-routed around the dead relay");
        await flowing.CancelAsync();
        await pump;

        // Both directions work again, on the same tunnel.
        await CrossAsync(tun, running.ServerTun, VpnPacketTestsPackets.Udp4(address, Behind, 700));
        await CrossAsync(running.ServerTun, tun, VpnPacketTestsPackets.Udp4(Behind, address, 700));
        Assert.Equal(1, client.Connects);
        await stop.CancelAsync();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => run.WaitAsync(Limit));
    }

    private const int FlowDatagramHeader = Protocol.Sessions.FlowDatagram.HeaderLength;

    [Fact]
    public async Task AllowListAndPasscode_RefuseWithReason()
    {
        await using var mesh = MeshHarness.Start();
        var (a, b, c) = (await mesh.AddNodeAsync(), await mesh.AddNodeAsync(), await mesh.AddNodeAsync());
        await mesh.LinkAsync(a, b);
        await mesh.LinkAsync(c, b);
        await using var running = await StartServerAsync(b, VpnServerOptions.Default with
        {
            AllowedClients = new HashSet<string>([a.NodeKey], StringComparer.OrdinalIgnoreCase),
            Passcode = "open sesame",
        });

        var offList = await Assert.ThrowsAsync<VpnRefusedException>(() => StartClientAsync(c, b, CancellationToken.None, "open sesame"));
        Assert.Contains("allow-list", offList.Message, StringComparison.Ordinal);
        var wrong = await Assert.ThrowsAsync<VpnRefusedException>(() => StartClientAsync(a, b, CancellationToken.None, "guess"));
        Assert.Contains("passcode", wrong.Message, StringComparison.Ordinal);
        Assert.Equal(0, running.Server.Pool.Count);

        using var stop = new CancellationTokenSource();
        // The same app name as the refused clients: the node hands over a name whose connection its app closed,
        // even before it reads that close (AppApiServerTests has the deterministic regression test).
        var (_, _, state, run) = await StartClientAsync(a, b, stop.Token, "open sesame");
        Assert.Equal("10.66.0.2/24", state.Address);
        await stop.CancelAsync();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => run.WaitAsync(Limit));
    }

    [Fact]
    public async Task RogueClient_MalformedAndSpoofedDatagrams_DroppedAndCounted()
    {
        await using var mesh = MeshHarness.Start();
        var (a, b) = (await mesh.AddNodeAsync(), await mesh.AddNodeAsync());
        await mesh.LinkAsync(a, b);
        await using var running = await StartServerAsync(b);

        // A hand-made client: hello, welcome, then datagrams that are not what a vpn-client sends.
        await using var app = await MeshHarness.AppAsync(a);
        await using var stream = await app.DialAsync(b.NodeKey, "vpn").WaitAsync(Limit);
        await VpnProtocol.WriteAsync(stream, new VpnHello(), VpnJsonContext.Default.VpnHello, default);
        var welcome = await VpnProtocol.ReadAsync(stream, VpnJsonContext.Default.VpnWelcome, default).WaitAsync(Limit);
        Assert.Null(welcome.Error);
        await using var datagrams = await app.OpenDatagramsAsync(stream).WaitAsync(Limit);
        await MeshHarness.WaitUntilAsync(() => running.Server.Clients == 1, "the rogue client registered");

        var good = VpnPacketTestsPackets.Udp4(welcome.Address, Behind, 64);
        var spoofed = VpnPacketTestsPackets.Udp4("10.66.0.99", Behind, 64);
        var truncated = good[..30];
        var v6 = new byte[48];
        v6[0] = 0x60;
        v6[5] = 8;
        var writer = new DatagramRecordWriter();
        var deadline = DateTime.UtcNow + Limit;
        while (running.Server.Statistics.Malformed < 2 || running.Server.Statistics.Refused < 2)
        {
            Assert.True(DateTime.UtcNow < deadline, $"not counted: {running.Server.Statistics}");
            foreach (var d in new[] { spoofed, truncated, [], new byte[] { 0x45 }, v6 })
            {
                writer.TryAdd(d);
            }

            await datagrams.SendRecordsAsync(writer.WrittenMemory);
            writer.Clear();
            await Task.Delay(100);
        }

        // None of them reached the host; a good packet still does.
        while (running.ServerTun.Written.TryRead(out var leaked))
        {
            Assert.Fail("a bad datagram reached the TUN: " + Convert.ToHexString(leaked));
        }

        using var wait = new CancellationTokenSource(Limit);
        while (true)
        {
            datagrams.Send(good);
            using var one = CancellationTokenSource.CreateLinkedTokenSource(wait.Token);
            one.CancelAfter(500);
            try
            {
                var got = await running.ServerTun.Written.ReadAsync(one.Token);
                Assert.Equal(good, got);
                break;
            }
            catch (OperationCanceledException) when (!wait.IsCancellationRequested)
            {
            }
        }

        Assert.Equal(0, running.Server.Statistics.TunErrors);
    }
    /// <summary>
    /// A client behind a narrower path than the server's (its hello says MTU 1000): the server answers a larger
    /// don't-fragment packet toward it with ICMP "fragmentation needed" (MTU 1000) into its own TUN instead of sending
    /// it; after the client's update (MTU 1300) such a packet crosses, and a larger IPv6 one gets "packet too big".
    /// </summary>
    [Fact]
    public async Task NarrowerClientPath_ServerAnswersTooBig_AndFollowsUpdates()
    {
        await using var mesh = MeshHarness.Start();
        var (a, b) = (await mesh.AddNodeAsync(), await mesh.AddNodeAsync());
        await mesh.LinkAsync(a, b);
        await using var running = await StartServerAsync(b);

        await using var app = await MeshHarness.AppAsync(a);
        await using var stream = await app.DialAsync(b.NodeKey, "vpn").WaitAsync(Limit);
        await VpnProtocol.WriteAsync(stream, new VpnHello { Mtu = 1000 }, VpnJsonContext.Default.VpnHello, default);
        var welcome = await VpnProtocol.ReadAsync(stream, VpnJsonContext.Default.VpnWelcome, default).WaitAsync(Limit);
        Assert.Null(welcome.Error);
        Assert.True(welcome.Mtu > 1300);
        await using var datagrams = await app.OpenDatagramsAsync(stream).WaitAsync(Limit);
        await MeshHarness.WaitUntilAsync(() => running.Server.Clients == 1, "the client registered");

        var big = DontFragment(VpnPacketTestsPackets.Udp4(Behind, welcome.Address, 1100 - 28));
        running.ServerTun.Inject(big);
        var icmp = await running.ServerTun.Written.ReadAsync().AsTask().WaitAsync(Limit);
        Assert.Equal(1, running.Server.Statistics.TooBig);
        Assert.Equal(IpProtocol.Icmp, icmp[9]);
        Assert.Equal(big.AsSpan(12, 4).ToArray(), icmp[16..20]); // to the sender
        Assert.Equal(big.AsSpan(16, 4).ToArray(), icmp[12..16]); // from the destination
        Assert.Equal(new byte[] { 3, 4 }, icmp[20..22]);
        Assert.Equal(1000, BinaryPrimitives.ReadUInt16BigEndian(icmp.AsSpan(26)));
        Assert.Equal(big[..548], icmp[28..]);
        Assert.Equal(0xFFFF, Checksum.Fold(Checksum.Add(icmp.AsSpan(20))));

        // The client's path widened: the same packet now crosses, whole.
        await VpnProtocol.WriteAsync(stream, new VpnUpdate { Mtu = 1300 }, VpnJsonContext.Default.VpnUpdate, default);
        var reader = new DatagramRecordReader();
        using var wait = new CancellationTokenSource(Limit);
        while (true)
        {
            running.ServerTun.Inject(big);
            using var one = CancellationTokenSource.CreateLinkedTokenSource(wait.Token);
            one.CancelAfter(500);
            try
            {
                byte[]? got = null;
                while (got is null)
                {
                    await datagrams.ReceiveAsync(reader, one.Token);
                    got = NextRecord(reader);
                }

                Assert.Equal(big, got);
                break;
            }
            catch (OperationCanceledException) when (!wait.IsCancellationRequested)
            {
            }
        }

        var big6 = VpnPacketTestsPackets.Udp6(Behind6, welcome.Address6!, 1400 - 48);
        var tooBig = running.Server.Statistics.TooBig;
        running.ServerTun.Inject(big6);
        await MeshHarness.WaitUntilAsync(() => running.Server.Statistics.TooBig > tooBig, "the large IPv6 packet answered");
        byte[] icmp6;
        do
        {
            icmp6 = await running.ServerTun.Written.ReadAsync().AsTask().WaitAsync(Limit);
        }
        while (icmp6[0] >> 4 != 6);

        Assert.Equal(IpProtocol.IcmpV6, icmp6[6]);
        Assert.Equal(big6.AsSpan(8, 16).ToArray(), icmp6[24..40]);
        Assert.Equal(new byte[] { 2, 0 }, icmp6[40..42]);
        Assert.Equal(1300u, BinaryPrimitives.ReadUInt32BigEndian(icmp6.AsSpan(44)));
        Assert.Equal(big6[..(1280 - 48)], icmp6[48..]);
        var sum = Checksum.PseudoHeader(icmp6.AsSpan(8, 16), icmp6.AsSpan(24, 16), IpProtocol.IcmpV6, icmp6.Length - 40);
        Assert.Equal(0xFFFF, Checksum.Fold(Checksum.Add(icmp6.AsSpan(40), sum)));
    }

    private static byte[]? NextRecord(DatagramRecordReader reader) => reader.TryRead(out var datagram) ? datagram.ToArray() : null;

    private static byte[] DontFragment(byte[] packet)
    {
        packet[6] = 0x40;
        Checksum.SetIPv4Header(packet.AsSpan(0, 20));
        return packet;
    }
}

/// <summary>Packet builders shared with the unit tests' shape (kept here: the test projects do not reference each other).</summary>
internal static class VpnPacketTestsPackets
{
    public static byte[] Udp4(string source, string destination, int payload)
    {
        var packet = new byte[20 + 8 + payload];
        packet[0] = 0x45;
        BinaryPrimitives.WriteUInt16BigEndian(packet.AsSpan(2), (ushort)packet.Length);
        packet[8] = 64;
        packet[9] = IpProtocol.Udp;
        IPAddress.Parse(source).TryWriteBytes(packet.AsSpan(12), out _);
        IPAddress.Parse(destination).TryWriteBytes(packet.AsSpan(16), out _);
        BinaryPrimitives.WriteUInt16BigEndian(packet.AsSpan(24), (ushort)(8 + payload));
        Checksum.SetIPv4Header(packet.AsSpan(0, 20));
        return packet;
    }

    /// <summary>A TCP segment with only ACK set (what the TUN writer holds to coalesce), ports 5201 to 40000.</summary>
    public static byte[] TcpAck4(string source, string destination, uint sequence, int payload)
    {
        var packet = new byte[20 + 20 + payload];
        packet[0] = 0x45;
        BinaryPrimitives.WriteUInt16BigEndian(packet.AsSpan(2), (ushort)packet.Length);
        packet[6] = 0x40; // don't fragment
        packet[8] = 64;
        packet[9] = IpProtocol.Tcp;
        IPAddress.Parse(source).TryWriteBytes(packet.AsSpan(12), out _);
        IPAddress.Parse(destination).TryWriteBytes(packet.AsSpan(16), out _);
        Checksum.SetIPv4Header(packet.AsSpan(0, 20));
        var tcp = packet.AsSpan(20);
        BinaryPrimitives.WriteUInt16BigEndian(tcp, 5201);
        BinaryPrimitives.WriteUInt16BigEndian(tcp[2..], 40000);
        BinaryPrimitives.WriteUInt32BigEndian(tcp[4..], sequence);
        BinaryPrimitives.WriteUInt32BigEndian(tcp[8..], 77);
        tcp[12] = 5 << 4;
        tcp[13] = 0x10; // ACK
        BinaryPrimitives.WriteUInt16BigEndian(tcp[14..], 500);
        for (var i = 0; i < payload; i++)
        {
            tcp[20 + i] = (byte)(sequence + i);
        }

        Skywire.Apps.Vpn.Tun.TcpOffload.SetTcpChecksum(packet, 20);
        return packet;
    }

    public static byte[] Udp6(string source, string destination, int payload)
    {
        var packet = new byte[40 + 8 + payload];
        packet[0] = 0x60;
        BinaryPrimitives.WriteUInt16BigEndian(packet.AsSpan(4), (ushort)(8 + payload));
        packet[6] = IpProtocol.Udp;
        packet[7] = 64;
        IPAddress.Parse(source).TryWriteBytes(packet.AsSpan(8), out _);
        IPAddress.Parse(destination).TryWriteBytes(packet.AsSpan(24), out _);
        BinaryPrimitives.WriteUInt16BigEndian(packet.AsSpan(44), (ushort)(8 + payload));
        return packet;
    }
}
