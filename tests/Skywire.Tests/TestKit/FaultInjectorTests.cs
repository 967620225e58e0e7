using System.Diagnostics;
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

        // About 100 fit the 100 kB queue at 1 MB/s; the rest are dropped at once (tail drop).
        Assert.InRange(faults.QueueDrops, 85, 100);
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
