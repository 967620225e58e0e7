using Microsoft.Extensions.Time.Testing;

namespace Viscript.Signal.Tests;

/// <summary>Timeouts follow the injected <see cref="TimeProvider"/>: no real waiting.</summary>
public class FakeClockTests
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Fact]
    public async Task RequestTimeout_FollowsTheInjectedClock()
    {
        var clock = new FakeTimeProvider();
        await using var server = await TestServer.StartAsync(new SignalServerOptions { TimeProvider = clock });
        await using var peer = await RawPeer.ConnectAsync(server.EndPoint);
        await peer.RegisterAsync(1);

        var ping = server.Server.PingAsync(1, Ct);
        await peer.ReadNormalAsync(); // the deadline is armed before the request is written
        clock.Advance(TimeSpan.FromSeconds(4.9));
        Assert.False(ping.IsCompleted);
        clock.Advance(TimeSpan.FromSeconds(0.2));
        var error = await Assert.ThrowsAsync<SignalException>(() => ping);
        Assert.Equal(SignalErrorKind.Timeout, error.Kind);
        Assert.Contains("5 s", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task IdleTimeout_FollowsTheInjectedClock()
    {
        var clock = new FakeTimeProvider();
        await using var server = await TestServer.StartAsync(new SignalServerOptions { TimeProvider = clock });
        await using var peer = await RawPeer.ConnectAsync(server.EndPoint);
        await peer.RegisterAsync(1); // the idle deadline is re-armed before the REG reply is sent
        clock.Advance(TimeSpan.FromSeconds(91));
        Assert.True(await peer.WaitClosedAsync());
        Assert.Equal(1ul, (await server.NextDisconnectedAsync()).Id);
    }

    [Fact]
    public async Task ClientPings_FollowTheInjectedClock()
    {
        var clock = new FakeTimeProvider(DateTimeOffset.FromUnixTimeMilliseconds(1_500_000_000_000));
        using var listener = new System.Net.Sockets.TcpListener(System.Net.IPAddress.Loopback, 0);
        listener.Start();
        await using var client = SignalClient.Start(new SignalClientOptions
        {
            ServerAddress = listener.LocalEndpoint.ToString()!,
            TimeProvider = clock,
            ExitOnUnhandledShutdown = false,
        });
        using var timeout = new CancellationTokenSource(RawPeer.Deadline);
        await using var go = RawPeer.FromAccepted(await listener.AcceptSocketAsync(timeout.Token));
        await go.ReadNormalAsync();
        await go.SendAsync(RawPeer.Normal(1, 0x80, "{\"Id\":1}"));
        await client.WaitForRegistrationAsync(Ct);
        Assert.Equal(0x80, (await go.ReadFrameAsync())!.Type); // the client's ACK of the REG reply

        clock.Advance(TimeSpan.FromSeconds(60));
        var ping = await go.ReadFrameAsync();
        Assert.Equal(0x81, ping!.Type);
        Assert.Equal(1_500_000_060_000ul, ping.Stamp);
    }
}
