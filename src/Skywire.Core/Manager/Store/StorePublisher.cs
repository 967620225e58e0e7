using Microsoft.Extensions.Logging;
using Skywire.Core.Channels;

namespace Skywire.Core.Manager.Store;

/// <summary>
/// Writes one process's keys to an <see cref="IMeshStore"/> without ever blocking the caller: writes are queued per key
/// (the latest write of a key replaces a pending one), written in the order their keys were first queued, and retried
/// with backoff while the store is away. A key whose write failed goes to the back of the queue, so every pending key
/// gets its turn (one key that keeps failing never starves the others). Leased keys are remembered and written again
/// each time a new store session starts (the old session's leased keys are gone then). Used by the manager
/// (<see cref="MeshStoreSync"/>) and the messenger's presence (<see cref="Messenger.MessengerPresence"/>).
/// </summary>
public sealed partial class StorePublisher : IAsyncDisposable
{
    private readonly IMeshStore _store;
    private readonly ILogger _logger;
    private readonly TimeProvider _time;
    private readonly string _what;
    private readonly CancellationTokenSource _cts = new();
    private readonly Lock _lock = new();
    private readonly Dictionary<string, byte[]> _leased = new(StringComparer.Ordinal);
    private readonly Dictionary<string, byte[]> _written = new(StringComparer.Ordinal);
    private readonly Dictionary<string, StoreTransaction> _pending = new(StringComparer.Ordinal);
    private readonly Queue<string> _order = new();
    private readonly SemaphoreSlim _signal = new(0, int.MaxValue);
    private Task? _loop;
    private int _disposed;

    /// <param name="store">The store (owned by the caller).</param>
    /// <param name="what">Whose keys, for logs ("this manager", "this messenger").</param>
    /// <param name="logger">Logger.</param>
    /// <param name="timeProvider">Clock for the retry backoff.</param>
    public StorePublisher(IMeshStore store, string what, ILogger logger, TimeProvider? timeProvider = null)
    {
        ArgumentNullException.ThrowIfNull(store);
        _store = store;
        _what = what;
        _logger = logger;
        _time = timeProvider ?? TimeProvider.System;
    }

    /// <summary>Keys waiting to be written (0 when the store holds everything published).</summary>
    public int PendingWrites
    {
        get
        {
            lock (_lock)
            {
                return _pending.Count;
            }
        }
    }

    /// <summary>Starts writing (and re-writing leased keys on each new store session). Does not start the store.</summary>
    public void Start()
    {
        _store.SessionStarted += Republish;
        _loop ??= Task.Run(LoopAsync);
    }

    /// <summary>Queues a put (the latest write of a key wins); leased keys are written again under every new session.</summary>
    public void Publish(string key, byte[] value, bool leased)
    {
        lock (_lock)
        {
            if (leased)
            {
                _leased[key] = value;
            }

            QueueLocked(key, StoreTransaction.Write(StoreOp.Put(key, value, leased)));
        }

        _signal.Release();
    }

    /// <summary>Queues the delete of a key written here, done only if it still holds what was written here.</summary>
    public void Unpublish(string key)
    {
        lock (_lock)
        {
            _leased.Remove(key);
            if (_written.Remove(key, out var mine))
            {
                QueueLocked(key, new StoreTransaction([StoreCompare.Holds(key, mine)], [StoreOp.Delete(key)]));
            }
            else
            {
                // Never written (or already gone): nothing to delete, and a pending put must not land after this.
                _pending.Remove(key);
                return;
            }
        }

        _signal.Release();
    }

    /// <summary>Queues a transaction under a key of its own (retried until it lands or is replaced).</summary>
    public void Enqueue(string key, StoreTransaction transaction)
    {
        lock (_lock)
        {
            QueueLocked(key, transaction);
        }

        _signal.Release();
    }

    private void QueueLocked(string key, StoreTransaction transaction)
    {
        if (_pending.TryAdd(key, transaction))
        {
            _order.Enqueue(key);
        }
        else
        {
            _pending[key] = transaction; // keeps its place in the queue
        }
    }

    private void Republish()
    {
        int count;
        lock (_lock)
        {
            foreach (var (key, value) in _leased)
            {
                QueueLocked(key, StoreTransaction.Write(StoreOp.Put(key, value, leased: true)));
            }

            count = _leased.Count;
        }

        Log.SessionRepublished(_logger, _store.Description, _what, count);
        _signal.Release();
    }

    private async Task LoopAsync()
    {
        var stopping = _cts.Token;
        var backoff = new Backoff(TimeSpan.FromMilliseconds(100), TimeSpan.FromSeconds(2));
        while (!stopping.IsCancellationRequested)
        {
            try
            {
                await _signal.WaitAsync(stopping);
            }
            catch (OperationCanceledException)
            {
                return;
            }

            while (!stopping.IsCancellationRequested)
            {
                string key;
                StoreTransaction transaction;
                lock (_lock)
                {
                    // Keys removed from _pending meanwhile (an unpublish of a never-written key) leave a stale entry behind.
                    while (_order.TryPeek(out var head) && !_pending.ContainsKey(head))
                    {
                        _order.Dequeue();
                    }

                    if (!_order.TryPeek(out var first))
                    {
                        break;
                    }

                    key = first;
                    transaction = _pending[key];
                }

                try
                {
                    await _store.TransactAsync(transaction, stopping);
                    backoff.Reset();
                    lock (_lock)
                    {
                        // Done unless it was replaced meanwhile (then the new one is written in the same place).
                        if (_pending.TryGetValue(key, out var current) && ReferenceEquals(current, transaction))
                        {
                            _pending.Remove(key);
                            _order.Dequeue();
                        }

                        foreach (var op in transaction.Operations)
                        {
                            if (op.Value is null)
                            {
                                _written.Remove(op.Key);
                            }
                            else
                            {
                                _written[op.Key] = op.Value;
                            }
                        }
                    }
                }
                catch (OperationCanceledException) when (stopping.IsCancellationRequested)
                {
                    return;
                }
                catch (Exception ex) when (ex is StoreUnavailableException or OperationCanceledException or ObjectDisposedException)
                {
                    lock (_lock)
                    {
                        // Fair retries: the failed key goes to the back, so the next attempt is another key's.
                        if (_order.TryPeek(out var head) && head == key)
                        {
                            _order.Dequeue();
                            _order.Enqueue(key);
                        }
                    }

                    if ((backoff.Attempts & (backoff.Attempts - 1)) == 0)
                    {
                        Log.PublishDeferred(_logger, _what, PendingWrites, ex.Message);
                    }

                    try
                    {
                        await backoff.DelayAsync(_time, stopping);
                    }
                    catch (OperationCanceledException)
                    {
                        return;
                    }
                }
            }
        }
    }

    /// <inheritdoc />
    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            return;
        }

        _store.SessionStarted -= Republish;
        await _cts.CancelAsync();
        if (_loop is not null)
        {
            await _loop.ContinueWith(_ => { }, TaskScheduler.Default);
        }

        _cts.Dispose();
    }

    private static partial class Log
    {
        [LoggerMessage(EventId = 2320, Level = LogLevel.Information, Message = "New session with the mesh store ({Store}): writing {Count} keys of {What} again")]
        public static partial void SessionRepublished(ILogger logger, string store, string what, int count);

        [LoggerMessage(EventId = 2321, Level = LogLevel.Warning, Message = "Mesh store writes of {What} deferred ({Pending} waiting; retried with backoff): {Reason}")]
        public static partial void PublishDeferred(ILogger logger, string what, int pending, string reason);
    }
}
