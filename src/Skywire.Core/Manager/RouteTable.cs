using Skywire.Core.Channels;
using Skywire.Protocol;
using Skywire.Protocol.Control;

namespace Skywire.Core.Manager;

/// <summary>A live route: its current plan (replaced on every re-route) and who asked for it.</summary>
public sealed class RouteEntry
{
    private RoutePlan _plan;
    private int _reroutes;

    /// <param name="plan">The first plan.</param>
    /// <param name="requester">The node that asked for it (RouteRequest), counted against its limits; null for an operator's (cli) route.</param>
    /// <param name="createdAt">When it was built.</param>
    public RouteEntry(RoutePlan plan, PubKey? requester, DateTimeOffset createdAt)
    {
        ArgumentNullException.ThrowIfNull(plan);
        _plan = plan;
        Requester = requester;
        CreatedAt = createdAt;
    }

    /// <summary>The session id both ends use.</summary>
    public ulong SessionId => _plan.SessionId;

    /// <summary>The initiating end.</summary>
    public PubKey From => _plan.From;

    /// <summary>The other end.</summary>
    public PubKey To => _plan.To;

    /// <summary>The node that asked for the route, or null for an operator's route.</summary>
    public PubKey? Requester { get; }

    /// <summary>When it was built.</summary>
    public DateTimeOffset CreatedAt { get; }

    /// <summary>The plan in force (read atomically; replaced by <see cref="Reroute"/>).</summary>
    public RoutePlan Plan => Volatile.Read(ref _plan);

    /// <summary>How many times it moved to another path.</summary>
    public int Reroutes => Volatile.Read(ref _reroutes);

    /// <summary>Set when a re-route failed half-way: the next repair pass tries again.</summary>
    public bool NeedsRepair { get; set; }

    /// <summary>Set once "no alternate path" was logged for the current breakage (the repair pass runs every second).</summary>
    internal bool NoAlternateLogged { get; set; }

    /// <summary>Puts a new plan (same session id and ends) in force.</summary>
    public void Reroute(RoutePlan plan)
    {
        ArgumentNullException.ThrowIfNull(plan);
        if (plan.SessionId != SessionId || plan.From != From || plan.To != To)
        {
            throw new ArgumentException("a re-route keeps the session and its ends", nameof(plan));
        }

        Volatile.Write(ref _plan, plan);
        Interlocked.Increment(ref _reroutes);
    }
}

/// <summary>
/// The live routes, and the per-node route limits (<see cref="ManagerLimits.MaxRoutesPerNode"/>,
/// <see cref="ManagerLimits.MaxRoutesPerPair"/>, <see cref="ManagerLimits.MaxRouteRequestsInFlight"/>): a node's
/// request first takes a <see cref="Reservation"/>, which counts while the route is built and becomes the live route
/// (or is returned) after. Thread-safe.
/// </summary>
public sealed class RouteTable
{
    private readonly object _sync = new();
    private readonly Dictionary<ulong, RouteEntry> _routes = [];
    private readonly Dictionary<PubKey, int> _inFlight = [];
    private readonly Dictionary<PubKey, int> _perNode = [];
    private readonly Dictionary<(PubKey Requester, PubKey Peer), int> _perPair = [];
    private readonly ManagerLimits _limits;

    /// <param name="limits">The per-node route limits.</param>
    public RouteTable(ManagerLimits limits)
    {
        ArgumentNullException.ThrowIfNull(limits);
        _limits = limits;
    }

    /// <summary>Number of live routes.</summary>
    public int Count
    {
        get
        {
            lock (_sync)
            {
                return _routes.Count;
            }
        }
    }

    /// <summary>
    /// Reserves room for one route that <paramref name="requester"/> asks for to <paramref name="peer"/>; dispose the
    /// reservation when the build ends (it then counts as live if it was committed).
    /// </summary>
    /// <exception cref="ControlException">LimitExceeded: too many requests in flight, or live routes of the node or of the pair.</exception>
    public Reservation Reserve(PubKey requester, PubKey peer)
    {
        lock (_sync)
        {
            var inFlight = _inFlight.GetValueOrDefault(requester);
            if (inFlight >= _limits.MaxRouteRequestsInFlight)
            {
                throw new ControlException(ControlErrorCode.LimitExceeded,
                    $"{inFlight} route requests of this node are being built, the most at once (wait for an answer before asking again)");
            }

            // Requests in flight count as routes: a burst cannot overshoot the limits before the first is committed.
            var node = _perNode.GetValueOrDefault(requester) + inFlight;
            if (node >= _limits.MaxRoutesPerNode)
            {
                throw new ControlException(ControlErrorCode.LimitExceeded,
                    $"this node has {node} live routes, the most a node may have (close some: RouteClose)");
            }

            var pair = _perPair.GetValueOrDefault((requester, peer)) + inFlight;
            if (pair >= _limits.MaxRoutesPerPair)
            {
                throw new ControlException(ControlErrorCode.LimitExceeded,
                    $"this node has {pair} live routes to {peer.ToShortString(12)}, the most to one peer (reuse a session or close one)");
            }

            _inFlight[requester] = inFlight + 1;
            return new Reservation(this, requester, peer);
        }
    }

    /// <summary>
    /// Adds a route learned from its ends (a restarted manager adopting a live session), counted for its requester
    /// within the per-node and per-pair limits. False when the id is taken or a limit is reached.
    /// </summary>
    public bool Adopt(RouteEntry route)
    {
        ArgumentNullException.ThrowIfNull(route);
        var requester = route.Requester ?? throw new ArgumentException("an adopted route counts for its initiator", nameof(route));
        var peer = route.From == requester ? route.To : route.From;
        lock (_sync)
        {
            if (_routes.ContainsKey(route.SessionId)
                || _perNode.GetValueOrDefault(requester) + _inFlight.GetValueOrDefault(requester) >= _limits.MaxRoutesPerNode
                || _perPair.GetValueOrDefault((requester, peer)) >= _limits.MaxRoutesPerPair)
            {
                return false;
            }

            _routes.Add(route.SessionId, route);
            _perNode[requester] = _perNode.GetValueOrDefault(requester) + 1;
            _perPair[(requester, peer)] = _perPair.GetValueOrDefault((requester, peer)) + 1;
            return true;
        }
    }

    /// <summary>Adds an operator's route (no limits).</summary>
    public void Add(RouteEntry route)
    {
        ArgumentNullException.ThrowIfNull(route);
        if (route.Requester is not null)
        {
            throw new ArgumentException("a node's route is added through its reservation", nameof(route));
        }

        lock (_sync)
        {
            _routes.Add(route.SessionId, route);
        }
    }

    /// <summary>Removes a live route; false when it is not (or no longer) there.</summary>
    public bool Remove(RouteEntry route)
    {
        ArgumentNullException.ThrowIfNull(route);
        lock (_sync)
        {
            if (!_routes.TryGetValue(route.SessionId, out var current) || !ReferenceEquals(current, route))
            {
                return false;
            }

            _routes.Remove(route.SessionId);
            if (route.Requester is { } requester)
            {
                Decrement(_perNode, requester);
                Decrement(_perPair, (requester, route.From == requester ? route.To : route.From));
            }

            return true;
        }
    }

    /// <summary>The live route with this session id, or null.</summary>
    public RouteEntry? Get(ulong sessionId)
    {
        lock (_sync)
        {
            return _routes.GetValueOrDefault(sessionId);
        }
    }

    /// <summary>Every live route, oldest first.</summary>
    public IReadOnlyList<RouteEntry> Snapshot()
    {
        lock (_sync)
        {
            return [.. _routes.Values.OrderBy(r => r.CreatedAt).ThenBy(r => r.SessionId)];
        }
    }

    /// <summary>Live routes <paramref name="requester"/> asked for.</summary>
    public int CountOf(PubKey requester)
    {
        lock (_sync)
        {
            return _perNode.GetValueOrDefault(requester);
        }
    }

    private static void Decrement<TKey>(Dictionary<TKey, int> counts, TKey key) where TKey : notnull
    {
        if (counts.TryGetValue(key, out var n) && n > 1)
        {
            counts[key] = n - 1;
        }
        else
        {
            counts.Remove(key);
        }
    }

    /// <summary>Room for one route of one node: in flight until disposed, live once committed.</summary>
    public sealed class Reservation : IDisposable
    {
        private readonly RouteTable _table;
        private readonly PubKey _requester;
        private readonly PubKey _peer;
        private bool _committed;
        private bool _disposed;

        internal Reservation(RouteTable table, PubKey requester, PubKey peer)
        {
            _table = table;
            _requester = requester;
            _peer = peer;
        }

        /// <summary>Adds the built route as live, counted against the requester.</summary>
        public void Commit(RouteEntry route)
        {
            ArgumentNullException.ThrowIfNull(route);
            if (route.Requester != _requester || (route.From != _requester && route.To != _requester) || (route.From != _peer && route.To != _peer))
            {
                throw new ArgumentException("the route is not the one reserved", nameof(route));
            }

            lock (_table._sync)
            {
                if (_committed || _disposed)
                {
                    throw new InvalidOperationException("the reservation is already used or returned");
                }

                // Still in flight until disposed: the request is answered only after the route is installed.
                _committed = true;
                _table._routes.Add(route.SessionId, route);
                _table._perNode[_requester] = _table._perNode.GetValueOrDefault(_requester) + 1;
                _table._perPair[(_requester, _peer)] = _table._perPair.GetValueOrDefault((_requester, _peer)) + 1;
            }
        }

        /// <summary>Ends the request: it no longer counts as in flight (a committed route stays live).</summary>
        public void Dispose()
        {
            lock (_table._sync)
            {
                if (!_disposed)
                {
                    _disposed = true;
                    Decrement(_table._inFlight, _requester);
                }
            }
        }
    }
}
