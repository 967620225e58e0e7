using Skywire.Core.Crypto;
using Skywire.Core.Links;

namespace Skywire.Tests.Links;

/// <summary>The link state machine drawn on <see cref="Link"/>: one validated transition method, illegal transitions refused.</summary>
public class LinkStateTests
{
    private static readonly (LinkState From, LinkState To)[] Allowed =
    [
        (LinkState.Connecting, LinkState.Up),
        (LinkState.Connecting, LinkState.Down),
        (LinkState.Connecting, LinkState.Closed),
        (LinkState.Up, LinkState.Down),
        (LinkState.Up, LinkState.Closed),
        (LinkState.Down, LinkState.Connecting),
        (LinkState.Down, LinkState.Closed),
        (LinkState.Closed, LinkState.Connecting),
    ];

    [Fact]
    public void Table_AllowsExactlyTheDrawnTransitions()
    {
        foreach (var from in Enum.GetValues<LinkState>())
        {
            foreach (var to in Enum.GetValues<LinkState>())
            {
                Assert.True(Allowed.Contains((from, to)) == LinkStates.IsAllowed(from, to), $"{from} -> {to}");
            }
        }
    }

    [Theory]
    [InlineData(LinkState.Up, LinkState.Connecting)]   // a rekey stays Up; it never goes back to Connecting
    [InlineData(LinkState.Down, LinkState.Up)]         // a dead link comes back only through a handshake
    [InlineData(LinkState.Closed, LinkState.Up)]
    [InlineData(LinkState.Closed, LinkState.Down)]     // closed locally is final until reopened
    [InlineData(LinkState.Up, LinkState.Up)]           // staying is not a transition
    [InlineData(LinkState.Connecting, LinkState.Connecting)]
    public void IllegalTransition_Throws_StateUnchanged(LinkState from, LinkState to)
    {
        var link = LinkIn(from);
        var error = Assert.Throws<InvalidOperationException>(() => link.TransitionLocked(to));
        Assert.Contains($"{from} -> {to}", error.Message, StringComparison.Ordinal);
        Assert.Equal(from, link.State);
    }

    [Fact]
    public void LegalPath_ThroughEveryState()
    {
        var link = LinkIn(LinkState.Connecting);
        foreach (var to in new[] { LinkState.Up, LinkState.Down, LinkState.Connecting, LinkState.Closed, LinkState.Connecting, LinkState.Up, LinkState.Closed })
        {
            link.TransitionLocked(to);
            Assert.Equal(to, link.State);
        }
    }

    private static Link LinkIn(LinkState state)
    {
        using var key = KeyPair.Generate();
        var link = new Link(key.Public);
        var path = state switch
        {
            LinkState.Connecting => [],
            LinkState.Up => new[] { LinkState.Up },
            LinkState.Down => [LinkState.Down],
            _ => [LinkState.Closed],
        };
        foreach (var step in path)
        {
            link.TransitionLocked(step);
        }

        Assert.Equal(state, link.State);
        return link;
    }
}
