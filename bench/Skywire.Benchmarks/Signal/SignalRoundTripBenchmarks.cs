using System.Net;
using BenchmarkDotNet.Attributes;
using Viscript.Signal;

namespace Skywire.Benchmarks.Signal;

/// <summary>
/// Server-initiated calls answered by a <see cref="SignalClient"/> over loopback TCP, for both the extended protocol
/// (request ids) and the original one (per-op serialisation, as with a Go client).
/// </summary>
[MemoryDiagnoser]
public class SignalRoundTripBenchmarks
{
    private SignalServer _server = null!;
    private SignalClient _extended = null!;
    private SignalClient _original = null!;

    [GlobalSetup]
    public async Task Setup()
    {
        _server = new SignalServer(new SignalServerOptions { Listen = new IPEndPoint(IPAddress.Loopback, 0) });
        await _server.StartAsync();
        var options = new SignalClientOptions { ServerAddress = _server.LocalEndPoint.ToString(), ExitOnUnhandledShutdown = false };
        _extended = SignalClient.Start(options with { ClientId = 1 });
        _original = SignalClient.Start(options with { ClientId = 2, UseExtensions = false });
        await _extended.WaitForRegistrationAsync();
        await _original.WaitForRegistrationAsync();
    }

    [GlobalCleanup]
    public async Task Cleanup()
    {
        await _extended.DisposeAsync();
        await _original.DisposeAsync();
        await _server.DisposeAsync();
    }

    [Benchmark(Description = "PING round trip, extended client")]
    public Task<TimeSpan> PingExtended() => _server.PingAsync(1);

    [Benchmark(Description = "PING round trip, original protocol")]
    public Task<TimeSpan> PingOriginal() => _server.PingAsync(2);

    [Benchmark(Description = "TOP round trip, extended client")]
    public Task<ResourceUsage> TopExtended() => _server.TopAsync(1);
}
