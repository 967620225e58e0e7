using System.Net;
using System.Net.Sockets;
using Skywire.TestKit;

namespace Skywire.Tests.Mux;

public class UdpFaultRelayTests
{
    [Fact]
    public async Task Relay_ForwardsBothWays_AndDropsWhenTold()
    {
        var ct = TestContext.Current.CancellationToken;
        using var target = new Socket(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp);
        target.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        using var relay = new UdpFaultRelay((IPEndPoint)target.LocalEndPoint!);
        using var client = new Socket(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp);
        client.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        Assert.NotEqual(0, relay.ListenEndPoint.Port);

        await client.SendToAsync("ping"u8.ToArray(), relay.ListenEndPoint, ct);
        var buffer = new byte[100];
        var got = await target.ReceiveFromAsync(buffer, new IPEndPoint(IPAddress.Any, 0), ct).AsTask().WaitAsync(MuxTestUtil.TestTimeout, ct);
        Assert.Equal("ping"u8.ToArray(), buffer[..got.ReceivedBytes]);
        Assert.Equal(relay.UpstreamEndPoint, got.RemoteEndPoint);

        await target.SendToAsync("pong"u8.ToArray(), got.RemoteEndPoint, ct);
        var back = await client.ReceiveFromAsync(buffer, new IPEndPoint(IPAddress.Any, 0), ct).AsTask().WaitAsync(MuxTestUtil.TestTimeout, ct);
        Assert.Equal("pong"u8.ToArray(), buffer[..back.ReceivedBytes]);
        Assert.Equal(relay.ListenEndPoint, back.RemoteEndPoint);

        relay.Blackhole = true;
        for (var i = 0; i < 20; i++)
        {
            await client.SendToAsync("lost"u8.ToArray(), relay.ListenEndPoint, ct);
        }
        var deadline = DateTime.UtcNow + MuxTestUtil.TestTimeout;
        while (relay.ToTarget.Dropped < 20)
        {
            Assert.True(DateTime.UtcNow < deadline);
            await Task.Delay(10, ct);
        }
        Assert.Equal(0, target.Available);
        relay.Blackhole = false;
        await client.SendToAsync("again"u8.ToArray(), relay.ListenEndPoint, ct);
        got = await target.ReceiveFromAsync(buffer, new IPEndPoint(IPAddress.Any, 0), ct).AsTask().WaitAsync(MuxTestUtil.TestTimeout, ct);
        Assert.Equal("again"u8.ToArray(), buffer[..got.ReceivedBytes]);
    }

    [Fact]
    public async Task FaultInjector_SeededFaults_AreReproducibleAndCounted()
    {
        var options = new FaultOptions { DropRate = 0.2, DuplicateRate = 0.1, ReorderRate = 0.1, ReorderWindow = 3, Seed = 77 };
        async Task<List<int>> RunAsync()
        {
            var received = new List<int>();
            var done = new TaskCompletionSource();
            using var faults = new FaultInjector(options, d =>
            {
                lock (received)
                {
                    received.Add(BitConverter.ToInt32(d));
                }
            });
            for (var i = 0; i < 1000; i++)
            {
                faults.Post(BitConverter.GetBytes(i));
            }
            var deadline = DateTime.UtcNow + MuxTestUtil.TestTimeout;
            while (faults.Delivered < faults.Posted - faults.Dropped + faults.Duplicated)
            {
                Assert.True(DateTime.UtcNow < deadline);
                await Task.Delay(5);
            }
            Assert.InRange(faults.Dropped, 120, 280);
            Assert.InRange(faults.Duplicated, 40, 160);
            lock (received)
            {
                return [.. received];
            }
        }
        var first = await RunAsync();
        var second = await RunAsync();
        Assert.Equal(first.Order(), second.Order()); // same seed, same drops and duplicates
        Assert.NotEqual(first.Order(), first);       // reordered
        Assert.True(first.Count != first.Distinct().Count());
    }
}

public class MuxOverUdpRelayTests
{
    [Fact]
    public async Task Mux_ThroughFaultyUdpRelay_TransfersExactly_AndSurvivesABriefCut()
    {
        var ct = TestContext.Current.CancellationToken;
        using var endA = new UdpDatagramTransport();
        using var endB = new UdpDatagramTransport();
        var faults = new FaultOptions { DropRate = 0.02, DuplicateRate = 0.01, ReorderRate = 0.02, ReorderWindow = 4, Seed = 8 };
        using var relay = new UdpFaultRelay(endB.LocalEndPoint, faults, faults with { Seed = 9 });
        endA.Remote = relay.ListenEndPoint;     // A talks to the relay
        endB.Remote = relay.UpstreamEndPoint;   // B answers the relay's upstream socket
        var options = Skywire.Core.Sessions.Mux.MuxOptions.Default with { MinRetransmissionTimeout = TimeSpan.FromMilliseconds(10) };
        await using var a = new Skywire.Core.Sessions.Mux.StreamMultiplexer(endA, options);
        await using var b = new Skywire.Core.Sessions.Mux.StreamMultiplexer(endB, options);
        endA.Receiver = a.Receive;
        endB.Receiver = b.Receive;

        var open = a.OpenStreamAsync("over-udp"u8.ToArray(), ct).AsTask();
        var server = await b.AcceptStreamAsync(ct).AsTask().WaitAsync(MuxTestUtil.TestTimeout, ct);
        server.Accept();
        var client = await open.WaitAsync(MuxTestUtil.TestTimeout, ct);
        var read = MuxTestUtil.ReadPatternAsync(server, seed: 31);
        var write = MuxTestUtil.WritePatternAsync(client, 4_000_000, seed: 31, complete: false);
        var deadline = DateTime.UtcNow + MuxTestUtil.TestTimeout;
        while (b.Statistics.BytesReceived < 1_000_000)
        {
            Assert.True(DateTime.UtcNow < deadline, "the transfer did not start");
            await Task.Delay(5, ct);
        }
        relay.Blackhole = true; // a 300 ms cut: retransmission carries the stream across it
        await Task.Delay(300, ct);
        relay.Blackhole = false;
        var sent = await write.WaitAsync(MuxTestUtil.TestTimeout, ct);
        await client.CompleteWritesAsync(ct);
        var (count, hash) = await read.WaitAsync(MuxTestUtil.TestTimeout, ct);
        Assert.Equal(4_000_000, count);
        Assert.Equal(sent, hash);
        Assert.True(relay.ToTarget.Dropped > 0);
        Assert.True(a.Statistics.RetransmissionTimeouts > 0);
    }
}
