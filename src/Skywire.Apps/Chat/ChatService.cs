using System.Collections.Concurrent;
using System.Text.Json.Serialization;
using System.Threading.Channels;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Skywire.Core.Messenger;
using Skywire.Protocol;

namespace Skywire.Apps.Chat;

/// <summary>A change the page shows: a message added or moved to a new state, a contact renamed, the connection up or down.</summary>
/// <param name="Kind"><c>message</c>, <c>contact</c> or <c>status</c>.</param>
/// <param name="Message">The message added or moved (kind <c>message</c>).</param>
/// <param name="Contact">The contact renamed (kind <c>contact</c>).</param>
/// <param name="Connected">Whether the messenger connection is up (kind <c>status</c>).</param>
public sealed record ChatEvent(string Kind, ChatEntry? Message = null, ChatContact? Contact = null, bool? Connected = null);

/// <summary>Everything the page needs at start.</summary>
public sealed record ChatSnapshot(string Key, string Fingerprint, string Messenger, bool Connected, IReadOnlyList<ChatContact> Contacts, IReadOnlyList<ChatEntry> Messages);

/// <summary>
/// Options of a <see cref="ChatService"/>. A message without a receipt is sent again (same id: the recipient keeps one
/// copy and answers again) after <see cref="RetryFirst"/>, doubling to <see cref="RetryMax"/>, at most
/// <see cref="MaxAttempts"/> times: the messenger relays at most once, and a message it hands to a connection that is
/// dying is lost, so delivery is made at-least-once end to end by the receipts.
/// </summary>
public sealed record ChatServiceOptions
{
    public static ChatServiceOptions Default { get; } = new();

    public TimeSpan RetryFirst { get; init; } = TimeSpan.FromSeconds(5);

    public TimeSpan RetryMax { get; init; } = TimeSpan.FromMinutes(5);

    public int MaxAttempts { get; init; } = 20;

    public TimeProvider TimeProvider { get; init; } = TimeProvider.System;
}

[JsonSourceGenerationOptions(PropertyNamingPolicy = JsonKnownNamingPolicy.CamelCase)]
[JsonSerializable(typeof(ChatEvent))]
[JsonSerializable(typeof(ChatSnapshot))]
public sealed partial class ChatApiJsonContext : JsonSerializerContext;

/// <summary>
/// The chat behind the browser page (docs/messenger.md "Sky-Messenger in the browser"): one reconnecting
/// <see cref="MessengerClient"/> under the user's key, the <see cref="ChatStore"/>, and a fan-out of <see cref="ChatEvent"/>s
/// to every open page. Incoming chat messages are stored (once per sender and id) and answered with a receipt; a receipt
/// moves our message to Delivered; a drop notice moves it to Failed.
/// </summary>
public sealed partial class ChatService : IAsyncDisposable
{
    private readonly MessengerClient _client;
    private readonly ChatStore _store;
    private readonly ILogger _log;
    private readonly TimeProvider _time;
    private readonly ConcurrentDictionary<Channel<ChatEvent>, byte> _subscribers = new();
    private readonly ConcurrentDictionary<uint, (string Peer, string Id)> _inFlight = new();
    private readonly ConcurrentDictionary<(string Peer, string Id), Pending> _pending = new();
    private readonly ChatServiceOptions _options;
    private readonly CancellationTokenSource _stop = new();
    private readonly Task _receive;
    private readonly Task _drops;
    private readonly ITimer _statusTimer;
    private int _connected;

    /// <summary>Starts serving <paramref name="client"/> (which it then owns) with <paramref name="store"/> (owned too).</summary>
    public ChatService(MessengerClient client, ChatStore store, ILoggerFactory? loggerFactory = null, ChatServiceOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(client);
        ArgumentNullException.ThrowIfNull(store);
        _client = client;
        _store = store;
        _options = options ?? ChatServiceOptions.Default;
        _log = (loggerFactory ?? NullLoggerFactory.Instance).CreateLogger<ChatService>();
        _time = _options.TimeProvider;
        var start = _time.GetUtcNow().ToUnixTimeMilliseconds();
        foreach (var unsent in store.Messages().Where(e => e.Outgoing && e.State is ChatDeliveryState.Sending or ChatDeliveryState.Sent))
        {
            // Written before a restart and never confirmed: sent again (the recipient keeps one copy).
            var payload = new ChatWireMessage { Kind = ChatWireMessage.KindText, Id = unsent.Id, Text = unsent.Text, SentAt = unsent.SentAt }.Encode();
            _pending[(unsent.Peer, unsent.Id)] = new Pending(PubKey.Parse(unsent.Peer), payload, 0, start);
        }

        _connected = client.IsConnected ? 1 : 0;
        Fingerprint = ChatWireMessage.Fingerprint(client.Key);
        _receive = ReceiveLoopAsync();
        _drops = DropLoopAsync();
        _client.Reconnected += (_, _) => CheckConnection();
        _statusTimer = _time.CreateTimer(_ => Tick(), null, TimeSpan.FromMilliseconds(500), TimeSpan.FromMilliseconds(500));
    }

    /// <summary>Our public key.</summary>
    public PubKey Key => _client.Key;

    /// <summary>Our key's fingerprint (<see cref="ChatWireMessage.Fingerprint"/>).</summary>
    public string Fingerprint { get; }

    /// <summary>What the page shows at start.</summary>
    public ChatSnapshot Snapshot() =>
        new(Key.ToString(), Fingerprint, $"{_client.MessengerKey}", Volatile.Read(ref _connected) == 1, _store.Contacts(), _store.Messages());

    /// <summary>A new subscriber's events, until <paramref name="cancellationToken"/> ends it. Bounded: a page that falls behind loses the oldest events and reloads.</summary>
    public async IAsyncEnumerable<ChatEvent> EventsAsync([System.Runtime.CompilerServices.EnumeratorCancellation] CancellationToken cancellationToken)
    {
        var channel = Channel.CreateBounded<ChatEvent>(new BoundedChannelOptions(1024) { FullMode = BoundedChannelFullMode.DropOldest, SingleReader = true });
        _subscribers.TryAdd(channel, 0);
        try
        {
            await foreach (var e in channel.Reader.ReadAllAsync(cancellationToken))
            {
                yield return e;
            }
        }
        finally
        {
            _subscribers.TryRemove(channel, out _);
        }
    }

    /// <summary>Sets or (empty) clears a contact's nickname.</summary>
    /// <exception cref="ArgumentException">Not a public key, or a nickname too long or with control characters.</exception>
    public ChatContact SetNickname(string key, string nickname)
    {
        ArgumentNullException.ThrowIfNull(nickname);
        var peer = ParsePeer(key);
        if (nickname.Length > ChatStore.MaxNicknameLength || nickname.Any(char.IsControl))
        {
            throw new ArgumentException($"a nickname is at most {ChatStore.MaxNicknameLength} characters, without control characters", nameof(nickname));
        }

        var contact = _store.SetNickname(peer.ToString(), nickname);
        Publish(new ChatEvent("contact", Contact: contact));
        return contact;
    }

    /// <summary>Sends <paramref name="text"/> to <paramref name="to"/>: stored as Sending at once, then Sent or Failed.</summary>
    /// <exception cref="ArgumentException">Not a public key, empty or too long a text.</exception>
    public async Task<ChatEntry> SendAsync(string to, string text, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(text);
        var peer = ParsePeer(to);
        if (text.Length == 0)
        {
            throw new ArgumentException("the message is empty", nameof(text));
        }

        var now = _time.GetUtcNow().ToUnixTimeMilliseconds();
        var wire = new ChatWireMessage { Kind = ChatWireMessage.KindText, Id = ChatWireMessage.NewId(), Text = text, SentAt = now };
        var payload = wire.Encode();
        if (payload.Length > Protocol.Messenger.MessengerProtocol.MaxMessageSize)
        {
            throw new ArgumentException($"the message is too long (at most about {Protocol.Messenger.MessengerProtocol.MaxMessageSize - 100} bytes of UTF-8)", nameof(text));
        }

        var entry = new ChatEntry(wire.Id, peer.ToString(), true, text, now, now, ChatDeliveryState.Sending, null, false);
        _store.TryAdd(entry);
        Publish(new ChatEvent("message", entry));
        try
        {
            var requestId = await _client.SendAsync(peer, payload, cancellationToken);
            _inFlight[requestId] = (entry.Peer, entry.Id);
            _pending[(entry.Peer, entry.Id)] = new Pending(peer, payload, 1, now + (long)_options.RetryFirst.TotalMilliseconds);
            return Move(entry.Peer, entry.Id, true, e => e.State == ChatDeliveryState.Sending, ChatDeliveryState.Sent, null) ?? entry;
        }
        catch (Exception ex) when (ex is MessengerException or ObjectDisposedException)
        {
            // Not connected (or the send queue is full): it stays Sending and goes out once the messenger is back.
            _pending[(entry.Peer, entry.Id)] = new Pending(peer, payload, 0, now);
            return Move(entry.Peer, entry.Id, true, e => e.State == ChatDeliveryState.Sending, ChatDeliveryState.Sending, "waiting for the messenger: " + ex.Message) ?? entry;
        }
    }

    private static PubKey ParsePeer(string key) =>
        PubKey.TryParse(key, out var peer) ? peer : throw new ArgumentException($"'{key}' is not a public key (66 hex characters)", nameof(key));

    private ChatEntry? Move(string peer, string id, bool outgoing, Func<ChatEntry, bool> allowed, ChatDeliveryState state, string? detail)
    {
        var moved = _store.Update(peer, id, outgoing, allowed, state, detail);
        if (moved is not null)
        {
            Publish(new ChatEvent("message", moved));
        }

        return moved;
    }

    private void Publish(ChatEvent e)
    {
        foreach (var channel in _subscribers.Keys)
        {
            channel.Writer.TryWrite(e);
        }
    }

    private void Tick()
    {
        CheckConnection();
        if (!_client.IsConnected || _stop.IsCancellationRequested)
        {
            return;
        }

        if (_inFlight.Count > 10_000)
        {
            foreach (var (requestId, key) in _inFlight)
            {
                if (!_pending.ContainsKey(key))
                {
                    _inFlight.TryRemove(requestId, out _);
                }
            }
        }

        var now = _time.GetUtcNow().ToUnixTimeMilliseconds();
        foreach (var (key, pending) in _pending)
        {
            if (pending.NextAt > now)
            {
                continue;
            }

            if (pending.Attempts >= _options.MaxAttempts)
            {
                _pending.TryRemove(key, out _);
                continue;
            }

            var delay = Math.Min(_options.RetryFirst.TotalMilliseconds * Math.Pow(2, pending.Attempts), _options.RetryMax.TotalMilliseconds);
            _pending[key] = pending with { Attempts = pending.Attempts + 1, NextAt = now + (long)delay };
            _ = ResendAsync(key, pending);
        }
    }

    private async Task ResendAsync((string Peer, string Id) key, Pending pending)
    {
        try
        {
            var requestId = await _client.SendAsync(pending.To, pending.Payload, _stop.Token);
            _inFlight[requestId] = key;
            Move(key.Peer, key.Id, true, e => e.State == ChatDeliveryState.Sending, ChatDeliveryState.Sent, null);
        }
        catch (Exception ex) when (ex is MessengerException or ObjectDisposedException or OperationCanceledException)
        {
            Log.ResendFailed(_log, pending.To, ex.Message);
        }
    }

    private void CheckConnection()
    {
        var now = _client.IsConnected ? 1 : 0;
        if (Interlocked.Exchange(ref _connected, now) != now)
        {
            Log.Connection(_log, now == 1 ? "connected" : "disconnected");
            Publish(new ChatEvent("status", Connected: now == 1));
        }
    }

    private async Task ReceiveLoopAsync()
    {
        await Task.Yield();
        try
        {
            await foreach (var message in _client.Messages.ReadAllAsync(_stop.Token))
            {
                await HandleAsync(message);
            }
        }
        catch (OperationCanceledException)
        {
        }
    }

    private async Task HandleAsync(MessengerMessage message)
    {
        var wire = ChatWireMessage.Decode(message.Data.Span);
        if (wire is null)
        {
            Log.Ignored(_log, message.From);
            return;
        }

        var peer = message.From.ToString();
        if (wire.Kind == ChatWireMessage.KindReceipt)
        {
            _pending.TryRemove((peer, wire.Id), out _);
            Move(peer, wire.Id, true, e => e.State is ChatDeliveryState.Sending or ChatDeliveryState.Sent or ChatDeliveryState.Failed, ChatDeliveryState.Delivered, null);
            return;
        }

        var now = _time.GetUtcNow().ToUnixTimeMilliseconds();
        var id = wire.Id.Length > 0 ? wire.Id : "plain-" + ChatWireMessage.NewId();
        var entry = new ChatEntry(id, peer, false, wire.Text ?? "", now, wire.SentAt, ChatDeliveryState.Received, null, message.WasQueued);
        if (_store.TryAdd(entry))
        {
            Publish(new ChatEvent("message", entry));
        }

        if (wire.Id.Length > 0)
        {
            // A repeat (the sender's retry, or a replay) is answered again: the first receipt may have been lost.
            try
            {
                await _client.SendAsync(message.From, new ChatWireMessage { Kind = ChatWireMessage.KindReceipt, Id = wire.Id }.Encode(), _stop.Token);
            }
            catch (Exception ex) when (ex is MessengerException or ObjectDisposedException or OperationCanceledException)
            {
                Log.ReceiptFailed(_log, message.From, ex.Message);
            }
        }
    }

    private async Task DropLoopAsync()
    {
        await Task.Yield();
        try
        {
            await foreach (var drop in _client.Drops.ReadAllAsync(_stop.Token))
            {
                if (_inFlight.TryRemove(drop.MessageId, out var sent))
                {
                    _pending.TryRemove(sent, out _);
                    Move(sent.Peer, sent.Id, true, e => e.State is ChatDeliveryState.Sending or ChatDeliveryState.Sent, ChatDeliveryState.Failed, $"dropped by the messenger: {drop.Reason} {drop.Detail}".TrimEnd());
                }
            }
        }
        catch (OperationCanceledException)
        {
        }
    }

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync();
        await _statusTimer.DisposeAsync();
        await _client.DisposeAsync();
        await Task.WhenAll(_receive, _drops);
        foreach (var channel in _subscribers.Keys)
        {
            channel.Writer.TryComplete();
        }

        _store.Dispose();
        _stop.Dispose();
    }

    private sealed record Pending(PubKey To, byte[] Payload, int Attempts, long NextAt);

    private static partial class Log
    {
        [LoggerMessage(EventId = 7653, Level = LogLevel.Debug, Message = "Chat: cannot send a message to {Peer} again: {Reason}")]
        public static partial void ResendFailed(ILogger logger, PubKey peer, string reason);

        [LoggerMessage(EventId = 7650, Level = LogLevel.Information, Message = "Chat: messenger {State}")]
        public static partial void Connection(ILogger logger, string state);

        [LoggerMessage(EventId = 7651, Level = LogLevel.Debug, Message = "Chat: ignored a message from {Peer} that is not a chat message")]
        public static partial void Ignored(ILogger logger, PubKey peer);

        [LoggerMessage(EventId = 7652, Level = LogLevel.Warning, Message = "Chat: cannot send the receipt to {Peer}: {Reason}")]
        public static partial void ReceiptFailed(ILogger logger, PubKey peer, string reason);
    }
}
