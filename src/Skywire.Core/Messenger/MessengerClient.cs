using System.Collections.Concurrent;
using System.Net;
using System.Net.Sockets;
using System.Text;
using System.Text.Json;
using System.Threading.Channels;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Skywire.Core.Channels;
using Skywire.Core.Crypto;
using Skywire.Core.Crypto.Noise;
using Skywire.Core.Messenger.Internal;
using Skywire.Protocol;
using Skywire.Protocol.Framing;
using Skywire.Protocol.Messenger;
using ProtocolViolationException = Skywire.Protocol.Framing.ProtocolViolationException;

namespace Skywire.Core.Messenger;

/// <summary>Where a messenger is and the key it must prove.</summary>
public sealed record MessengerClientOptions
{
    /// <summary>The messenger's address.</summary>
    public required EndPoint EndPoint { get; init; }

    /// <summary>The messenger's pinned static key; a server that cannot prove it is refused.</summary>
    public required PubKey MessengerKey { get; init; }

    /// <summary>Time for TCP connect, handshake and hello (default 10 s).</summary>
    public TimeSpan ConnectTimeout { get; init; } = TimeSpan.FromSeconds(10);

    /// <summary>Time a request waits for its answer (default 20 s; a stream open waits for the peer too).</summary>
    public TimeSpan RequestTimeout { get; init; } = TimeSpan.FromSeconds(20);

    /// <summary>Keepalive ping interval (default 30 s); a ping that goes unanswered closes the connection.</summary>
    public TimeSpan PingInterval { get; init; } = TimeSpan.FromSeconds(30);

    /// <summary>Bytes queued toward the messenger beyond which <c>SendAsync</c> waits (default 4 MiB).</summary>
    public long SendQueueLimit { get; init; } = 4L * 1024 * 1024;

    /// <summary>Received messages buffered for <see cref="MessengerClient.Messages"/>; more are dropped and counted (default 10 000).</summary>
    public int MessageBufferCapacity { get; init; } = 10_000;

    /// <summary>Incoming streams waiting for <see cref="MessengerClient.AcceptStreamAsync"/>; more are refused (default 64).</summary>
    public int AcceptBacklog { get; init; } = 64;

    /// <summary>Software identification sent in the hello.</summary>
    public string Agent { get; init; } = "skywire-dotnet";

    /// <summary>
    /// Reconnect automatically (docs/messenger.md "Reconnection"): when the connection drops after the first
    /// successful <see cref="MessengerClient.ConnectAsync"/>, the client connects again with backoff, registers
    /// again and re-offers its services; <see cref="MessengerClient.Messages"/> and the accept queue stay open.
    /// Default false: <see cref="MessengerClient.Closed"/> completes when the connection drops.
    /// </summary>
    public bool Reconnect { get; init; }

    /// <summary>Smallest delay before a reconnection attempt (grows with jitter after each failure, up to <see cref="MaxReconnectDelay"/>: <see cref="Channels.Backoff"/>).</summary>
    public TimeSpan ReconnectDelay { get; init; } = TimeSpan.FromMilliseconds(250);

    /// <summary>Longest delay between reconnection attempts.</summary>
    public TimeSpan MaxReconnectDelay { get; init; } = TimeSpan.FromSeconds(10);

    /// <summary>Clock of the reconnection delays.</summary>
    public TimeProvider TimeProvider { get; init; } = TimeProvider.System;

    /// <summary>
    /// Decides, before the stream is answered, whether to take an incoming stream (opener's key, decrypted open
    /// data); false refuses it, and the opener's <c>OpenStreamAsync</c> fails with Refused. Null takes every stream.
    /// </summary>
    public Func<PubKey, ReadOnlyMemory<byte>, bool>? AcceptFilter { get; init; }
}

/// <summary>A message received through the messenger, already opened and authenticated as coming from <paramref name="From"/>.</summary>
/// <param name="From">The sender's key (proven end to end).</param>
/// <param name="Data">The plaintext.</param>
/// <param name="WasQueued">True when it waited in the messenger's store while this key was offline.</param>
public sealed record MessengerMessage(PubKey From, ReadOnlyMemory<byte> Data, bool WasQueued);

/// <summary>
/// A client of the messenger (docs/messenger.md "Client API"): send end-to-end sealed messages to keys, receive
/// them, open and accept relayed streams, offer and query services. One connection at a time; with
/// <see cref="MessengerClientOptions.Reconnect"/> it reconnects by itself, otherwise watch <see cref="Closed"/> and
/// connect again.
/// </summary>
public sealed partial class MessengerClient : IAsyncDisposable
{
    private readonly KeyPair _key;
    private readonly MessengerClientOptions _options;
    private readonly ILoggerFactory _loggerFactory;
    private readonly ILogger _logger;
    private readonly TaskCompletionSource<ConnectionCloseReason> _closed = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private volatile MessengerLink _link = null!;
    private Task? _reconnect;
    private long _reconnects;
    private readonly Channel<MessengerMessage> _messages;
    private readonly Channel<DropNotice> _drops = Channel.CreateBounded<DropNotice>(new BoundedChannelOptions(10_000) { FullMode = BoundedChannelFullMode.DropOldest });
    private readonly Channel<MessengerStream> _accepts;
    private readonly ConcurrentDictionary<uint, MessengerStream> _streams = new();
    private readonly ConcurrentDictionary<string, ServiceOffer> _offers = new(StringComparer.Ordinal);
    private readonly SessionEnvelopes _sessions;
    private readonly CancellationTokenSource _cts = new();
    private MessengerHelloAck _limits = new();
    private Task? _keepalive;
    private Task? _refresh;
    private TimeSpan _offerTtl;
    private long _droppedMessages;
    private long _rejectedEnvelopes;
    private int _nextMessageId;
    private int _disposed;

    private MessengerClient(KeyPair key, MessengerClientOptions options, ILoggerFactory loggerFactory)
    {
        _key = key;
        _sessions = new SessionEnvelopes(key, new SessionEnvelopeOptions { TimeProvider = options.TimeProvider });
        _options = options;
        _loggerFactory = loggerFactory;
        _logger = loggerFactory.CreateLogger<MessengerClient>();
        _messages = Channel.CreateBounded<MessengerMessage>(new BoundedChannelOptions(options.MessageBufferCapacity) { FullMode = BoundedChannelFullMode.Wait, SingleWriter = true });
        _accepts = Channel.CreateBounded<MessengerStream>(new BoundedChannelOptions(options.AcceptBacklog) { FullMode = BoundedChannelFullMode.Wait, SingleWriter = true });
    }

    private void OnLinkClosed(MessengerLink link)
    {
        if (link != _link)
        {
            return;
        }

        // Streams live on one connection: they end with it, before any new connection exists.
        foreach (var id in _streams.Keys)
        {
            if (_streams.TryRemove(id, out var stream))
            {
                stream.OnRemoteClose(StreamCloseReason.PeerGone);
            }
        }

        if (_options.Reconnect && _disposed == 0 && !_cts.IsCancellationRequested)
        {
            Log.Lost(_logger, _options.EndPoint.ToString() ?? "?", link.Closed.Result);
            _reconnect = Task.Run(ReconnectAsync, CancellationToken.None);
            return;
        }

        OnClosed(link.Closed.Result);
    }

    private void OnClosed(ConnectionCloseReason reason)
    {
        foreach (var id in _streams.Keys)
        {
            if (_streams.TryRemove(id, out var stream))
            {
                stream.OnRemoteClose(StreamCloseReason.PeerGone);
            }
        }

        _closed.TrySetResult(reason);
        _messages.Writer.TryComplete();
        _drops.Writer.TryComplete();
        _accepts.Writer.TryComplete();
    }

    /// <summary>This client's key.</summary>
    public PubKey Key => _key.Public;

    /// <summary>The messenger's (proven) key.</summary>
    public PubKey MessengerKey => _options.MessengerKey;

    /// <summary>The local address of the connection to the messenger (the interface that reaches it).</summary>
    public IPEndPoint? LocalEndPoint { get; private set; }

    /// <summary>The limits the messenger announced.</summary>
    public MessengerHelloAck Limits => _limits;

    /// <summary>Received messages, in arrival order.</summary>
    public ChannelReader<MessengerMessage> Messages => _messages.Reader;

    /// <summary>Notices of messages of ours the messenger dropped (bounded; the oldest are forgotten).</summary>
    public ChannelReader<DropNotice> Drops => _drops.Reader;

    /// <summary>Messages dropped here because <see cref="Messages"/> was not read fast enough.</summary>
    public long DroppedMessages => Interlocked.Read(ref _droppedMessages);

    /// <summary>Session handshakes (public-key work) done for sealed messages, both directions: one per session, not per message.</summary>
    public long SessionHandshakes => _sessions.Handshakes;

    /// <summary>Envelopes that failed to open (not sealed for us by the claimed sender) or were replays.</summary>
    public long RejectedEnvelopes => Interlocked.Read(ref _rejectedEnvelopes);

    /// <summary>Completes when the client is closed for good, with the reason (with reconnection: only when disposed).</summary>
    public Task<ConnectionCloseReason> Closed => _closed.Task;

    /// <summary>Whether a registration is live now (false while reconnecting).</summary>
    public bool IsConnected => !_link.Closed.IsCompleted;

    /// <summary>Successful reconnections so far.</summary>
    public long Reconnects => Interlocked.Read(ref _reconnects);

    /// <summary>Raised (on the thread pool) after each successful reconnection, once services are offered again.</summary>
    public event EventHandler? Reconnected;

    /// <summary>Connects, proves our key and registers.</summary>
    /// <exception cref="MessengerException">
    /// Unavailable (unreachable, timeout), Forbidden (the server did not prove the pinned key, or refused ours),
    /// Conflict (this key is already connected), UnsupportedVersion.
    /// </exception>
    public static async Task<MessengerClient> ConnectAsync(MessengerClientOptions options, KeyPair key, ILoggerFactory? loggerFactory = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(key);
        var client = new MessengerClient(key, options, loggerFactory ?? NullLoggerFactory.Instance);
        try
        {
            await client.EstablishAsync(cancellationToken);
        }
        catch
        {
            await client.DisposeAsync();
            throw;
        }

        client._keepalive = Task.Run(client.KeepaliveAsync, CancellationToken.None);
        return client;
    }

    /// <summary>One connection: TCP, Noise XK, hello. Makes it the current link on success.</summary>
    private async Task EstablishAsync(CancellationToken cancellationToken)
    {
        var options = _options;
        var key = _key;
        using var deadline = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        deadline.CancelAfter(options.ConnectTimeout);
        var socket = new Socket(SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        NoiseStream secure;
        try
        {
            await socket.ConnectAsync(options.EndPoint, deadline.Token);
            secure = await NoiseStream.ConnectAsync(new NetworkStream(socket, ownsSocket: true), key, options.MessengerKey, MessengerProtocol.Prologue, deadline.Token);
        }
        catch (SocketException ex)
        {
            socket.Dispose();
            throw new MessengerException(MessengerErrorCode.Unavailable, $"cannot reach the messenger at {options.EndPoint}: {ex.Message}");
        }
        catch (Exception ex) when (ex is NoiseException or IOException)
        {
            socket.Dispose();
            throw new MessengerException(MessengerErrorCode.Forbidden,
                $"the messenger at {options.EndPoint} did not prove the key {options.MessengerKey} (wrong --messenger-key, or not a Skywire messenger)");
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            socket.Dispose();
            throw new MessengerException(MessengerErrorCode.Unavailable, $"the messenger at {options.EndPoint} did not complete the handshake in time");
        }

        var link = new MessengerLink(secure, "messenger " + options.MessengerKey.ToShortString(12), _loggerFactory.CreateLogger<MessengerLink>());
        LocalEndPoint = socket.LocalEndPoint as IPEndPoint;
        _link = link;
        link.Start(Handle);
        var hello = new MessengerHello
        {
            Version = MessengerProtocol.Version,
            Signature = Convert.ToHexStringLower(key.Sign(secure.HelloSigningInput(MessengerProtocol.HelloSignatureContext))),
            Agent = options.Agent,
        };
        try
        {
            var ack = await link.RequestAsync((byte)MessengerOpcode.Hello, JsonSerializer.SerializeToUtf8Bytes(hello, MessengerJsonContext.Default.MessengerHello), options.ConnectTimeout, deadline.Token);
            _limits = JsonSerializer.Deserialize(ack, MessengerJsonContext.Default.MessengerHelloAck) ?? throw new JsonException("null hello ack");
        }
        catch (Exception ex)
        {
            await link.DisposeAsync();
            if (ex is OperationCanceledException && !cancellationToken.IsCancellationRequested)
            {
                throw new MessengerException(MessengerErrorCode.Unavailable, "the messenger did not answer the hello in time");
            }

            if (ex is JsonException)
            {
                throw new MessengerException(MessengerErrorCode.Internal, "malformed hello answer from the messenger");
            }

            throw;
        }

        _ = link.Closed.ContinueWith(_ => OnLinkClosed(link), CancellationToken.None, TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default);
    }

    private async Task ReconnectAsync()
    {
        var backoff = new Channels.Backoff(_options.ReconnectDelay, _options.MaxReconnectDelay);
        var where = _options.EndPoint.ToString() ?? "?";
        while (!_cts.IsCancellationRequested)
        {
            try
            {
                await backoff.DelayAsync(_options.TimeProvider, _cts.Token);
                await EstablishAsync(_cts.Token);
            }
            catch (OperationCanceledException)
            {
                return;
            }
            catch (MessengerException ex)
            {
                Log.ReconnectFailed(_logger, where, ex.Message);
                continue;
            }

            // Registered again: offers come back at once (their entries may have expired meanwhile).
            var offers = _offers.Values.ToList();
            if (offers.Count > 0)
            {
                try
                {
                    await RequestJsonAsync(MessengerOpcode.Offer, new OfferRequest { Services = offers, TtlMs = (long)_offerTtl.TotalMilliseconds }, MessengerJsonContext.Default.OfferRequest, MessengerJsonContext.Default.OfferResult, _cts.Token);
                }
                catch (OperationCanceledException)
                {
                    return;
                }
                catch (MessengerException ex)
                {
                    Log.RefreshFailed(_logger, ex.Message);
                }
            }

            Interlocked.Increment(ref _reconnects);
            Log.Reconnected(_logger, where, _key.Public);
            ThreadPool.QueueUserWorkItem(_ => Reconnected?.Invoke(this, EventArgs.Empty));
            return;
        }
    }

    /// <summary>
    /// Seals <paramref name="message"/> for <paramref name="to"/> and hands it to the messenger. Returns the message id
    /// that a <see cref="DropNotice"/> would carry. Waits while too much is queued toward the messenger.
    /// </summary>
    public async ValueTask<uint> SendAsync(PubKey to, ReadOnlyMemory<byte> message, CancellationToken cancellationToken = default)
    {
        var envelope = _sessions.Seal(to, message.Span);
        await _link.WaitForRoomAsync(_options.SendQueueLimit, cancellationToken);
        var id = (uint)Interlocked.Increment(ref _nextMessageId);
        if (id == 0)
        {
            id = (uint)Interlocked.Increment(ref _nextMessageId);
        }

        Span<byte> prefix = stackalloc byte[PubKey.Length];
        to.WriteTo(prefix);
        if (!_link.Enqueue((byte)MessengerOpcode.Send, id, prefix, envelope))
        {
            throw new MessengerException(MessengerErrorCode.Unavailable, "the connection to the messenger is closed");
        }

        return id;
    }

    /// <summary>Sends UTF-8 text.</summary>
    public ValueTask<uint> SendAsync(PubKey to, string text, CancellationToken cancellationToken = default) =>
        SendAsync(to, Encoding.UTF8.GetBytes(text), cancellationToken);

    /// <summary>
    /// Round trip to the messenger. The messenger handles a connection's frames in order, so when this returns every
    /// earlier message was routed, and any drop notice for it is already in <see cref="Drops"/>.
    /// </summary>
    public async Task PingAsync(CancellationToken cancellationToken = default) =>
        await _link.RequestAsync((byte)MessengerOpcode.Ping, ReadOnlyMemory<byte>.Empty, _options.RequestTimeout, cancellationToken);

    /// <summary>Offers (or updates) a service; the client refreshes it until withdrawn or disconnected.</summary>
    public async Task<OfferResult> OfferServiceAsync(ServiceOffer offer, TimeSpan? ttl = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(offer);
        var request = new OfferRequest { Services = [offer], TtlMs = (long)(ttl ?? TimeSpan.Zero).TotalMilliseconds };
        var result = await RequestJsonAsync(MessengerOpcode.Offer, request, MessengerJsonContext.Default.OfferRequest, MessengerJsonContext.Default.OfferResult, cancellationToken);
        _offers[offer.Name] = offer;
        _offerTtl = TimeSpan.FromMilliseconds(result.TtlMs);
        _refresh ??= Task.Run(RefreshLoopAsync, CancellationToken.None);
        return result;
    }

    /// <summary>Withdraws a service by name (and stops refreshing it).</summary>
    public async Task WithdrawServiceAsync(string name, CancellationToken cancellationToken = default)
    {
        _offers.TryRemove(name, out _);
        await RequestJsonAsync(MessengerOpcode.Withdraw, new WithdrawRequest { Names = [name] }, MessengerJsonContext.Default.WithdrawRequest, MessengerJsonContext.Default.OkResult, cancellationToken);
    }

    /// <summary>Queries the directory (one page).</summary>
    public Task<ServiceQueryResult> QueryServicesAsync(ServiceQuery query, CancellationToken cancellationToken = default) =>
        RequestJsonAsync(MessengerOpcode.Query, query, MessengerJsonContext.Default.ServiceQuery, MessengerJsonContext.Default.ServiceQueryResult, cancellationToken);

    private async Task<TResponse> RequestJsonAsync<TRequest, TResponse>(MessengerOpcode opcode, TRequest request, System.Text.Json.Serialization.Metadata.JsonTypeInfo<TRequest> requestType, System.Text.Json.Serialization.Metadata.JsonTypeInfo<TResponse> responseType, CancellationToken cancellationToken)
    {
        var body = await _link.RequestAsync((byte)opcode, JsonSerializer.SerializeToUtf8Bytes(request, requestType), _options.RequestTimeout, cancellationToken);
        try
        {
            return JsonSerializer.Deserialize(body, responseType) ?? throw new JsonException("null");
        }
        catch (JsonException ex)
        {
            throw new MessengerException(MessengerErrorCode.Internal, $"malformed answer to 0x{(byte)opcode:x2}: {ex.Message}");
        }
    }

    private async Task KeepaliveAsync()
    {
        while (!_cts.IsCancellationRequested)
        {
            var link = _link;
            try
            {
                await Task.Delay(_options.PingInterval, _cts.Token);
                link = _link;
                await link.RequestAsync((byte)MessengerOpcode.Ping, ReadOnlyMemory<byte>.Empty, _options.RequestTimeout, _cts.Token);
            }
            catch (OperationCanceledException)
            {
                return;
            }
            catch (MessengerException ex)
            {
                link.Fail(ConnectionCloseReason.Timeout, "keepalive failed: " + ex.Message);
                if (!_options.Reconnect)
                {
                    return;
                }
            }
        }
    }

    private async Task RefreshLoopAsync()
    {
        while (!_cts.IsCancellationRequested)
        {
            try
            {
                var wait = _offerTtl / 2;
                await Task.Delay(wait < TimeSpan.FromSeconds(1) ? TimeSpan.FromSeconds(1) : wait, _cts.Token);
                var offers = _offers.Values.ToList();
                if (offers.Count > 0)
                {
                    await RequestJsonAsync(MessengerOpcode.Offer, new OfferRequest { Services = offers, TtlMs = (long)_offerTtl.TotalMilliseconds }, MessengerJsonContext.Default.OfferRequest, MessengerJsonContext.Default.OfferResult, _cts.Token);
                }
            }
            catch (OperationCanceledException)
            {
                return;
            }
            catch (MessengerException ex)
            {
                Log.RefreshFailed(_logger, ex.Message);
                if (!_options.Reconnect)
                {
                    return;
                }
            }
        }
    }

    private void Handle(byte opcode, uint requestId, ReadOnlySpan<byte> payload)
    {
        switch ((MessengerOpcode)opcode)
        {
            case MessengerOpcode.Deliver:
                OnDeliver(payload);
                break;
            case MessengerOpcode.Dropped:
                var notice = JsonSerializer.Deserialize(payload, MessengerJsonContext.Default.DropNotice) ?? throw new JsonException("null drop notice");
                _drops.Writer.TryWrite(notice);
                break;
            case MessengerOpcode.Ping:
                _link.Enqueue((byte)(opcode | FrameCodec.ResponseBit), requestId, []);
                break;
            case MessengerOpcode.StreamIncoming:
                OnStreamIncoming(requestId, payload);
                break;
            case MessengerOpcode.StreamData:
                {
                    var id = MessengerFrames.ReadCircuit(payload, out var record);
                    if (_streams.TryGetValue(id, out var stream))
                    {
                        stream.OnRecord(record);
                    }

                    break;
                }

            case MessengerOpcode.StreamCredit:
                {
                    var id = MessengerFrames.ReadStreamCredit(payload, out var bytes);
                    if (_streams.TryGetValue(id, out var stream))
                    {
                        stream.OnCredit(bytes);
                    }

                    break;
                }

            case MessengerOpcode.StreamClose:
                {
                    var id = MessengerFrames.ReadStreamClose(payload, out var reason);
                    if (_streams.TryRemove(id, out var stream))
                    {
                        stream.OnRemoteClose(reason);
                    }

                    break;
                }

            default:
                throw new ProtocolViolationException($"unexpected opcode 0x{opcode:x2} from the messenger");
        }
    }

    private void OnDeliver(ReadOnlySpan<byte> payload)
    {
        MessengerFrames.ReadDeliver(payload, out var from, out var flags, out var envelope);
        if (!_sessions.TryOpen(from, envelope, out var message))
        {
            Interlocked.Increment(ref _rejectedEnvelopes);
            Log.EnvelopeRejected(_logger, from);
            return;
        }

        if (!_messages.Writer.TryWrite(new MessengerMessage(from, message, (flags & MessengerProtocol.DeliverFlagQueued) != 0)))
        {
            Interlocked.Increment(ref _droppedMessages);
        }
    }

    internal void SendFrame(byte opcode, ReadOnlySpan<byte> prefix, ReadOnlySpan<byte> body) => _link.Enqueue(opcode, 0, prefix, body);

    internal void ForgetStream(uint circuit) => _streams.TryRemove(circuit, out _);

    /// <summary>Closes the connection.</summary>
    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            return;
        }

        await _cts.CancelAsync();
        if (_reconnect is not null)
        {
            await _reconnect;
        }

        var link = _link;
        if (link is not null && !link.Closed.IsCompleted)
        {
            await link.DrainAndCloseAsync(TimeSpan.FromSeconds(2), "client closed");
        }

        OnClosed(link is null ? ConnectionCloseReason.LocalClosed : await link.Closed);
        foreach (var task in new[] { _keepalive, _refresh })
        {
            if (task is not null)
            {
                await task;
            }
        }

        if (link is not null)
        {
            await link.DisposeAsync();
        }

        _sessions.Dispose();
        _cts.Dispose();
    }

    private static partial class Log
    {
        [LoggerMessage(EventId = 3030, Level = LogLevel.Warning, Message = "Dropped an envelope said to come from {Sender}: it does not open with that key, or it is a replay")]
        public static partial void EnvelopeRejected(ILogger logger, PubKey sender);

        [LoggerMessage(EventId = 3031, Level = LogLevel.Warning, Message = "Refreshing offered services failed: {Reason}")]
        public static partial void RefreshFailed(ILogger logger, string reason);

        [LoggerMessage(EventId = 3033, Level = LogLevel.Warning, Message = "Lost the messenger {Messenger} ({Reason}); reconnecting")]
        public static partial void Lost(ILogger logger, string messenger, ConnectionCloseReason reason);

        [LoggerMessage(EventId = 3034, Level = LogLevel.Warning, Message = "Reconnecting to the messenger {Messenger} failed: {Reason}")]
        public static partial void ReconnectFailed(ILogger logger, string messenger, string reason);

        [LoggerMessage(EventId = 3035, Level = LogLevel.Information, Message = "Registered again at the messenger {Messenger} as {Key}")]
        public static partial void Reconnected(ILogger logger, string messenger, PubKey key);

        [LoggerMessage(EventId = 3032, Level = LogLevel.Information, Message = "Refused a stream from {Peer}: {Reason}")]
        public static partial void StreamRefused(ILogger logger, PubKey peer, string reason);
    }
}
