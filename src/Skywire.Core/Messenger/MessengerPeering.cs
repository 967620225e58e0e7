using System.Threading.Channels;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Skywire.Core.Crypto;
using Skywire.Protocol;
using Skywire.Protocol.Messenger;

namespace Skywire.Core.Messenger;

/// <summary>
/// Keeps a process (a node, typically) registered at a messenger under its key, reconnecting with backoff, and
/// exposes the two halves of "peering clusters by key": <see cref="OpenStreamAsync"/> to reach a key that no
/// manager route reaches, and a callback for the streams other keys open to us. A node uses it as the fallback of
/// its app API's dial (docs/messenger.md "Node integration").
/// </summary>
public sealed partial class MessengerPeering : IAsyncDisposable
{
    private readonly MessengerClientOptions _options;
    private readonly KeyPair _key;
    private readonly Func<MessengerStream, bool> _onIncoming;
    private readonly ILoggerFactory _loggerFactory;
    private readonly ILogger _logger;
    private readonly string _where;
    private readonly CancellationTokenSource _cts = new();
    private readonly TaskCompletionSource _firstConnect = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private volatile MessengerClient? _client;
    private Task? _loop;
    private int _disposed;

    /// <param name="options">The messenger and its pinned key.</param>
    /// <param name="key">Our identity (the node key).</param>
    /// <param name="onIncoming">Takes an incoming stream (returns true), or refuses it (false: the stream is aborted).</param>
    /// <param name="loggerFactory">Logging.</param>
    /// <param name="acceptFilter">Refuses a stream before it is answered (the opener gets Refused); null accepts all.</param>
    public MessengerPeering(MessengerClientOptions options, KeyPair key, Func<MessengerStream, bool> onIncoming, ILoggerFactory? loggerFactory = null, Func<PubKey, ReadOnlyMemory<byte>, bool>? acceptFilter = null)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(key);
        ArgumentNullException.ThrowIfNull(onIncoming);
        _options = acceptFilter is null ? options : options with { AcceptFilter = acceptFilter };
        _key = key;
        _onIncoming = onIncoming;
        _loggerFactory = loggerFactory ?? NullLoggerFactory.Instance;
        _logger = _loggerFactory.CreateLogger<MessengerPeering>();
        _where = options.EndPoint.ToString() ?? "?";
    }

    /// <summary>Smallest delay before reconnecting (grows with jitter up to <see cref="MaxReconnectDelay"/>: <see cref="Channels.Backoff"/>; the clock is the options' <see cref="MessengerClientOptions.TimeProvider"/>).</summary>
    public TimeSpan ReconnectDelay { get; init; } = TimeSpan.FromMilliseconds(250);

    /// <summary>Longest delay between reconnection attempts.</summary>
    public TimeSpan MaxReconnectDelay { get; init; } = TimeSpan.FromSeconds(10);

    /// <summary>
    /// Called (on the peering's loop, one at a time) for each sealed message that arrives; null ignores messages. A
    /// node uses them to broker direct links (docs/messenger.md "Direct links between clusters").
    /// </summary>
    public Action<MessengerMessage>? OnMessage { get; init; }

    /// <summary>The local address of the live connection to the messenger, or null.</summary>
    public System.Net.IPEndPoint? LocalEndPoint => _client?.LocalEndPoint;

    /// <summary>Whether a registration is live now.</summary>
    public bool IsConnected => _client is { Closed.IsCompleted: false };

    /// <summary>Completes at the first successful registration.</summary>
    public Task Connected => _firstConnect.Task;

    /// <summary>Starts connecting in the background.</summary>
    public void Start() => _loop ??= Task.Run(RunAsync, CancellationToken.None);

    /// <summary>Opens a relayed stream to <paramref name="to"/> through the messenger.</summary>
    /// <exception cref="MessengerException">Unavailable when not connected; NotFound, Refused as <see cref="MessengerClient.OpenStreamAsync"/>.</exception>
    public Task<MessengerStream> OpenStreamAsync(PubKey to, ReadOnlyMemory<byte> openData, CancellationToken cancellationToken = default)
    {
        var client = _client;
        if (client is null || client.Closed.IsCompleted)
        {
            throw new MessengerException(MessengerErrorCode.Unavailable, "not connected to the messenger");
        }

        return client.OpenStreamAsync(to, openData, cancellationToken);
    }

    /// <summary>Seals <paramref name="message"/> for <paramref name="to"/> and hands it to the messenger.</summary>
    /// <exception cref="MessengerException">Unavailable when not connected.</exception>
    public async ValueTask SendAsync(PubKey to, ReadOnlyMemory<byte> message, CancellationToken cancellationToken = default)
    {
        var client = _client;
        if (client is null || client.Closed.IsCompleted)
        {
            throw new MessengerException(MessengerErrorCode.Unavailable, "not connected to the messenger");
        }

        await client.SendAsync(to, message, cancellationToken);
    }

    private async Task ReadMessagesAsync(MessengerClient client)
    {
        try
        {
            await foreach (var message in client.Messages.ReadAllAsync(_cts.Token))
            {
                try
                {
                    OnMessage?.Invoke(message);
                }
                catch (Exception ex)
                {
                    Log.DeliverFailed(_logger, message.From, ex);
                }
            }
        }
        catch (OperationCanceledException)
        {
        }
    }

    private async Task RunAsync()
    {
        var backoff = new Channels.Backoff(ReconnectDelay, MaxReconnectDelay);
        while (!_cts.IsCancellationRequested)
        {
            MessengerClient client;
            try
            {
                client = await MessengerClient.ConnectAsync(_options, _key, _loggerFactory, _cts.Token);
            }
            catch (OperationCanceledException) when (_cts.IsCancellationRequested)
            {
                return;
            }
            catch (MessengerException ex)
            {
                Log.ConnectFailed(_logger, _where, ex.Message);
                try
                {
                    await backoff.DelayAsync(_options.TimeProvider, _cts.Token);
                }
                catch (OperationCanceledException)
                {
                    return;
                }

                continue;
            }

            backoff.Reset();
            _client = client;
            Log.Connected(_logger, _where, _key.Public);
            _firstConnect.TrySetResult();
            var messages = Task.Run(() => ReadMessagesAsync(client), CancellationToken.None);
            await using (client)
            {
                try
                {
                    while (true)
                    {
                        var stream = await client.AcceptStreamAsync(_cts.Token);
                        bool taken;
                        try
                        {
                            taken = _onIncoming(stream);
                        }
                        catch (Exception ex)
                        {
                            Log.DeliverFailed(_logger, stream.RemoteKey, ex);
                            taken = false;
                        }

                        if (!taken)
                        {
                            stream.Abort();
                        }
                    }
                }
                catch (ChannelClosedException)
                {
                    Log.Lost(_logger, _where);
                }
                catch (OperationCanceledException) when (_cts.IsCancellationRequested)
                {
                    return;
                }
                finally
                {
                    _client = null;
                }
            }

            await messages;
        }
    }

    /// <summary>Disconnects and stops reconnecting.</summary>
    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            return;
        }

        await _cts.CancelAsync();
        if (_loop is not null)
        {
            await _loop;
        }

        _cts.Dispose();
    }

    private static partial class Log
    {
        [LoggerMessage(EventId = 3040, Level = LogLevel.Information, Message = "Registered at the messenger {Messenger} as {Key}")]
        public static partial void Connected(ILogger logger, string messenger, PubKey key);

        [LoggerMessage(EventId = 3041, Level = LogLevel.Warning, Message = "Cannot register at the messenger {Messenger}: {Reason}")]
        public static partial void ConnectFailed(ILogger logger, string messenger, string reason);

        [LoggerMessage(EventId = 3042, Level = LogLevel.Warning, Message = "Lost the messenger {Messenger}; reconnecting")]
        public static partial void Lost(ILogger logger, string messenger);

        [LoggerMessage(EventId = 3043, Level = LogLevel.Error, Message = "Handing a messenger stream from {Peer} to the node failed")]
        public static partial void DeliverFailed(ILogger logger, PubKey peer, Exception exception);
    }
}
