using Skywire.Protocol;

namespace Skywire.Core.Manager.Store;

/// <summary>
/// Routes in the store: <c>routes/&lt;session&gt;</c> names the manager that owns the route (refreshes its rules,
/// repairs and closes it) with its path and labels; each label is a key of its own, claimed create-only in the same
/// transaction, so a label is never handed out twice across managers. When a manager's key leaves the store (it died,
/// or lost the store for longer than its lease), a survivor takes its routes over, fenced by the route key's revision
/// so that only one survivor does, as soon as both ends are online; a route that nobody can take over is removed after
/// <see cref="OrphanGrace"/>.
/// </summary>
public sealed partial class MeshStoreSync
{
    private readonly Lock _routesLock = new();
    private readonly Dictionary<ulong, (RouteValue Value, long Revision)> _routes = [];
    private readonly Dictionary<ulong, DateTimeOffset> _orphanSince = [];
    private readonly Dictionary<ulong, byte[]> _ownRoutes = [];
    private int _takingOver;

    /// <summary>How long a route whose owner is gone and whose ends are not both online stays in the store.</summary>
    public TimeSpan OrphanGrace => _options.EndOfflineGrace + _options.RuleLifetime;

    /// <summary>Every route in the store (any owner), by session id.</summary>
    public IReadOnlyDictionary<ulong, RouteValue> StoredRoutes
    {
        get
        {
            lock (_routesLock)
            {
                return _routes.ToDictionary(r => r.Key, r => r.Value.Value);
            }
        }
    }

    /// <summary>
    /// Commits a route this manager owns: its record and its labels (claimed create-only), and frees the labels of
    /// <paramref name="previous"/> (its plan before a re-route, or the stored plan of a route it adopts) that the new plan
    /// does not reuse. False when a label is taken (draw others and try again).
    /// </summary>
    /// <exception cref="StoreUnavailableException">The store cannot be reached: no route is made.</exception>
    public async Task<bool> CommitRouteAsync(RoutePlan plan, PubKey? requester, DateTimeOffset created, RoutePlan? previous, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(plan);
        previous ??= StoredPlan(plan.SessionId);
        var oldLabels = previous is null ? [] : previous.Labels().Select(l => MeshStoreCodec.LabelKey(l.Node, l.InLink, l.Label)).ToHashSet(StringComparer.Ordinal);
        var label = MeshStoreCodec.Encode(new LabelValue { Session = plan.SessionId.ToString("x16", System.Globalization.CultureInfo.InvariantCulture) });
        var compares = new List<StoreCompare>();
        var ops = new List<StoreOp>();
        var newLabels = new HashSet<string>(StringComparer.Ordinal);
        foreach (var (node, inLink, value) in plan.Labels())
        {
            var key = MeshStoreCodec.LabelKey(node, inLink, value);
            newLabels.Add(key);
            if (!oldLabels.Contains(key))
            {
                compares.Add(StoreCompare.IsAbsent(key));
                ops.Add(StoreOp.Put(key, label));
            }
        }

        ops.AddRange(oldLabels.Where(k => !newLabels.Contains(k)).Select(StoreOp.Delete));
        var record = MeshStoreCodec.Encode(ToValue(plan, requester, created));
        ops.Add(StoreOp.Put(MeshStoreCodec.RouteKey(plan.SessionId), record));
        if (ops.Count > StoreTransaction.MaxOperations)
        {
            throw new StoreUnavailableException($"a route of {plan.Path.Count} hops needs {ops.Count} store operations, more than the {StoreTransaction.MaxOperations} of one transaction");
        }

        if (!await _store.TransactAsync(new StoreTransaction(compares, ops), cancellationToken))
        {
            Log.LabelTaken(_logger, plan.SessionId);
            return false;
        }

        lock (_routesLock)
        {
            _ownRoutes[plan.SessionId] = record;
        }

        return true;
    }

    /// <summary>A route this manager owned is closed: its record and labels leave the store (retried while the store is away).</summary>
    public void RouteDropped(RoutePlan plan)
    {
        ArgumentNullException.ThrowIfNull(plan);
        byte[]? mine;
        lock (_routesLock)
        {
            _ownRoutes.Remove(plan.SessionId, out mine);
        }

        var key = MeshStoreCodec.RouteKey(plan.SessionId);
        var ops = new List<StoreOp> { StoreOp.Delete(key) };
        ops.AddRange(plan.Labels().Select(l => StoreOp.Delete(MeshStoreCodec.LabelKey(l.Node, l.InLink, l.Label))));
        // Only while the record is still this manager's (another one may have taken the route over meanwhile).
        Enqueue(key, new StoreTransaction(mine is null ? [] : [StoreCompare.Holds(key, mine)], ops));
    }

    private RouteValue ToValue(RoutePlan plan, PubKey? requester, DateTimeOffset created) => new()
    {
        Owner = ManagerId,
        Requester = requester?.ToString(),
        Path = [.. plan.Path.Select(p => p.ToString())],
        Forward = [.. plan.Forward],
        Reverse = [.. plan.Reverse],
        Created = created,
    };

    /// <summary>The plan a route has in the store, or null (unknown or malformed).</summary>
    public RoutePlan? StoredPlan(ulong sessionId)
    {
        lock (_routesLock)
        {
            return _routes.TryGetValue(sessionId, out var stored) ? PlanOf(sessionId, stored.Value) : null;
        }
    }

    private static RoutePlan? PlanOf(ulong sessionId, RouteValue value)
    {
        var path = new List<PubKey>(value.Path.Count);
        foreach (var text in value.Path)
        {
            if (!PubKey.TryParse(text, out var key))
            {
                return null;
            }

            path.Add(key);
        }

        return RoutePlan.FromLabels(sessionId, path, value.Forward, value.Reverse);
    }

    private void ApplyRoute(string key, StoreEntry entry, bool put)
    {
        if (MeshStoreCodec.RouteOf(key) is not { } id)
        {
            Ignore(key);
            return;
        }

        if (!put)
        {
            lock (_routesLock)
            {
                _routes.Remove(id);
                _orphanSince.Remove(id);
            }

            return;
        }

        var value = MeshStoreCodec.TryDecode<RouteValue>(entry.Value);
        if (value is null || value.Owner.Length == 0 || PlanOf(id, value) is null)
        {
            Ignore(key);
            return;
        }

        lock (_routesLock)
        {
            _routes[id] = (value, entry.ModRevision);
        }

        if (value.Owner != ManagerId)
        {
            lock (_routesLock)
            {
                _ownRoutes.Remove(id);
            }

            _controller.RouteMovedAway(id);
        }
    }

    /// <summary>
    /// Takes over the routes of managers no longer in the store once both ends are online, and removes those that
    /// stayed orphaned for <see cref="OrphanGrace"/> (run every maintenance tick).
    /// </summary>
    internal async Task TakeOverOrphansAsync(CancellationToken cancellationToken)
    {
        if (!Synchronized || Interlocked.Exchange(ref _takingOver, 1) != 0)
        {
            return;
        }

        try
        {
            var now = _time.GetUtcNow();
            var live = LiveManagers.ToHashSet(StringComparer.Ordinal);
            if (!live.Contains(ManagerId))
            {
                return; // this manager's own session is not in the store: it cannot fence anything
            }

            List<(ulong Id, RouteValue Value, long Revision)> orphans;
            lock (_routesLock)
            {
                orphans = [.. _routes.Where(r => r.Value.Value.Owner != ManagerId && !live.Contains(r.Value.Value.Owner)).Select(r => (r.Key, r.Value.Value, r.Value.Revision))];
                foreach (var id in _orphanSince.Keys.Where(id => !orphans.Any(o => o.Id == id)).ToList())
                {
                    _orphanSince.Remove(id);
                }
            }

            foreach (var (id, value, revision) in orphans)
            {
                var plan = PlanOf(id, value)!;
                var key = MeshStoreCodec.RouteKey(id);
                if (_controller.Nodes.IsOnline(plan.From) && _controller.Nodes.IsOnline(plan.To))
                {
                    PubKey? requester = value.Requester is not null && PubKey.TryParse(value.Requester, out var r) ? r : null;
                    var mine = MeshStoreCodec.Encode(new RouteValue
                    {
                        Owner = ManagerId, Requester = value.Requester, Path = value.Path, Forward = value.Forward, Reverse = value.Reverse, Created = value.Created,
                    });
                    if (await _store.TransactAsync(new StoreTransaction([StoreCompare.WrittenAt(key, revision)], [StoreOp.Put(key, mine)]), cancellationToken))
                    {
                        lock (_routesLock)
                        {
                            _ownRoutes[id] = mine;
                            _orphanSince.Remove(id);
                        }

                        Log.RouteTakenOver(_logger, id, value.Owner);
                        await _controller.AdoptStoredRouteAsync(plan, requester, value.Created);
                    }

                    continue;
                }

                bool expired;
                lock (_routesLock)
                {
                    var since = _orphanSince.TryGetValue(id, out var s) ? s : _orphanSince[id] = now;
                    expired = now - since > OrphanGrace;
                }

                if (expired)
                {
                    var ops = new List<StoreOp> { StoreOp.Delete(key) };
                    ops.AddRange(plan.Labels().Select(l => StoreOp.Delete(MeshStoreCodec.LabelKey(l.Node, l.InLink, l.Label))));
                    if (await _store.TransactAsync(new StoreTransaction([StoreCompare.WrittenAt(key, revision)], ops), cancellationToken))
                    {
                        Log.OrphanRemoved(_logger, id, value.Owner);
                    }
                }
            }
        }
        catch (Exception ex) when (ex is StoreUnavailableException or OperationCanceledException)
        {
            // Next tick.
        }
        finally
        {
            Volatile.Write(ref _takingOver, 0);
        }
    }
}
