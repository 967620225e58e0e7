using Microsoft.Extensions.Time.Testing;
using Skywire.Core.Channels;

namespace Skywire.Tests.Control;

public sealed class BackoffTests
{
    private static readonly TimeSpan Initial = TimeSpan.FromMilliseconds(100);
    private static readonly TimeSpan Max = TimeSpan.FromSeconds(5);

    [Fact]
    public void Next_StaysWithinInitialAndCap_GrowsToCap()
    {
        var backoff = new Backoff(Initial, Max, new Random(1));
        var previous = Initial;
        var reachedCapRegion = false;
        for (var i = 0; i < 200; i++)
        {
            var delay = backoff.Next();
            Assert.InRange(delay, Initial, Max);
            Assert.True(delay <= previous * 3, $"attempt {i}: {delay} > 3 x {previous}");
            reachedCapRegion |= delay > Max / 2;
            previous = delay;
        }

        Assert.True(reachedCapRegion, "delays never grew toward the cap");
        Assert.Equal(200, backoff.Attempts);
    }

    [Fact]
    public void Next_IsJittered_TwoLoopsDoNotRetryInStep()
    {
        var a = new Backoff(Initial, Max, new Random(1));
        var b = new Backoff(Initial, Max, new Random(2));
        var same = Enumerable.Range(0, 10).Count(_ => a.Next() == b.Next());
        Assert.True(same <= 1, $"{same} of 10 delays equal");
    }

    [Fact]
    public void Reset_StartsOverFromInitial()
    {
        var backoff = new Backoff(Initial, Max, new Random(3));
        for (var i = 0; i < 20; i++)
        {
            backoff.Next();
        }

        backoff.Reset();
        Assert.Equal(0, backoff.Attempts);
        Assert.InRange(backoff.Next(), Initial, Initial * 3);
    }

    [Fact]
    public void InitialEqualsMax_IsConstant()
    {
        var backoff = new Backoff(Initial, Initial, new Random(4));
        Assert.All(Enumerable.Range(0, 10).Select(_ => backoff.Next()), d => Assert.Equal(Initial, d));
    }

    [Fact]
    public async Task DelayAsync_RunsOnTheInjectedClock()
    {
        var time = new FakeTimeProvider();
        var backoff = new Backoff(Initial, Initial, new Random(5));
        var wait = backoff.DelayAsync(time, TestContext.Current.CancellationToken);
        time.Advance(Initial - TimeSpan.FromTicks(1));
        Assert.False(wait.IsCompleted);
        time.Advance(TimeSpan.FromTicks(1));
        await wait.WaitAsync(TimeSpan.FromSeconds(10), TestContext.Current.CancellationToken);
    }

    [Fact]
    public void Constructor_RejectsBadBounds()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => new Backoff(TimeSpan.Zero, Max));
        Assert.Throws<ArgumentOutOfRangeException>(() => new Backoff(Max, Initial));
    }
}
