using Microsoft.Extensions.Time.Testing;
using Skywire.Core.Crypto;
using Skywire.Core.Links;
using Skywire.Protocol;

namespace Skywire.Tests.Links;

/// <summary>Bounded room for strangers (issue 12.2): who is evicted first, who never is, and when a stranger is refused.</summary>
public class LinkTableTests
{
    private readonly FakeTimeProvider _time = new();
    private readonly HashSet<PubKey> _inUse = [];

    private LinkTable Table(int max) => new(max, () => _inUse, _time);

    private static PubKey NewKey()
    {
        using var key = KeyPair.Generate();
        return key.Public;
    }

    [Fact]
    public void Strangers_BeyondTheCap_EvictUnconfirmedFirst_ThenDown_ThenTheIdlestUp()
    {
        var table = Table(3);
        var up = table.TryAdmitInbound(NewKey(), out _)!;
        var confirmedLater = table.TryAdmitInbound(NewKey(), out _)!;
        var unconfirmed = table.TryAdmitInbound(NewKey(), out _)!;
        lock (up.Gate)
        {
            table.SetUpLocked(up);
        }

        _time.Advance(TimeSpan.FromSeconds(1));
        lock (confirmedLater.Gate)
        {
            table.SetUpLocked(confirmedLater); // heard from later than `up`
        }

        Assert.Equal(3, table.Count);

        // 1. The unconfirmed handshake goes first, although it is the newest.
        var fourth = table.TryAdmitInbound(NewKey(), out var eviction);
        Assert.NotNull(fourth);
        Assert.Same(unconfirmed, eviction!.Value.Link);
        Assert.False(eviction.Value.DownEventDue); // it never was up
        Assert.True(unconfirmed.Removed);
        Assert.False(table.TryGet(unconfirmed.Peer, out _));
        Assert.Equal(3, table.Count);

        // 2. Then the new unconfirmed one again (rank before any up link).
        table.TryAdmitInbound(NewKey(), out eviction);
        Assert.Same(fourth, eviction!.Value.Link);

        // 3. With only up links left besides the newcomer: the one silent longest, with a LinkDown event.
        lock (table.Links.Single(l => l.State == LinkState.Connecting).Gate)
        {
            table.SetUpLocked(table.Links.Single(l => l.State == LinkState.Connecting));
        }

        table.TryAdmitInbound(NewKey(), out eviction);
        Assert.Same(up, eviction!.Value.Link);
        Assert.True(eviction.Value.DownEventDue);
        Assert.Equal(LinkState.Down, up.State);
        Assert.Equal(3, table.Evictions);
        Assert.Equal(3, table.Count);
    }

    [Fact]
    public void WantedLinks_AndLinksInUse_AreNeverEvicted_StrangersAreRefusedInstead()
    {
        var table = Table(2);
        var wanted = table.GetOrAddLocal(NewKey(), out _);
        Assert.True(wanted.Wanted);
        var routed = table.TryAdmitInbound(NewKey(), out _)!;
        lock (routed.Gate)
        {
            table.SetUpLocked(routed);
        }

        _inUse.Add(routed.Peer);

        Assert.Null(table.TryAdmitInbound(NewKey(), out var eviction));
        Assert.Null(eviction);
        Assert.Equal(2, table.Count);
        Assert.Equal(0, table.Evictions);

        // The manager's own requests are never refused, even beyond the cap.
        var another = table.GetOrAddLocal(NewKey(), out eviction);
        Assert.Null(eviction);
        Assert.Equal(3, table.Count);
        Assert.True(table.TryGet(another.Peer, out _));

        // Once the route is gone, the stranger's idle link may make room again.
        _inUse.Clear();
        Assert.NotNull(table.TryAdmitInbound(NewKey(), out eviction));
        Assert.Same(routed, eviction!.Value.Link);
    }

    [Fact]
    public void StrangersLink_GoingDown_IsRemoved_WantedLink_Stays()
    {
        var table = Table(10);
        var stranger = table.TryAdmitInbound(NewKey(), out _)!;
        var wanted = table.GetOrAddLocal(NewKey(), out _);
        lock (stranger.Gate)
        {
            Assert.False(table.MarkDownLocked(stranger, LinkState.Down, "handshake not confirmed"));
        }

        lock (wanted.Gate)
        {
            table.MarkDownLocked(wanted, LinkState.Down, "handshake timed out");
        }

        Assert.True(stranger.Removed);
        Assert.False(table.TryGet(stranger.Peer, out _));
        Assert.False(wanted.Removed);
        Assert.True(table.TryGet(wanted.Peer, out _));
        Assert.Equal(1, table.Count);
    }

    [Fact]
    public void StrangersLink_LostAfterItWasUp_IsRemembered_UntilForgotten_AndEvictableMeanwhile()
    {
        // A link the peer opened and that was up is remembered when lost (the node goes on reporting it, so that a
        // restarted manager learns it), still bounded: it is evicted before any up link, and forgotten later.
        var table = Table(2);
        var lost = table.TryAdmitInbound(NewKey(), out _)!;
        var up = table.TryAdmitInbound(NewKey(), out _)!;
        lock (lost.Gate)
        {
            table.SetUpLocked(lost);
            Assert.True(table.MarkDownLocked(lost, LinkState.Down, "no packet for 5 s"));
            Assert.NotEqual(0, lost.LostAt);
        }

        lock (up.Gate)
        {
            table.SetUpLocked(up);
        }

        Assert.True(table.TryGet(lost.Peer, out _));
        Assert.Equal(LinkState.Down, lost.State);
        Assert.Equal(2, table.Count);

        var newcomer = table.TryAdmitInbound(NewKey(), out var eviction);
        Assert.NotNull(newcomer);
        Assert.Same(lost, eviction!.Value.Link);
        Assert.False(eviction.Value.DownEventDue); // it was down already

        lock (newcomer!.Gate)
        {
            table.SetUpLocked(newcomer);
            table.MarkDownLocked(newcomer, LinkState.Down, "closed by peer");
            table.ForgetLocked(newcomer);
        }

        Assert.True(newcomer.Removed);
        Assert.False(table.TryGet(newcomer.Peer, out _));
        Assert.Equal(1, table.Count);
    }

    [Fact]
    public void LostLink_UpAgain_IsNoLongerForgettable()
    {
        var table = Table(4);
        var link = table.TryAdmitInbound(NewKey(), out _)!;
        lock (link.Gate)
        {
            table.SetUpLocked(link);
            table.MarkDownLocked(link, LinkState.Down, "no packet for 5 s");
            link.TransitionLocked(LinkState.Connecting);
            Assert.False(table.MarkDownLocked(link, LinkState.Down, "handshake not confirmed"));
            Assert.False(link.Removed); // a failed handshake does not forget a remembered link
            link.TransitionLocked(LinkState.Connecting);
            table.SetUpLocked(link);
            Assert.Equal(0, link.LostAt);
            table.ForgetLocked(link);
        }

        Assert.False(link.Removed);
        Assert.True(table.TryGet(link.Peer, out _));
    }
}
