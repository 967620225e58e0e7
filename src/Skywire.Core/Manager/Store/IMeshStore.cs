namespace Skywire.Core.Manager.Store;

/// <summary>
/// Where the manager's shared state lives (docs/architecture.md "Manager state"): a small key-value store with
/// revisions, session-bound (leased) keys, compare-and-set transactions and ordered change notification. Two
/// implementations: <see cref="EmbeddedStore"/> (in this process, optionally persisted to a file) and
/// <see cref="EtcdStore"/> (an etcd v3 cluster that several managers share). Keys are relative to the store's prefix.
/// </summary>
/// <remarks>
/// Leased keys belong to this process's store session: they vanish when the session ends (the process died, or lost the
/// store for longer than the lease), and <see cref="SessionStarted"/> tells the owner to write them again under a new
/// session. Calls that cannot reach the store throw <see cref="StoreUnavailableException"/>; a timed-out write has an
/// unknown outcome (it may have landed), so writers make their writes idempotent.
/// </remarks>
public interface IMeshStore : IAsyncDisposable
{
    /// <summary>What the store is, for logs ("embedded", "etcd http://…").</summary>
    string Description { get; }

    /// <summary>
    /// Raised (on a pool thread) each time a new session starts: the first one, and each one after a session was lost.
    /// Leased keys written before are gone then; their owner writes them again.
    /// </summary>
    event Action? SessionStarted;

    /// <summary>Starts the session (in the background: a store that cannot be reached yet is retried).</summary>
    void Start();

    /// <summary>Every key under <paramref name="prefix"/> and the store revision the read was taken at.</summary>
    /// <exception cref="StoreUnavailableException">The store cannot be reached.</exception>
    Task<StoreSnapshot> ReadAsync(string prefix, CancellationToken cancellationToken);

    /// <summary>Applies <paramref name="transaction"/>: its operations when every comparison holds (true), else nothing (false).</summary>
    /// <exception cref="StoreUnavailableException">The store cannot be reached (the outcome is unknown after a timeout).</exception>
    Task<bool> TransactAsync(StoreTransaction transaction, CancellationToken cancellationToken);

    /// <summary>
    /// The changes under <paramref name="prefix"/>: first a <see cref="StoreChangeKind.Snapshot"/> of every key, then each
    /// put and delete in revision order. When the store cannot say what happened in between (a compacted history, a
    /// watcher that fell behind), a new snapshot follows and the reader replaces its view with it. Ends only when
    /// <paramref name="cancellationToken"/> is cancelled; an unreachable store is retried meanwhile.
    /// </summary>
    IAsyncEnumerable<StoreChange> WatchAsync(string prefix, CancellationToken cancellationToken);
}

/// <summary>One key and its value.</summary>
/// <param name="Key">Key relative to the store prefix.</param>
/// <param name="Value">Its value (bytes as written).</param>
/// <param name="ModRevision">Revision of the last write of the key.</param>
public sealed record StoreEntry(string Key, byte[] Value, long ModRevision);

/// <summary>Keys under a prefix at one revision.</summary>
public sealed record StoreSnapshot(IReadOnlyList<StoreEntry> Entries, long Revision);

/// <summary>The kinds of <see cref="StoreChange"/>.</summary>
public enum StoreChangeKind
{
    /// <summary>The whole view (<see cref="StoreChange.Snapshot"/>): replace what was known.</summary>
    Snapshot,

    /// <summary>A key was written.</summary>
    Put,

    /// <summary>A key was deleted (by a write or its session's end).</summary>
    Delete,
}

/// <summary>One change seen by a watcher.</summary>
/// <param name="Kind">Snapshot, put or delete.</param>
/// <param name="Entry">The key and its new value (put) or last value when known (delete; empty value otherwise).</param>
/// <param name="Snapshot">For <see cref="StoreChangeKind.Snapshot"/>: every key.</param>
public sealed record StoreChange(StoreChangeKind Kind, StoreEntry? Entry, StoreSnapshot? Snapshot);

/// <summary>A comparison a transaction checks before it applies.</summary>
/// <param name="Key">The key compared.</param>
/// <param name="Absent">True: holds when the key does not exist.</param>
/// <param name="ModRevision">When not <see cref="Absent"/> and no <see cref="Value"/>: holds when the key was last written at this revision.</param>
/// <param name="Value">When not null: holds when the key holds exactly these bytes.</param>
public sealed record StoreCompare(string Key, bool Absent, long ModRevision = 0, byte[]? Value = null)
{
    /// <summary>Holds when <paramref name="key"/> does not exist.</summary>
    public static StoreCompare IsAbsent(string key) => new(key, true);

    /// <summary>Holds when <paramref name="key"/> was last written at <paramref name="revision"/>.</summary>
    public static StoreCompare WrittenAt(string key, long revision) => new(key, false, revision);

    /// <summary>Holds when <paramref name="key"/> holds exactly <paramref name="value"/>.</summary>
    public static StoreCompare Holds(string key, byte[] value) => new(key, false, 0, value);
}

/// <summary>A write in a transaction.</summary>
/// <param name="Key">The key.</param>
/// <param name="Value">The value to put; null deletes the key.</param>
/// <param name="Leased">Put under this process's store session (the key goes when the session ends).</param>
public sealed record StoreOp(string Key, byte[]? Value, bool Leased = false)
{
    /// <summary>Puts a value.</summary>
    public static StoreOp Put(string key, byte[] value, bool leased = false) => new(key, value, leased);

    /// <summary>Deletes a key.</summary>
    public static StoreOp Delete(string key) => new(key, null);
}

/// <summary>Compare-and-set: <see cref="Operations"/> apply together, and only when every comparison holds.</summary>
public sealed record StoreTransaction(IReadOnlyList<StoreCompare> Compares, IReadOnlyList<StoreOp> Operations)
{
    /// <summary>Most operations in one transaction (etcd's default --max-txn-ops).</summary>
    public const int MaxOperations = 128;

    /// <summary>Writes without conditions.</summary>
    public static StoreTransaction Write(params StoreOp[] operations) => new([], operations);
}

/// <summary>The store cannot be reached (or refused the call for its own reasons): a change was not made, or its outcome is unknown.</summary>
public sealed class StoreUnavailableException : Exception
{
    public StoreUnavailableException()
    {
    }

    public StoreUnavailableException(string message)
        : base(message)
    {
    }

    public StoreUnavailableException(string message, Exception inner)
        : base(message, inner)
    {
    }
}
