using System.Net;
using System.Net.Sockets;
using Microsoft.Extensions.Logging.Abstractions;
using Skywire.Core.Control;
using Skywire.Core.Channels;
using Skywire.Core.Crypto;
using Skywire.Core.Manager;
using Skywire.Protocol.Control;
using Skywire.TestKit.Logging;

namespace Skywire.IntegrationTests.Control;

public sealed class ControlChannelTests : IAsyncLifetime
{
    private static readonly TimeSpan Limit = TimeSpan.FromSeconds(20);
    private readonly KeyPair _managerKey = KeyPair.Generate();
    private readonly KeyPair _admin = KeyPair.Generate();
    private readonly TestLog _log = new(TestContext.Current.TestOutputHelper is { } output ? output.WriteLine : null);
    private ManagerServer _manager = null!;

    public ValueTask InitializeAsync()
    {
        _manager = new ManagerServer(_managerKey, new ManagerOptions { Listen = new IPEndPoint(IPAddress.Loopback, 0), Admins = [_admin.Public.ToString()] }, _log);
        _manager.Start();
        return ValueTask.CompletedTask;
    }

    public async ValueTask DisposeAsync()
    {
        await _manager.DisposeAsync();
        _log.Dispose();
    }

    private ManagerAddress Address(KeyPair? pinned = null) => new(_manager.LocalEndPoint, (pinned ?? _managerKey).Public);

    private static FrameRequestHandler Refuse => (_, _, _) => throw new ControlException(ControlErrorCode.BadRequest, "no");

    private Task<(FrameConnection Connection, HelloAckMessage Ack)> Connect(KeyPair key, string role, ManagerAddress? address = null, string? link = "127.0.0.1:4000") =>
        ControlClient.ConnectAsync(address ?? Address(), key, role, link, Refuse, NullLogger.Instance, Limit, CancellationToken.None);

    [Fact]
    public async Task Node_Registers_AndAppearsInRegistry()
    {
        using var node = KeyPair.Generate();
        var (connection, ack) = await Connect(node, "node");
        await using var _ = connection;
        Assert.Equal(ControlProtocol.Version, ack.Version);
        var listed = Assert.Single(_manager.Controller.ListNodes().Nodes);
        Assert.Equal(node.Public.ToString(), listed.Key);
        Assert.Equal("127.0.0.1:4000", listed.LinkAddress);
        Assert.True(listed.Online);
    }

    [Fact]
    public async Task WrongPinnedKey_FailsWithClearReason_AndNothingRegisters()
    {
        using var node = KeyPair.Generate();
        using var impostor = KeyPair.Generate();
        var ex = await Assert.ThrowsAsync<ControlException>(() => Connect(node, "node", Address(impostor)));
        Assert.Equal(ControlErrorCode.Forbidden, ex.Code);
        Assert.Contains("pinned", ex.Message, StringComparison.Ordinal);
        Assert.Empty(_manager.Controller.ListNodes().Nodes);
    }

    [Fact]
    public async Task Cli_NonAdminRefused_AdminAndManagerKeyAccepted()
    {
        using var stranger = KeyPair.Generate();
        var ex = await Assert.ThrowsAsync<ControlException>(() => Connect(stranger, "cli", link: null));
        Assert.Equal(ControlErrorCode.Forbidden, ex.Code);
        Assert.Contains("not an admin", ex.Message, StringComparison.Ordinal);

        foreach (var key in new[] { _admin, _managerKey })
        {
            var (c, _) = await Connect(key, "cli", link: null);
            await using (c)
            {
                var nodes = await c.RequestAsync((byte)ControlOpcode.ListNodes, new OkMessage(), ControlJsonContext.Default.OkMessage, ControlJsonContext.Default.NodeListMessage).WaitAsync(Limit);
                Assert.Empty(nodes.Nodes);
            }
        }
    }

    [Fact]
    public async Task Node_SendingManagerOnlyCommand_IsRefusedAndNothingChanges()
    {
        using var node = KeyPair.Generate();
        var (connection, _) = await Connect(node, "node");
        await using var _ = connection;
        // A node pretending to be a manager (or a cli) gets Forbidden for every opcode outside its role.
        foreach (var op in new[] { ControlOpcode.InstallRules, ControlOpcode.SessionRoute, ControlOpcode.ListNodes, ControlOpcode.BuildRoute })
        {
            var ex = await Assert.ThrowsAsync<ControlException>(() => connection.RequestRawAsync((byte)op, "{}"u8.ToArray())).WaitAsync(Limit);
            Assert.Equal(ControlErrorCode.Forbidden, ex.Code);
        }

        Assert.False(connection.Closed.IsCompleted);
    }

    [Fact]
    public async Task TamperedRecord_ClosesOnlyThatConnection()
    {
        using var good = KeyPair.Generate();
        var (goodConnection, _) = await Connect(good, "node");
        await using var _ = goodConnection;

        // A proxy that flips one bit in the first encrypted record after the handshake (the hello):
        // preamble 5 + msg1 (2+33+16) + msg3 (2+33+16+16) = 123 bytes of handshake from the client.
        await using var proxy = new BitFlipProxy(_manager.LocalEndPoint, flipAt: 123 + 10);
        using var victim = KeyPair.Generate();
        var ex = await Assert.ThrowsAsync<ControlException>(() => Connect(victim, "node", new ManagerAddress(proxy.EndPoint, _managerKey.Public)));
        Assert.Equal(ControlErrorCode.Unavailable, ex.Code);

        Assert.Equal(good.Public.ToString(), Assert.Single(_manager.Controller.ListNodes().Nodes).Key);
        Assert.False(goodConnection.Closed.IsCompleted);
    }

    [Fact]
    public async Task GarbageInsteadOfHandshake_IsRejected()
    {
        using var client = new TcpClient();
        await client.ConnectAsync(_manager.LocalEndPoint);
        var stream = client.GetStream();
        await stream.WriteAsync("GET / HTTP/1.1\r\n\r\n"u8.ToArray());
        var buffer = new byte[16];
        // The manager closes the connection: read returns 0 (or the reset surfaces as an IOException).
        try
        {
            Assert.Equal(0, await stream.ReadAsync(buffer).AsTask().WaitAsync(Limit));
        }
        catch (IOException)
        {
        }
    }

    /// <summary>TCP proxy to the manager that flips one bit of the client-to-server byte stream.</summary>
    private sealed class BitFlipProxy : IAsyncDisposable
    {
        private readonly TcpListener _listener = new(IPAddress.Loopback, 0);
        private readonly Task _loop;

        public BitFlipProxy(IPEndPoint target, int flipAt)
        {
            _listener.Start();
            _loop = Task.Run(async () =>
            {
                using var inbound = await _listener.AcceptTcpClientAsync();
                using var outbound = new TcpClient();
                await outbound.ConnectAsync(target);
                var a = inbound.GetStream();
                var b = outbound.GetStream();
                var up = Task.Run(async () =>
                {
                    var buf = new byte[4096];
                    long offset = 0;
                    int n;
                    while ((n = await a.ReadAsync(buf)) > 0)
                    {
                        if (flipAt >= offset && flipAt < offset + n)
                        {
                            buf[flipAt - offset] ^= 0x01;
                        }

                        offset += n;
                        await b.WriteAsync(buf.AsMemory(0, n));
                    }
                });
                var down = b.CopyToAsync(a);
                await Task.WhenAny(up, down);
            });
        }

        public IPEndPoint EndPoint => (IPEndPoint)_listener.LocalEndpoint;

        /// <summary>Stops listening; the proxy loop must have ended by itself (the manager closed the tampered connection), without error.</summary>
        public async ValueTask DisposeAsync()
        {
            _listener.Stop();
            await _loop.WaitAsync(Limit);
        }
    }
}
