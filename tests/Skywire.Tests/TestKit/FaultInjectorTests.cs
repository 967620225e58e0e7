using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using Skywire.TestKit;

namespace Skywire.Tests.TestKit;

/// <summary>The impairment harness itself: its rate limit, bounded queue and delay do what they say.</summary>
public sealed class FaultInjectorTests
{
    [Fact]
    public async Task RateLimit_SerialisesAndDropsTailBeyondTheQueue()
    {
        var delivered = new List<long>();
        var done = new TaskCompletionSource();
        var options = new FaultOptions { RateBytesPerSecond = 1_000_000, QueueBytes = 100_000, Seed = 1 };
        using var faults = new FaultInjector(options, d =>
        {
            lock (delivered)
            {
                delivered.Add(Stopwatch.GetTimestamp());
            }
        });
        var start = Stopwatch.GetTimestamp();
        for (var i = 0; i < 200; i++)
        {
            faults.Post(new byte[1000]);
        }
        var posting = Stopwatch.GetElapsedTime(start);

        // About 100 fit the 100 kB queue at 1 MB/s, plus one per millisecond the posting took (the bottleneck drains
        // meanwhile: on a loaded machine that is several); the rest are dropped at once (tail drop).
        Assert.InRange(faults.QueueDrops, 85 - (long)posting.TotalMilliseconds, 100);
        var accepted = 200 - faults.QueueDrops;
        await WaitUntilAsync(() => faults.Delivered == accepted);
        Assert.Equal(accepted * 1000, faults.DeliveredBytes);
        // They left at the rate: the last one no sooner than accepted x 1 ms after the first post.
        var elapsed = Stopwatch.GetElapsedTime(start, delivered[^1]);
        Assert.True(elapsed >= TimeSpan.FromMilliseconds(accepted - 2), $"{accepted} datagrams took {elapsed}");
    }

    [Fact]
    public async Task Delay_NothingArrivesEarly()
    {
        var arrived = new List<TimeSpan>();
        var start = Stopwatch.GetTimestamp();
        using var faults = new FaultInjector(new FaultOptions { Delay = TimeSpan.FromMilliseconds(60), Jitter = TimeSpan.FromMilliseconds(20), Seed = 3 }, d =>
        {
            lock (arrived)
            {
                arrived.Add(Stopwatch.GetElapsedTime(start));
            }
        });
        for (var i = 0; i < 20; i++)
        {
            faults.Post([1]);
        }

        await WaitUntilAsync(() => faults.Delivered == 20);
        Assert.All(arrived, t => Assert.True(t >= TimeSpan.FromMilliseconds(60), t.ToString()));
    }

    /// <summary>The benchmark walks its grid by changing a running relay's faults: the new ones apply at once, both ways.</summary>
    [Fact]
    public async Task Relay_SetFaults_AppliesToTheNextDatagrams()
    {
        using var target = new Socket(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp);
        target.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        using var client = new Socket(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp);
        client.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        using var relay = new UdpFaultRelay((IPEndPoint)target.LocalEndPoint!);
        var ct = TestContext.Current.CancellationToken;
        var buffer = new byte[16];

        client.SendTo([1], relay.ListenEndPoint);
        var got = await target.ReceiveFromAsync(buffer, new IPEndPoint(IPAddress.Any, 0), ct);
        Assert.Equal(1, buffer[0]);

        relay.SetFaults(new FaultOptions { DropRate = 1 }, new FaultOptions { Delay = TimeSpan.FromMilliseconds(50) });
        Assert.Equal(0, relay.ToTarget.Posted);
        for (var i = 0; i < 10; i++)
        {
            client.SendTo([2], relay.ListenEndPoint);
        }

        await WaitUntilAsync(() => relay.ToTarget.Dropped == 10);
        Assert.Equal(0, relay.ToTarget.Delivered);
        var sent = Stopwatch.GetTimestamp();
        target.SendTo([3], got.RemoteEndPoint);
        await client.ReceiveFromAsync(buffer, new IPEndPoint(IPAddress.Any, 0), ct);
        Assert.Equal(3, buffer[0]);
        Assert.True(Stopwatch.GetElapsedTime(sent) >= TimeSpan.FromMilliseconds(50));
        // The relay counts a datagram after handing it on, so the client can hold it before the count moves.
        await WaitUntilAsync(() => relay.FromTarget.Delivered == 1);
        Assert.Equal(0, relay.FromTarget.Dropped);
    }

    private static async Task WaitUntilAsync(Func<bool> condition)
    {
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(30);
        while (!condition())
        {
            Assert.True(DateTime.UtcNow < deadline, "condition not met within 30 s");
            await Task.Delay(5, TestContext.Current.CancellationToken);
        }
    }
}
