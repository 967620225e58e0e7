using System.Net;
using System.Net.Sockets;
using System.Text.Json;

namespace Viscript.Signal.Tests;

/// <summary><see cref="SignalClient"/> against a raw Go-server double and against our own server.</summary>
public class ClientTests
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    private static SignalClientOptions Options(EndPoint server, ulong id) => new()
    {
        ServerAddress = server.ToString()!,
        ClientId = id,
        ExitOnUnhandledShutdown = false,
        InitialReconnectDelay = TimeSpan.FromMilliseconds(50),
        MaxReconnectDelay = TimeSpan.FromMilliseconds(400),
    };

    private static async Task<RawPeer> AcceptAsync(TcpListener listener)
    {
        using var timeout = new CancellationTokenSource(RawPeer.Deadline);
        return RawPeer.FromAccepted(await listener.AcceptSocketAsync(timeout.Token));
    }

    [Fact]
    public async Task AgainstGoServer_RegistersAnswersEverything_WithoutAcks()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        var shutdownRequested = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        await using var client = new SignalClient(Options(listener.LocalEndpoint, 3));
        client.ShutdownRequested += (_, _) => shutdownRequested.TrySetResult();
        client.Start();

        await using var go = await AcceptAsync(listener);
        var reg = await go.ReadFrameAsync();
        Assert.Equal((0x01, 1u, (byte)0x00), (reg!.Type, reg.Seq, reg.Op));
        using (var json = JsonDocument.Parse(reg.Json))
        {
            Assert.Equal(3ul, json.RootElement.GetProperty("Id").GetUInt64());
            Assert.Equal(1, json.RootElement.GetProperty("Ext").GetInt32());
            Assert.Equal(Environment.ProcessId, json.RootElement.GetProperty("Pid").GetInt32());
            Assert.False(json.RootElement.TryGetProperty("Token", out _));
        }

        // The Go server re-encodes the REG reply as {"Id":n}: no Ext, so the client must stay original. It never acks here.
        await go.SendAsync(RawPeer.Normal(1, 0x80, "{\"Id\":7}"));
        await client.WaitForRegistrationAsync(Ct);
        Assert.Equal((7ul, 0), (client.Id, client.ServerExtension));
        Assert.Equal((0x80, 1u), await ReadAck(go));

        await go.SendAsync(RawPeer.Normal(2, 0x01, "null"));
        Assert.Equal((0x80, 2u), await ReadAck(go));
        var pong = await go.ReadNormalAsync();
        Assert.Equal((2u, (byte)0x81, "null"), (pong.Seq, pong.Op, pong.Json));

        // Invalid JSON and unknown ops get only the ACK, as from the Go client.
        await go.SendAsync(RawPeer.Normal(3, 0x01, "{bad"));
        await go.SendAsync(RawPeer.Normal(4, 0x09, "null"));
        await go.SendAsync(RawPeer.Normal(5, 0x00, "null"));
        Assert.Equal((0x80, 3u), await ReadAck(go));
        Assert.Equal((0x80, 4u), await ReadAck(go));
        Assert.Equal((0x80, 5u), await ReadAck(go));
        var top = await go.ReadNormalAsync();
        Assert.Equal((3u, (byte)0x80), (top.Seq, top.Op));
        Assert.InRange(top.Body.Length, 100, 1000); // a Go server closes on bodies over 10240 bytes
        using (var json = JsonDocument.Parse(top.Json))
        {
            var root = json.RootElement;
            foreach (var name in new[] { "Alloc", "TotalAlloc", "Sys", "HeapAlloc", "HeapSys", "HeapIdle", "HeapInuse", "StackInuse", "StackSys", "NumGC" })
            {
                Assert.True(root.GetProperty(name).TryGetUInt64(out _), name);
            }

            Assert.True(root.GetProperty("HeapAlloc").GetUInt64() > 0);
            Assert.True(root.GetProperty("Rss").GetUInt64() > 0);
            Assert.True(root.GetProperty("Threads").GetInt32() > 0);
            Assert.Equal(Environment.ProcessId, root.GetProperty("Pid").GetInt32());
            Assert.False(root.TryGetProperty("Rid", out _));
        }

        await go.SendAsync(RawPeer.Normal(6, 0x02, "null"));
        Assert.Equal((0x80, 6u), await ReadAck(go));
        var bye = await go.ReadNormalAsync();
        Assert.Equal((byte)0x82, bye.Op);
        Assert.Equal($"{{\"Pid\":{Environment.ProcessId}}}", bye.Json);
        await shutdownRequested.Task.WaitAsync(RawPeer.Deadline, Ct);
        Assert.True(client.ShutdownToken.IsCancellationRequested);
    }

    private static async Task<(byte, uint)> ReadAck(RawPeer peer)
    {
        var frame = await peer.ReadFrameAsync();
        while (frame!.Type == 0x81)
        {
            frame = await peer.ReadFrameAsync();
        }

        return (frame.Type, frame.Seq);
    }

    [Fact]
    public async Task AgainstGoServer_PingsPeriodically_AndReconnectsWithAdoptedIdAfterBeingPinged()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        await using var client = SignalClient.Start(Options(listener.LocalEndpoint, 3) with { PingInterval = TimeSpan.FromMilliseconds(50) });

        var go = await AcceptAsync(listener);
        await go.ReadNormalAsync();
        await go.SendAsync(RawPeer.Normal(1, 0x80, "{\"Id\":11}"));
        var pings = 0;
        while (pings < 2)
        {
            var frame = await go.ReadFrameAsync();
            if (frame!.Type == 0x81)
            {
                pings++;
                var now = (ulong)DateTimeOffset.UtcNow.ToUnixTimeMilliseconds();
                Assert.InRange(frame.Stamp, now - 60_000, now + 1000);
                await go.SendAsync(RawPeer.Stamp(0x82, frame.Stamp));
            }
        }

        // Only clients ping: a PING from the server is a violation, the client drops the connection and reconnects.
        await go.SendAsync(RawPeer.Stamp(0x81, 1));
        Assert.True(await go.WaitClosedAsync());
        await go.DisposeAsync();

        await using var again = await AcceptAsync(listener);
        var reg = await again.ReadNormalAsync();
        Assert.Equal(1u, reg.Seq); // numbering restarts per connection
        Assert.StartsWith("{\"Id\":11,", reg.Json, StringComparison.Ordinal);
    }

    [Fact]
    public async Task AgainstOurServer_ExtensionsNegotiated_RealUsageAndShutdown()
    {
        await using var server = await TestServer.StartAsync();
        await using var client = new SignalClient(Options(server.EndPoint, 21));
        var shutdown = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        using var registration = client.ShutdownToken.Register(() => shutdown.TrySetResult());
        client.Start();
        await client.WaitForRegistrationAsync(Ct);
        Assert.Equal(1, client.ServerExtension);

        var info = await server.NextRegisteredAsync();
        Assert.Equal((21ul, 1, Environment.ProcessId), (info.Id, info.Extension, info.Pid));

        Assert.True(await server.Server.PingAsync(21, Ct) < TimeSpan.FromSeconds(20));
        var usage = await server.Server.TopAsync(21, Ct);
        Assert.True(usage.HeapAlloc > 0);
        Assert.True(usage.HeapSys >= usage.HeapInuse);
        Assert.True(usage.Rss > 0);
        Assert.True(usage.Threads > 0);
        Assert.NotNull(usage.CpuTime);
        Assert.Equal(Environment.ProcessId, usage.Pid);

        // Request ids let concurrent calls of the same op run at once without mix-ups.
        var calls = Enumerable.Range(0, 60).Select(i => (i % 3) switch
        {
            0 => server.Server.PingAsync(21, Ct).ContinueWith(t => t.Result.ToString(), TaskScheduler.Default),
            1 => server.Server.TopAsync(21, Ct).ContinueWith(t => t.Result.Pid?.ToString() ?? "", TaskScheduler.Default),
            _ => server.Server.ShutdownAsync(21, Ct).ContinueWith(t => t.Result.ToString(), TaskScheduler.Default),
        }).ToArray();
        await Task.WhenAll(calls);
        Assert.Empty(server.Diagnostics);

        Assert.Equal(Environment.ProcessId, await server.Server.ShutdownAsync(21, Ct));
        await shutdown.Task.WaitAsync(RawPeer.Deadline, Ct);
    }

    [Fact]
    public async Task ServerRestart_ClientReconnectsAndReRegisters()
    {
        var first = await TestServer.StartAsync();
        var port = first.EndPoint.Port;
        await using var client = new SignalClient(Options(first.EndPoint, 31));
        var disconnected = new TaskCompletionSource<string>(TaskCreationOptions.RunContinuationsAsynchronously);
        client.Disconnected += (_, reason) => disconnected.TrySetResult(reason);
        client.Start();
        await client.WaitForRegistrationAsync(Ct);
        await first.DisposeAsync();
        await disconnected.Task.WaitAsync(RawPeer.Deadline, Ct);
        Assert.False(client.IsRegistered);

        // Same port number the first server got (clients are configured with a fixed address).
        await using var second = await TestServer.StartAsync(new SignalServerOptions { Listen = new IPEndPoint(IPAddress.Loopback, port) });
        Assert.Equal(31ul, (await second.NextRegisteredAsync()).Id);
        await client.WaitForRegistrationAsync(Ct);
        await second.Server.PingAsync(31, Ct);
    }

    [Fact]
    public async Task NoServer_KeepsRetryingAndLogs()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        var endPoint = (IPEndPoint)listener.LocalEndpoint;
        listener.Stop(); // nothing listens there now
        var failures = 0;
        var twoFailures = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        await using var client = new SignalClient(Options(endPoint, 1) with
        {
            Log = line =>
            {
                if (line.Contains("failed", StringComparison.Ordinal) && Interlocked.Increment(ref failures) >= 2)
                {
                    twoFailures.TrySetResult();
                }
            },
        });
        client.Start();
        await twoFailures.Task.WaitAsync(RawPeer.Deadline, Ct);
        Assert.False(client.IsRegistered);
    }

    [Fact]
    public async Task RemoteClient_WithToken_Registers()
    {
        await using var server = await TestServer.StartAsync(new SignalServerOptions { Token = "t0k3n" });
        server.Server.TreatClientsAsRemote = true;
        await using var client = SignalClient.Start(Options(server.EndPoint, 41) with { Token = "t0k3n" });
        await client.WaitForRegistrationAsync(Ct);
        var info = await server.NextRegisteredAsync();
        Assert.True(info.IsRemote);
        await server.Server.PingAsync(41, Ct);
    }

    [Fact]
    public async Task AgainstGoServer_OversizedFrame_DropsConnectionAndReconnects()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        await using var client = SignalClient.Start(Options(listener.LocalEndpoint, 3) with { MaxFrameSize = 10240 });
        await using (var go = await AcceptAsync(listener))
        {
            await go.ReadNormalAsync();
            await go.SendAsync(Convert.FromHexString("010000000100002801")); // 10241 bytes announced
            Assert.True(await go.WaitClosedAsync());
        }

        await using var again = await AcceptAsync(listener);
        Assert.Equal(0x00, (await again.ReadNormalAsync()).Op);
    }

    [Fact]
    public void Defaults_AreSafe()
    {
        Assert.True(IPAddress.IsLoopback(SignalServerOptions.Default.Listen.Address));
        Assert.Equal(7999, SignalServerOptions.Default.Listen.Port);
        Assert.Equal(TimeSpan.FromSeconds(5), SignalServerOptions.Default.RequestTimeout);
        // Issue 12.3: 64 KiB (was 1 MiB) bounds what 1024 connections can make the server buffer to 64 MiB.
        Assert.Equal(64 * 1024, SignalServerOptions.Default.MaxFrameSize);
        Assert.Equal(1024, SignalServerOptions.Default.MaxConnections);
        Assert.Equal(256, SignalServerOptions.Default.MaxConnectionsPerAddress);
        Assert.Equal(TimeSpan.FromSeconds(10), SignalServerOptions.Default.RegistrationTimeout);
        Assert.True(SignalClientOptions.Default.PingInterval < TimeSpan.FromSeconds(90)); // Go server's read deadline
    }

    [Fact]
    public void FromEnvironment_ParsesLikeTheOriginal()
    {
        static SignalClientOptions? Read(params (string Name, string Value)[] vars) =>
            SignalClientOptions.FromEnvironment(name => vars.FirstOrDefault(v => v.Name == name).Value);

        Assert.Null(Read());
        Assert.Null(Read(("SIGNAL_CLIENT", "false")));
        Assert.Null(Read(("SIGNAL_CLIENT", "FaLsE")));

        var empty = Read(("SIGNAL_CLIENT", ""));
        Assert.NotNull(empty);
        Assert.Equal(("localhost:7999", 1ul, (string?)null), (empty.ServerAddress, empty.ClientId, empty.Token));

        var full = Read(("SIGNAL_CLIENT", "true"), ("SIGNAL_SERVER_ADDRESS", "127.0.0.1:8100"), ("SIGNAL_CLIENT_ID", "42"), ("SIGNAL_TOKEN", "tok"));
        Assert.Equal(("127.0.0.1:8100", 42ul, "tok"), (full!.ServerAddress, full.ClientId, full.Token));
        Assert.DoesNotContain("tok", full.ToString(), StringComparison.Ordinal);

        Assert.Equal(1ul, Read(("SIGNAL_CLIENT", "1"), ("SIGNAL_CLIENT_ID", "abc"))!.ClientId);
        Assert.Equal(1ul, Read(("SIGNAL_CLIENT", "1"), ("SIGNAL_CLIENT_ID", "-3"))!.ClientId);
        Assert.Equal(("::1", 7999), new SignalClientOptions { ServerAddress = "[::1]:7999" }.ParseServerAddress());
        Assert.Throws<FormatException>(() => new SignalClientOptions { ServerAddress = "nohost" }.ParseServerAddress());
    }

    [Fact]
    public async Task Disabled_IsInert()
    {
        await using var client = SignalClient.Start(null);
        Assert.False(client.IsEnabled);
        Assert.False(client.IsRegistered);
        Assert.False(client.ShutdownToken.IsCancellationRequested);
    }
}
