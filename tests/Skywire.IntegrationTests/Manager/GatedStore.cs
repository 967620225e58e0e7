using System.Runtime.CompilerServices;
using Skywire.Core.Manager.Store;

namespace Skywire.IntegrationTests.Manager;

/// <summary>
/// A store session that cannot be reached until its gate (a task) completes, as etcd before it is up: its session does
/// not start, reads and writes throw <see cref="StoreUnavailableException"/>, and its watch waits. Then it is the inner
/// session.
/// </summary>
public sealed class GatedStore(IMeshStore inner, Task gate) : IMeshStore
{
    private int _started;

    public string Description => "gated " + inner.Description;

    public event Action? SessionStarted
    {
        add => inner.SessionStarted += value;
        remove => inner.SessionStarted -= value;
    }

    public void Start()
    {
        if (Interlocked.Exchange(ref _started, 1) == 0)
        {
            _ = gate.ContinueWith(_ => inner.Start(), CancellationToken.None, TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default);
        }
    }

    public Task<StoreSnapshot> ReadAsync(string prefix, CancellationToken cancellationToken) =>
        gate.IsCompleted ? inner.ReadAsync(prefix, cancellationToken) : Task.FromException<StoreSnapshot>(Closed());

    public Task<bool> TransactAsync(StoreTransaction transaction, CancellationToken cancellationToken) =>
        gate.IsCompleted ? inner.TransactAsync(transaction, cancellationToken) : Task.FromException<bool>(Closed());

    public async IAsyncEnumerable<StoreChange> WatchAsync(string prefix, [EnumeratorCancellation] CancellationToken cancellationToken)
    {
        await gate.WaitAsync(cancellationToken);
        await foreach (var change in inner.WatchAsync(prefix, cancellationToken))
        {
            yield return change;
        }
    }

    public ValueTask DisposeAsync() => inner.DisposeAsync();

    private static StoreUnavailableException Closed() => new("the test's store is not reachable yet");
}
