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
/// One operation = one datagram delivered at C. <see cref="Batch"/> 1 sends one datagram per call (the
/// per-packet path); 32 hands A's data plane 32 datagrams per call (<c>SecureSession.SendBatch</c>), which go
/// out with UDP GSO, arrive at B as GRO batches and are forwarded as batches (the stream path).
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

    [Params(1, 32)]
    public int Batch { get; set; }

    private byte[][] _batch = [];
    private int[] _lengths = [];

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
        _batch = Enumerable.Range(0, Batch).Select(_ => new byte[DatagramSize]).ToArray();
        _lengths = Enumerable.Repeat(DatagramSize, Batch).ToArray();
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
    public long ThroughOneRelay() => SendBurst(spin: true);

    /// <summary>
    /// One burst; waits spin (<paramref name="spin"/>, as BenchmarkDotNet wants) or sleep (a CPU-time measure must
    /// not count the waiting). Returns the datagrams delivered at C.
    /// </summary>
    internal long SendBurst(bool spin)
    {
        var start = Interlocked.Read(ref _received);
        for (var i = 0; i < Burst; i += Batch)
        {
            if (Batch == 1)
            {
                _sender.Send(_datagram);
            }
            else
            {
                _sender.SendBatch(_batch, _lengths, Batch);
            }

            // Keep at most 256 datagrams in flight: UDP has no flow control of its own.
            var stall = Environment.TickCount64 + 200;
            while (i - (Interlocked.Read(ref _received) - start) > 256 && Environment.TickCount64 < stall)
            {
                Wait(spin);
            }
        }

        var deadline = Environment.TickCount64 + 2000;
        while (Interlocked.Read(ref _received) - start < Burst && Environment.TickCount64 < deadline)
        {
            Wait(spin);
        }

        return Interlocked.Read(ref _received) - start;
    }

    private static void Wait(bool spin)
    {
        if (spin)
        {
            Thread.SpinWait(20);
        }
        else
        {
            Thread.Sleep(1);
        }
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
