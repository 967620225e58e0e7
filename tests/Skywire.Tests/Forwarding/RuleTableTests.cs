using Microsoft.Extensions.Time.Testing;
using Skywire.Core.Crypto;
using Skywire.Core.Forwarding;
using Skywire.Protocol;

namespace Skywire.Tests.Forwarding;

public class RuleTableTests
{
    private static readonly PubKey A = KeyPair.Generate().Public;
    private static readonly PubKey B = KeyPair.Generate().Public;

    [Fact]
    public void Install_Find_Expire_Sweep()
    {
        var time = new FakeTimeProvider();
        var table = new RuleTable(time);
        table.Install(new RouteRule(A, 1, B, 2, TimeSpan.FromSeconds(10)));
        table.Install(new RouteRule(A, 3, B, 4, TimeSpan.FromSeconds(30)));
        Assert.NotNull(table.Find(A, 1, out _));
        Assert.Null(table.Find(B, 1, out var expired));
        Assert.False(expired);

        time.Advance(TimeSpan.FromSeconds(11));
        Assert.Null(table.Find(A, 1, out expired));
        Assert.True(expired);
        Assert.NotNull(table.Find(A, 3, out _));

        time.Advance(TimeSpan.FromSeconds(20));
        Assert.Equal(1, table.Sweep());
        Assert.Equal(0, table.Count);
    }

    [Fact]
    public void Refresh_KeepsCounters_ChangedRule_Resets()
    {
        var time = new FakeTimeProvider();
        var table = new RuleTable(time);
        table.Install(new RouteRule(A, 1, B, 2, TimeSpan.FromSeconds(10)));
        table.Find(A, 1, out _)!.Count(100);
        time.Advance(TimeSpan.FromSeconds(8));
        table.Install(new RouteRule(A, 1, B, 2, TimeSpan.FromSeconds(10)));
        time.Advance(TimeSpan.FromSeconds(8));
        var rule = Assert.Single(table.Snapshot());
        Assert.Equal(1, rule.Packets);
        Assert.Equal(100, rule.Bytes);
        Assert.Equal(RouteAction.Forward, rule.Action);
        table.Install(new RouteRule(A, 1, B, 9, TimeSpan.FromSeconds(10)));
        Assert.Equal(0, Assert.Single(table.Snapshot()).Packets);
        Assert.True(table.Remove(A, 1));
        Assert.False(table.Remove(A, 1));
    }

    [Theory]
    [InlineData(0u, 2u, 10)]
    [InlineData(1u, 0u, 10)]
    [InlineData(1u, 2u, 0)]
    public void Install_Invalid_Throws(uint inRoute, uint outRoute, int seconds)
    {
        var table = new RuleTable(new FakeTimeProvider());
        Assert.Throws<ArgumentException>(() => table.Install(new RouteRule(A, inRoute, B, outRoute, TimeSpan.FromSeconds(seconds))));
        Assert.Throws<ArgumentException>(() => table.Install(new RouteRule(default, 1, B, 2, TimeSpan.FromSeconds(1))));
    }
}
