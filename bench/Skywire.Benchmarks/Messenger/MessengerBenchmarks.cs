using System.Net;
using BenchmarkDotNet.Attributes;
using BenchmarkDotNet.Columns;
using BenchmarkDotNet.Configs;
using Skywire.Core.Crypto;
using Skywire.Core.Messenger;

namespace Skywire.Benchmarks.Messenger;

/// <summary>Adds median and P95 to the default columns (latency distributions).</summary>
public sealed class PercentileConfig : ManualConfig
{
    public PercentileConfig()
    {
        AddColumn(StatisticColumn.Median, StatisticColumn.P95);
    }
}

/// <summary>End-to-end sealing of one message (Noise_KK message 1): what each client pays per message, on each side.</summary>
[MemoryDiagnoser]
public class MessengerEnvelopeBenchmarks
{
    private readonly KeyPair _alice = KeyPair.Generate();
    private readonly KeyPair _bob = KeyPair.Generate();
    private readonly byte[] _message = new byte[1024];
    private byte[] _envelope = [];

    [GlobalSetup]
    public void Setup() => _envelope = MessageEnvelope.Seal(_alice, _bob.Public, _message);

    [Benchmark(Description = "seal 1 KiB message")]
    public int Seal() => MessageEnvelope.Seal(_alice, _bob.Public, _message).Length;

    [Benchmark(Description = "open 1 KiB message")]
    public int Open() => MessageEnvelope.TryOpen(_bob, _alice.Public, _envelope, out var m) ? m.Length : 0;
}

/// <summary>
/// 100 clients connected to one messenger over loopback, 1 KiB messages sealed end to end: throughput (every client
/// sends to its neighbour at once) and one message's latency from SendAsync to the recipient's Messages reader.
/// </summary>
[MemoryDiagnoser]
[Config(typeof(PercentileConfig))]
public class MessengerRelayBenchmarks
{
    private const int Clients = 100;
    private const int PerClient = 10;
    private readonly byte[] _message = new byte[1024];
    private MessengerServer _server = null!;
    private MessengerClient[] _clients = [];

    [GlobalSetup]
    public async Task Setup()
    {
        _server = new MessengerServer(KeyPair.Generate(), MessengerServerOptions.Default with { RatePerSecond = 1_000_000, RateBurst = 1_000_000 });
        _server.Start(new IPEndPoint(IPAddress.Loopback, 0));
        var options = new MessengerClientOptions { EndPoint = _server.LocalEndPoint, MessengerKey = _server.Key };
        _clients = await Task.WhenAll(Enumerable.Range(0, Clients).Select(_ => MessengerClient.ConnectAsync(options, KeyPair.Generate())));
    }

    [GlobalCleanup]
    public async Task Cleanup()
    {
        foreach (var client in _clients)
        {
            await client.DisposeAsync();
        }

        await _server.DisposeAsync();
    }

    [Benchmark(Description = "100 clients, 1 KiB messages: time per message (all clients sending at once)", OperationsPerInvoke = Clients * PerClient)]
    public async Task Throughput()
    {
        var sends = Enumerable.Range(0, Clients).Select(i => Task.Run(async () =>
        {
            var to = _clients[(i + 1) % Clients].Key;
            for (var k = 0; k < PerClient; k++)
            {
                await _clients[i].SendAsync(to, _message);
            }
        }));
        var receives = _clients.Select(c => Task.Run(async () =>
        {
            for (var k = 0; k < PerClient; k++)
            {
                await c.Messages.ReadAsync();
            }
        }));
        await Task.WhenAll(sends.Concat(receives));
    }

    [Benchmark(Description = "1 KiB message latency, send to receive (100 clients connected)")]
    public async Task Latency()
    {
        await _clients[0].SendAsync(_clients[1].Key, _message);
        await _clients[1].Messages.ReadAsync();
    }
}

/// <summary>A relayed stream between two clients: bulk throughput of 16 MiB one way (end-to-end sealed records, credit window).</summary>
[MemoryDiagnoser]
public class MessengerStreamBenchmarks
{
    private const int Size = 16 * 1024 * 1024;
    private readonly byte[] _chunk = new byte[64 * 1024];
    private readonly byte[] _readBuffer = new byte[64 * 1024];
    private MessengerServer _server = null!;
    private MessengerClient _a = null!;
    private MessengerClient _b = null!;
    private MessengerStream _out = null!;
    private MessengerStream _in = null!;

    [GlobalSetup]
    public async Task Setup()
    {
        _server = new MessengerServer(KeyPair.Generate());
        _server.Start(new IPEndPoint(IPAddress.Loopback, 0));
        var options = new MessengerClientOptions { EndPoint = _server.LocalEndPoint, MessengerKey = _server.Key };
        _a = await MessengerClient.ConnectAsync(options, KeyPair.Generate());
        _b = await MessengerClient.ConnectAsync(options, KeyPair.Generate());
        var accept = _b.AcceptStreamAsync().AsTask();
        _out = await _a.OpenStreamAsync(_b.Key, default);
        _in = await accept;
    }

    [GlobalCleanup]
    public async Task Cleanup()
    {
        await _out.DisposeAsync();
        await _in.DisposeAsync();
        await _a.DisposeAsync();
        await _b.DisposeAsync();
        await _server.DisposeAsync();
    }

    [Benchmark(Description = "relayed stream, 16 MiB one way")]
    public async Task Transfer16MiB()
    {
        var reader = Task.Run(async () =>
        {
            var left = Size;
            while (left > 0)
            {
                left -= await _in.ReadAsync(_readBuffer.AsMemory(0, Math.Min(left, _readBuffer.Length)));
            }
        });
        for (var sent = 0; sent < Size; sent += _chunk.Length)
        {
            await _out.WriteAsync(_chunk);
        }

        await reader;
    }
}
