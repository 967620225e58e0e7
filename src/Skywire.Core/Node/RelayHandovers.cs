using System.Security.Cryptography;
using System.Text.Json;
using Microsoft.Extensions.Logging;
using Skywire.Core.AppApi;
using Skywire.Core.Messenger;
using Skywire.Core.Sessions;
using Skywire.Core.Sessions.Mux;
using Skywire.Core.Streams;
using Skywire.Protocol;
using Skywire.Protocol.AppApi;

namespace Skywire.Core.Node;

/// <summary>
/// Moves streams that the messenger relays between clusters onto a direct link once one comes up (docs/messenger.md
/// "Relayed streams move to a direct link"). The dialling node keeps trying a brokered direct session to each peer it
/// relays streams with, backing off from <see cref="NodeOptions.RelayUpgradeInterval"/> to
/// <see cref="NodeOptions.RelayUpgradeMaxInterval"/>, and hands every such stream over when it has one; the
/// accepting node matches the direct stream to its relayed one by the peer's key and the stream's secret token.
/// </summary>
internal sealed partial class RelayHandovers
{
    /// <summary>Length of a handover token in hex characters (16 random bytes).</summary>
    private const int TokenLength = 32;

    private readonly NodeOptions _options;
    private readonly NodeSessions _sessions;
    private readonly DirectLinks _direct;
    private readonly ILogger _logger;
    private readonly CancellationToken _stopping;
    private readonly Dictionary<PubKey, HashSet<HandoverStream>> _dialled = [];
    private readonly System.Collections.Concurrent.ConcurrentDictionary<(PubKey Peer, string Token), HandoverStream> _accepted = new();
    private long _moved;

    public RelayHandovers(NodeOptions options, NodeSessions sessions, DirectLinks direct, ILogger logger, CancellationToken stopping)
    {
        _options = options;
        _sessions = sessions;
        _direct = direct;
        _logger = logger;
        _stopping = stopping;
    }

    /// <summary>Whether relayed streams this node dials offer to move (direct links on and the retry interval positive).</summary>
    public bool Enabled => _options.DirectLinkTimeout > TimeSpan.Zero && _options.RelayUpgradeInterval > TimeSpan.Zero;

    /// <summary>Streams moved from the relay to a direct link since the start (either end).</summary>
    public long Moved => Interlocked.Read(ref _moved);

    /// <summary>A fresh token for the open data of a relayed stream this node dials.</summary>
    public static string NewToken() => Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(TokenLength / 2));

    /// <summary>Dialler: wraps a relayed stream so it can move, and makes sure a direct link to its peer is being tried.</summary>
    public DuplexStream Dialled(PubKey peer, string app, DuplexStream relay, string token)
    {
        var stream = new HandoverStream(relay, token, app, isDialler: true, onClosed: s => Forget(peer, s));
        bool start;
        lock (_dialled)
        {
            start = !_dialled.TryGetValue(peer, out var streams);
            if (start)
            {
                _dialled[peer] = streams = [];
            }

            streams!.Add(stream);
        }

        if (start)
        {
            _ = UpgradeLoopAsync(peer);
        }

        return stream;
    }

    /// <summary>Acceptor: wraps a relayed stream whose open data carries a handover token; other streams stay as they are.</summary>
    public DuplexStream Accepted(MessengerStream relay, StreamOpenMessage open)
    {
        if (open.Handover is not { Length: TokenLength } token || !token.All(char.IsAsciiHexDigitLower))
        {
            return relay;
        }

        var key = (relay.RemoteKey, token);
        var stream = new HandoverStream(relay, token, open.App, isDialler: false, onClosed: s => _accepted.TryRemove(new KeyValuePair<(PubKey, string), HandoverStream>(key, s)));
        return _accepted.TryAdd(key, stream) ? stream : relay;
    }

    /// <summary>
    /// Acceptor: a direct mux stream with handover open data arrived on <paramref name="session"/>. True when it
    /// continues a relayed stream from the same key (the mux then accepts it); false refuses it.
    /// </summary>
    public bool TryAcceptDirect(MeshSession session, MuxStream direct, StreamOpenMessage open)
    {
        if (open.Handover is not { } token || open.Sent is not { } sent || !_accepted.TryRemove((session.Peer, token), out var stream))
        {
            return false;
        }

        if (!stream.AcceptHandover(direct, sent))
        {
            return false;
        }

        Interlocked.Increment(ref _moved);
        Log.Moved(_logger, session.Peer, stream.App, false);
        return true;
    }

    private void Forget(PubKey peer, HandoverStream stream)
    {
        lock (_dialled)
        {
            if (_dialled.TryGetValue(peer, out var streams))
            {
                streams.Remove(stream);
            }
        }
    }

    /// <summary>The streams still relayed to <paramref name="peer"/>; when none are left the loop's entry is removed (under the lock).</summary>
    private List<HandoverStream> StillRelayed(PubKey peer)
    {
        lock (_dialled)
        {
            if (!_dialled.TryGetValue(peer, out var streams))
            {
                return [];
            }

            streams.RemoveWhere(s => s.IsClosed || s.IsMoved);
            if (streams.Count == 0)
            {
                _dialled.Remove(peer);
                return [];
            }

            return [.. streams];
        }
    }

    private async Task UpgradeLoopAsync(PubKey peer)
    {
        var delay = _options.RelayUpgradeInterval;
        try
        {
            while (true)
            {
                var jittered = delay * (0.8 + (0.4 * Random.Shared.NextDouble()));
                await Task.Delay(jittered, _options.TimeProvider, _stopping);
                var streams = StillRelayed(peer);
                if (streams.Count == 0)
                {
                    return;
                }

                if (await DirectSessionAsync(peer, streams[0].App) is { } session)
                {
                    foreach (var stream in streams)
                    {
                        if (await stream.HandOverAsync((sent, ct) => OpenDirectAsync(session, stream.Token, sent, ct), _stopping))
                        {
                            Interlocked.Increment(ref _moved);
                            Log.Moved(_logger, peer, stream.App, true);
                        }
                    }
                }

                if (StillRelayed(peer).Count == 0)
                {
                    return;
                }

                Log.StillRelayed(_logger, peer, delay);
                delay = TimeSpan.FromTicks(Math.Min(delay.Ticks * 2, _options.RelayUpgradeMaxInterval.Ticks));
            }
        }
        catch (OperationCanceledException) when (_stopping.IsCancellationRequested)
        {
        }
        catch (Exception ex)
        {
            // A loop that died must not leave its peer entry behind, or no new loop would start for it.
            lock (_dialled)
            {
                _dialled.Remove(peer);
            }

            Log.LoopFailed(_logger, peer, ex);
        }
    }

    private async Task<MeshSession?> DirectSessionAsync(PubKey peer, string app)
    {
        if (_sessions.FindUsable(peer, s => s.IsDirect && s.Secure.State == SecureSessionState.Established) is { } live)
        {
            return live;
        }

        try
        {
            return await _direct.TryDirectSessionAsync(peer, app, _stopping);
        }
        catch (AppApiException)
        {
            return null; // the app is gone at the far end: its streams end on their own
        }
    }

    private static async Task<DuplexStream> OpenDirectAsync(MeshSession session, string token, long sent, CancellationToken cancellationToken)
    {
        var open = JsonSerializer.SerializeToUtf8Bytes(new StreamOpenMessage { App = "", Handover = token, Sent = sent }, AppApiJsonContext.Default.StreamOpenMessage);
        return await session.Mux.OpenStreamAsync(open, cancellationToken);
    }

    private static partial class Log
    {
        [LoggerMessage(EventId = 7030, Level = LogLevel.Information, Message = "A relayed stream with {Peer} (app {App}) moved to the direct link (we dialled: {Dialler})")]
        public static partial void Moved(ILogger logger, PubKey peer, string app, bool dialler);

        [LoggerMessage(EventId = 7031, Level = LogLevel.Debug, Message = "Streams with {Peer} stay relayed: no direct link yet (tried again after about {Delay} doubled)")]
        public static partial void StillRelayed(ILogger logger, PubKey peer, TimeSpan delay);

        [LoggerMessage(EventId = 7032, Level = LogLevel.Warning, Message = "Moving relayed streams with {Peer} to a direct link stopped")]
        public static partial void LoopFailed(ILogger logger, PubKey peer, Exception exception);
    }
}
