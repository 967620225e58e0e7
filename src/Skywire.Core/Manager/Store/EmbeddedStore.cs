using System.Runtime.CompilerServices;
using System.Text.Json;
using System.Text.Json.Serialization;
using System.Threading.Channels;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Skywire.Core.Crypto;

namespace Skywire.Core.Manager.Store;

/// <summary>
/// The store in this process: a sorted map with revisions, the default for one manager. With a file, every key that is
/// not leased is written to it (atomically, debounced, and at disposal), so a manager that restarts finds its nodes,
/// routes and labels again; leased keys are this process's liveness and are never persisted. Several managers in one
/// process (tests) may share one instance: each gets its own session through <see cref="OpenSession"/>.
/// </summary>
public sealed partial class EmbeddedStore : IMeshStore
{
    private const int WatcherCapacity = 4096;

    private readonly Lock _sync = new();
    private readonly SortedDictionary<string, Item> _items = new(StringComparer.Ordinal);
    private readonly List<Watcher> _watchers = [];
    private readonly string? _file;
    private readonly ILogger _logger;
    private readonly Timer? _saveTimer;
    private long _revision;
    private long _nextSession = 1;
    private int _disposed;

    /// <param name="file">State file (created when missing), or null to keep everything in memory.</param>
    /// <param name="logger">Logger (none when null).</param>
    /// <exception cref="StoreUnavailableException">The file exists and cannot be read or parsed.</exception>
    public EmbeddedStore(string? file = null, ILogger? logger = null)
    {
        _file = file is null ? null : Path.GetFullPath(file);
        _logger = logger ?? NullLogger.Instance;
        if (_file is not null)
        {
            Load(_file);
            _saveTimer = new Timer(_ => Save());
        }
    }

    /// <inheritdoc />
    public string Description => _file is null ? "embedded (in memory)" : $"embedded, persisted to {_file}";

    /// <summary>The session of the instance used as an <see cref="IMeshStore"/> itself.</summary>
    private Session? _own;

    /// <inheritdoc />
    public event Action? SessionStarted
    {
        add => Own.SessionStarted += value;
        remove => Own.SessionStarted -= value;
    }

    private Session Own
    {
        get
        {
            lock (_sync)
            {
                return _own ??= new Session(this, _nextSession++);
            }
        }
    }

    /// <summary>A view of this store with a session of its own (one per manager sharing the instance).</summary>
    public IMeshStore OpenSession()
    {
        lock (_sync)
        {
            return new Session(this, _nextSession++);
        }
    }

    /// <inheritdoc />
    public void Start() => Own.Start();

    /// <inheritdoc />
    public Task<StoreSnapshot> ReadAsync(string prefix, CancellationToken cancellationToken) => Own.ReadAsync(prefix, cancellationToken);

    /// <inheritdoc />
    public Task<bool> TransactAsync(StoreTransaction transaction, CancellationToken cancellationToken) => Own.TransactAsync(transaction, cancellationToken);

    /// <inheritdoc />
    public IAsyncEnumerable<StoreChange> WatchAsync(string prefix, CancellationToken cancellationToken) => Own.WatchAsync(prefix, cancellationToken);

    private StoreSnapshot Read(string prefix)
    {
        lock (_sync)
        {
            return new StoreSnapshot([.. Under(prefix)], _revision);
        }
    }

    private IEnumerable<StoreEntry> Under(string prefix) =>
        _items.Where(kv => kv.Key.StartsWith(prefix, StringComparison.Ordinal)).Select(kv => new StoreEntry(kv.Key, kv.Value.Value, kv.Value.ModRevision));

    private bool Transact(StoreTransaction transaction, long session)
    {
        ArgumentNullException.ThrowIfNull(transaction);
        if (transaction.Operations.Count > StoreTransaction.MaxOperations)
        {
            throw new StoreUnavailableException($"a transaction of {transaction.Operations.Count} operations is more than the {StoreTransaction.MaxOperations} a store takes");
        }

        var persist = false;
        lock (_sync)
        {
            ObjectDisposedException.ThrowIf(_disposed != 0, this);
            foreach (var compare in transaction.Compares)
            {
                var found = _items.TryGetValue(compare.Key, out var item);
                var holds = compare.Absent ? !found
                    : compare.Value is not null ? found && item!.Value.AsSpan().SequenceEqual(compare.Value)
                    : found && item!.ModRevision == compare.ModRevision;
                if (!holds)
                {
                    return false;
                }
            }

            if (transaction.Operations.Count == 0)
            {
                return true;
            }

            var revision = ++_revision;
            foreach (var op in transaction.Operations)
            {
                if (op.Value is null)
                {
                    if (_items.Remove(op.Key, out var old))
                    {
                        persist |= old.Session == 0;
                        Notify(new StoreChange(StoreChangeKind.Delete, new StoreEntry(op.Key, old.Value, revision), null));
                    }
                }
                else
                {
                    var value = op.Value.ToArray();
                    if (_items.TryGetValue(op.Key, out var old))
                    {
                        persist |= old.Session == 0;
                    }

                    _items[op.Key] = new Item(value, revision, op.Leased ? session : 0);
                    persist |= !op.Leased;
                    Notify(new StoreChange(StoreChangeKind.Put, new StoreEntry(op.Key, value, revision), null));
                }
            }
        }

        if (persist)
        {
            _saveTimer?.Change(TimeSpan.FromMilliseconds(200), Timeout.InfiniteTimeSpan);
        }

        return true;
    }

    /// <summary>Drops the leased keys of a session that ended.</summary>
    private void EndSession(long session)
    {
        lock (_sync)
        {
            var gone = _items.Where(kv => kv.Value.Session == session).Select(kv => kv.Key).ToList();
            if (gone.Count == 0)
            {
                return;
            }

            var revision = ++_revision;
            foreach (var key in gone)
            {
                _items.Remove(key, out var old);
                Notify(new StoreChange(StoreChangeKind.Delete, new StoreEntry(key, old!.Value, revision), null));
            }
        }
    }

    // Under the lock. A watcher that cannot keep up is told to start over from a snapshot (never blocks a writer).
    private void Notify(StoreChange change)
    {
        foreach (var watcher in _watchers)
        {
            if (change.Entry!.Key.StartsWith(watcher.Prefix, StringComparison.Ordinal) && !watcher.Changes.Writer.TryWrite(change))
            {
                watcher.Overflowed = true;
            }
        }
    }

    private async IAsyncEnumerable<StoreChange> Watch(string prefix, [EnumeratorCancellation] CancellationToken cancellationToken)
    {
        var watcher = new Watcher(prefix);
        StoreChange first;
        lock (_sync)
        {
            first = new StoreChange(StoreChangeKind.Snapshot, null, new StoreSnapshot([.. Under(prefix)], _revision));
            _watchers.Add(watcher);
        }

        try
        {
            yield return first;
            while (true)
            {
                StoreChange next;
                try
                {
                    next = await watcher.Changes.Reader.ReadAsync(cancellationToken);
                }
                catch (OperationCanceledException)
                {
                    yield break;
                }

                if (Volatile.Read(ref watcher.Overflowed))
                {
                    lock (_sync)
                    {
                        while (watcher.Changes.Reader.TryRead(out _))
                        {
                        }

                        watcher.Overflowed = false;
                        next = new StoreChange(StoreChangeKind.Snapshot, null, new StoreSnapshot([.. Under(prefix)], _revision));
                    }
                }

                yield return next;
            }
        }
        finally
        {
            lock (_sync)
            {
                _watchers.Remove(watcher);
            }
        }
    }

    private void Load(string file)
    {
        if (!File.Exists(file))
        {
            return;
        }

        try
        {
            var state = JsonSerializer.Deserialize(File.ReadAllBytes(file), EmbeddedStoreJson.Default.PersistedState)
                ?? throw new JsonException("empty document");
            _revision = state.Revision;
            foreach (var (key, value) in state.Items)
            {
                if (!string.IsNullOrEmpty(key) && value is not null)
                {
                    _items[key] = new Item(Convert.FromBase64String(value), _revision, 0);
                }
            }
        }
        catch (Exception ex) when (ex is JsonException or FormatException or IOException or UnauthorizedAccessException)
        {
            throw new StoreUnavailableException($"state file {file} cannot be read ({ex.Message}); move it away to start empty");
        }

        Log.Loaded(_logger, _items.Count, file);
    }

    private void Save()
    {
        if (_file is null)
        {
            return;
        }

        byte[] bytes;
        lock (_sync)
        {
            var state = new PersistedState
            {
                Revision = _revision,
                Items = _items.Where(kv => kv.Value.Session == 0).ToDictionary(kv => kv.Key, kv => Convert.ToBase64String(kv.Value.Value), StringComparer.Ordinal),
            };
            bytes = JsonSerializer.SerializeToUtf8Bytes(state, EmbeddedStoreJson.Default.PersistedState);
        }

        try
        {
            SecretFile.Write(_file, bytes, replace: _ => null);
        }
        catch (SecretFileException ex)
        {
            Log.SaveFailed(_logger, _file, ex.Message);
        }
    }

    /// <inheritdoc />
    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            return;
        }

        if (_saveTimer is not null)
        {
            await _saveTimer.DisposeAsync();
            Save();
        }

        lock (_sync)
        {
            foreach (var watcher in _watchers)
            {
                watcher.Changes.Writer.TryComplete();
            }
        }
    }

    private sealed record Item(byte[] Value, long ModRevision, long Session);

    private sealed class Watcher(string prefix)
    {
        public string Prefix { get; } = prefix;

        public Channel<StoreChange> Changes { get; } = Channel.CreateBounded<StoreChange>(new BoundedChannelOptions(WatcherCapacity)
        {
            SingleReader = true, FullMode = BoundedChannelFullMode.DropWrite,
        });

        public bool Overflowed;
    }

    /// <summary>One user's session on the shared instance: its leased keys go when it is disposed.</summary>
    private sealed class Session(EmbeddedStore store, long id) : IMeshStore
    {
        private int _started;
        private int _disposed;

        public string Description => store.Description;

        public event Action? SessionStarted;

        public void Start()
        {
            if (Interlocked.Exchange(ref _started, 1) == 0)
            {
                _ = Task.Run(() => SessionStarted?.Invoke());
            }
        }

        public Task<StoreSnapshot> ReadAsync(string prefix, CancellationToken cancellationToken) => Task.FromResult(store.Read(prefix));

        public Task<bool> TransactAsync(StoreTransaction transaction, CancellationToken cancellationToken)
        {
            if (Volatile.Read(ref _disposed) != 0)
            {
                throw new StoreUnavailableException("the store session has ended");
            }

            return Task.FromResult(store.Transact(transaction, id));
        }

        public IAsyncEnumerable<StoreChange> WatchAsync(string prefix, CancellationToken cancellationToken) => store.Watch(prefix, cancellationToken);

        public ValueTask DisposeAsync()
        {
            if (Interlocked.Exchange(ref _disposed, 1) == 0)
            {
                store.EndSession(id);
            }

            return ValueTask.CompletedTask;
        }
    }

    private static partial class Log
    {
        [LoggerMessage(EventId = 2300, Level = LogLevel.Information, Message = "Mesh store: {Count} keys loaded from {File}")]
        public static partial void Loaded(ILogger logger, int count, string file);

        [LoggerMessage(EventId = 2301, Level = LogLevel.Error, Message = "Mesh store: state not saved to {File}: {Reason}")]
        public static partial void SaveFailed(ILogger logger, string file, string reason);
    }
}

/// <summary>The state file of an <see cref="EmbeddedStore"/>: the revision and every persisted key (values in base64).</summary>
internal sealed class PersistedState
{
    public long Revision { get; set; }

    public Dictionary<string, string> Items { get; set; } = [];
}

[JsonSerializable(typeof(PersistedState))]
internal sealed partial class EmbeddedStoreJson : JsonSerializerContext;
