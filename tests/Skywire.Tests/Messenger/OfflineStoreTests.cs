using Microsoft.Extensions.Time.Testing;
using Skywire.Core.Crypto;
using Skywire.Core.Messenger;
using Skywire.Protocol;
using Skywire.Protocol.Messenger;

namespace Skywire.Tests.Messenger;

public sealed class OfflineStoreTests
{
    private readonly FakeTimeProvider _clock = new();
    private readonly PubKey _alice = KeyPair.Generate().Public;
    private readonly PubKey _bob = KeyPair.Generate().Public;
    private readonly List<(PubKey Sender, DropNotice Notice)> _expired = [];

    private OfflineStore Create(MessengerServerOptions? options = null) => new(options ?? MessengerServerOptions.Default, _clock);

    [Fact]
    public void Store_ThenTakeAll_GivesMessagesInOrder_AndEmptiesTheQueue()
    {
        var store = Create();
        Assert.Null(store.TryStore(_bob, _alice, 1, [1], _expired));
        Assert.Null(store.TryStore(_bob, _alice, 2, [2, 2], _expired));
        Assert.Equal(3, store.TotalBytes);
        var (messages, notices) = store.TakeAll(_bob, _expired);
        Assert.Equal([1u, 2u], messages.Select(m => m.MessageId));
        Assert.Empty(notices);
        Assert.Equal(0, store.CountFor(_bob));
        Assert.Equal(0, store.TotalBytes);
    }

    [Fact]
    public void PerKeyLimits_RefuseTheNewest()
    {
        var store = Create(MessengerServerOptions.Default with { QueueMaxMessages = 2, QueueMaxBytes = 10 });
        Assert.Null(store.TryStore(_bob, _alice, 1, new byte[4], _expired));
        Assert.Null(store.TryStore(_bob, _alice, 2, new byte[4], _expired));
        Assert.Equal(DropReason.QueueFull, store.TryStore(_bob, _alice, 3, new byte[1], _expired));
        var other = KeyPair.Generate().Public;
        Assert.Equal(DropReason.QueueFull, store.TryStore(other, _alice, 4, new byte[11], _expired));
        Assert.Null(store.TryStore(other, _alice, 5, new byte[10], _expired));
    }

    [Fact]
    public void GlobalLimits_RefuseWithStoreFull()
    {
        var store = Create(MessengerServerOptions.Default with { StoreMaxBytes = 5, StoreMaxKeys = 2 });
        Assert.Null(store.TryStore(_bob, _alice, 1, new byte[3], _expired));
        Assert.Equal(DropReason.StoreFull, store.TryStore(_bob, _alice, 2, new byte[3], _expired));
        Assert.Null(store.TryStore(_alice, _bob, 3, new byte[2], _expired));
        Assert.Equal(DropReason.StoreFull, store.TryStore(KeyPair.Generate().Public, _alice, 4, [], _expired));
    }

    [Fact]
    public void Ttl_ExpiredMessagesBecomeNoticesForTheirSenders()
    {
        var store = Create(MessengerServerOptions.Default with { QueueTtl = TimeSpan.FromMinutes(1) });
        store.TryStore(_bob, _alice, 1, [1], _expired);
        _clock.Advance(TimeSpan.FromSeconds(30));
        store.TryStore(_bob, _alice, 2, [2], _expired);
        _clock.Advance(TimeSpan.FromSeconds(31));
        var expired = store.Sweep();
        var (sender, notice) = Assert.Single(expired);
        Assert.Equal(_alice, sender);
        Assert.Equal((1u, DropReason.Expired, _bob.ToString()), (notice.MessageId, notice.Reason, notice.To));
        Assert.Equal(1, store.CountFor(_bob));
        Assert.Equal(1, store.TotalBytes);
    }

    [Fact]
    public void Notices_AreKeptBoundedForAnOfflineSender()
    {
        var store = Create(MessengerServerOptions.Default with { QueueMaxNotices = 2 });
        for (uint i = 1; i <= 5; i++)
        {
            store.StoreNotice(_alice, new DropNotice { MessageId = i });
        }

        var (_, notices) = store.TakeAll(_alice, _expired);
        Assert.Equal([4u, 5u], notices.Select(n => n.MessageId));
    }
}
