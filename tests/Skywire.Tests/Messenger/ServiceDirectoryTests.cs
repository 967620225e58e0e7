using Microsoft.Extensions.Time.Testing;
using Skywire.Core.Crypto;
using Skywire.Core.Messenger;
using Skywire.Protocol;
using Skywire.Protocol.Messenger;

namespace Skywire.Tests.Messenger;

public sealed class ServiceDirectoryTests
{
    private readonly FakeTimeProvider _clock = new();

    private ServiceDirectory Create(int maxEntries = 1000) => new(_clock, TimeSpan.FromMinutes(5), TimeSpan.FromHours(1), maxEntries);

    private static OfferRequest Offer(params ServiceOffer[] services) => new() { Services = [.. services] };

    [Fact]
    public void Paging_WalksEveryMatchOnce_InKeyNameOrder()
    {
        var dir = Create();
        var keys = Enumerable.Range(0, 7).Select(_ => KeyPair.Generate().Public).ToList();
        foreach (var key in keys)
        {
            dir.Offer(key, Offer(new ServiceOffer { Name = "n1", Type = "t" }, new ServiceOffer { Name = "n2", Type = "t" }));
        }

        var asker = KeyPair.Generate().Public;
        var all = new List<string>();
        string? after = null;
        do
        {
            var page = dir.Query(asker, new ServiceQuery { Type = "t", Limit = 3, After = after });
            Assert.Equal(14, page.Total);
            all.AddRange(page.Entries.Select(e => e.Key + "/" + e.Name));
            after = page.Next;
        }
        while (after is not null);

        Assert.Equal(keys.SelectMany(k => new[] { k + "/n1", k + "/n2" }).Order(StringComparer.Ordinal), all);
    }

    [Fact]
    public void Query_ByAttributes_RequiresEveryGivenAttribute()
    {
        var dir = Create();
        var a = KeyPair.Generate().Public;
        var b = KeyPair.Generate().Public;
        dir.Offer(a, Offer(new ServiceOffer { Name = "s", Type = "socks", Attributes = new() { ["country"] = "de", ["speed"] = "fast" } }));
        dir.Offer(b, Offer(new ServiceOffer { Name = "s", Type = "socks", Attributes = new() { ["country"] = "de" } }));
        var asker = KeyPair.Generate().Public;
        Assert.Equal(2, dir.Query(asker, new ServiceQuery { Attributes = new() { ["country"] = "de" } }).Total);
        var fast = dir.Query(asker, new ServiceQuery { Attributes = new() { ["country"] = "de", ["speed"] = "fast" } });
        Assert.Equal(a.ToString(), Assert.Single(fast.Entries).Key);
        Assert.Equal(0, dir.Query(asker, new ServiceQuery { Type = "vpn" }).Total);
        Assert.Equal(1, dir.Query(asker, new ServiceQuery { Key = b.ToString() }).Total);
    }

    [Fact]
    public void Entries_ExpireAtTheirTtl_UnlessOfferedAgain()
    {
        var dir = Create();
        var owner = KeyPair.Generate().Public;
        dir.Offer(owner, new OfferRequest { Services = [new ServiceOffer { Name = "short", Type = "t" }], TtlMs = 60_000 });
        dir.Offer(owner, new OfferRequest { Services = [new ServiceOffer { Name = "long", Type = "t" }], TtlMs = 600_000 });
        Assert.Equal(2, dir.Count);
        _clock.Advance(TimeSpan.FromSeconds(61));
        Assert.Equal(["long"], dir.Query(owner, new ServiceQuery()).Entries.Select(e => e.Name));
        Assert.Equal(1, dir.Count);
        _clock.Advance(TimeSpan.FromSeconds(500));
        dir.Offer(owner, new OfferRequest { Services = [new ServiceOffer { Name = "long", Type = "t" }], TtlMs = 600_000 });
        _clock.Advance(TimeSpan.FromSeconds(500));
        Assert.Equal(1, dir.Count);
    }

    [Fact]
    public void Ttl_IsCappedByTheDirectory()
    {
        var dir = Create();
        var result = dir.Offer(KeyPair.Generate().Public, new OfferRequest { Services = [new ServiceOffer { Name = "a", Type = "t" }], TtlMs = long.MaxValue });
        Assert.Equal((long)TimeSpan.FromHours(1).TotalMilliseconds, result.TtlMs);
    }

    [Fact]
    public void AllowList_IsEnforcedPerAsker()
    {
        var dir = Create();
        var owner = KeyPair.Generate().Public;
        var friend = KeyPair.Generate().Public;
        dir.Offer(owner, Offer(new ServiceOffer { Name = "p", Type = "t", AllowKeys = [friend.ToString()] }));
        Assert.Equal(1, dir.Query(friend, new ServiceQuery()).Total);
        Assert.Equal(1, dir.Query(owner, new ServiceQuery()).Total);
        Assert.Equal(0, dir.Query(KeyPair.Generate().Public, new ServiceQuery()).Total);
    }

    [Theory]
    [InlineData("", "t")]
    [InlineData("n", "")]
    [InlineData("with\nnewline", "t")]
    public void InvalidNames_AreBadRequests(string name, string type)
    {
        var ex = Assert.Throws<MessengerException>(() => Create().Offer(KeyPair.Generate().Public, Offer(new ServiceOffer { Name = name, Type = type })));
        Assert.Equal(MessengerErrorCode.BadRequest, ex.Code);
    }

    [Fact]
    public void Limits_PerKeyAndOverall()
    {
        var dir = Create(maxEntries: 20);
        var owner = KeyPair.Generate().Public;
        var many = Enumerable.Range(0, MessengerProtocol.MaxServicesPerKey + 1).Select(i => new ServiceOffer { Name = $"s{i}", Type = "t" }).ToArray();
        Assert.Equal(MessengerErrorCode.BadRequest, Assert.Throws<MessengerException>(() => dir.Offer(owner, Offer(many))).Code);
        dir.Offer(owner, Offer(many[..16]));
        dir.Offer(KeyPair.Generate().Public, Offer(many[..4]));
        Assert.Equal(MessengerErrorCode.Unavailable, Assert.Throws<MessengerException>(() => dir.Offer(KeyPair.Generate().Public, Offer(many[..1]))).Code);
        Assert.Equal(MessengerErrorCode.BadRequest, Assert.Throws<MessengerException>(() => dir.Offer(owner, Offer(many[0], many[0]))).Code);
    }

    [Fact]
    public void Withdraw_ByNameOrAll()
    {
        var dir = Create();
        var owner = KeyPair.Generate().Public;
        dir.Offer(owner, Offer(new ServiceOffer { Name = "a", Type = "t" }, new ServiceOffer { Name = "b", Type = "t" }, new ServiceOffer { Name = "c", Type = "t" }));
        dir.Withdraw(owner, ["a"]);
        Assert.Equal(2, dir.Count);
        dir.Withdraw(owner, []);
        Assert.Equal(0, dir.Count);
        PubKey nobody = KeyPair.Generate().Public;
        dir.Withdraw(nobody, ["x"]);
    }
}
