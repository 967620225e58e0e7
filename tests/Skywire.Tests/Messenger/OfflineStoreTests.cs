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

    /// <summary>
    /// Issue 12.2: one key writing to many offline keys (each under its queue's limits) took the whole store before:
    /// its 100 000 key slots and 256 MiB, for 24 h, and every honest sender then got StoreFull. With the defaults a
    /// sender now has at most 4096 messages and 16 MiB stored; others still store, and what is delivered or expires
    /// frees its share.
    /// </summary>
    [Fact]
    public void OneSender_ToManyOfflineKeys_GetsItsShareOnly_OthersStillStore()
    {
        var store = Create();
        var limits = MessengerServerOptions.Default;
        var recipients = Enumerable.Range(0, limits.StoreMaxMessagesPerSender + 100).Select(_ => KeyPair.Generate().Public).ToList();
        var outcomes = recipients.Select((to, i) => store.TryStore(to, _alice, (uint)i, new byte[16], _expired)).ToList();
        Assert.Equal(limits.StoreMaxMessagesPerSender, outcomes.Count(o => o is null));
        Assert.All(outcomes.Skip(limits.StoreMaxMessagesPerSender), o => Assert.Equal(DropReason.StoreFull, o));
        Assert.Null(store.TryStore(recipients[^1], _bob, 1, new byte[16], _expired));

        // Bytes: 64 KiB envelopes to fresh keys stop at the sender's 16 MiB.
        var carol = KeyPair.Generate().Public;
        var big = new byte[MessengerProtocol.MaxEnvelopeSize];
        var stored = 0;
        while (store.TryStore(KeyPair.Generate().Public, carol, (uint)stored, big, _expired) is null)
        {
            stored++;
            Assert.True(stored <= 1000, "carol's share is unbounded");
        }

        Assert.Equal(limits.StoreMaxBytesPerSender / big.Length, stored);
        Assert.Null(store.TryStore(KeyPair.Generate().Public, _bob, 2, big, _expired));

        // A recipient that comes online takes its messages: the sender may store again.
        store.TakeAll(recipients[0], _expired);
        Assert.Equal((limits.StoreMaxMessagesPerSender - 1, (limits.StoreMaxMessagesPerSender - 1) * 16L), store.StoredBy(_alice));
        Assert.Null(store.TryStore(KeyPair.Generate().Public, _alice, 99_999, new byte[16], _expired));
        Assert.Equal(DropReason.StoreFull, store.TryStore(KeyPair.Generate().Public, _alice, 100_000, new byte[16], _expired));
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
