using Microsoft.Extensions.Time.Testing;
using Skywire.Core.Messenger;

namespace Skywire.Tests.Messenger;

public sealed class TokenBucketTests
{
    [Fact]
    public void Burst_ThenRefillAtTheRate_NeverAboveTheBurst()
    {
        var clock = new FakeTimeProvider();
        var bucket = new TokenBucket(ratePerSecond: 10, burst: 5, clock);
        for (var i = 0; i < 5; i++)
        {
            Assert.True(bucket.TryTake());
        }

        Assert.False(bucket.TryTake());
        clock.Advance(TimeSpan.FromMilliseconds(250));
        Assert.True(bucket.TryTake());
        Assert.True(bucket.TryTake());
        Assert.False(bucket.TryTake());

        clock.Advance(TimeSpan.FromHours(1));
        var taken = 0;
        while (bucket.TryTake())
        {
            taken++;
        }

        Assert.Equal(5, taken);
    }

    [Fact]
    public void Cost_IsTakenAtOnceOrNotAtAll()
    {
        var clock = new FakeTimeProvider();
        var bucket = new TokenBucket(1, 3, clock);
        Assert.False(bucket.TryTake(4));
        Assert.True(bucket.TryTake(3));
        Assert.False(bucket.TryTake(1));
    }
}
