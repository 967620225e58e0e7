using System.Net.Sockets;

namespace Viscript.Signal.Tests;

/// <summary>Bad input, timeouts, disconnects, id hijacking and load against <see cref="SignalServer"/>.</summary>
public class ServerRobustnessTests
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    /// <summary>Answers one request the way a Go client does (ACK, then the reply).</summary>
    private static async Task AnswerAsync(RawPeer peer, string? json = null)
    {
        var request = await peer.ReadNormalAsync();
        await peer.SendAsync(RawPeer.Ack(request.Seq));
        await peer.SendNormalAsync((byte)(request.Op | 0x80), json ?? (request.Op == 0x02 ? "{\"Pid\":1}" : request.Op == 0x00 ? "{}" : "null"));
    }

    public static TheoryData<string> MalformedInputs => new()
    {
        "unknown-type", "oversized", "invalid-json-reg", "reg-id-not-uint", "reg-not-object", "unknown-op", "pong-to-server", "truncated", "garbage",
    };

    [Theory]
    [MemberData(nameof(MalformedInputs))]
    public async Task MalformedInput_ClosesOnlyThatConnection(string kind)
    {
        await using var server = await TestServer.StartAsync(new SignalServerOptions { MaxFrameSize = 64 * 1024 });
        await using var good = await RawPeer.ConnectAsync(server.EndPoint);
        await good.RegisterAsync(1);
        await using var bad = await RawPeer.ConnectAsync(server.EndPoint);

        string expected;
        switch (kind)
        {
            case "unknown-type":
                await bad.SendAsync([0x7f, 0, 0, 0, 1, 0, 0, 0, 0]);
                expected = "unknown frame type 0x7f";
                break;
            case "oversized":
                await bad.RegisterAsync(2);
                await bad.SendAsync(Convert.FromHexString("010000000200010001")); // 64 KiB + 1, header only
                expected = "exceeds the limit";
                break;
            case "invalid-json-reg":
                await bad.SendNormalAsync(0x00, "{\"Id\":");
                expected = "REG body";
                break;
            case "reg-id-not-uint":
                await bad.SendNormalAsync(0x00, "{\"Id\":-1}");
                expected = "REG Id";
                break;
            case "reg-not-object":
                await bad.SendNormalAsync(0x00, "[2]");
                expected = "REG body";
                break;
            case "unknown-op":
                await bad.RegisterAsync(2);
                await bad.SendNormalAsync(0x05, "null");
                expected = "unknown op 0x05";
                break;
            case "pong-to-server":
                await bad.SendAsync(RawPeer.Stamp(0x82, 1));
                expected = "PONG";
                break;
            case "truncated":
                await bad.RegisterAsync(2);
                await bad.SendAsync(Convert.FromHexString("0100000002000000100100"));
                bad.Socket.Shutdown(SocketShutdown.Send);
                expected = "middle of a frame";
                break;
            default:
                await bad.SendAsync([0xde, 0xad, 0xbe, 0xef, 0x00, 0x13, 0x37]);
                expected = "unknown frame type 0xde";
                break;
        }

        Assert.True(await bad.WaitClosedAsync());
        var diagnostic = await server.DiagnosticContainingAsync(expected);
        Assert.Contains("closed", diagnostic, StringComparison.Ordinal);
        var structured = Assert.Single(server.Structured, d => d.Message == diagnostic);
        Assert.Equal(kind == "truncated" ? SignalDiagnosticKind.ConnectionLost : SignalDiagnosticKind.ProtocolViolation, structured.Kind);
        Assert.Equal(bad.Socket.LocalEndPoint!.ToString(), structured.RemoteEndPoint!.ToString());
        Assert.False(server.Server.TryGetClient(2, out _));

        var ping = server.Server.PingAsync(1, Ct);
        await AnswerAsync(good);
        await ping;
        Assert.True(server.Server.TryGetClient(1, out _));
    }

    [Fact]
    public async Task RandomGarbageConnections_ServerKeepsServingOthers()
    {
        await using var server = await TestServer.StartAsync(new SignalServerOptions { MaxFrameSize = 4096 });
        await using var good = await RawPeer.ConnectAsync(server.EndPoint);
        await good.RegisterAsync(1);
        var random = new Random(4242);
        for (var i = 0; i < 60; i++)
        {
            await using var peer = await RawPeer.ConnectAsync(server.EndPoint);
            if (i % 2 == 0)
            {
                await peer.RegisterAsync((ulong)(100 + i));
            }

            var garbage = new byte[random.Next(1, 300)];
            random.NextBytes(garbage);
            if (i % 3 == 0)
            {
                garbage[0] = 0x01; // a NORMAL header with a random length and op
            }

            try
            {
                await peer.SendAsync(garbage);
            }
            catch (SocketException)
            {
                // The server may already have closed on an earlier byte.
            }
        }

        var ping = server.Server.PingAsync(1, Ct);
        await AnswerAsync(good);
        await ping;
        Assert.Contains(server.Server.Clients, c => c.Id == 1);
    }

    [Fact]
    public async Task ThousandClients_AllRegister_SampleAnswersPing()
    {
        const int Count = 1000;
        await using var server = await TestServer.StartAsync();
        var peers = new RawPeer[Count];
        try
        {
            // Batches keep the accept backlog from overflowing (a dropped SYN costs a 1 s retransmit).
            for (var batch = 0; batch < Count; batch += 100)
            {
                await Task.WhenAll(Enumerable.Range(batch, 100).Select(async i =>
                {
                    peers[i] = await RawPeer.ConnectAsync(server.EndPoint);
                    var reply = await peers[i].RegisterAsync((ulong)i + 1);
                    Assert.Equal($"{{\"Id\":{i + 1}}}", reply.Json);
                }));
            }

            Assert.Equal(Count, server.Server.Clients.Count);
            var sample = Enumerable.Range(0, 25).Select(k => (k * 41) % Count).ToArray();
            await Task.WhenAll(sample.Select(async i =>
            {
                var ping = server.Server.PingAsync((ulong)i + 1, Ct);
                await AnswerAsync(peers[i]);
                await ping;
            }));
        }
        finally
        {
            foreach (var peer in peers)
            {
                if (peer is not null)
                {
                    await peer.DisposeAsync();
                }
            }
        }
    }

    [Fact]
    public async Task SilentClient_CallTimesOut_NotHangs()
    {
        await using var server = await TestServer.StartAsync(new SignalServerOptions { RequestTimeout = TimeSpan.FromMilliseconds(300) });
        await using var peer = await RawPeer.ConnectAsync(server.EndPoint);
        await peer.RegisterAsync(3);

        var error = await Assert.ThrowsAsync<SignalException>(() => server.Server.PingAsync(3, Ct));
        Assert.Equal(SignalErrorKind.Timeout, error.Kind);
        Assert.Equal(0x01, (await peer.ReadNormalAsync()).Op);
        error = await Assert.ThrowsAsync<SignalException>(() => server.Server.ShutdownAsync(3, Ct));
        Assert.Equal(SignalErrorKind.Timeout, error.Kind);
        Assert.True(server.Server.TryGetClient(3, out _)); // a slow client is not dropped for it
    }

    [Fact]
    public async Task AbandonedCall_LateReplyIsNotTakenForTheNextCall()
    {
        await using var server = await TestServer.StartAsync();
        await using var peer = await RawPeer.ConnectAsync(server.EndPoint);
        await peer.RegisterAsync(3);

        using (var cancel = CancellationTokenSource.CreateLinkedTokenSource(Ct))
        {
            var abandoned = server.Server.PingAsync(3, cancel.Token);
            Assert.Equal(0x01, (await peer.ReadNormalAsync()).Op);
            await cancel.CancelAsync();
            await Assert.ThrowsAnyAsync<OperationCanceledException>(() => abandoned);
        }

        var next = server.Server.PingAsync(3, Ct);
        Assert.Equal(0x01, (await peer.ReadNormalAsync()).Op);

        // The late answer to the first PING arrives first: it must not complete the second call.
        await peer.SendNormalAsync(0x81, "null");
        await server.DiagnosticContainingAsync("late PING");
        Assert.False(next.IsCompleted);
        await peer.SendNormalAsync(0x81, "null");
        await next;
    }

    [Fact]
    public async Task AbandonedCall_ExtendedClient_LateReplyRecognisedById()
    {
        await using var server = await TestServer.StartAsync();
        await using var peer = await RawPeer.ConnectAsync(server.EndPoint);
        await peer.RegisterAsync(3, "\"Ext\":1");

        string firstRid;
        using (var cancel = CancellationTokenSource.CreateLinkedTokenSource(Ct))
        {
            var abandoned = server.Server.TopAsync(3, cancel.Token);
            firstRid = (await peer.ReadNormalAsync()).Json;
            await cancel.CancelAsync();
            await Assert.ThrowsAnyAsync<OperationCanceledException>(() => abandoned);
        }

        var next = server.Server.TopAsync(3, Ct);
        var secondRid = (await peer.ReadNormalAsync()).Json;
        Assert.NotEqual(firstRid, secondRid);
        Assert.StartsWith("{\"Rid\":", secondRid, StringComparison.Ordinal);

        await peer.SendNormalAsync(0x80, "{\"HeapAlloc\":1," + firstRid[1..]);
        await server.DiagnosticContainingAsync("late TOP");
        await peer.SendNormalAsync(0x80, "{\"HeapAlloc\":2," + secondRid[1..]);
        Assert.Equal(2ul, (await next).HeapAlloc);
    }

    [Fact]
    public async Task ClientDisconnectsDuringCall_FailsWithDisconnected()
    {
        await using var server = await TestServer.StartAsync();
        var peer = await RawPeer.ConnectAsync(server.EndPoint);
        await peer.RegisterAsync(4);
        var top = server.Server.TopAsync(4, Ct);
        await peer.ReadNormalAsync();
        await peer.DisposeAsync();
        var error = await Assert.ThrowsAsync<SignalException>(() => top);
        Assert.Equal(SignalErrorKind.Disconnected, error.Kind);
        Assert.Equal(4ul, (await server.NextDisconnectedAsync()).Id);
        Assert.Equal(SignalErrorKind.NotRegistered, (await Assert.ThrowsAsync<SignalException>(() => server.Server.PingAsync(4, Ct))).Kind);
    }

    [Fact]
    public async Task ServerDisposedDuringCall_FailsWithDisconnected()
    {
        var server = await TestServer.StartAsync();
        await using var peer = await RawPeer.ConnectAsync(server.EndPoint);
        await peer.RegisterAsync(4);
        var ping = server.Server.PingAsync(4, Ct);
        await peer.ReadNormalAsync();
        await server.DisposeAsync();
        Assert.Equal(SignalErrorKind.Disconnected, (await Assert.ThrowsAsync<SignalException>(() => ping)).Kind);
        Assert.True(await peer.WaitClosedAsync());
        Assert.Equal(SignalErrorKind.NotRunning, (await Assert.ThrowsAsync<SignalException>(() => server.Server.PingAsync(4, Ct))).Kind);
    }

    [Fact]
    public async Task ConcurrentCallsOfDifferentOps_RepliesInAnyOrder_NotMixedUp()
    {
        await using var server = await TestServer.StartAsync();
        await using var peer = await RawPeer.ConnectAsync(server.EndPoint);
        await peer.RegisterAsync(6);

        var top = server.Server.TopAsync(6, Ct);
        var ping = server.Server.PingAsync(6, Ct);
        var shutdown = server.Server.ShutdownAsync(6, Ct);
        var ops = new List<byte>();
        for (var i = 0; i < 3; i++)
        {
            ops.Add((await peer.ReadNormalAsync()).Op);
        }

        Assert.Equal(new byte[] { 0, 1, 2 }, ops.Order().ToArray());
        await peer.SendNormalAsync(0x82, "{\"Pid\":606}");
        await peer.SendNormalAsync(0x81, "null");
        await peer.SendNormalAsync(0x80, "{\"HeapAlloc\":66,\"StackSys\":7}");
        Assert.Equal(606, await shutdown);
        await ping;
        var usage = await top;
        Assert.Equal((66ul, 7ul), (usage.HeapAlloc, usage.StackSys));
    }

    [Fact]
    public async Task ConcurrentCallsOfSameOp_OriginalClient_AreSerialised()
    {
        await using var server = await TestServer.StartAsync();
        await using var peer = await RawPeer.ConnectAsync(server.EndPoint);
        await peer.RegisterAsync(6);

        var first = server.Server.ShutdownAsync(6, Ct);
        var second = server.Server.ShutdownAsync(6, Ct);
        var request = await peer.ReadNormalAsync();
        await peer.SendNormalAsync(0x82, "{\"Pid\":1}");
        var next = await peer.ReadNormalAsync(); // sent only once the first was answered
        Assert.Equal(request.Seq + 1, next.Seq);
        await peer.SendNormalAsync(0x82, "{\"Pid\":2}");
        Assert.Equal([1, 2], (await Task.WhenAll(first, second)).Order());
    }

    [Fact]
    public async Task RegForLiveHoldersId_IsRefused()
    {
        // The probe deadline is only an upper bound here: the live holder answers at once.
        await using var server = await TestServer.StartAsync(new SignalServerOptions { RegistrationProbeTimeout = TimeSpan.FromSeconds(15) });
        await using var holder = SignalClient.Start(new SignalClientOptions
        {
            ServerAddress = server.EndPoint.ToString(),
            ClientId = 5,
            ExitOnUnhandledShutdown = false,
        });
        await holder.WaitForRegistrationAsync(Ct);
        Assert.True(server.Server.TryGetClient(5, out var before));

        await using var thief = await RawPeer.ConnectAsync(server.EndPoint);
        await thief.SendNormalAsync(0x00, "{\"Id\":5}");
        Assert.True(await thief.WaitClosedAsync());
        Assert.Contains("refused", await server.DiagnosticContainingAsync("id 5"), StringComparison.Ordinal);
        var refusal = Assert.Single(server.Structured);
        Assert.Equal((SignalDiagnosticKind.RegistrationRefused, 5ul), (refusal.Kind, refusal.ClientId));

        Assert.True(server.Server.TryGetClient(5, out var after));
        Assert.Equal(before!.RemoteEndPoint, after!.RemoteEndPoint);
        await server.Server.PingAsync(5, Ct);
    }

    [Fact]
    public async Task RegForBusyButLiveHoldersId_IsRefused()
    {
        // The holder's PING slot is taken by a slow call of the host, so the probe cannot get an answer in time;
        // the holder's keepalive frames still prove it is alive.
        await using var server = await TestServer.StartAsync(new SignalServerOptions { RequestTimeout = TimeSpan.FromSeconds(20) });
        await using var holder = await RawPeer.ConnectAsync(server.EndPoint);
        await holder.RegisterAsync(7);
        var slow = server.Server.PingAsync(7, Ct);
        var request = await holder.ReadNormalAsync();

        await using var thief = await RawPeer.ConnectAsync(server.EndPoint);
        await thief.SendNormalAsync(0x00, "{\"Id\":7}");
        var refused = thief.WaitClosedAsync();
        while (!refused.IsCompleted)
        {
            await holder.SendAsync(RawPeer.Stamp(0x81, 1)); // the client-side keepalive, sped up
            await Task.WhenAny(refused, Task.Delay(50, Ct));
        }

        Assert.True(await refused);
        await server.DiagnosticContainingAsync("refused");
        await holder.SendNormalAsync((byte)(request.Op | 0x80), "null");
        await slow;
        Assert.Equal(holder.Socket.LocalEndPoint!.ToString(), Assert.Single(server.Server.Clients).RemoteEndPoint.ToString());
    }

    [Fact]
    public async Task RegForSilentHoldersId_ReplacesIt_AndOldDisconnectDoesNotRemoveNewEntry()
    {
        await using var server = await TestServer.StartAsync(new SignalServerOptions { RegistrationProbeTimeout = TimeSpan.FromMilliseconds(200) });
        await using var silent = await RawPeer.ConnectAsync(server.EndPoint);
        await silent.RegisterAsync(6);
        await server.NextRegisteredAsync();

        await using var newcomer = await RawPeer.ConnectAsync(server.EndPoint);
        var reply = await newcomer.RegisterAsync(6);
        Assert.Equal("{\"Id\":6}", reply.Json);
        var registered = await server.NextRegisteredAsync();
        Assert.Equal(newcomer.Socket.LocalEndPoint!.ToString(), registered.RemoteEndPoint.ToString());
        Assert.True(await silent.WaitClosedAsync());

        var ping = server.Server.PingAsync(6, Ct);
        await AnswerAsync(newcomer);
        await ping;
        Assert.True(server.Server.TryGetClient(6, out var current));
        Assert.Equal(registered.RemoteEndPoint, current!.RemoteEndPoint);
        Assert.False(server.Disconnected.Reader.TryRead(out _));
    }

    [Fact]
    public async Task RemoteClient_NeedsToken_AndTokenIsNeverLogged()
    {
        await using var server = await TestServer.StartAsync(new SignalServerOptions { Token = "s3cret-token" });
        server.Server.TreatClientsAsRemote = true;

        await using var anonymous = await RawPeer.ConnectAsync(server.EndPoint);
        await anonymous.SendNormalAsync(0x00, "{\"Id\":1}");
        Assert.True(await anonymous.WaitClosedAsync());
        await server.DiagnosticContainingAsync("no token");

        await using var wrong = await RawPeer.ConnectAsync(server.EndPoint);
        await wrong.SendNormalAsync(0x00, "{\"Id\":1,\"Token\":\"guess\"}");
        Assert.True(await wrong.WaitClosedAsync());
        await server.DiagnosticContainingAsync("wrong token");

        await using var good = await RawPeer.ConnectAsync(server.EndPoint);
        var reply = await good.RegisterAsync(1, "\"Ext\":1,\"Token\":\"s3cret-token\",\"Pid\":321");
        Assert.Equal("{\"Id\":1,\"Ext\":1}", reply.Json);
        var info = await server.NextRegisteredAsync();
        Assert.True(info.IsRemote);
        Assert.Equal(321, info.Pid);
        Assert.DoesNotContain(server.Diagnostics, d => d.Contains("s3cret", StringComparison.Ordinal) || d.Contains("guess", StringComparison.Ordinal));
    }

    [Fact]
    public async Task RemoteClient_WithoutServerToken_IsRefused()
    {
        await using var server = await TestServer.StartAsync();
        server.Server.TreatClientsAsRemote = true;
        await using var peer = await RawPeer.ConnectAsync(server.EndPoint);
        await peer.SendNormalAsync(0x00, "{\"Id\":1,\"Token\":\"anything\"}");
        Assert.True(await peer.WaitClosedAsync());
        Assert.Empty(server.Server.Clients);
    }

    [Fact]
    public async Task IdleConnection_IsClosed()
    {
        await using var server = await TestServer.StartAsync(new SignalServerOptions { IdleTimeout = TimeSpan.FromMilliseconds(300) });
        await using var peer = await RawPeer.ConnectAsync(server.EndPoint);
        Assert.True(await peer.WaitClosedAsync());
        await server.DiagnosticContainingAsync("idle");
    }

    [Fact]
    public async Task UnknownId_IsNotRegistered()
    {
        await using var server = await TestServer.StartAsync();
        var error = await Assert.ThrowsAsync<SignalException>(() => server.Server.TopAsync(12345, Ct));
        Assert.Equal(SignalErrorKind.NotRegistered, error.Kind);
    }
}
