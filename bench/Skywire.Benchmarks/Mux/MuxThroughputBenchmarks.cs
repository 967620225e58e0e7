using BenchmarkDotNet.Attributes;
using Skywire.TestKit;

namespace Skywire.Benchmarks.Mux;

/// <summary>
/// Bulk transfer through two multiplexers joined by the in-memory pipe (no faults): each operation moves
/// <see cref="TotalBytes"/> over <see cref="Streams"/> concurrent streams. Throughput = TotalBytes / Mean.
/// </summary>
[MemoryDiagnoser]
public class MuxThroughputBenchmarks
{
    public const int TotalBytes = 64 << 20;
    private MuxPair _pair = null!;
    private byte[] _chunk = null!;

    [Params(1400, 8192)]
    public int DatagramSize { get; set; }

    [Params(1, 8)]
    public int Streams { get; set; }

    [GlobalSetup]
    public void Setup()
    {
        _pair = MuxPair.Create(maxDatagramSize: DatagramSize);
        _chunk = new byte[64 * 1024];
        Random.Shared.NextBytes(_chunk);
    }

    [GlobalCleanup]
    public void Cleanup() => _pair.DisposeAsync().AsTask().GetAwaiter().GetResult();

    [Benchmark]
    public async Task Transfer()
    {
        var perStream = TotalBytes / Streams;
        var tasks = new Task[Streams * 2];
        for (var i = 0; i < Streams; i++)
        {
            var open = _pair.A.OpenStreamAsync(default).AsTask();
            var server = await _pair.B.AcceptStreamAsync();
            server.Accept();
            var client = await open;
            tasks[2 * i] = Task.Run(async () =>
            {
                for (var sent = 0; sent < perStream; sent += _chunk.Length)
                {
                    await client.WriteAsync(_chunk);
                }
                await client.CompleteWritesAsync();
                await client.DisposeAsync();
            });
            tasks[(2 * i) + 1] = Task.Run(async () =>
            {
                var buffer = new byte[64 * 1024];
                long got = 0;
                int n;
                while ((n = await server.ReadAsync(buffer)) > 0)
                {
                    got += n;
                }
                await server.DisposeAsync();
                if (got != perStream)
                {
                    throw new InvalidOperationException($"received {got} of {perStream}");
                }
            });
        }
        await Task.WhenAll(tasks);
    }
}
