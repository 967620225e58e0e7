using Skywire.Core.Links;

namespace Skywire.Tests.Links;

public class ReplayWindowTests
{
    [Fact]
    public void InOrder_AcceptedOnce()
    {
        var w = new ReplayWindow();
        for (ulong i = 0; i < 5000; i++)
        {
            Assert.True(w.TryMark(i));
            Assert.False(w.TryMark(i));
        }
    }

    [Fact]
    public void OutOfOrder_WithinWindow_AcceptedOnce_TooOld_Rejected()
    {
        var w = new ReplayWindow();
        Assert.True(w.TryMark(10_000));
        Assert.True(w.TryMark(10_000 - 5));
        Assert.False(w.TryMark(10_000 - 5));
        Assert.True(w.IsAcceptable(10_000 - ReplayWindow.WindowSize + 1));
        Assert.False(w.IsAcceptable(10_000 - ReplayWindow.WindowSize));
        Assert.False(w.TryMark(0));
        Assert.Equal(10_000UL, w.Highest);
    }

    [Fact]
    public void Random_Reordering_MatchesReferenceSet()
    {
        var w = new ReplayWindow();
        var seen = new HashSet<ulong>();
        var rng = new Random(42);
        ulong highest = 0;
        for (var i = 0; i < 100_000; i++)
        {
            var c = (ulong)Math.Max(0, (long)highest + rng.Next(-3000, 200));
            var expected = !seen.Contains(c) && (c > highest || highest - c < ReplayWindow.WindowSize);

            Assert.Equal(expected, w.TryMark(c));
            if (expected)
            {
                seen.Add(c);
                highest = Math.Max(highest, c);
            }
        }
    }

    [Fact]
    public void HugeJump_ClearsOldBits()
    {
        var w = new ReplayWindow();
        Assert.True(w.TryMark(1));
        Assert.True(w.TryMark(1_000_000));
        Assert.True(w.TryMark(1_000_000 - 64));
        Assert.False(w.TryMark(1_000_000 - 64));
        Assert.True(w.TryMark(ulong.MaxValue - 1));
        Assert.False(w.TryMark(1_000_000));
    }
}
