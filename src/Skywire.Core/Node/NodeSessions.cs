using System.Collections.Concurrent;
using Microsoft.Extensions.Logging;
using Skywire.Core.DataPlane;
using Skywire.Core.Sessions;
using Skywire.Core.Sessions.Mux;
using Skywire.Protocol;

namespace Skywire.Core.Node;

/// <summary>
/// The node's end-to-end sessions: binds a route (from the manager's <c>SessionRoute</c> or a brokered direct link)
/// in the data plane and wraps it in a <see cref="MeshSession"/> (one per session id), finds a live session to a
/// peer, and reports each session's end once. What a session's end means (tell the manager, release a direct link)
/// and where incoming streams go are the node's business, given as callbacks.
/// </summary>
internal sealed partial class NodeSessions : IAsyncDisposable
{
    private readonly NodeHost _owner;
    private readonly NodeDataPlane _dataPlane;
    private readonly NodeOptions _options;
    private readonly ILoggerFactory _loggerFactory;
    private readonly ILogger _logger;
    private readonly Func<MeshSession, MuxStream, bool> _deliver;
    private readonly Action<MeshSession> _ended;
    private readonly ConcurrentDictionary<ulong, MeshSession> _sessions = new();

    /// <param name="owner">The node (what <see cref="MeshSession"/> calls back; it forwards here).</param>
    /// <param name="dataPlane">Where routes are bound.</param>
    /// <param name="options">Mux settings and clock.</param>
    /// <param name="loggerFactory">Logging.</param>
    /// <param name="deliver">Hands an incoming stream to a local app; false refuses it.</param>
    /// <param name="ended">Called once when a session ends (after it left the set).</param>
    public NodeSessions(NodeHost owner, NodeDataPlane dataPlane, NodeOptions options, ILoggerFactory loggerFactory, Func<MeshSession, MuxStream, bool> deliver, Action<MeshSession> ended)
    {
        _owner = owner;
        _dataPlane = dataPlane;
        _options = options;
        _loggerFactory = loggerFactory;
        _logger = loggerFactory.CreateLogger<NodeHost>();
        _deliver = deliver;
        _ended = ended;
    }

    /// <summary>Counters summed over the datagram flows of every session.</summary>
    public DatagramFlowStatistics FlowStatistics { get; } = new();

    /// <summary>The sessions bound now (metrics read them at each scrape).</summary>
    public ICollection<MeshSession> Active => _sessions.Values;

    /// <summary>Whether a session with this id is bound.</summary>
    public bool Contains(ulong sessionId) => _sessions.ContainsKey(sessionId);

    /// <summary>The session with this id, if bound.</summary>
    public bool TryGet(ulong sessionId, out MeshSession session) => _sessions.TryGetValue(sessionId, out session!);

    /// <summary>The sessions bound now.</summary>
    public IReadOnlyList<MeshSession> Snapshot() => [.. _sessions.Values];

    /// <summary>A usable session to <paramref name="peer"/> that <paramref name="match"/> accepts, or null.</summary>
    public MeshSession? FindUsable(PubKey peer, Func<MeshSession, bool> match) =>
        _sessions.Values.FirstOrDefault(s => s.Peer == peer && s.IsUsable && match(s));

    /// <summary>Binds the session in the data plane and wraps it in a multiplexer (idempotent per session id).</summary>
    /// <exception cref="ArgumentException">An invalid route.</exception>
    public MeshSession Bind(SessionRoute route, bool direct)
    {
        var secure = _dataPlane.BindSession(route);
        if (_sessions.TryGetValue(route.SessionId, out var existing))
        {
            return existing;
        }

        var session = new MeshSession(_owner, secure, _options.Mux, _loggerFactory, _options.TimeProvider, direct, FlowStatistics);
        if (!_sessions.TryAdd(route.SessionId, session))
        {
            _ = session.DisposeAsync().AsTask();
            return _sessions[route.SessionId];
        }

        Log.SessionBound(_logger, route.SessionId, route.Peer, route.Initiator);
        return session;
    }

    /// <summary>The manager closed the route of a session: close it here.</summary>
    public async ValueTask CloseRouteAsync(ulong sessionId)
    {
        if (_sessions.TryGetValue(sessionId, out var gone))
        {
            Log.SessionRouteGone(_logger, sessionId);
            await gone.DisposeAsync();
        }
    }

    /// <summary>
    /// The link to <paramref name="peer"/> went down: every session whose route runs over it (first hop, either way) is
    /// broken unless the manager gives it a new route or the link comes back. After <see cref="NodeOptions.DeadHopGrace"/>
    /// with the node connected to its manager at both ends of the wait, the sessions still on that link, with the link
    /// still down, are closed: their apps get the reset about 25 s sooner than the multiplexer's idle timeout would
    /// give it (docs/protocol.md §7). While the manager is away nothing is closed here (it may be restarting and re-route
    /// on its return); the idle timeout stays the backstop.
    /// </summary>
    public async Task CloseOverDeadLinkAsync(PubKey peer, Func<bool> managerConnected, CancellationToken cancellationToken)
    {
        var grace = _options.DeadHopGrace;
        if (grace <= TimeSpan.Zero)
        {
            return;
        }

        bool OnDeadLink(MeshSession session) => session.IsUsable && session.Secure.Route is var route && (route.OutLink == peer || route.InLink == peer);
        while (_sessions.Values.Any(OnDeadLink))
        {
            var connectedBefore = managerConnected();
            try
            {
                await Task.Delay(grace, _options.TimeProvider, cancellationToken);
            }
            catch (OperationCanceledException)
            {
                return;
            }

            if (_dataPlane.GetLink(peer) is { State: Links.LinkState.Up })
            {
                return;
            }

            if (!connectedBefore || !managerConnected())
            {
                continue;
            }

            foreach (var session in _sessions.Values.Where(OnDeadLink).ToList())
            {
                Log.SessionHopDown(_logger, session.SessionId, peer, grace.TotalSeconds);
                await session.CloseAsync($"its link to {peer.ToShortString()} is down and no new route came within {grace.TotalSeconds:0.#} s");
            }

            return;
        }
    }

    /// <summary>A session closed (called by the session once).</summary>
    internal void SessionEnded(MeshSession session, string reason)
    {
        if (_sessions.TryRemove(new KeyValuePair<ulong, MeshSession>(session.SessionId, session)))
        {
            Log.SessionEnded(_logger, session.SessionId, reason);
            _ended(session);
        }
    }

    /// <summary>A stream arrived on a session: a local app takes it, or it is refused.</summary>
    internal void DeliverIncoming(MeshSession session, MuxStream stream)
    {
        if (!_deliver(session, stream))
        {
            stream.Refuse();
            return;
        }

        stream.Accept();
    }

    /// <inheritdoc />
    public async ValueTask DisposeAsync()
    {
        foreach (var session in _sessions.Values)
        {
            await session.DisposeAsync();
        }
    }

    private static partial class Log
    {
        [LoggerMessage(EventId = 7005, Level = LogLevel.Information, Message = "Session {SessionId} with {Peer} bound (initiator: {Initiator})")]
        public static partial void SessionBound(ILogger logger, ulong sessionId, PubKey peer, bool initiator);

        [LoggerMessage(EventId = 7006, Level = LogLevel.Information, Message = "Session {SessionId} ended: {Reason}")]
        public static partial void SessionEnded(ILogger logger, ulong sessionId, string reason);

        [LoggerMessage(EventId = 7007, Level = LogLevel.Warning, Message = "Session {SessionId}: the manager closed its route")]
        public static partial void SessionRouteGone(ILogger logger, ulong sessionId);

        [LoggerMessage(EventId = 7009, Level = LogLevel.Warning, Message = "Session {SessionId} closed as broken: its link to {Peer} is down and no new route came within {GraceSeconds} s")]
        public static partial void SessionHopDown(ILogger logger, ulong sessionId, PubKey peer, double graceSeconds);
    }
}
