using System.Collections.Concurrent;
using System.Security.Cryptography;
using Microsoft.Extensions.Logging;
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
    private readonly StorePublisher _publisher;
    private readonly Dictionary<PubKey, HashSet<string>> _publishedApps = [];
    private readonly ConcurrentDictionary<PubKey, (string Text, DateTimeOffset At)> _publishedLinks = new();
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
        _publisher = new StorePublisher(store, "this manager", logger, _time);
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
        _publisher.Start();
        Publish(MeshStoreCodec.ManagerKey(ManagerId), MeshStoreCodec.Encode(new ManagerValue { Listen = Listen, Started = _time.GetUtcNow() }), leased: true);
        _store.Start();
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

    private void Publish(string key, byte[] value, bool leased) => _publisher.Publish(key, value, leased);

    private void Unpublish(string key) => _publisher.Unpublish(key);

    private void Enqueue(string key, StoreTransaction transaction) => _publisher.Enqueue(key, transaction);

    /// <summary>Keys waiting to be written (0 when the store holds everything this manager published).</summary>
    public int PendingWrites => _publisher.PendingWrites;

    /// <inheritdoc />
    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            return;
        }

        await _publisher.DisposeAsync();
        await _cts.CancelAsync();
        if (_watcher is not null)
        {
            await _watcher.ContinueWith(_ => { }, TaskScheduler.Default);
        }

        foreach (var pending in _acks.Values)
        {
            pending.TrySetCanceled();
        }

        _cts.Dispose();
    }
}
