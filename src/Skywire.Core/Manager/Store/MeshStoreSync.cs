using System.Collections.Concurrent;
using System.Security.Cryptography;
using Microsoft.Extensions.Logging;
using Skywire.Core.Channels;
using Skywire.Protocol;

namespace Skywire.Core.Manager.Store;

/// <summary>
/// Keeps one manager's <see cref="MeshController"/> and the shared <see cref="IMeshStore"/> in step (docs/architecture.md
/// "Manager state"). Outbound, what this manager learns from its own nodes (presence, link reports, apps) is published
/// under its store session, and every route it owns is committed with its labels in one transaction (a label is claimed
/// create-only, so two managers never hand out the same one). Inbound, one watch of the whole prefix feeds the
/// controller what the other managers' nodes did, carries commands for this manager's nodes (rules and session routes of
/// routes other managers own), and moves the routes of a manager that died to a survivor.
/// </summary>
/// <remarks>
/// Publishing never blocks a node's request: writes are queued per key (the latest wins) and retried while the store is
/// away, and everything leased is written again when a new session starts. Route commits are synchronous: without the
/// store no route is made (the request fails with a clear error) while routes already installed keep being refreshed.
/// </remarks>
public sealed partial class MeshStoreSync : IAsyncDisposable
{
    private readonly MeshController _controller;
    private readonly IMeshStore _store;
    private readonly ILogger _logger;
    private readonly TimeProvider _time;
    private readonly ManagerOptions _options;
    private readonly CancellationTokenSource _cts = new();
    private readonly Lock _publishLock = new();
    private readonly Dictionary<string, byte[]> _leased = new(StringComparer.Ordinal);
    private readonly Dictionary<string, byte[]> _written = new(StringComparer.Ordinal);
    private readonly Dictionary<string, StoreTransaction> _pending = new(StringComparer.Ordinal);
    private readonly SemaphoreSlim _pendingSignal = new(0, int.MaxValue);
    private readonly Dictionary<PubKey, HashSet<string>> _publishedApps = [];
    private readonly ConcurrentDictionary<PubKey, (string Text, DateTimeOffset At)> _publishedLinks = new();
    private Task? _publisher;
    private Task? _watcher;
    private int _disposed;

    /// <param name="controller">The manager's logic.</param>
    /// <param name="store">The shared store (owned by the caller).</param>
    /// <param name="options">The manager's settings.</param>
    /// <param name="listen">This manager's listener, published under managers/ (for operators).</param>
    /// <param name="logger">Logger.</param>
    public MeshStoreSync(MeshController controller, IMeshStore store, ManagerOptions options, string listen, ILogger logger)
    {
        ArgumentNullException.ThrowIfNull(controller);
        ArgumentNullException.ThrowIfNull(store);
        ArgumentNullException.ThrowIfNull(options);
        _controller = controller;
        _store = store;
        _options = options;
        _logger = logger;
        _time = options.TimeProvider;
        ManagerId = Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(8));
        Listen = listen;
    }

    /// <summary>This manager process's id in the store (random per process).</summary>
    public string ManagerId { get; }

    /// <summary>This manager's control listener, as published.</summary>
    public string Listen { get; set; }

    /// <summary>The store.</summary>
    public IMeshStore Store => _store;

    /// <summary>True once the first full view of the store was applied.</summary>
    public bool Synchronized { get; private set; }

    /// <summary>Raised after each change from the store was applied (tests wait on it).</summary>
    public event Action? Applied;

    /// <summary>Starts the session, the publisher and the watch.</summary>
    public void Start()
    {
        _store.SessionStarted += Republish;
        Publish(MeshStoreCodec.ManagerKey(ManagerId), MeshStoreCodec.Encode(new ManagerValue { Listen = Listen, Started = _time.GetUtcNow() }), leased: true);
        _store.Start();
        _publisher = Task.Run(PublishLoopAsync);
        _watcher = Task.Run(WatchLoopAsync);
    }

    // ---------------------------------------------------------------- what this manager's nodes do (outbound)

    /// <summary>A node registered here.</summary>
    public void NodeOnline(PubKey node, string linkAddress)
    {
        NodeJoined();
        Publish(MeshStoreCodec.PresenceKey(node), MeshStoreCodec.Encode(new PresenceValue { Manager = ManagerId, Link = linkAddress, Since = _time.GetUtcNow() }), leased: true);
    }

    /// <summary>A node's connection here closed: its presence, links and apps leave the store (unless another manager wrote them since).</summary>
    public void NodeOffline(PubKey node)
    {
        Unpublish(MeshStoreCodec.PresenceKey(node));
        Unpublish(MeshStoreCodec.LinksKey(node));
        _publishedLinks.TryRemove(node, out _);
        AppsChanged(node, []);
    }

    /// <summary>
    /// A node's link report. Written when it says something new, and at least every third of the report age bound, so
    /// that other managers hold it fresh (they stamp it with their own clock when it arrives).
    /// </summary>
    public void LinksReported(PubKey node, IEnumerable<LinkReport> links)
    {
        var value = new LinksValue
        {
            Manager = ManagerId,
            Links = [.. links.OrderBy(l => l.To).Select(l => new LinkValue { Peer = l.To.ToString(), Up = l.Up, Rtt = l.RttMicros, Loss = l.Loss })],
        };

        // What changes routing: the peers, up or down, and the RTT to a millisecond (bucketed so jitter is not a write).
        var text = string.Join(';', value.Links.Select(l => $"{l.Peer}:{l.Up}:{l.Rtt / 1000}:{Math.Round(l.Loss, 2)}"));
        var now = _time.GetUtcNow();
        if (_publishedLinks.TryGetValue(node, out var last) && last.Text == text && now - last.At < _options.LinkReportMaxAge / 3)
        {
            return;
        }

        _publishedLinks[node] = (text, now);
        Publish(MeshStoreCodec.LinksKey(node), MeshStoreCodec.Encode(value), leased: true);
    }

    /// <summary>A node's apps changed: <paramref name="apps"/> are what it has now.</summary>
    public void AppsChanged(PubKey node, IReadOnlyList<AppRecord> apps)
    {
        HashSet<string> before;
        lock (_publishLock)
        {
            before = _publishedApps.GetValueOrDefault(node) ?? [];
            if (apps.Count == 0)
            {
                _publishedApps.Remove(node);
            }
            else
            {
                _publishedApps[node] = [.. apps.Select(a => a.Name)];
            }
        }

        foreach (var app in apps)
        {
            Publish(MeshStoreCodec.AppKey(node, app.Name), MeshStoreCodec.Encode(new AppValue { Manager = ManagerId, Type = app.Type }), leased: true);
        }

        foreach (var gone in before.Where(n => !apps.Any(a => a.Name == n)))
        {
            Unpublish(MeshStoreCodec.AppKey(node, gone));
        }
    }

    // ---------------------------------------------------------------- the publisher

    /// <summary>Queues a put (the latest write of a key wins); leased keys are written again under every new session.</summary>
    private void Publish(string key, byte[] value, bool leased)
    {
        lock (_publishLock)
        {
            if (leased)
            {
                _leased[key] = value;
            }

            _pending[key] = StoreTransaction.Write(StoreOp.Put(key, value, leased));
        }

        _pendingSignal.Release();
    }

    /// <summary>Queues the delete of a key this manager wrote, done only if it still holds what this manager wrote.</summary>
    private void Unpublish(string key)
    {
        lock (_publishLock)
        {
            _leased.Remove(key);
            if (_written.Remove(key, out var mine))
            {
                _pending[key] = new StoreTransaction([StoreCompare.Holds(key, mine)], [StoreOp.Delete(key)]);
            }
            else
            {
                _pending.Remove(key);
                return;
            }
        }

        _pendingSignal.Release();
    }

    /// <summary>Queues a transaction under a key of its own (retried until it lands or is replaced).</summary>
    private void Enqueue(string key, StoreTransaction transaction)
    {
        lock (_publishLock)
        {
            _pending[key] = transaction;
        }

        _pendingSignal.Release();
    }

    private void Republish()
    {
        lock (_publishLock)
        {
            foreach (var (key, value) in _leased)
            {
                _pending[key] = StoreTransaction.Write(StoreOp.Put(key, value, leased: true));
            }
        }

        Log.SessionRepublished(_logger, _store.Description, _leased.Count);
        _pendingSignal.Release();
    }

    private async Task PublishLoopAsync()
    {
        var stopping = _cts.Token;
        var backoff = new Backoff(TimeSpan.FromMilliseconds(100), TimeSpan.FromSeconds(2));
        while (!stopping.IsCancellationRequested)
        {
            try
            {
                await _pendingSignal.WaitAsync(stopping);
            }
            catch (OperationCanceledException)
            {
                return;
            }

            while (!stopping.IsCancellationRequested)
            {
                KeyValuePair<string, StoreTransaction> next;
                lock (_publishLock)
                {
                    if (_pending.Count == 0)
                    {
                        break;
                    }

                    next = _pending.First();
                }

                try
                {
                    await _store.TransactAsync(next.Value, stopping);
                    backoff.Reset();
                    lock (_publishLock)
                    {
                        // Done unless it was replaced meanwhile.
                        if (_pending.TryGetValue(next.Key, out var current) && ReferenceEquals(current, next.Value))
                        {
                            _pending.Remove(next.Key);
                        }

                        foreach (var op in next.Value.Operations)
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
                    if ((backoff.Attempts & (backoff.Attempts - 1)) == 0)
                    {
                        Log.PublishDeferred(_logger, _pending.Count, ex.Message);
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

    /// <summary>Keys waiting to be written (0 when the store holds everything this manager published).</summary>
    public int PendingWrites
    {
        get
        {
            lock (_publishLock)
            {
                return _pending.Count;
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
        foreach (var task in (Task?[])[_publisher, _watcher])
        {
            if (task is not null)
            {
                await task.ContinueWith(_ => { }, TaskScheduler.Default);
            }
        }

        foreach (var pending in _acks.Values)
        {
            pending.TrySetCanceled();
        }

        _cts.Dispose();
    }
}
