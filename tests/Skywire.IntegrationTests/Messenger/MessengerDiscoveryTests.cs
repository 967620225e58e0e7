using Skywire.Core.Crypto;
using Skywire.Core.Messenger;
using Skywire.Protocol.Messenger;

namespace Skywire.IntegrationTests.Messenger;

public sealed class MessengerDiscoveryTests
{
    [Fact]
    public async Task OfferedServices_AreFoundByKeyTypeAndAttributes_WithPaging()
    {
        await using var h = new MessengerHarness();
        var ct = TestContext.Current.CancellationToken;
        var nodes = new List<MessengerClient>();
        for (var i = 0; i < 5; i++)
        {
            var c = await h.ConnectAsync();
            nodes.Add(c);
            await c.OfferServiceAsync(new ServiceOffer { Name = "socks", Type = "socks", Attributes = new() { ["country"] = i % 2 == 0 ? "de" : "fr" } }, cancellationToken: ct);
            await c.OfferServiceAsync(new ServiceOffer { Name = "chat", Type = "chat" }, cancellationToken: ct);
        }

        var asker = await h.ConnectAsync();
        var seen = new List<ServiceEntry>();
        string? after = null;
        var pages = 0;
        do
        {
            var page = await asker.QueryServicesAsync(new ServiceQuery { Type = "socks", Limit = 2, After = after }, ct);
            Assert.Equal(5, page.Total);
            Assert.True(page.Entries.Count <= 2);
            seen.AddRange(page.Entries);
            after = page.Next;
            pages++;
        }
        while (after is not null);

        Assert.Equal(3, pages);
        Assert.Equal(nodes.Select(n => n.Key.ToString()).Order(StringComparer.Ordinal), seen.Select(e => e.Key));
        Assert.All(seen, e => Assert.True(e.Online));

        var german = await asker.QueryServicesAsync(new ServiceQuery { Attributes = new() { ["country"] = "de" } }, ct);
        Assert.Equal(3, german.Total);

        var byKey = await asker.QueryServicesAsync(new ServiceQuery { Key = nodes[1].Key.ToString() }, ct);
        Assert.Equal(["chat", "socks"], byKey.Entries.Select(e => e.Name));
    }

    [Fact]
    public async Task AllowList_HidesTheEntryFromOtherKeys()
    {
        await using var h = new MessengerHarness();
        var ct = TestContext.Current.CancellationToken;
        var owner = await h.ConnectAsync();
        var friend = await h.ConnectAsync();
        var stranger = await h.ConnectAsync();
        await owner.OfferServiceAsync(new ServiceOffer { Name = "private-vpn", Type = "vpn", AllowKeys = [friend.Key.ToString()] }, cancellationToken: ct);

        Assert.Single((await friend.QueryServicesAsync(new ServiceQuery { Type = "vpn" }, ct)).Entries);
        Assert.Single((await owner.QueryServicesAsync(new ServiceQuery { Type = "vpn" }, ct)).Entries);
        var hidden = await stranger.QueryServicesAsync(new ServiceQuery { Type = "vpn" }, ct);
        Assert.Empty(hidden.Entries);
        Assert.Equal(0, hidden.Total);
    }

    [Fact]
    public async Task Entries_ExpireUnlessRefreshed_AndWithdrawRemovesThem()
    {
        var clock = Clock.Create();
        await using var h = new MessengerHarness(MessengerServerOptions.Default with { DirectoryDefaultTtl = TimeSpan.FromMinutes(5) }, clock);
        var ct = TestContext.Current.CancellationToken;
        var owner = await h.ConnectAsync();
        var asker = await h.ConnectAsync();
        await owner.OfferServiceAsync(new ServiceOffer { Name = "a", Type = "t" }, cancellationToken: ct);
        await owner.OfferServiceAsync(new ServiceOffer { Name = "b", Type = "t" }, cancellationToken: ct);
        Assert.Equal(2, (await asker.QueryServicesAsync(new ServiceQuery { Type = "t" }, ct)).Total);

        clock.Advance(TimeSpan.FromMinutes(4));
        await owner.OfferServiceAsync(new ServiceOffer { Name = "b", Type = "t" }, cancellationToken: ct);
        clock.Advance(TimeSpan.FromMinutes(2));
        var left = await asker.QueryServicesAsync(new ServiceQuery { Type = "t" }, ct);
        Assert.Equal(["b"], left.Entries.Select(e => e.Name));

        await owner.WithdrawServiceAsync("b", ct);
        Assert.Equal(0, (await asker.QueryServicesAsync(new ServiceQuery { Type = "t" }, ct)).Total);
    }

    [Fact]
    public async Task InvalidOffer_IsRefusedWithBadRequest_AndTheConnectionStays()
    {
        await using var h = new MessengerHarness();
        var ct = TestContext.Current.CancellationToken;
        var c = await h.ConnectAsync();
        var ex = await Assert.ThrowsAsync<MessengerException>(() => c.OfferServiceAsync(new ServiceOffer { Name = "", Type = "t" }, cancellationToken: ct));
        Assert.Equal(MessengerErrorCode.BadRequest, ex.Code);
        ex = await Assert.ThrowsAsync<MessengerException>(() => c.OfferServiceAsync(new ServiceOffer { Name = "x", Type = "t", AllowKeys = ["nope"] }, cancellationToken: ct));
        Assert.Equal(MessengerErrorCode.BadRequest, ex.Code);
        ex = await Assert.ThrowsAsync<MessengerException>(() => c.QueryServicesAsync(new ServiceQuery { Limit = 1000 }, ct));
        Assert.Equal(MessengerErrorCode.BadRequest, ex.Code);
        await c.PingAsync(ct);
        Assert.NotNull(KeyPair.Generate());
    }
}
