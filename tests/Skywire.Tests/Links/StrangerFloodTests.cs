using Skywire.Core.Links;
using Skywire.Core.Sessions;
using Skywire.TestKit.Logging;

namespace Skywire.Tests.Links;

/// <summary>
/// Issue 12.2: one valid link handshake per freshly generated key (only the node's key and address needed) used to
/// be kept for ever, so a flood grew the node's links and memory without bound. Scaled down: a node capped at
/// <see cref="Cap"/> links takes a flood of handshakes from fresh keys (half confirmed, half not) over real UDP.
/// </summary>
public sealed class StrangerFloodTests
{
    private const int Cap = 8;
    private const int Strangers = 240;

    [Fact]
    public async Task FloodOfFreshKeys_LinksAndKeysStayBounded_LegitimateLinkAndTrafficUnharmed()
    {
        var ct = TestContext.Current.CancellationToken;
        using var log = new TestLog(TestContext.Current.TestOutputHelper!.WriteLine, Microsoft.Extensions.Logging.LogLevel.Warning);
        var options = TestNode.Fast with
        {
            MaxLinks = Cap,
            HandshakesPerSecondBeforeCookies = 1_000_000, // the cookie rate limit is not what is tested here
            HandshakeTimeout = TimeSpan.FromSeconds(3),
            DeadAfter = TimeSpan.FromSeconds(3),
            // A stranger's link that was up is remembered (down, without keys) after it is lost, so that a restarted
            // manager still learns it; 10 minutes by default, short here to see it freed.
            RememberLostLinks = TimeSpan.FromSeconds(2),
        };
        await using var b = new TestNode(options, log);
        await using var a = new TestNode(options, log);
        var legitimateDowns = 0;
        a.Plane.LinkDown += (_, _) => Interlocked.Increment(ref legitimateDowns);
        b.Plane.LinkDown += (_, e) =>
        {
            if (e.Peer == a.Key.Public)
            {
                Interlocked.Increment(ref legitimateDowns);
            }
        };

        // A legitimate link with a session over it (its routes make it one that must stay).
        await a.Plane.OpenLinkAsync(b.Key.Public, b.EndPoint, ct);
        await Wait.UntilAsync(() => b.Plane.GetLink(a.Key.Public)?.State == LinkState.Up, what: "b's side up");
        var atB = b.Plane.BindSession(new SessionRoute(1, a.Key.Public, false, a.Key.Public, 2, a.Key.Public, 1));
        var atA = await a.Plane.OpenSessionAsync(new SessionRoute(1, b.Key.Public, true, b.Key.Public, 1, b.Key.Public, 2), ct);
        long delivered = 0;
        atB.Receiver = _ => Interlocked.Increment(ref delivered);

        using var rogue = new RogueInitiator(b.EndPoint, b.Key.Public);
        var floodStarted = DateTime.UtcNow;
        var maxLinks = 0;
        var maxKeys = 0;
        for (var i = 0; i < Strangers; i++)
        {
            Assert.True(rogue.Handshake(confirm: i % 2 == 0), $"no response to stranger {i}");
            maxLinks = Math.Max(maxLinks, b.Plane.GetLinks().Count);
            maxKeys = Math.Max(maxKeys, b.Plane.LinkKeyCount);
            Assert.True(maxLinks <= Cap, $"after {i + 1} strangers b holds {maxLinks} links (cap {Cap})");

            if (i % 20 == 19)
            {
                // The legitimate traffic goes on throughout.
                var before = Interlocked.Read(ref delivered);
                for (var attempt = 0; attempt < 200 && Interlocked.Read(ref delivered) == before; attempt++)
                {
                    atA.Send([1, 2, 3, (byte)i]);
                    await Task.Delay(10, ct);
                }

                Assert.True(Interlocked.Read(ref delivered) > before, $"the session stopped delivering after {i + 1} strangers");
                Assert.Equal(LinkState.Up, a.Plane.GetLink(b.Key.Public)!.State);
                Assert.Equal(LinkState.Up, b.Plane.GetLink(a.Key.Public)!.State);
            }
        }

        // Bounded: links, and the keys they hold (at most three sets per link), whatever the number of strangers.
        Assert.InRange(maxLinks, 2, Cap);
        Assert.InRange(maxKeys, 1, 3 * Cap);
        Assert.True(b.Plane.Statistics.LinksEvicted >= Strangers - Cap, $"only {b.Plane.Statistics.LinksEvicted} evictions");
        Assert.Equal(0, Volatile.Read(ref legitimateDowns));
        Assert.Equal(0, b.Plane.Statistics.InternalError);

        // And freed: the strangers' links go (never confirmed at once; silent ones once no longer remembered), the
        // legitimate one stays.
        await Wait.UntilAsync(() => b.Plane.GetLinks().Count == 1, TimeSpan.FromSeconds(30), "strangers' links freed");
        Assert.Equal(a.Key.Public, b.Plane.GetLinks().Single().Peer);
        Assert.Equal(LinkState.Up, b.Plane.GetLinks().Single().State);
        Assert.InRange(b.Plane.LinkKeyCount, 1, 3);

        // The log is bounded too: two lines per stranger would let a flood fill the disk. At most 10 up/down lines a
        // second for strangers' links (here: down, at Warning), the rest summed up once a second (event 1014).
        var seconds = (DateTime.UtcNow - floodStarted).TotalSeconds;
        var strangerDowns = log.Entries.Count(e => e.EventId.Id == 1002 && !e.Message.Contains(a.Key.Public.ToString(), StringComparison.Ordinal));
        Assert.InRange(strangerDowns, 0, (int)Math.Ceiling(seconds + 2) * 10);
    }

    [Fact]
    public async Task FullOfLinksThatMustStay_NewStrangerRefused_AndCounted()
    {
        var ct = TestContext.Current.CancellationToken;
        using var log = new TestLog(TestContext.Current.TestOutputHelper!.WriteLine, Microsoft.Extensions.Logging.LogLevel.Warning);
        var options = TestNode.Fast with { MaxLinks = 1 };
        await using var b = new TestNode(options, log);
        await using var a = new TestNode(options, log);
        await a.Plane.OpenLinkAsync(b.Key.Public, b.EndPoint, ct);
        await Wait.UntilAsync(() => b.Plane.GetLink(a.Key.Public)?.State == LinkState.Up, what: "b's side up");
        b.Plane.InstallRule(new Skywire.Core.Forwarding.RouteRule(a.Key.Public, 5, a.Key.Public, 6, TimeSpan.FromMinutes(1)));

        await using var c = new TestNode(TestNode.Fast with { HandshakeTimeout = TimeSpan.FromMilliseconds(800) }, log);
        await Assert.ThrowsAsync<TimeoutException>(() => c.Plane.OpenLinkAsync(b.Key.Public, b.EndPoint, ct));
        Assert.True(b.Plane.Statistics.TableFull >= 1);
        Assert.Equal(0, b.Plane.Statistics.LinksEvicted);
        Assert.Equal(a.Key.Public, b.Plane.GetLinks().Single().Peer);

        // The node's own request is never refused: b may open a link beyond its cap.
        await b.Plane.OpenLinkAsync(c.Key.Public, c.EndPoint, ct);
        Assert.Equal(2, b.Plane.GetLinks().Count);
    }
}

public sealed class LogBudgetTests
{
    [Fact]
    public void TenASecond_TheRestCounted_AndDrainedOnce()
    {
        var time = new Microsoft.Extensions.Time.Testing.FakeTimeProvider();
        var budget = new Skywire.Core.Diagnostics.LogBudget(10, time);
        Assert.Equal(10, Enumerable.Range(0, 25).Count(_ => budget.TryTake()));
        Assert.Equal(15, budget.DrainSuppressed());
        Assert.Equal(0, budget.DrainSuppressed());
        time.Advance(TimeSpan.FromSeconds(1));
        Assert.True(budget.TryTake());
    }

    [Fact]
    public void TheNextLineAllowed_SaysHowManyWereRefusedBeforeIt()
    {
        var time = new Microsoft.Extensions.Time.Testing.FakeTimeProvider();
        var budget = new Skywire.Core.Diagnostics.LogBudget(2, time);
        Assert.True(budget.TryTake(out var first));
        Assert.Equal(0, first);
        Assert.True(budget.TryTake(out _));
        Assert.False(budget.TryTake(out _));
        Assert.False(budget.TryTake(out _));
        Assert.False(budget.TryTake(out _));
        time.Advance(TimeSpan.FromSeconds(1));
        Assert.True(budget.TryTake(out var refused));
        Assert.Equal(3, refused);
        Assert.True(budget.TryTake(out var none));
        Assert.Equal(0, none);
    }

    [Fact]
    public void GivenALogger_TheCountOfThoseHeldBackIsLoggedBeforeTheNextLine()
    {
        var time = new Microsoft.Extensions.Time.Testing.FakeTimeProvider();
        using var log = new TestLog();
        var logger = log.CreateLogger("test");
        var budget = new Skywire.Core.Diagnostics.LogBudget(1, time, "test lines");
        Assert.True(budget.TryTake(logger));
        Assert.False(budget.TryTake(logger));
        Assert.False(budget.TryTake(logger));
        Assert.Empty(log.Entries);
        time.Advance(TimeSpan.FromSeconds(1));
        Assert.True(budget.TryTake(logger));
        var summary = Assert.Single(log.Entries);
        Assert.Equal(1790, summary.EventId.Id);
        Assert.Equal("2 more test lines were not logged (at most 1 a second)", summary.Message);
    }
}
