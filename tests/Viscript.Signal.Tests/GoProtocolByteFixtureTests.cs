using System.Text.Json;

namespace Viscript.Signal.Tests;

/// <summary>
/// Our server against byte fixtures of the original Go protocol: frames written by hand, byte for byte, from the
/// reference (../shared/reference/viscript-2017.md §4: what the Go viscript/signal client over skycoin/net sends and
/// expects). No Go program runs here; these fixtures are the compatibility contract, checked without a Go toolchain.
/// </summary>
public class GoProtocolByteFixtureTests
{
    // A Go 1.9 MemStats reply, trimmed (PauseNs/PauseEnd/BySize shortened): field names and types as the Go client sends them.
    private const string GoMemStats =
        "{\"Alloc\":1234,\"TotalAlloc\":5678,\"Sys\":9000000,\"Lookups\":3,\"Mallocs\":100,\"Frees\":40," +
        "\"HeapAlloc\":1234,\"HeapSys\":4000000,\"HeapIdle\":2000000,\"HeapInuse\":2000000,\"HeapReleased\":0," +
        "\"HeapObjects\":60,\"StackInuse\":327680,\"StackSys\":327680,\"MSpanInuse\":1000,\"MSpanSys\":16384," +
        "\"MCacheInuse\":4800,\"MCacheSys\":16384,\"BuckHashSys\":2000,\"GCSys\":100000,\"OtherSys\":500000," +
        "\"NextGC\":4194304,\"LastGC\":0,\"PauseTotalNs\":0,\"PauseNs\":[0,0,0],\"PauseEnd\":[0,0,0],\"NumGC\":2," +
        "\"NumForcedGC\":0,\"GCCPUFraction\":0,\"EnableGC\":true,\"DebugGC\":false," +
        "\"BySize\":[{\"Size\":0,\"Mallocs\":0,\"Frees\":0},{\"Size\":8,\"Mallocs\":10,\"Frees\":2}]}";

    [Fact]
    public async Task GoClientBytes_RegistersAndAnswersPingTopShutdown_ByteExact()
    {
        await using var server = await TestServer.StartAsync();
        await using var go = await RawPeer.ConnectAsync(server.EndPoint);

        // REG exactly as reference §4.3 shows it.
        await go.SendAsync(Convert.FromHexString("0100000001000000090" + "07B224964223A327D"));
        Assert.Equal(Convert.FromHexString("8000000001"), await go.ReadExactAsync(5)); // ACK of seq 1
        Assert.Equal(Convert.FromHexString("010000000100000009807B224964223A327D"), await go.ReadExactAsync(18));
        await go.SendAsync(RawPeer.Ack(1));
        var info = await server.NextRegisteredAsync();
        Assert.Equal(2ul, info.Id);
        Assert.Equal(0, info.Extension);
        Assert.True(info.IsLoopback);
        Assert.Null(info.Pid);

        // The server's 2nd frame on the connection is the reference's PING example, byte for byte.
        var ping = server.Server.PingAsync(2, TestContext.Current.CancellationToken);
        Assert.Equal(Convert.FromHexString("010000000200000005016E756C6C"), await go.ReadExactAsync(14));
        await go.SendAsync(RawPeer.Ack(2));
        await go.SendAsync(RawPeer.Normal(2, 0x81, "null"));
        Assert.True(await ping >= TimeSpan.Zero);
        Assert.Equal(Convert.FromHexString("8000000002"), await go.ReadExactAsync(5)); // server acks our reply

        var top = server.Server.TopAsync(2, TestContext.Current.CancellationToken);
        var request = await go.ReadNormalAsync();
        Assert.Equal((3u, (byte)0x00, "null"), (request.Seq, request.Op, request.Json));
        await go.SendAsync(RawPeer.Ack(3));
        await go.SendAsync(RawPeer.Normal(3, 0x80, GoMemStats));
        var usage = await top;
        Assert.Equal((1234ul, 4000000ul, 2000000ul, 2000000ul, 327680ul, 327680ul),
            (usage.HeapAlloc, usage.HeapSys, usage.HeapIdle, usage.HeapInuse, usage.StackSys, usage.StackInuse));
        Assert.Null(usage.Rss);
        Assert.Null(usage.CpuTime);
        Assert.Equal(2, usage.Raw.GetProperty("BySize").GetArrayLength());

        // Go's client-side PING every 60 s: the server echoes the stamp in a PONG.
        await go.SendAsync(RawPeer.Stamp(0x81, 0x0102030405060708));
        var pong = await go.ReadFrameAsync();
        while (pong!.Type == 0x80)
        {
            pong = await go.ReadFrameAsync();
        }

        Assert.Equal((0x82, 0x0102030405060708ul), (pong.Type, pong.Stamp));

        var shutdown = server.Server.ShutdownAsync(2, TestContext.Current.CancellationToken);
        request = await go.ReadNormalAsync();
        Assert.Equal((4u, (byte)0x02, "null"), (request.Seq, request.Op, request.Json));
        await go.SendAsync(RawPeer.Normal(4, 0x82, "{\"Pid\":4242}"));
        Assert.Equal(4242, await shutdown);

        Assert.Empty(server.Diagnostics);
        await go.DisposeAsync();
        Assert.Equal(2ul, (await server.NextDisconnectedAsync()).Id);
        Assert.False(server.Server.TryGetClient(2, out _));
    }

    [Fact]
    public async Task GoClientBytes_NullRegBody_RegistersIdZero()
    {
        await using var server = await TestServer.StartAsync();
        await using var go = await RawPeer.ConnectAsync(server.EndPoint);
        var reply = await go.RegisterAsync(0, null);
        Assert.Equal("{\"Id\":0}", reply.Json);
        await using var other = await RawPeer.ConnectAsync(server.EndPoint);
        await other.SendNormalAsync(0x00, "null");
        // Id 0 is held by a live client that answers the probe... the raw peer does not answer, so it is replaced.
        var probe = await go.ReadNormalAsync();
        Assert.Equal(0x01, probe.Op);
        Assert.Equal("{\"Id\":0}", (await other.ReadNormalAsync()).Json);
    }

    [Fact]
    public async Task GoClientBytes_CaseInsensitiveAndExtraFields_Accepted()
    {
        await using var server = await TestServer.StartAsync();
        await using var go = await RawPeer.ConnectAsync(server.EndPoint);
        await go.SendNormalAsync(0x00, "{\"id\":77,\"Future\":[1,2]}");
        Assert.Equal("{\"Id\":77}", (await go.ReadNormalAsync()).Json);

        var shutdown = server.Server.ShutdownAsync(77, TestContext.Current.CancellationToken);
        await go.ReadNormalAsync();
        await go.SendNormalAsync(0x82, "{\"pid\":99,\"Extra\":true}");
        Assert.Equal(99, await shutdown);
    }

    [Fact]
    public async Task Reply_BadJsonOrMissingPid_IsBadReplyNotHang()
    {
        await using var server = await TestServer.StartAsync();
        await using var go = await RawPeer.ConnectAsync(server.EndPoint);
        await go.RegisterAsync(5);

        var ping = server.Server.PingAsync(5, TestContext.Current.CancellationToken);
        await go.ReadNormalAsync();
        await go.SendNormalAsync(0x81, "{not json");
        Assert.Equal(SignalErrorKind.BadReply, (await Assert.ThrowsAsync<SignalException>(() => ping)).Kind);

        var shutdown = server.Server.ShutdownAsync(5, TestContext.Current.CancellationToken);
        await go.ReadNormalAsync();
        await go.SendNormalAsync(0x82, "{\"Pid\":\"x\"}");
        Assert.Equal(SignalErrorKind.BadReply, (await Assert.ThrowsAsync<SignalException>(() => shutdown)).Kind);

        var top = server.Server.TopAsync(5, TestContext.Current.CancellationToken);
        await go.ReadNormalAsync();
        await go.SendNormalAsync(0x80, "null");
        Assert.Equal(SignalErrorKind.BadReply, (await Assert.ThrowsAsync<SignalException>(() => top)).Kind);

        // The connection survived all three.
        var again = server.Server.PingAsync(5, TestContext.Current.CancellationToken);
        await go.ReadNormalAsync();
        await go.SendNormalAsync(0x81, "null");
        await again;
    }

    [Fact]
    public async Task UnsolicitedReply_IsIgnoredAndConnectionKeepsServing()
    {
        await using var server = await TestServer.StartAsync();
        await using var go = await RawPeer.ConnectAsync(server.EndPoint);
        await go.RegisterAsync(8);
        await go.SendNormalAsync(0x81, "null");
        await go.SendNormalAsync(0x80, GoMemStats);
        await server.DiagnosticContainingAsync("unsolicited");

        // Reader not blocked: PONG still comes and calls still work (the original stopped here).
        await go.SendAsync(RawPeer.Stamp(0x81, 7));
        RawFrame? frame;
        do
        {
            frame = await go.ReadFrameAsync();
        }
        while (frame!.Type != 0x82);

        var ping = server.Server.PingAsync(8, TestContext.Current.CancellationToken);
        await go.ReadNormalAsync();
        await go.SendNormalAsync(0x81, "null");
        await ping;
    }

    [Fact]
    public async Task EmptyNormalFrame_IsAckedAndIgnored()
    {
        await using var server = await TestServer.StartAsync();
        await using var go = await RawPeer.ConnectAsync(server.EndPoint);
        await go.RegisterAsync(9);
        await go.SendAsync(Convert.FromHexString("010000000200000000"));
        var ack = await go.ReadFrameAsync();
        Assert.Equal((0x80, 2u), (ack!.Type, ack.Seq));
        Assert.True(server.Server.TryGetClient(9, out _));
    }

    [Fact]
    public void ResourceUsage_FromJson_ReadsOurExtensions()
    {
        using var doc = JsonDocument.Parse("{\"HeapAlloc\":1,\"Rss\":2048,\"CpuTimeMs\":1500,\"Threads\":12,\"Pid\":77,\"OpenFiles\":9}");
        var usage = ResourceUsage.FromJson(doc.RootElement.Clone());
        Assert.Equal((1ul, 2048ul, TimeSpan.FromMilliseconds(1500), 12, 77, 9),
            (usage.HeapAlloc, usage.Rss, usage.CpuTime, usage.Threads, usage.Pid, usage.OpenFiles));
    }
}
