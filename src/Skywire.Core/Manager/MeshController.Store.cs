using System.Collections.Concurrent;
using Skywire.Core.Channels;
using Skywire.Core.Manager.Store;
using Skywire.Protocol;
using Skywire.Protocol.Control;

namespace Skywire.Core.Manager;

/// <summary>
/// The controller with a shared store (<see cref="MeshStoreSync"/>; docs/architecture.md "Manager state"): nodes
/// connected to other managers are in the registry as online without a local channel (commands reach them through the
/// store), their link reports and apps are in the link table and the tracker (so the graph, the tracker and the cli's
/// listings are the same from every manager), and every route this manager makes is committed with its labels before
/// it is installed. Without a store none of this runs: the manager is the single one of its mesh.
/// </summary>
public sealed partial class MeshController
{
    private readonly ConcurrentDictionary<PubKey, long> _remoteGenerations = new();
    private int _repairQueued;

    /// <summary>The store sync, when this manager shares its state (<see cref="UseStore"/>); null otherwise.</summary>
    public MeshStoreSync? Shared { get; private set; }

    /// <summary>Shares this manager's state through <paramref name="store"/> (call before <see cref="Start"/>).</summary>
    /// <param name="store">The store (owned by the caller).</param>
    /// <param name="listen">This manager's listener, published for operators.</param>
    public MeshStoreSync UseStore(IMeshStore store, string listen)
    {
        if (_maintenance is not null || Shared is not null)
        {
            throw new InvalidOperationException("the store is set once, before Start");
        }

        return Shared = new MeshStoreSync(this, store, _options, listen, _logger);
    }

    /// <summary>The control channel of a node connected to this manager, or null.</summary>
    internal INodeChannel? LocalChannel(PubKey key) =>
        _connections.TryGetValue(key, out var connection) && Nodes.IsOnline(key) ? connection.Channel : null;

    /// <summary>A node registered with another manager.</summary>
    internal void RemoteNodeOnline(PubKey key, string linkAddress)
    {
        if (_stopping.IsCancellationRequested || _connections.ContainsKey(key))
        {
            return; // connected here: this manager knows it first-hand
        }

        var record = Nodes.Connect(key, linkAddress, _time.GetUtcNow());
        _remoteGenerations[key] = record.Generation;
        ForgetClaims(key);
        AutoLinkRemote(key);
        RepairSoon();
    }

    /// <summary>
    /// One repair pass soon, however many changes ask for it meanwhile (a store snapshot brings thousands of nodes at
    /// once; the maintenance tick repairs every second anyway).
    /// </summary>
    private void RepairSoon()
    {
        if (Interlocked.Exchange(ref _repairQueued, 1) == 0)
        {
            _ = Task.Run(async () =>
            {
                await Task.Yield();
                Volatile.Write(ref _repairQueued, 0);
                await RepairRoutesAsync(_stopping);
            });
        }
    }

    /// <summary>A node connected to another manager left it (or that manager died).</summary>
    internal void RemoteNodeOffline(PubKey key)
    {
        if (_stopping.IsCancellationRequested || _connections.ContainsKey(key) || !_remoteGenerations.TryRemove(key, out var generation))
        {
            return;
        }

        if (Nodes.Disconnect(key, generation, _time.GetUtcNow()))
        {
            Apps.RemoveNode(key);
            RepairSoon();
        }
    }

    /// <summary>The link report of a node connected to another manager (empty: it has none any more).</summary>
    internal void RemoteLinks(PubKey node, IReadOnlyList<LinkReport> reports)
    {
        if (_connections.ContainsKey(node) || !Nodes.Contains(node))
        {
            return;
        }

        var known = reports.Where(r => r.From == node && r.To != node && Nodes.Contains(r.To)).GroupBy(r => r.To).Select(g => g.Last()).ToList();
        if (Links.Replace(node, known))
        {
            RepairSoon();
        }
    }

    /// <summary>An app of a node connected to another manager was registered (<paramref name="type"/>) or removed (null).</summary>
    internal void RemoteApp(PubKey node, string name, string? type)
    {
        if (_connections.ContainsKey(node))
        {
            return;
        }

        if (type is null)
        {
            Apps.Unregister(node, name);
            return;
        }

        // Its own manager expires it (and deletes the key); here it lives as long as the key.
        Apps.Register(node, name, type, DateTimeOffset.MaxValue);
    }

    /// <summary>Publishes the apps a local node has now.</summary>
    private void PublishApps(PubKey node)
    {
        if (Shared is { } shared && _connections.ContainsKey(node))
        {
            shared.AppsChanged(node, [.. Apps.Query("all", null).Where(a => a.Node == node)]);
        }
    }

    /// <summary>Another manager took a route this one owned: forget it here without touching the nodes.</summary>
    internal void RouteMovedAway(ulong sessionId)
    {
        if (Routes.Get(sessionId) is { } route && Routes.Remove(route))
        {
            ReleaseLabels(route.Plan);
        }
    }

    /// <summary>A route taken over from a manager that died: kept with its labels and installed (its rules are refreshed).</summary>
    internal async Task AdoptStoredRouteAsync(RoutePlan plan, PubKey? requester, DateTimeOffset createdAt)
    {
        await _routeGate.WaitAsync(_stopping);
        try
        {
            if (Routes.Get(plan.SessionId) is not null)
            {
                return;
            }

            var route = new RouteEntry(plan, requester, createdAt);
            if (requester is null)
            {
                Routes.Add(route);
            }
            else if (!Routes.Adopt(route))
            {
                Log.AdoptRefused(_logger, plan.SessionId, requester.Value);
                return;
            }

            if (Labels is LabelAllocator local)
            {
                foreach (var (node, inLink, label) in plan.Labels())
                {
                    local.Reserve(node, inLink, label);
                }
            }

            try
            {
                var terms = await AdoptTermsAsync(plan, _stopping);
                await InstallAsync(plan, _stopping, terms is null ? null : ct => MeterRouteAsync(plan, terms, ct));
            }
            catch (ControlException ex)
            {
                route.NeedsRepair = true;
                Log.RefreshFailed(_logger, plan.SessionId, ex.Message);
            }
        }
        finally
        {
            _routeGate.Release();
        }
    }

    /// <summary>
    /// Plans a route and, with a store, commits it with its labels; a label another manager claimed meanwhile makes it
    /// draw others (a few times). Null when there is no path.
    /// </summary>
    /// <exception cref="ControlException">Unavailable: the store cannot be reached (no new route without it).</exception>
    private async Task<RoutePlan?> PlanAndCommitAsync(MeshGraph graph, RouteRequest request, PubKey? requester, DateTimeOffset createdAt, RoutePlan? previous, CancellationToken cancellationToken, IReadOnlyList<PubKey>? path = null)
    {
        for (var attempt = 0; ; attempt++)
        {
            var plan = RoutePlanner.Plan(graph, request, Labels, path);
            if (plan is null || Shared is not { } shared)
            {
                return plan;
            }

            bool committed;
            try
            {
                committed = await shared.CommitRouteAsync(plan, requester, createdAt, previous, cancellationToken);
            }
            catch (StoreUnavailableException ex)
            {
                ReleaseLabels(plan);
                throw new ControlException(ControlErrorCode.Unavailable, $"the mesh store cannot be reached, so no route can be made or moved now (installed routes keep working): {ex.Message}");
            }

            if (committed)
            {
                return plan;
            }

            ReleaseLabels(plan);
            if (attempt >= 8)
            {
                throw new ControlException(ControlErrorCode.Unavailable, "route labels kept colliding with other managers' (retry)");
            }
        }
    }
}
