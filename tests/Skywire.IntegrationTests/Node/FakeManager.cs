using System.Net;
using System.Net.Sockets;
using System.Text.Json;
using System.Threading.Channels;
using Skywire.Core.Channels;
using Skywire.Core.Control;
using Skywire.Core.Crypto;
using Skywire.Protocol.Control;
using Skywire.Protocol.Framing;

namespace Skywire.IntegrationTests.Node;

/// <summary>
/// A manager that accepts one node, answers its hello and every request with OK, and records what the node sends
/// (link reports, heartbeats, registrations): what a node tells its manager, independent of the real manager's logic.
/// </summary>
internal sealed class FakeManager : IAsyncDisposable
{
    private readonly KeyPair _key = KeyPair.Generate();
    private readonly TcpListener _listener = new(IPAddress.Loopback, 0);
    private readonly Task _serve;
    private readonly CancellationTokenSource _cts = new();
    private FrameConnection? _connection;

    public FakeManager(int reportIntervalMs = 100)
    {
        _listener.Start();
        _serve = ServeAsync(reportIntervalMs);
    }

    public ManagerAddress Address => new(_listener.LocalEndpoint, _key.Public);

    /// <summary>Every frame the node sent after its hello: opcode and payload.</summary>
    public Channel<(ControlOpcode Opcode, byte[] Payload)> Received { get; } = Channel.CreateUnbounded<(ControlOpcode, byte[])>();

    public async Task<T> NextAsync<T>(ControlOpcode opcode, System.Text.Json.Serialization.Metadata.JsonTypeInfo<T> type, Func<T, bool> match, TimeSpan limit)
    {
        using var deadline = new CancellationTokenSource(limit);
        while (true)
        {
            var (op, payload) = await Received.Reader.ReadAsync(deadline.Token);
            if (op == opcode && JsonSerializer.Deserialize(payload, type) is { } message && match(message))
            {
                return message;
            }
        }
    }

    private async Task ServeAsync(int reportIntervalMs)
    {
        var socket = await _listener.AcceptSocketAsync(_cts.Token);
        var secure = await NoiseStream.AcceptAsync(new NetworkStream(socket, ownsSocket: true), _key, ControlProtocol.Prologue, _cts.Token);
        _connection = new FrameConnection(secure, "node");
        var (op, id, _) = await _connection.ReadFirstFrameAsync(_cts.Token);
        Assert.Equal((byte)ControlOpcode.Hello, op);
        _connection.Start((opcode, payload, _) =>
        {
            Received.Writer.TryWrite(((ControlOpcode)opcode, payload.ToArray()));
            return ValueTask.FromResult(JsonSerializer.SerializeToUtf8Bytes(new OkMessage(), ControlJsonContext.Default.OkMessage));
        });
        var ack = new HelloAckMessage { Version = ControlProtocol.Version, RuleLifetimeMs = 30_000, ReportIntervalMs = reportIntervalMs };
        await _connection.SendAsync((byte)((byte)ControlOpcode.Hello | FrameCodec.ResponseBit), id, JsonSerializer.SerializeToUtf8Bytes(ack, ControlJsonContext.Default.HelloAckMessage), _cts.Token);
    }

    public async ValueTask DisposeAsync()
    {
        await _cts.CancelAsync();
        _listener.Stop();
        try
        {
            await _serve;
        }
        catch (OperationCanceledException)
        {
            // Stopped before a node connected.
        }

        if (_connection is not null)
        {
            await _connection.DisposeAsync();
        }

        _key.Dispose();
        _cts.Dispose();
    }
}
