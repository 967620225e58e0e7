using Microsoft.Extensions.Logging;
using Skywire.Core.Sessions;
using Skywire.Core.Sessions.Mux;
using Skywire.TestKit.Logging;

namespace Skywire.TestKit;

/// <summary>One end of an in-memory datagram pipe: an <see cref="IDatagramTransport"/> for a multiplexer.</summary>
public sealed class InMemoryDatagramEndpoint : IDatagramTransport, IDisposable
{
    private volatile DatagramHandler? _receiver;

    internal InMemoryDatagramEndpoint(int maxDatagramSize) => MaxDatagramSize = maxDatagramSize;

    /// <inheritdoc/>
    public int MaxDatagramSize { get; }

    /// <summary>Faults and counters of the direction this end sends into.</summary>
    public FaultInjector Outbound { get; internal set; } = null!;

    /// <summary>Where datagrams arriving at this end go (typically <c>mux.Receive</c>). Datagrams arriving while null are dropped.</summary>
    public DatagramHandler? Receiver
    {
        get => _receiver;
        set => _receiver = value;
    }

    /// <summary>When true, <see cref="Send"/> throws (a transport that failed).</summary>
    public bool FailSends { get; set; }

    /// <inheritdoc/>
    public void Send(ReadOnlySpan<byte> datagram)
    {
        if (FailSends)
        {
            throw new IOException("The in-memory transport was told to fail.");
        }
        if (datagram.Length > MaxDatagramSize)
        {
            throw new ArgumentException($"Datagram of {datagram.Length} bytes exceeds {MaxDatagramSize}.", nameof(datagram));
        }
        Outbound.Post(datagram);
    }

    internal void Deliver(ReadOnlySpan<byte> datagram) => _receiver?.Invoke(datagram);

    /// <summary>Stops the outbound direction.</summary>
    public void Dispose() => Outbound.Dispose();
}

/// <summary>Creates connected in-memory datagram endpoints with fault injection (wireguard's bindtest idea).</summary>
public static class InMemoryDatagramPipe
{
    /// <summary>Creates two connected endpoints; <paramref name="aToB"/> and <paramref name="bToA"/> set the faults of each direction.</summary>
    public static (InMemoryDatagramEndpoint A, InMemoryDatagramEndpoint B) CreatePair(
        int maxDatagramSize = 1200, FaultOptions? aToB = null, FaultOptions? bToA = null)
    {
        var a = new InMemoryDatagramEndpoint(maxDatagramSize);
        var b = new InMemoryDatagramEndpoint(maxDatagramSize);
        a.Outbound = new FaultInjector(aToB ?? FaultOptions.None, b.Deliver, "pipe a->b");
        b.Outbound = new FaultInjector(bToA ?? FaultOptions.None, a.Deliver, "pipe b->a");
        return (a, b);
    }
}

/// <summary>
/// Two multiplexers joined by an in-memory pipe. Dispose tears both down, and fails (throws) if either logged an Error
/// the test did not declare on <see cref="Log"/> (a failed send loop is a bug, whatever the test checks).
/// </summary>
public sealed class MuxPair : IAsyncDisposable
{
    private MuxPair(StreamMultiplexer a, StreamMultiplexer b, InMemoryDatagramEndpoint endA, InMemoryDatagramEndpoint endB, TestLog log)
    {
        A = a;
        B = b;
        EndA = endA;
        EndB = endB;
        Log = log;
    }

    /// <summary>Everything both multiplexers logged at Warning and above.</summary>
    public TestLog Log { get; }

    /// <summary>The first multiplexer.</summary>
    public StreamMultiplexer A { get; }

    /// <summary>The second multiplexer.</summary>
    public StreamMultiplexer B { get; }

    /// <summary>A's end of the pipe (its Outbound is the A->B direction).</summary>
    public InMemoryDatagramEndpoint EndA { get; }

    /// <summary>B's end of the pipe (its Outbound is the B->A direction).</summary>
    public InMemoryDatagramEndpoint EndB { get; }

    /// <summary>Creates the pair; the same faults apply both ways unless <paramref name="bToA"/> is given.</summary>
    public static MuxPair Create(
        FaultOptions? faults = null, MuxOptions? options = null, int maxDatagramSize = 1200,
        FaultOptions? bToA = null, MuxOptions? optionsB = null, TimeProvider? timeProvider = null)
    {
        var (endA, endB) = InMemoryDatagramPipe.CreatePair(maxDatagramSize, faults, bToA ?? (faults is null ? null : faults with { Seed = faults.Seed + 1 }));
        var log = new TestLog(minimum: LogLevel.Warning);
        var a = new StreamMultiplexer(endA, options, log.CreateLogger("mux A"), timeProvider);
        var b = new StreamMultiplexer(endB, optionsB ?? options, log.CreateLogger("mux B"), timeProvider);
        endA.Receiver = a.Receive;
        endB.Receiver = b.Receive;
        return new MuxPair(a, b, endA, endB, log);
    }

    /// <summary>Disposes both multiplexers and the pipe.</summary>
    public async ValueTask DisposeAsync()
    {
        await A.DisposeAsync();
        await B.DisposeAsync();
        EndA.Dispose();
        EndB.Dispose();
        Log.Dispose();
    }
}
