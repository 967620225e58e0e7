using System.Buffers;
using System.Diagnostics;

namespace Skywire.TestKit;

/// <summary>Receives one datagram.</summary>
public delegate void DatagramHandler(ReadOnlySpan<byte> datagram);

/// <summary>
/// One direction of a faulty network: datagrams posted to it are dropped, duplicated, reordered and delayed as
/// configured, then handed to a handler on a dedicated delivery thread (never on the poster's thread, so a
/// handler may post back without re-entrancy).
/// </summary>
public sealed class FaultInjector : IDisposable
{
    private static readonly TimeSpan HoldLimit = TimeSpan.FromMilliseconds(5);

    private readonly FaultOptions _options;
    private readonly DatagramHandler _handler;
    private readonly Random _random;
    private readonly object _sync = new();
    private readonly PriorityQueue<Item, (long Due, long Seq)> _queue = new();
    private readonly List<(Item Item, long ReleaseAfter, long HeldAt)> _held = [];
    private readonly Thread _thread;
    private long _seq;
    private bool _stopped;

    private readonly record struct Item(byte[] Buffer, int Length);

    /// <summary>Starts the delivery thread.</summary>
    public FaultInjector(FaultOptions options, DatagramHandler handler, string name = "faults")
    {
        _options = options ?? FaultOptions.None;
        _handler = handler;
        Seed = _options.Seed ?? Random.Shared.Next();
        _random = new Random(Seed);
        _thread = new Thread(Run) { IsBackground = true, Name = name };
        _thread.Start();
    }

    /// <summary>The seed in use (log it to reproduce a failure).</summary>
    public int Seed { get; }

    /// <summary>When true every datagram is dropped (a dead link or peer).</summary>
    public bool Blackhole { get; set; }

    /// <summary>Datagrams posted.</summary>
    public long Posted => Interlocked.Read(ref _posted);

    /// <summary>Datagrams handed to the handler (duplicates included).</summary>
    public long Delivered => Interlocked.Read(ref _delivered);

    /// <summary>Datagrams dropped by the rate limiter's full queue (also counted in <see cref="Dropped"/>).</summary>
    public long QueueDrops => Interlocked.Read(ref _queueDrops);

    /// <summary>Bytes handed to the handler.</summary>
    public long DeliveredBytes => Interlocked.Read(ref _deliveredBytes);

    /// <summary>Datagrams dropped (by DropRate, Blackhole or a full queue).</summary>
    public long Dropped => Interlocked.Read(ref _dropped);

    /// <summary>Extra copies made.</summary>
    public long Duplicated => Interlocked.Read(ref _duplicated);

    /// <summary>Datagrams held back for reordering.</summary>
    public long Reordered => Interlocked.Read(ref _reordered);

    /// <summary>Exceptions thrown by the handler (the datagram counts as delivered).</summary>
    public long HandlerErrors => Interlocked.Read(ref _handlerErrors);

    private long _posted;
    private long _delivered;
    private long _dropped;
    private long _duplicated;
    private long _reordered;
    private long _handlerErrors;
    private long _queueDrops;
    private long _deliveredBytes;
    private long _lastDeparture; // Stopwatch ticks: when the bottleneck finishes sending what it holds

    /// <summary>Posts one datagram (copied; the span may be reused at once).</summary>
    public void Post(ReadOnlySpan<byte> datagram)
    {
        Interlocked.Increment(ref _posted);
        lock (_sync)
        {
            if (_stopped)
            {
                return;
            }
            var now = Stopwatch.GetTimestamp();
            _seq++;
            ReleaseHeld(now, force: false);
            if (Blackhole || (_options.DropRate > 0 && _random.NextDouble() < _options.DropRate))
            {
                Interlocked.Increment(ref _dropped);
                return;
            }
            var copies = _options.DuplicateRate > 0 && _random.NextDouble() < _options.DuplicateRate ? 2 : 1;
            if (copies == 2)
            {
                Interlocked.Increment(ref _duplicated);
            }
            for (var c = 0; c < copies; c++)
            {
                var buffer = ArrayPool<byte>.Shared.Rent(Math.Max(datagram.Length, 1));
                datagram.CopyTo(buffer);
                var item = new Item(buffer, datagram.Length);
                if (_options.ReorderWindow > 0 && _options.ReorderRate > 0 && _random.NextDouble() < _options.ReorderRate)
                {
                    Interlocked.Increment(ref _reordered);
                    _held.Add((item, _seq + _random.Next(1, _options.ReorderWindow + 1), now));
                    continue;
                }
                Schedule(item, now);
            }
            Monitor.PulseAll(_sync);
        }
    }

    /// <summary>Stops delivery; queued datagrams are discarded.</summary>
    public void Dispose()
    {
        lock (_sync)
        {
            if (_stopped)
            {
                return;
            }
            _stopped = true;
            Monitor.PulseAll(_sync);
        }
        if (Thread.CurrentThread != _thread)
        {
            _thread.Join();
        }
    }

    // Caller holds _sync.
    private void Schedule(Item item, long now)
    {
        if (_queue.Count >= _options.QueueCapacity)
        {
            ArrayPool<byte>.Shared.Return(item.Buffer);
            Interlocked.Increment(ref _dropped);
            return;
        }
        var departure = now;
        if (_options.RateBytesPerSecond > 0)
        {
            // The bottleneck: serialise at the rate behind what it already holds; drop-tail when that is too much.
            var start = Math.Max(now, _lastDeparture);
            var backlog = (start - now) * _options.RateBytesPerSecond / Stopwatch.Frequency;
            if (backlog + item.Length > _options.QueueBytes)
            {
                ArrayPool<byte>.Shared.Return(item.Buffer);
                Interlocked.Increment(ref _dropped);
                Interlocked.Increment(ref _queueDrops);
                return;
            }
            departure = start + (long)(item.Length * Stopwatch.Frequency / _options.RateBytesPerSecond);
            _lastDeparture = departure;
        }
        var delay = _options.Delay;
        if (_options.Jitter > TimeSpan.Zero)
        {
            delay += TimeSpan.FromTicks((long)(_random.NextDouble() * _options.Jitter.Ticks));
        }
        var due = delay <= TimeSpan.Zero ? departure : departure + (long)(delay.TotalSeconds * Stopwatch.Frequency);
        _queue.Enqueue(item, (due, _seq * 4 + _queue.Count % 4));
    }

    // Caller holds _sync. Releases held-back datagrams whose turn came (or that waited too long).
    private void ReleaseHeld(long now, bool force)
    {
        var limit = (long)(HoldLimit.TotalSeconds * Stopwatch.Frequency);
        for (var i = 0; i < _held.Count; i++)
        {
            var (item, after, heldAt) = _held[i];
            if (force || _seq > after || now - heldAt >= limit)
            {
                _held.RemoveAt(i--);
                Schedule(item, now);
            }
        }
    }

    private void Run()
    {
        var batch = new List<Item>(64);
        while (true)
        {
            lock (_sync)
            {
                while (true)
                {
                    if (_stopped)
                    {
                        while (_queue.TryDequeue(out var dropped, out _))
                        {
                            ArrayPool<byte>.Shared.Return(dropped.Buffer);
                        }
                        return;
                    }
                    var now = Stopwatch.GetTimestamp();
                    if (_held.Count > 0)
                    {
                        ReleaseHeld(now, force: false);
                    }
                    while (batch.Count < 64 && _queue.TryPeek(out var item, out var key) && key.Due <= now)
                    {
                        _queue.Dequeue();
                        batch.Add(item);
                    }
                    if (batch.Count > 0)
                    {
                        break;
                    }
                    var waitMs = _held.Count > 0 ? 2 : Timeout.Infinite;
                    if (_queue.TryPeek(out _, out var next))
                    {
                        var ms = (int)Math.Ceiling((next.Due - now) * 1000.0 / Stopwatch.Frequency);
                        waitMs = waitMs == Timeout.Infinite ? Math.Max(ms, 0) : Math.Min(waitMs, Math.Max(ms, 0));
                    }
                    Monitor.Wait(_sync, waitMs);
                }
            }
            foreach (var item in batch)
            {
                try
                {
                    _handler(item.Buffer.AsSpan(0, item.Length));
                }
                catch (Exception)
                {
                    Interlocked.Increment(ref _handlerErrors);
                }
                finally
                {
                    ArrayPool<byte>.Shared.Return(item.Buffer);
                }
                Interlocked.Increment(ref _delivered);
                Interlocked.Add(ref _deliveredBytes, item.Length);
            }
            batch.Clear();
        }
    }
}
