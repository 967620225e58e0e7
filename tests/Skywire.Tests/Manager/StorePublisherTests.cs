using System.Text;
using Microsoft.Extensions.Logging.Abstractions;
using Skywire.Core.Manager.Store;

namespace Skywire.Tests.Manager;

/// <summary>The store publisher's retries, and the etcd store letting go of what it made (issue 17.3).</summary>
public class StorePublisherTests
{
    private static readonly TimeSpan Limit = TimeSpan.FromSeconds(30);

    /// <summary>An embedded store whose transactions touching <see cref="Poison"/> always fail as if the store were away.</summary>
    private sealed class PoisonedStore(EmbeddedStore inner, string poison) : IMeshStore
    {
        public string Poison { get; } = poison;

        public int PoisonAttempts;

        public string Description => "poisoned " + inner.Description;

        public event Action? SessionStarted
        {
            add => inner.SessionStarted += value;
            remove => inner.SessionStarted -= value;
        }

        public void Start() => inner.Start();

        public Task<StoreSnapshot> ReadAsync(string prefix, CancellationToken cancellationToken) => inner.ReadAsync(prefix, cancellationToken);

        public Task<bool> TransactAsync(StoreTransaction transaction, CancellationToken cancellationToken)
        {
            if (transaction.Operations.Any(o => o.Key == Poison))
            {
                Interlocked.Increment(ref PoisonAttempts);
                throw new StoreUnavailableException("this key never lands");
            }

            return inner.TransactAsync(transaction, cancellationToken);
        }

        public IAsyncEnumerable<StoreChange> WatchAsync(string prefix, CancellationToken cancellationToken) => inner.WatchAsync(prefix, cancellationToken);

        public ValueTask DisposeAsync() => inner.DisposeAsync();
    }

    [Fact]
    public async Task AKeyThatKeepsFailing_DoesNotStarveTheOthers()
    {
        var ct = TestContext.Current.CancellationToken;
        await using var store = new PoisonedStore(new EmbeddedStore(), "a/first");
        store.Start();
        await using var publisher = new StorePublisher(store, "test", NullLogger.Instance);
        publisher.Start();
        publisher.Publish("a/first", Encoding.UTF8.GetBytes("never"), leased: false);
        publisher.Publish("b/second", Encoding.UTF8.GetBytes("lands"), leased: false);
        publisher.Publish("c/third", Encoding.UTF8.GetBytes("lands too"), leased: true);

        var deadline = DateTime.UtcNow + Limit;
        while ((await store.ReadAsync("", ct)).Entries.Count < 2)
        {
            Assert.True(DateTime.UtcNow < deadline, $"the other keys never landed behind the failing one ({Volatile.Read(ref store.PoisonAttempts)} attempts at it)");
            await Task.Delay(20, ct);
        }

        var keys = (await store.ReadAsync("", ct)).Entries.Select(e => e.Key).Order(StringComparer.Ordinal).ToArray();
        Assert.Equal(["b/second", "c/third"], keys);
        Assert.Equal(1, publisher.PendingWrites);
        Assert.True(Volatile.Read(ref store.PoisonAttempts) >= 1);
    }

    [Fact]
    public async Task EtcdStore_Dispose_DisposesItsChannel()
    {
        var store = new EtcdStore(EtcdStoreOptions.Parse("etcd://127.0.0.1:1,127.0.0.1:2"));
        var channel = store.MembersChannel;
        _ = channel.CreateCallInvoker();
        await store.DisposeAsync();
        Assert.Throws<ObjectDisposedException>(() => channel.CreateCallInvoker());
    }
}
