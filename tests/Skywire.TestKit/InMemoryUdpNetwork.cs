using System.Collections.Concurrent;
using System.Net;
using System.Net.Sockets;
using Skywire.Core.Links;

namespace Skywire.TestKit;

/// <summary>One datagram in flight on an <see cref="InMemoryUdpNetwork"/>, as its <see cref="InMemoryUdpNetwork.Filter"/> sees it.</summary>
/// <param name="From">The sender's address.</param>
/// <param name="To">The destination.</param>
/// <param name="Data">The bytes (a copy the filter may change in place).</param>
public sealed record InMemoryDatagram(IPEndPoint From, IPEndPoint To, byte[] Data);

/// <summary>
/// A network of in-memory UDP binds on 127.0.0.1 (wireguard-go's conn/bindtest, grown from a pair to a network so
/// that three data planes can route through each other): each <see cref="InMemoryUdpBind"/> gets a port of its own,
/// and a datagram sent to a port is queued for its bind at once. Nothing touches a socket. Binds can emulate UDP
/// GSO/GRO: a batch sent by a GSO bind arrives at a GRO bind as one receive of equal-size datagrams, as the kernel
/// delivers it, so batch forwarding is testable without a kernel that has the offloads.
/// </summary>
public sealed class InMemoryUdpNetwork
{
    private const int MaxSegments = 64;
    private const int MaxBatchBytes = 65507;

    private readonly ConcurrentDictionary<int, InMemoryUdpBind> _binds = new();
    private int _nextPort = 20000;
    private long _delivered;
    private long _lost;

    /// <summary>Creates a connected pair of binds (not open yet), both with or without emulated offloads.</summary>
    public static (InMemoryUdpBind A, InMemoryUdpBind B) CreatePair(bool offloads = false)
    {
        var network = new InMemoryUdpNetwork();
        return (network.CreateBind(offloads), network.CreateBind(offloads));
    }

    /// <summary>
    /// Sees every datagram before it is queued (from any thread): return false to lose it (a lossy or blackholing
    /// path), or change <see cref="InMemoryDatagram.Data"/> in place (a tampering one). Null: everything arrives.
    /// </summary>
    public Func<InMemoryDatagram, bool>? Filter { get; set; }

    /// <summary>Datagrams queued for a bind.</summary>
    public long Delivered => Interlocked.Read(ref _delivered);

    /// <summary>Datagrams lost: no bind at the address, its queue full, or dropped by <see cref="Filter"/>.</summary>
    public long Lost => Interlocked.Read(ref _lost);

    /// <summary>A new bind on this network; <paramref name="offloads"/> makes it batch (GSO) and receive batches (GRO).</summary>
    public InMemoryUdpBind CreateBind(bool offloads = false, int queueCapacity = 16384) => new(this, offloads, queueCapacity);

    /// <summary>Sends <paramref name="datagram"/> to <paramref name="to"/> as if from <paramref name="from"/> (an address that needs no bind: an attacker's).</summary>
    public void Inject(IPEndPoint from, IPEndPoint to, ReadOnlySpan<byte> datagram) =>
        Deliver(from, to.Serialize(), [datagram.ToArray()]);

    internal int Register(InMemoryUdpBind bind, int port)
    {
        if (port != 0)
        {
            return _binds.TryAdd(port, bind) ? port : throw new SocketException((int)SocketError.AddressAlreadyInUse);
        }

        while (true)
        {
            var candidate = Interlocked.Increment(ref _nextPort);
            if (_binds.TryAdd(candidate, bind))
            {
                return candidate;
            }
        }
    }

    internal void Unregister(int port) => _binds.TryRemove(port, out _);

    /// <summary>Delivers datagrams from <paramref name="from"/>: to a GRO bind a run of equal sizes (and a shorter last) arrives as one batch.</summary>
    internal void Deliver(IPEndPoint from, SocketAddress to, IReadOnlyList<byte[]> datagrams)
    {
        var destination = (IPEndPoint)new IPEndPoint(IPAddress.Any, 0).Create(to);
        var survivors = new List<byte[]>(datagrams.Count);
        foreach (var data in datagrams)
        {
            if (Filter is { } filter && !filter(new InMemoryDatagram(from, destination, data)))
            {
                Interlocked.Increment(ref _lost);
                continue;
            }

            survivors.Add(data);
        }

        if (survivors.Count == 0)
        {
            return;
        }

        if (!destination.Address.Equals(IPAddress.Loopback) || !_binds.TryGetValue(destination.Port, out var bind))
        {
            Interlocked.Add(ref _lost, survivors.Count);
            return;
        }

        var source = from.Serialize();
        var i = 0;
        while (i < survivors.Count)
        {
            // As the kernel coalesces: equal sizes plus at most one shorter last, at most 64 datagrams and 65507 bytes.
            var size = survivors[i].Length;
            var j = i + 1;
            var total = size;
            if (bind.GroActive)
            {
                while (j < survivors.Count && j - i < MaxSegments && survivors[j].Length == size && total + size <= MaxBatchBytes)
                {
                    total += size;
                    j++;
                }

                if (j < survivors.Count && j - i < MaxSegments && survivors[j].Length < size && total + survivors[j].Length <= MaxBatchBytes)
                {
                    j++;
                }
            }

            var batch = new byte[survivors.Skip(i).Take(j - i).Sum(d => d.Length)];
            var offset = 0;
            for (var k = i; k < j; k++)
            {
                survivors[k].CopyTo(batch, offset);
                offset += survivors[k].Length;
            }

            if (bind.Enqueue(new QueuedDatagram(batch, j - i > 1 ? size : batch.Length, source)))
            {
                Interlocked.Add(ref _delivered, j - i);
            }
            else
            {
                Interlocked.Add(ref _lost, j - i);
            }

            i = j;
        }
    }

    internal readonly record struct QueuedDatagram(byte[] Data, int SegmentSize, SocketAddress From);
}

/// <summary>
/// An <see cref="IUdpBind"/> on an <see cref="InMemoryUdpNetwork"/>: 127.0.0.1 and a port of its own, a bounded
/// receive queue (a full queue loses datagrams, as a socket buffer does), and <see cref="Dispose"/> ends a blocked
/// receive, as the contract requires.
/// </summary>
public sealed class InMemoryUdpBind : IUdpBind
{
    private readonly InMemoryUdpNetwork _network;
    private readonly BlockingCollection<InMemoryUdpNetwork.QueuedDatagram> _queue;
    private readonly CancellationTokenSource _closed = new();
    private readonly bool _offloads;
    private int _state; // 0 new, 1 open, 2 closed
    private long _batchedCalls;

    internal InMemoryUdpBind(InMemoryUdpNetwork network, bool offloads, int queueCapacity)
    {
        _network = network;
        _offloads = offloads;
        _queue = new BlockingCollection<InMemoryUdpNetwork.QueuedDatagram>(queueCapacity);
    }

    /// <summary>The network this bind is on.</summary>
    public InMemoryUdpNetwork Network => _network;

    /// <inheritdoc/>
    public IPEndPoint? LocalEndPoint { get; private set; }

    /// <inheritdoc/>
    public AddressFamily AddressFamily => AddressFamily.InterNetwork;

    /// <inheritdoc/>
    public bool DualMode => false;

    /// <inheritdoc/>
    public bool GsoActive => _offloads;

    /// <inheritdoc/>
    public bool GroActive => _offloads;

    /// <summary>Batched sends so far (each one emulated GSO call).</summary>
    public long BatchedCalls => Interlocked.Read(ref _batchedCalls);

    /// <inheritdoc/>
    public IPEndPoint Open(IPEndPoint endPoint)
    {
        ArgumentNullException.ThrowIfNull(endPoint);
        if (endPoint.AddressFamily != AddressFamily.InterNetwork || !(endPoint.Address.Equals(IPAddress.Loopback) || endPoint.Address.Equals(IPAddress.Any)))
        {
            throw new SocketException((int)SocketError.AddressNotAvailable);
        }

        if (Interlocked.CompareExchange(ref _state, 1, 0) != 0)
        {
            throw new InvalidOperationException("The bind is already open, or closed.");
        }

        LocalEndPoint = new IPEndPoint(IPAddress.Loopback, _network.Register(this, endPoint.Port));
        return LocalEndPoint;
    }

    /// <inheritdoc/>
    public bool TryReceive(Span<byte> buffer, SocketAddress from, out int length, out int segmentSize)
    {
        length = segmentSize = 0;
        InMemoryUdpNetwork.QueuedDatagram item;
        try
        {
            item = _queue.Take(_closed.Token);
        }
        catch (OperationCanceledException)
        {
            return false;
        }
        catch (ObjectDisposedException)
        {
            return false;
        }

        length = Math.Min(item.Data.Length, buffer.Length);
        item.Data.AsSpan(0, length).CopyTo(buffer);
        segmentSize = Math.Min(item.SegmentSize, length);
        item.From.Buffer.Span[..item.From.Size].CopyTo(from.Buffer.Span);
        from.Size = item.From.Size;
        return true;
    }

    /// <inheritdoc/>
    public bool Send(ReadOnlySpan<byte> datagram, SocketAddress to)
    {
        if (Volatile.Read(ref _state) != 1 || LocalEndPoint is not { } local)
        {
            return false;
        }

        _network.Deliver(local, to, [datagram.ToArray()]);
        return true;
    }

    /// <inheritdoc/>
    public UdpBatchResult SendBatch(SocketAddress to, ReadOnlySpan<byte> slots, int stride, ReadOnlySpan<int> lengths)
    {
        var datagrams = new List<byte[]>(lengths.Length);
        long bytes = 0;
        for (var i = 0; i < lengths.Length; i++)
        {
            if (lengths[i] > 0)
            {
                datagrams.Add(slots.Slice(i * stride, lengths[i]).ToArray());
                bytes += lengths[i];
            }
        }

        if (Volatile.Read(ref _state) != 1 || LocalEndPoint is not { } local)
        {
            return new UdpBatchResult(0, 0, datagrams.Count, 0);
        }

        if (!_offloads)
        {
            foreach (var datagram in datagrams)
            {
                _network.Deliver(local, to, [datagram]);
            }

            return new UdpBatchResult(datagrams.Count, bytes, 0, 0);
        }

        _network.Deliver(local, to, datagrams);
        var batched = datagrams.Count > 1 ? 1 : 0;
        Interlocked.Add(ref _batchedCalls, batched);
        return new UdpBatchResult(datagrams.Count, bytes, 0, batched);
    }

    /// <summary>Closes the bind: a blocked <see cref="TryReceive"/> returns false, and its port is free again.</summary>
    public void Dispose()
    {
        if (Interlocked.Exchange(ref _state, 2) == 2)
        {
            return;
        }

        if (LocalEndPoint is { } local)
        {
            _network.Unregister(local.Port);
        }

        _closed.Cancel();
    }

    internal bool Enqueue(InMemoryUdpNetwork.QueuedDatagram datagram)
    {
        try
        {
            return Volatile.Read(ref _state) == 1 && _queue.TryAdd(datagram);
        }
        catch (InvalidOperationException)
        {
            return false;
        }
    }
}
