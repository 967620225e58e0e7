using System.Net;
using BenchmarkDotNet.Attributes;
using Skywire.Core.Crypto;
using Skywire.Core.DataPlane;
using Skywire.Core.Forwarding;
using Skywire.Core.Sessions;

namespace Skywire.Benchmarks.DataPlane;

/// <summary>
/// Packets per second through one relay on loopback: node A seals 1352-byte datagrams end to
/// end and sends them over link A-B; relay B checks the link tag, rewrites the label and re-tags
/// towards C; C verifies and opens them. Three processes' work in one process on one machine:
/// the figure is end-to-end throughput of the whole chain, bounded by the slowest thread.
/// One operation = one datagram delivered at C.
/// </summary>
[MemoryDiagnoser]
public class RelayBenchmarks
{
    private const int Burst = 4000;
    private readonly List<IAsyncDisposable> _nodes = [];
    private readonly List<KeyPair> _keys = [];
    private SecureSession _sender = null!;
    private long _received;
    private byte[] _datagram = [];

    [Params(1352, 64)]
    public int DatagramSize { get; set; }

    [GlobalSetup]
    public void Setup()
    {
        var (a, ka) = Node();
        var (b, kb) = Node();
        var (c, kc) = Node();
        a.OpenLinkAsync(kb.Public, b.LocalEndPoint).GetAwaiter().GetResult();
        b.OpenLinkAsync(kc.Public, c.LocalEndPoint).GetAwaiter().GetResult();
        while (c.GetLink(kb.Public)?.State != Skywire.Core.Links.LinkState.Up || b.GetLink(ka.Public)?.State != Skywire.Core.Links.LinkState.Up)
        {
            Thread.Sleep(10);
        }

        b.InstallRule(new RouteRule(ka.Public, 100, kc.Public, 200, TimeSpan.FromHours(1)));
        b.InstallRule(new RouteRule(kc.Public, 201, ka.Public, 101, TimeSpan.FromHours(1)));
        var atC = c.BindSession(new SessionRoute(1, ka.Public, false, kb.Public, 201, kb.Public, 200));
        atC.Receiver = _ => Interlocked.Increment(ref _received);
        _sender = a.OpenSessionAsync(new SessionRoute(1, kc.Public, true, kb.Public, 100, kb.Public, 101)).GetAwaiter().GetResult();
        _datagram = new byte[DatagramSize];
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        foreach (var node in _nodes)
        {
            node.DisposeAsync().AsTask().GetAwaiter().GetResult();
        }

        foreach (var key in _keys)
        {
            key.Dispose();
        }
    }

    /// <summary>Sends a burst, paced so the relay's socket buffer never overflows, and waits for it at C.</summary>
    [Benchmark(OperationsPerInvoke = Burst)]
    public long ThroughOneRelay()
    {
        var start = Interlocked.Read(ref _received);
        for (var i = 0; i < Burst; i++)
        {
            _sender.Send(_datagram);
            // Keep at most 256 datagrams in flight: UDP has no flow control of its own.
            var stall = Environment.TickCount64 + 200;
            while (i - (Interlocked.Read(ref _received) - start) > 256 && Environment.TickCount64 < stall)
            {
                Thread.SpinWait(20);
            }
        }

        var deadline = Environment.TickCount64 + 2000;
        while (Interlocked.Read(ref _received) - start < Burst && Environment.TickCount64 < deadline)
        {
            Thread.SpinWait(20);
        }

        return Interlocked.Read(ref _received) - start;
    }

    private (NodeDataPlane Plane, KeyPair Key) Node()
    {
        var key = KeyPair.Generate();
        var plane = new NodeDataPlane(key);
        plane.Start(new IPEndPoint(IPAddress.Loopback, 0));
        _nodes.Add(plane);
        _keys.Add(key);
        return (plane, key);
    }
}
