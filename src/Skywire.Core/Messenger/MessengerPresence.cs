using System.Net;
using System.Text.Json;
using System.Text.Json.Serialization;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Skywire.Core.Manager.Store;
using Skywire.Protocol;
using Skywire.Protocol.Messenger;

namespace Skywire.Core.Messenger;

/// <summary>
/// Several messengers serving one set of users (docs/architecture.md "Messengers on the store"): the presence view and
/// the discovery directory they share through a <see cref="IMeshStore"/> (etcd). Each messenger writes, under its store
/// session (a lease: a dead messenger's keys vanish with it), <c>messenger/servers/&lt;its key&gt;</c> (where other
/// messengers reach it), <c>messenger/presence/&lt;user&gt;/&lt;its key&gt;</c> for each key connected to it, and
/// <c>messenger/offers/&lt;owner&gt;/&lt;name&gt;</c> for each service offered through it. One watch keeps the view of the
/// others. Every key and value read is checked (keys are public keys, a presence names the server of its key, an
/// endpoint parses, offers validate as offers); anything else is ignored and counted, never used.
/// </summary>
public sealed partial class MessengerPresence : IAsyncDisposable
{
    /// <summary>Where the messengers' keys live, under the store prefix.</summary>
    public const string Prefix = "messenger/";
    private const string Servers = Prefix + "servers/";
    private const string Presence = Prefix + "presence/";
    private const string Offers = Prefix + "offers/";
    private const int MaxValueBytes = 16 * 1024;

    private readonly IMeshStore _store;
    private readonly StorePublisher _publisher;
    private readonly ILogger _logger;
    private readonly TimeProvider _time;
    private readonly CancellationTokenSource _cts = new();
    private readonly Lock _lock = new();
    private readonly Dictionary<PubKey, IPEndPoint> _servers = [];
    private readonly Dictionary<PubKey, HashSet<PubKey>> _presence = [];
    private readonly Dictionary<string, byte[]> _view = new(StringComparer.Ordinal);
    private Task? _watcher;
    private long _ignored;
    private int _disposed;

    /// <param name="store">The shared store (owned by the caller).</param>
    /// <param name="self">This messenger's key.</param>
    /// <param name="loggerFactory">Logging.</param>
    /// <param name="timeProvider">Clock.</param>
    public MessengerPresence(IMeshStore store, PubKey self, ILoggerFactory? loggerFactory = null, TimeProvider? timeProvider = null)
    {
        ArgumentNullException.ThrowIfNull(store);
        _store = store;
        Self = self;
        var factory = loggerFactory ?? NullLoggerFactory.Instance;
        _logger = factory.CreateLogger<MessengerPresence>();
        _time = timeProvider ?? TimeProvider.System;
        _publisher = new StorePublisher(store, "this messenger", factory.CreateLogger<StorePublisher>(), _time);
    }

    /// <summary>This messenger's key.</summary>
    public PubKey Self { get; }

    /// <summary>Malformed keys or values read from the store and ignored since the start.</summary>
    public long Ignored => Interlocked.Read(ref _ignored);

    /// <summary>Keys waiting to be written.</summary>
    public int PendingWrites => _publisher.PendingWrites;

    /// <summary>Raised (on the watch task) when <c>user</c> is now connected to the other messenger <c>server</c>.</summary>
    public event Action<PubKey, PubKey>? UserArrived;

    /// <summary>Raised (on the watch task) when another messenger left the store (its lease ran out, or it stopped).</summary>
    public event Action<PubKey>? ServerGone;

    /// <summary>Raised after each change from the store was applied (tests wait on it).</summary>
    public event Action? Applied;

    /// <summary>Where offers read from the store go (set by the server before <see cref="Start"/>).</summary>
    internal ServiceDirectory? Directory { get; set; }

    /// <summary>Publishes this messenger at <paramref name="advertised"/> and starts the session and the watch.</summary>
    public void Start(IPEndPoint advertised)
    {
        ArgumentNullException.ThrowIfNull(advertised);
        _publisher.Start();
        _publisher.Publish(Servers + Self, Encode(new ServerValue { Endpoint = advertised.ToString(), Started = _time.GetUtcNow() }), leased: true);
        _store.Start();
        _watcher = Task.Run(WatchLoopAsync);
    }

    /// <summary>A key's first connection here registered.</summary>
    public void UserOnline(PubKey user) =>
        _publisher.Publish(Presence + user + "/" + Self, Encode(new UserValue { Server = Self.ToString() }), leased: true);

    /// <summary>A key's last connection here closed.</summary>
    public void UserOffline(PubKey user) => _publisher.Unpublish(Presence + user + "/" + Self);

    /// <summary>Services offered here (they expire at <paramref name="expires"/> unless offered again).</summary>
    public void Offered(PubKey owner, IEnumerable<ServiceOffer> services, DateTimeOffset expires)
    {
        ArgumentNullException.ThrowIfNull(services);
        foreach (var service in services)
        {
            _publisher.Publish(OfferKey(owner, service.Name), Encode(new OfferValue { Server = Self.ToString(), Offer = service, ExpiresAtMs = expires.ToUnixTimeMilliseconds() }), leased: true);
        }
    }

    /// <summary>Services withdrawn here.</summary>
    public void Withdrawn(PubKey owner, IEnumerable<string> names)
    {
        ArgumentNullException.ThrowIfNull(names);
        foreach (var name in names)
        {
            _publisher.Unpublish(OfferKey(owner, name));
        }
    }

    /// <summary>The other live messengers <paramref name="user"/> is connected to now.</summary>
    public PubKey[] ServersOf(PubKey user)
    {
        lock (_lock)
        {
            return _presence.TryGetValue(user, out var servers) ? [.. servers.Where(s => s != Self && _servers.ContainsKey(s))] : [];
        }
    }

    /// <summary>The keys connected to the other messenger <paramref name="server"/> now.</summary>
    public PubKey[] UsersAt(PubKey server)
    {
        lock (_lock)
        {
            return [.. _presence.Where(p => p.Value.Contains(server)).Select(p => p.Key)];
        }
    }

    /// <summary>Whether <paramref name="key"/> is another live messenger of this store, and where it listens.</summary>
    public bool TryGetServer(PubKey key, out IPEndPoint endPoint)
    {
        lock (_lock)
        {
            if (key != Self && _servers.TryGetValue(key, out var found))
            {
                endPoint = found;
                return true;
            }
        }

        endPoint = null!;
        return false;
    }

    private static string OfferKey(PubKey owner, string name) => Offers + owner + "/" + Uri.EscapeDataString(name);

    private static byte[] Encode<T>(T value) => JsonSerializer.SerializeToUtf8Bytes(value, typeof(T), PresenceJson.Default);

    private static T? TryDecode<T>(byte[] bytes)
        where T : class
    {
        if (bytes.Length is 0 or > MaxValueBytes)
        {
            return null;
        }

        try
        {
            return JsonSerializer.Deserialize(bytes, typeof(T), PresenceJson.Default) as T;
        }
        catch (Exception ex) when (ex is JsonException or NotSupportedException or ArgumentException or InvalidOperationException)
        {
            return null;
        }
    }

    // ---------------------------------------------------------------- the watch

    private async Task WatchLoopAsync()
    {
        var stopping = _cts.Token;
        try
        {
            await foreach (var change in _store.WatchAsync(Prefix, stopping))
            {
                if (change.Kind == StoreChangeKind.Snapshot)
                {
                    ApplySnapshot(change.Snapshot!);
                }
                else
                {
                    Apply(change.Kind, change.Entry!);
                }

                Applied?.Invoke();
            }
        }
        catch (OperationCanceledException) when (stopping.IsCancellationRequested)
        {
        }
    }

    private void ApplySnapshot(StoreSnapshot snapshot)
    {
        var keys = snapshot.Entries.Select(e => e.Key).ToHashSet(StringComparer.Ordinal);
        List<StoreEntry> gone;
        lock (_lock)
        {
            gone = [.. _view.Where(v => !keys.Contains(v.Key)).Select(v => new StoreEntry(v.Key, v.Value, 0))];
        }

        foreach (var entry in gone)
        {
            Apply(StoreChangeKind.Delete, entry);
        }

        foreach (var entry in snapshot.Entries)
        {
            Apply(StoreChangeKind.Put, entry);
        }
    }

    /// <summary>One key at a time: a malformed one is ignored and counted, and never keeps the others from being applied.</summary>
    private void Apply(StoreChangeKind kind, StoreEntry entry)
    {
        var put = kind == StoreChangeKind.Put;
        byte[]? previous;
        lock (_lock)
        {
            _view.TryGetValue(entry.Key, out previous);
            if (put)
            {
                _view[entry.Key] = entry.Value;
            }
            else
            {
                _view.Remove(entry.Key);
            }
        }

        var value = put ? entry.Value : previous ?? entry.Value;
        if (!put && value.Length == 0)
        {
            return; // the delete of a key never seen here
        }

        var ok = entry.Key.StartsWith(Servers, StringComparison.Ordinal) ? ApplyServer(entry.Key[Servers.Length..], value, put)
            : entry.Key.StartsWith(Presence, StringComparison.Ordinal) ? ApplyPresence(entry.Key[Presence.Length..], value, put)
            : entry.Key.StartsWith(Offers, StringComparison.Ordinal) ? ApplyOffer(entry.Key[Offers.Length..], value, put)
            : false;
        if (!ok)
        {
            Interlocked.Increment(ref _ignored);
            Log.ValueIgnored(_logger, entry.Key);
        }
    }

    private bool ApplyServer(string rest, byte[] value, bool put)
    {
        if (!PubKey.TryParse(rest, out var server))
        {
            return false;
        }

        if (!put)
        {
            bool removed;
            lock (_lock)
            {
                removed = _servers.Remove(server);
            }

            if (removed && server != Self)
            {
                Log.ServerGone(_logger, server);
                ServerGone?.Invoke(server);
            }

            return true;
        }

        if (TryDecode<ServerValue>(value) is not { } parsed || !IPEndPoint.TryParse(parsed.Endpoint, out var endPoint) || endPoint.Port == 0)
        {
            return false;
        }

        bool added;
        lock (_lock)
        {
            added = !_servers.ContainsKey(server);
            _servers[server] = endPoint;
        }

        if (added && server != Self)
        {
            Log.ServerSeen(_logger, server, endPoint);
            foreach (var user in UsersAt(server))
            {
                UserArrived?.Invoke(user, server);
            }
        }

        return true;
    }

    private bool ApplyPresence(string rest, byte[] value, bool put)
    {
        var slash = rest.IndexOf('/', StringComparison.Ordinal);
        if (slash < 0 || !PubKey.TryParse(rest[..slash], out var user) || !PubKey.TryParse(rest[(slash + 1)..], out var server))
        {
            return false;
        }

        if (put && (TryDecode<UserValue>(value) is not { } parsed || parsed.Server != server.ToString()))
        {
            // Refused: a presence that does not name the messenger of its own key. A stale one of the same key is dropped.
            RemovePresence(user, server);
            return false;
        }

        if (!put)
        {
            RemovePresence(user, server);
            return true;
        }

        bool added;
        bool live;
        lock (_lock)
        {
            if (!_presence.TryGetValue(user, out var servers))
            {
                _presence[user] = servers = [];
            }

            added = servers.Add(server);
            live = _servers.ContainsKey(server);
        }

        if (added && live && server != Self)
        {
            UserArrived?.Invoke(user, server);
        }

        return true;
    }

    private void RemovePresence(PubKey user, PubKey server)
    {
        lock (_lock)
        {
            if (_presence.TryGetValue(user, out var servers) && servers.Remove(server) && servers.Count == 0)
            {
                _presence.Remove(user);
            }
        }
    }

    private bool ApplyOffer(string rest, byte[] value, bool put)
    {
        var slash = rest.IndexOf('/', StringComparison.Ordinal);
        if (slash < 0 || !PubKey.TryParse(rest[..slash], out var owner))
        {
            return false;
        }

        if (TryDecode<OfferValue>(value) is not { Offer: { } offer } parsed || !PubKey.TryParse(parsed.Server, out var server)
            || Uri.EscapeDataString(offer.Name) != rest[(slash + 1)..])
        {
            return false;
        }

        if (server == Self || Directory is not { } directory)
        {
            return true; // our own offers are in the directory already
        }

        if (!put)
        {
            directory.RemoveRemote(server, owner, offer.Name);
            return true;
        }

        return directory.ApplyRemote(server, owner, offer, DateTimeOffset.FromUnixTimeMilliseconds(Math.Clamp(parsed.ExpiresAtMs, 0, 253_402_300_799_000)));
    }

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

        _cts.Dispose();
    }

    internal sealed class ServerValue
    {
        public string Endpoint { get; set; } = "";

        public DateTimeOffset Started { get; set; }
    }

    internal sealed class UserValue
    {
        public string Server { get; set; } = "";
    }

    internal sealed class OfferValue
    {
        public string Server { get; set; } = "";

        public ServiceOffer? Offer { get; set; }

        public long ExpiresAtMs { get; set; }
    }

    private static partial class Log
    {
        [LoggerMessage(EventId = 3050, Level = LogLevel.Warning, Message = "Ignored a malformed messenger key or value in the store at '{Key}'")]
        public static partial void ValueIgnored(ILogger logger, string key);

        [LoggerMessage(EventId = 3051, Level = LogLevel.Information, Message = "Messenger {Server} at {EndPoint} shares this store")]
        public static partial void ServerSeen(ILogger logger, PubKey server, IPEndPoint endPoint);

        [LoggerMessage(EventId = 3052, Level = LogLevel.Information, Message = "Messenger {Server} left the store; its users are gone with it")]
        public static partial void ServerGone(ILogger logger, PubKey server);
    }
}

[JsonSourceGenerationOptions(PropertyNamingPolicy = JsonKnownNamingPolicy.CamelCase)]
[JsonSerializable(typeof(MessengerPresence.ServerValue))]
[JsonSerializable(typeof(MessengerPresence.UserValue))]
[JsonSerializable(typeof(MessengerPresence.OfferValue))]
internal sealed partial class PresenceJson : JsonSerializerContext;
