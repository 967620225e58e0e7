using System.Net;
using System.Net.Sockets;
using Viscript.Signal.Internal;

namespace Viscript.Signal.Tests;

/// <summary>
/// Issue 12.3: what a stranger can hold on the signal listener is bounded — in number (per listener, per source), in
/// time (REG deadline, idle timer that counts frames, not bytes) and in memory (small frames before REG).
/// </summary>
public class ConnectionLimitTests
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Fact]
    public async Task SlowDripClient_IsClosedAtTheIdleTimeout_HoweverSteadilyItDrips()
    {
        await using var server = await TestServer.StartAsync(new SignalServerOptions { IdleTimeout = TimeSpan.FromSeconds(1) });
        await using var peer = await RawPeer.ConnectAsync(server.EndPoint);
        await peer.RegisterAsync(1);

        // A NORMAL frame announcing 1000 bytes, then one byte every 100 ms: every read brings data, no frame ever completes.
        await peer.SendAsync(Convert.FromHexString("0100000002000003E8"));
        var closed = peer.WaitClosedAsync();
        var dripped = 0;
        while (!closed.IsCompleted && dripped < 1000)
        {
            try
            {
                await peer.SendAsync([0x20]);
            }
            catch (SocketException)
            {
                break; // closed under our feet
            }

            dripped++;
            await Task.WhenAny(closed, Task.Delay(100, Ct));
        }

        Assert.True(await closed);
        Assert.Contains("idle", await server.DiagnosticContainingAsync("client 1"), StringComparison.Ordinal);
        Assert.Equal(1ul, (await server.NextDisconnectedAsync()).Id);
    }

    [Fact]
    public async Task ConnectionThatNeverRegisters_IsClosedAtTheRegistrationDeadline_EvenWhileItPings()
    {
        await using var server = await TestServer.StartAsync(new SignalServerOptions { RegistrationTimeout = TimeSpan.FromSeconds(1) });
        await using var good = await RawPeer.ConnectAsync(server.EndPoint);
        await good.RegisterAsync(7);
        await using var lurker = await RawPeer.ConnectAsync(server.EndPoint);

        // Complete keepalive frames every 100 ms keep the idle timer happy; only a REG would satisfy the deadline.
        var closed = lurker.WaitClosedAsync();
        while (!closed.IsCompleted)
        {
            try
            {
                await lurker.SendAsync(RawPeer.Stamp(0x81, 1));
            }
            catch (SocketException)
            {
                break;
            }

            await Task.WhenAny(closed, Task.Delay(100, Ct));
        }

        Assert.True(await closed);
        var message = await server.DiagnosticContainingAsync("no registration within 1 s");
        Assert.Equal(SignalDiagnosticKind.ConnectionLost, Assert.Single(server.Structured, d => d.Message == message).Kind);

        // The registered client is not subject to the deadline.
        var ping = server.Server.PingAsync(7, Ct);
        var request = await good.ReadNormalAsync();
        await good.SendNormalAsync((byte)(request.Op | 0x80), "null");
        await ping;
    }

    [Fact]
    public async Task BeforeRegistration_AFrameLargerThan4KiB_IsRefusedFromItsHeader()
    {
        await using var server = await TestServer.StartAsync();
        await using var stranger = await RawPeer.ConnectAsync(server.EndPoint);
        await stranger.SendAsync(Convert.FromHexString("010000000100001001")); // 4097 bytes announced, none sent
        Assert.True(await stranger.WaitClosedAsync());
        Assert.Contains("4096", await server.DiagnosticContainingAsync("exceeds the limit"), StringComparison.Ordinal);

        // After REG the full MaxFrameSize applies.
        await using var client = await RawPeer.ConnectAsync(server.EndPoint);
        await client.RegisterAsync(3);
        var top = server.Server.TopAsync(3, Ct);
        var request = await client.ReadNormalAsync();
        await client.SendNormalAsync((byte)(request.Op | 0x80), "{\"HeapAlloc\":5,\"Pad\":\"" + new string('x', 8000) + "\"}");
        Assert.Equal(5ul, (await top).HeapAlloc);
    }

    [Fact]
    public async Task ListenerCap_ClosesTheConnectionBeyondIt_AndAdmitsAgainOnceOneCloses()
    {
        await using var server = await TestServer.StartAsync(new SignalServerOptions { MaxConnections = 3 });
        Assert.Equal(3, server.Server.MaxConnections);
        var held = new List<RawPeer>();
        for (var i = 1; i <= 3; i++)
        {
            var peer = await RawPeer.ConnectAsync(server.EndPoint);
            held.Add(peer);
            await peer.RegisterAsync((ulong)i);
        }

        await using (var extra = await RawPeer.ConnectAsync(server.EndPoint))
        {
            Assert.True(await extra.WaitClosedAsync());
        }

        var refusal = await server.DiagnosticContainingAsync("connection refused");
        Assert.Contains("3 connections held", refusal, StringComparison.Ordinal);
        Assert.Contains(server.Structured, d => d.Kind == SignalDiagnosticKind.ConnectionRefused);
        Assert.Equal(3, server.Server.Clients.Count);

        await held[0].DisposeAsync();
        Assert.Equal(1ul, (await server.NextDisconnectedAsync()).Id);
        await using var next = await RawPeer.ConnectAsync(server.EndPoint);
        Assert.Equal("{\"Id\":4}", (await next.RegisterAsync(4)).Json);
        foreach (var peer in held.Skip(1))
        {
            await peer.DisposeAsync();
        }
    }

    [Fact]
    public async Task PerAddressCap_BoundsOneRemoteSource_NotTheOthers()
    {
        // No REG deadline: the unregistered a2 must stay counted however slow this machine is.
        await using var server = await TestServer.StartAsync(new SignalServerOptions
        {
            MaxConnectionsPerAddress = 2,
            Token = "t",
            RegistrationTimeout = Timeout.InfiniteTimeSpan,
        });
        server.Server.TreatClientsAsRemote = true;
        await using var a1 = await ConnectFromAsync(IPAddress.Loopback, server.EndPoint);
        await using var a2 = await ConnectFromAsync(IPAddress.Loopback, server.EndPoint);
        await a1.RegisterAsync(1, "\"Token\":\"t\"");
        await using (var a3 = await ConnectFromAsync(IPAddress.Loopback, server.EndPoint))
        {
            Assert.True(await a3.WaitClosedAsync());
        }

        Assert.Contains("from 127.0.0.1", await server.DiagnosticContainingAsync("per-address cap"), StringComparison.Ordinal);

        // Another source address has its own allowance.
        await using var b1 = await ConnectFromAsync(IPAddress.Parse("127.0.0.2"), server.EndPoint);
        Assert.Equal("{\"Id\":2}", (await b1.RegisterAsync(2, "\"Token\":\"t\"")).Json);
    }

    [Fact]
    public async Task LoopbackClients_AreNotCappedPerAddress()
    {
        await using var server = await TestServer.StartAsync(new SignalServerOptions { MaxConnectionsPerAddress = 1 });
        await using var first = await RawPeer.ConnectAsync(server.EndPoint);
        await using var second = await RawPeer.ConnectAsync(server.EndPoint);
        await first.RegisterAsync(1);
        Assert.Equal("{\"Id\":2}", (await second.RegisterAsync(2)).Json);
    }

    [Fact]
    public void Limiter_GivesOtherHostsAtMostHalfTheListener_SoLocalAppsAlwaysGetIn()
    {
        var limiter = new ConnectionLimiter(maxConnections: 4, maxPerAddress: 10);
        var a = IPAddress.Parse("192.0.2.1");
        var b = IPAddress.Parse("198.51.100.7");
        Assert.Equal(AdmitResult.Admitted, limiter.TryAdmit(a));
        Assert.Equal(AdmitResult.Admitted, limiter.TryAdmit(b));
        Assert.Equal(AdmitResult.RemoteShareFull, limiter.TryAdmit(b));
        Assert.Equal(AdmitResult.Admitted, limiter.TryAdmit(null));
        Assert.Equal(AdmitResult.Admitted, limiter.TryAdmit(null));
        Assert.Equal(AdmitResult.ListenerFull, limiter.TryAdmit(null));
        limiter.Release(a);
        Assert.Equal(AdmitResult.Admitted, limiter.TryAdmit(a));
        Assert.Equal(4, limiter.Count);
    }

    [Theory]
    [InlineData(256, 40, 92)]
    [InlineData(1024, 100, 446)]
    [InlineData(64, 60, 1)]
    public void DescriptorBudget_TakesHalfOfWhatIsFree_LessTheReserve(long limit, int open, int expected) =>
        Assert.Equal(expected, DescriptorBudget.Allowed(limit, open));

    [Fact]
    public void DescriptorBudget_ReadsThisProcesssLimit()
    {
        Assert.SkipUnless(OperatingSystem.IsLinux(), "/proc/self/limits is Linux");
        Assert.True(DescriptorBudget.TryReadSoftLimit() > 0);
        Assert.True(DescriptorBudget.ConnectionsAllowed() >= 1);
    }

    [Fact]
    public void ServerOptions_ToString_NeverShowsTheToken()
    {
        var options = new SignalServerOptions { Token = "s3cret-token", MaxConnections = 9 };
        var text = options.ToString();
        Assert.DoesNotContain("s3cret", text, StringComparison.Ordinal);
        Assert.Contains("Token = ***", text, StringComparison.Ordinal);
        Assert.Contains("MaxConnections = 9", text, StringComparison.Ordinal);
        Assert.Contains("Token = none", new SignalServerOptions().ToString(), StringComparison.Ordinal);
        Assert.DoesNotContain("s3cret", new SignalClientOptions { Token = "s3cret-token" }.ToString(), StringComparison.Ordinal);
    }

    private static async Task<RawPeer> ConnectFromAsync(IPAddress source, IPEndPoint server)
    {
        var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        socket.Bind(new IPEndPoint(source, 0));
        await socket.ConnectAsync(server, Ct);
        return RawPeer.FromAccepted(socket);
    }
}
