using Skywire.Core.Sessions.Mux;
using Skywire.TestKit;
using static Skywire.Tests.Mux.MuxTestUtil;

namespace Skywire.Tests.Mux;

/// <summary>The mux stream's state machine: the drawn table, refused illegal changes, and the states a stream goes through.</summary>
public class MuxStreamStateTests
{
    private static readonly MuxOptions Fast = MuxOptions.Default with
    {
        MinRetransmissionTimeout = TimeSpan.FromMilliseconds(5),
        InitialRetransmissionTimeout = TimeSpan.FromMilliseconds(100),
    };

    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    private static async Task WaitForStateAsync(MuxStream stream, MuxStreamState state)
    {
        var deadline = DateTime.UtcNow + TestTimeout;
        while (stream.State != state)
        {
            Assert.True(DateTime.UtcNow < deadline, $"{stream} stayed {stream.State}, expected {state}");
            await Task.Delay(10, Ct);
        }
    }

    [Fact]
    public void StateTable_AllowsExactlyTheDrawnTransitions_TerminalStatesHaveNone()
    {
        var allowed = new HashSet<(MuxStreamState, MuxStreamState)>
        {
            (MuxStreamState.Opening, MuxStreamState.Open), (MuxStreamState.Opening, MuxStreamState.Refused), (MuxStreamState.Opening, MuxStreamState.Reset),
            (MuxStreamState.PendingAccept, MuxStreamState.Open), (MuxStreamState.PendingAccept, MuxStreamState.Refused), (MuxStreamState.PendingAccept, MuxStreamState.Reset),
            (MuxStreamState.Open, MuxStreamState.HalfClosedLocal), (MuxStreamState.Open, MuxStreamState.HalfClosedRemote), (MuxStreamState.Open, MuxStreamState.Reset),
            (MuxStreamState.HalfClosedLocal, MuxStreamState.Closed), (MuxStreamState.HalfClosedLocal, MuxStreamState.Reset),
            (MuxStreamState.HalfClosedRemote, MuxStreamState.Closed), (MuxStreamState.HalfClosedRemote, MuxStreamState.Reset),
            (MuxStreamState.Closed, MuxStreamState.Reset),
        };
        foreach (var from in Enum.GetValues<MuxStreamState>())
        {
            foreach (var to in Enum.GetValues<MuxStreamState>())
            {
                Assert.True(allowed.Contains((from, to)) == MuxStreamStates.IsAllowed(from, to), $"{from} -> {to}");
            }

            Assert.Equal(from.IsTerminal(), Enum.GetValues<MuxStreamState>().All(to => !MuxStreamStates.IsAllowed(from, to)));
        }
    }

    [Fact]
    public async Task IllegalTransition_Throws_AndLeavesTheStateAlone()
    {
        await using var pair = MuxPair.Create(options: Fast);
        var (client, _) = await OpenPairAsync(pair, "illegal", Ct);
        Assert.Equal(MuxStreamState.Open, client.State);
        Assert.Throws<InvalidOperationException>(() => client.TransitionTo(MuxStreamState.PendingAccept));
        Assert.Throws<InvalidOperationException>(() => client.TransitionTo(MuxStreamState.Closed));
        Assert.Equal(MuxStreamState.Open, client.State);

        client.Abort();
        Assert.Equal(MuxStreamState.Reset, client.State);
        Assert.Throws<InvalidOperationException>(() => client.TransitionTo(MuxStreamState.Open));
        Assert.Equal(MuxStreamState.Reset, client.State);
    }

    [Fact]
    public async Task HalfCloses_ThenClosed_OnBothSides()
    {
        await using var pair = MuxPair.Create(options: Fast);
        var (client, server) = await OpenPairAsync(pair, "half", Ct);
        Assert.Equal(MuxStreamState.Open, server.State);

        await client.CompleteWritesAsync(Ct);
        Assert.Equal(MuxStreamState.HalfClosedLocal, client.State);
        await WaitForStateAsync(server, MuxStreamState.HalfClosedRemote);

        await server.CompleteWritesAsync(Ct);
        Assert.Equal(MuxStreamState.Closed, server.State);
        await WaitForStateAsync(client, MuxStreamState.Closed);
        Assert.Equal(0, await client.ReadAsync(new byte[1], Ct));
        Assert.Equal(0, await server.ReadAsync(new byte[1], Ct));
    }

    [Fact]
    public async Task Refused_OnBothSides_Reset_OnBothSides()
    {
        await using var pair = MuxPair.Create(options: Fast);
        var open = pair.A.OpenStreamAsync("no"u8.ToArray(), Ct).AsTask();
        var incoming = await pair.B.AcceptStreamAsync(Ct).AsTask().WaitAsync(TestTimeout, Ct);
        Assert.Equal(MuxStreamState.PendingAccept, incoming.State);
        Assert.True(incoming.Refuse(5));
        Assert.Equal(MuxStreamState.Refused, incoming.State);
        await Assert.ThrowsAsync<MuxException>(() => open.WaitAsync(TestTimeout, Ct));

        var (client, server) = await OpenPairAsync(pair, "reset", Ct);
        client.Abort(3);
        Assert.Equal(MuxStreamState.Reset, client.State);
        await WaitForStateAsync(server, MuxStreamState.Reset);
    }

    [Fact]
    public async Task MultiplexerEnds_EveryLiveStreamIsReset()
    {
        await using var pair = MuxPair.Create(options: Fast);
        var (client, server) = await OpenPairAsync(pair, "ends", Ct);
        await client.CompleteWritesAsync(Ct);
        await WaitForStateAsync(server, MuxStreamState.HalfClosedRemote);

        await pair.A.DisposeAsync();

        Assert.Equal(MuxStreamState.Reset, client.State);
        await WaitForStateAsync(server, MuxStreamState.Reset);
        Assert.Equal(0, await server.ReadAsync(new byte[1], Ct)); // its direction had ended cleanly before: still complete
        await Assert.ThrowsAsync<MuxException>(async () => await server.WriteAsync(new byte[1], Ct));
    }
}
