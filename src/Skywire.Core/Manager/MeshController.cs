using System.Collections.Concurrent;
using System.Security.Cryptography;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Skywire.Core.Channels;
using Skywire.Core.Diagnostics;
using Skywire.Protocol;
using Skywire.Protocol.Control;

namespace Skywire.Core.Manager;

/// <summary>
/// The manager's logic without sockets. It orchestrates: what nodes say goes into the <see cref="NodeRegistry"/>,
/// <see cref="LinkTable"/> and <see cref="AppTracker"/>; routes are planned by <see cref="RoutePlanner"/> over the
/// <see cref="MeshGraph"/> of confirmed links, kept in the <see cref="RouteTable"/>, and installed through each
/// node's <see cref="INodeChannel"/>. Route changes (build, re-route, close) are serialized by one async gate, so two
/// re-routes of the same route never interleave; the state types lock for themselves.
/// </summary>
public sealed partial class MeshController : IAsyncDisposable
{
    private readonly SemaphoreSlim _routeGate = new(1, 1);
    private readonly ConcurrentDictionary<PubKey, NodeConnection> _connections = new();
    private readonly ConcurrentDictionary<PubKey, byte> _overLinkLimit = new();
    private readonly ManagerOptions _options;
    private readonly ILogger _logger;
    private readonly TimeProvider _time;

    // A node past its app limit can retry at will: its refusals are logged within a budget.
    private const int AppLimitLogsPerSecond = 10;
    private readonly LogBudget _appLimitLogs;
    private readonly CancellationTokenSource _cts = new();
    private readonly CancellationToken _stopping;
    private Task? _maintenance;
    private int _disposed;

    /// <param name="options">Settings (defaults when null).</param>
    /// <param name="logger">Logger (none when null).</param>
    /// <param name="labels">Where route labels come from (random, in memory, when null).</param>
    public MeshController(ManagerOptions? options = null, ILogger? logger = null, ILabelAllocator? labels = null)
    {
        _options = options ?? ManagerOptions.Default;
        if (_options.LinkReportMaxAge <= _options.ReportInterval)
        {
            throw new ArgumentException("LinkReportMaxAge must be longer than ReportInterval (nodes report once per interval)", nameof(options));
        }

        _logger = logger ?? NullLogger.Instance;
        _time = _options.TimeProvider;
        _appLimitLogs = new LogBudget(AppLimitLogsPerSecond, _time, "app registrations past the limit");
        Apps = new AppTracker(_options.Limits.MaxAppsPerNode);
        Routes = new RouteTable(_options.Limits);
        Labels = labels ?? new LabelAllocator();
        // Taken once: a request that races the disposal still reads a (cancelled) token, never a disposed source.
        _stopping = _cts.Token;
    }

    /// <summary>Raised after a route was re-routed (route id, new path); for tests and logs.</summary>
    public event Action<ulong, IReadOnlyList<PubKey>>? Rerouted;

    /// <summary>The registered nodes.</summary>
    public NodeRegistry Nodes { get; } = new();

    /// <summary>What the nodes reported about their links.</summary>
    public LinkTable Links { get; } = new();

    /// <summary>The app tracker.</summary>
    public AppTracker Apps { get; }

    /// <summary>The live routes.</summary>
    public RouteTable Routes { get; }

    /// <summary>The route labels in use.</summary>
    public ILabelAllocator Labels { get; }

    /// <summary>Starts rule refresh, route repair, app expiry and the forgetting of long-offline nodes.</summary>
    public void Start()
    {
        if (_maintenance is null)
        {
            Shared?.Start();
            _maintenance = Task.Run(MaintenanceLoopAsync);
        }
    }

    /// <summary>The routable mesh now: confirmed links between online nodes (<see cref="MeshGraph"/>).</summary>
    public MeshGraph Graph() => MeshGraph.Build(Nodes.OnlineKeys(), Links.Snapshot(), _time.GetUtcNow(), _options.LinkReportMaxAge);

    // ---------------------------------------------------------------- nodes and links

    /// <summary>A node proved its key and said hello. A previous connection of the same key is replaced.</summary>
    public void NodeConnected(PubKey key, string linkAddress, INodeChannel channel)
    {
        ArgumentNullException.ThrowIfNull(channel);
        var record = Nodes.Connect(key, linkAddress, _time.GetUtcNow());
        _connections[key] = new NodeConnection(channel, record.Generation);
        _remoteGenerations.TryRemove(key, out _);
        Shared?.NodeOnline(key, linkAddress);
        ForgetClaims(key);
        Log.NodeRegistered(_logger, key, linkAddress);
        // Its standing links are checked once its first report is in (it may have kept them through a blip).
        KickIntents(key, immediate: false);
        AutoLinkLocal(key);
        TendIntents();
    }

    /// <summary>
    /// The manager is going away: from now on it changes nothing in the mesh (a manager that stops must not close the
    /// routes of the nodes it leaves; they keep forwarding and the next manager adopts them).
    /// </summary>
    public void BeginShutdown()
    {
        if (Volatile.Read(ref _disposed) == 0)
        {
            _cts.Cancel();
        }
    }

    /// <summary>A node's control connection closed: its apps leave, its links are down, routes through it re-route.</summary>
    public void NodeDisconnected(PubKey key, INodeChannel channel)
    {
        if (_stopping.IsCancellationRequested)
        {
            return; // the manager is stopping: every connection closes, and that says nothing about the nodes
        }

        if (!_connections.TryGetValue(key, out var connection) || !ReferenceEquals(connection.Channel, channel))
        {
            return; // replaced by a newer connection
        }

        _connections.TryRemove(new KeyValuePair<PubKey, NodeConnection>(key, connection));
        if (!Nodes.Disconnect(key, connection.Generation, _time.GetUtcNow()))
        {
            return;
        }

        Apps.RemoveNode(key);
        ForgetClaims(key);
        Shared?.NodeOffline(key);
        Log.NodeGone(_logger, key);
        foreach (var gone in Nodes.TrimOffline(_options.Limits.MaxOfflineNodes))
        {
            Links.RemoveNode(gone);
            Intents.RemoveNode(gone);
            Log.NodeForgotten(_logger, gone);
        }

        _ = RepairRoutesAsync(_stopping);
    }

    /// <summary>
    /// A node reported the state of its links: it replaces what the node said before. Entries that name no registered
    /// node (or the node itself, or no key) are ignored. The report only counts toward routing together with the peer's
    /// own report (<see cref="MeshGraph"/>).
    /// </summary>
    /// <exception cref="ControlException">LimitExceeded: more links than <see cref="ManagerLimits.MaxLinksPerNode"/> (the report is refused whole).</exception>
    public void ReportLinks(PubKey node, LinkReportMessage report)
    {
        ArgumentNullException.ThrowIfNull(report);
        if (!Nodes.Contains(node))
        {
            return;
        }

        var now = _time.GetUtcNow();
        var links = new Dictionary<PubKey, LinkReport>();
        foreach (var link in report.Links)
        {
            if (link is not null && PubKey.TryParse(link.Peer, out var peer) && peer != node && Nodes.Contains(peer))
            {
                links[peer] = new LinkReport(node, peer, link.Up, link.RttMicros, link.Loss, now);
            }
        }

        // A link the node reports (up, or down and not closed on purpose) is a standing intent, also for a manager that
        // never asked for it (it restarted): the end that opened it opens it again; a link only its responder still
        // reports (the opener restarted meanwhile) is opened by the responder.
        var adopted = 0;
        foreach (var link in report.Links)
        {
            if (link is null || !PubKey.TryParse(link.Peer, out var peer) || !links.ContainsKey(peer))
            {
                continue;
            }

            var before = Intents.Get(node, peer);
            if (link.Initiator ? Intents.Set(node, peer, now) != before : Intents.TryAdd(node, peer, now))
            {
                adopted++;
            }
        }

        var limit = _options.Limits.MaxLinksPerNode;
        if (links.Count > limit)
        {
            if (_overLinkLimit.TryAdd(node, 0))
            {
                Log.LinkReportRefused(_logger, node, links.Count, limit);
            }

            throw new ControlException(ControlErrorCode.LimitExceeded, $"the report names {links.Count} links to registered nodes, more than the {limit} a node may report");
        }

        if (adopted > 0)
        {
            Log.IntentsAdopted(_logger, node, adopted);
        }

        _overLinkLimit.TryRemove(node, out _);
        Shared?.LinksReported(node, links.Values);
        if (Links.Replace(node, links.Values))
        {
            _ = RepairRoutesAsync(_stopping);
        }
    }

    /// <summary>Resolves a full key or a unique prefix of a registered node's key.</summary>
    /// <exception cref="ControlException">NotFound when nothing or more than one node matches.</exception>
    public PubKey ResolveNode(string keyOrPrefix) => Nodes.Resolve(keyOrPrefix);

    /// <summary>Asks node <paramref name="a"/> to open a link to node <paramref name="b"/>.</summary>
    public async Task LinkNodesAsync(PubKey a, PubKey b, CancellationToken cancellationToken)
    {
        if (a == b)
        {
            throw new ControlException(ControlErrorCode.BadRequest, "a node cannot link to itself");
        }

        var from = Nodes.Get(a) ?? throw new ControlException(ControlErrorCode.NotFound, $"no node {a.ToShortString(12)}");
        var to = Nodes.Get(b) ?? throw new ControlException(ControlErrorCode.NotFound, $"no node {b.ToShortString(12)}");
        // The intent stands whatever this first attempt gives: the manager opens the link whenever both ends are online.
        var intent = Intents.Set(a, b, _time.GetUtcNow());
        RetryOf(intent).Attempted(_time.GetUtcNow());
        if (!from.Online || !to.Online)
        {
            throw new ControlException(ControlErrorCode.Unavailable, $"node {(from.Online ? b : a)} is offline (the link is opened when it is back)");
        }

        await Channel(a).OpenLinkAsync(new OpenLinkMessage { Peer = b.ToString(), Address = to.LinkAddress }, cancellationToken);
        Log.LinkRequested(_logger, a, b);
    }

    // ---------------------------------------------------------------- app tracker

    /// <summary>Registers (or refreshes) an app of <paramref name="node"/> (the caller's own key).</summary>
    /// <exception cref="ControlException">BadRequest (name or type), LimitExceeded (<see cref="ManagerLimits.MaxAppsPerNode"/>).</exception>
    public void RegisterApp(PubKey node, AppRegisterMessage app)
    {
        ArgumentNullException.ThrowIfNull(app);
        try
        {
            Apps.Register(node, app.Name, app.Type, _time.GetUtcNow());
        }
        catch (ControlException ex) when (ex.Code == ControlErrorCode.LimitExceeded)
        {
            if (_appLimitLogs.TryTake(_logger))
            {
                Log.AppLimit(_logger, node, _options.Limits.MaxAppsPerNode);
            }

            throw;
        }

        Log.AppRegistered(_logger, app.Name, app.Type, node);
        PublishApps(node);
    }

    /// <summary>Removes an app of <paramref name="node"/>; another node's app of the same name is not touched.</summary>
    public void UnregisterApp(PubKey node, string name)
    {
        Apps.Unregister(node, name);
        PublishApps(node);
    }

    /// <summary>Marks apps of <paramref name="node"/> alive.</summary>
    public void HeartbeatApps(PubKey node, IEnumerable<string> names) => Apps.Heartbeat(node, names, _time.GetUtcNow());

    /// <summary>Removes apps whose heartbeat is older than the TTL.</summary>
    public int ExpireApps()
    {
        var dead = Apps.Expire(_time.GetUtcNow() - _options.AppTtl);
        foreach (var app in dead)
        {
            Log.AppExpired(_logger, app.Name, app.Node);
        }

        foreach (var node in dead.Select(a => a.Node).Distinct())
        {
            PublishApps(node);
        }

        return dead.Count;
    }

    /// <summary>Forgets nodes offline for longer than <see cref="ManagerOptions.OfflineNodeRetention"/>, and their link reports.</summary>
    public int ForgetOfflineNodes()
    {
        var gone = Nodes.ForgetOffline(_time.GetUtcNow() - _options.OfflineNodeRetention);
        foreach (var key in gone)
        {
            Links.RemoveNode(key);
            Intents.RemoveNode(key);
            Log.NodeForgotten(_logger, key);
        }

        return gone.Count;
    }

    // ---------------------------------------------------------------- listings (the cli's view, as control messages)

    /// <summary>Every registered node, by key (<see cref="ManagerListing.Nodes"/>).</summary>
    public NodeListMessage ListNodes() => ManagerListing.Nodes(Nodes, Apps);

    /// <summary>Every link report, with whether the manager routes over the link (<see cref="ManagerListing.Links"/>).</summary>
    public LinkListMessage ListLinks() => ManagerListing.Links(Links, Nodes, _time.GetUtcNow(), _options.LinkReportMaxAge);

    /// <summary>Every live route, oldest first (<see cref="ManagerListing.Routes"/>).</summary>
    public RouteListMessage ListRoutes()
    {
        var local = ManagerListing.Routes(Routes);
        if (Shared is not { } shared)
        {
            return local;
        }

        // With a store: also the routes other managers own, so that the cli sees the same list from any manager.
        var known = local.Routes.Select(r => r.SessionId).ToHashSet();
        var all = local.Routes.Concat(shared.StoredRoutes.Where(r => !known.Contains(r.Key)).Select(r => new RouteInfo
        {
            SessionId = r.Key, From = r.Value.Path[0], To = r.Value.Path[^1], Path = [.. r.Value.Path], CreatedAt = r.Value.Created,
        })).OrderBy(r => r.CreatedAt).ThenBy(r => r.SessionId).ToList();
        return new RouteListMessage { Routes = all, Total = all.Count };
    }

    /// <summary>Apps matching a query, whole (<see cref="ManagerListing.Apps"/>; paging fields are not used here).</summary>
    /// <exception cref="ControlException">BadRequest for an unknown query kind.</exception>
    public AppListResultMessage ListApps(AppListMessage query) => ManagerListing.Apps(Apps, query);

    // ---------------------------------------------------------------- routes

    /// <summary>An operator's route (cli BuildRoute) between two nodes: installed, answered with its path. No per-node limits.</summary>
    /// <exception cref="ControlException">BadRequest, NotFound, NoRoute, Unavailable.</exception>
    public Task<RouteResultMessage> BuildRouteAsync(PubKey from, PubKey to, CancellationToken cancellationToken) =>
        BuildAsync(from, to, requester: null, cancellationToken);

    /// <summary>A node's route (RouteRequest) from itself to <paramref name="to"/>, within its limits.</summary>
    /// <exception cref="ControlException">BadRequest, NotFound, NoRoute, Unavailable, LimitExceeded.</exception>
    public Task<RouteResultMessage> RequestRouteAsync(PubKey node, PubKey to, CancellationToken cancellationToken) =>
        BuildAsync(node, to, requester: node, cancellationToken);

    private async Task<RouteResultMessage> BuildAsync(PubKey from, PubKey to, PubKey? requester, CancellationToken cancellationToken)
    {
        if (from == to)
        {
            throw new ControlException(ControlErrorCode.BadRequest, "a route needs two different nodes");
        }

        foreach (var end in (ReadOnlySpan<PubKey>)[from, to])
        {
            if (!Nodes.Contains(end))
            {
                throw new ControlException(ControlErrorCode.NotFound, $"no node matches '{end}'");
            }
        }

        // Taken before the gate: requests waiting for it count against the node's limits.
        RouteTable.Reservation? reservation = null;
        if (requester is { } node)
        {
            try
            {
                reservation = Routes.Reserve(node, node == from ? to : from);
            }
            catch (ControlException ex)
            {
                Log.RouteLimit(_logger, node, ex.Message);
                throw;
            }
        }

        using (reservation)
        {
            await _routeGate.WaitAsync(cancellationToken);
            try
            {
                var created = _time.GetUtcNow();
                var plan = await PlanAndCommitAsync(Graph(), new RouteRequest(NewSessionId(), from, to), requester, created, null, cancellationToken)
                    ?? throw new ControlException(ControlErrorCode.NoRoute, $"no path from {from.ToShortString(12)} to {to.ToShortString(12)}");
                Skywire.Protocol.Metering.RouteTerms? terms;
                try
                {
                    terms = await AgreeTermsAsync(plan, cancellationToken); // null unless this manager meters
                }
                catch
                {
                    ReleaseLabels(plan);
                    Shared?.RouteDropped(plan);
                    throw;
                }

                var route = new RouteEntry(plan, requester, created);
                if (reservation is not null)
                {
                    reservation.Commit(route);
                }
                else
                {
                    Routes.Add(route);
                }

                try
                {
                    await InstallAsync(plan, cancellationToken, terms is null ? null : ct => MeterRouteAsync(plan, terms, ct));
                }
                catch
                {
                    await DropRouteAsync(route, notifyEnds: true);
                    throw;
                }

                Log.RouteBuilt(_logger, plan.SessionId, new PathText(plan.Path));
                return new RouteResultMessage { SessionId = plan.SessionId, Path = [.. plan.Path.Select(p => p.ToString())] };
            }
            finally
            {
                _routeGate.Release();
            }
        }
    }

    /// <summary>An end node no longer needs a route; a node that is not one of its ends changes nothing.</summary>
    public async Task CloseRouteAsync(PubKey node, ulong sessionId)
    {
        var route = Routes.Get(sessionId);
        if (route is null || (route.From != node && route.To != node))
        {
            return;
        }

        await _routeGate.WaitAsync(_stopping);
        try
        {
            await DropRouteAsync(route, notifyEnds: true);
        }
        finally
        {
            _routeGate.Release();
        }
    }

    /// <summary>Re-routes every live route whose path uses a link or node no longer routable; closes routes whose end is gone.</summary>
    public async Task RepairRoutesAsync(CancellationToken cancellationToken)
    {
        try
        {
            await _routeGate.WaitAsync(cancellationToken);
        }
        catch (OperationCanceledException)
        {
            return;
        }

        try
        {
            var graph = Graph();
            await AdoptClaimedSessionsAsync(graph, cancellationToken);
            var broken = Routes.Snapshot().Where(r => r.NeedsRepair || !RoutePlanner.IsUsable(graph, r.Plan.Path)).ToList();

            // Every new path of this pass is searched at once, on every core (a dead link can break thousands of
            // routes: docs/routing.md "The manager's side"); the loop below then draws labels and installs one
            // route at a time, as before. Same graph, same paths as one search per route would find.
            var repairable = broken.Where(r => Nodes.IsOnline(r.From) && Nodes.IsOnline(r.To)).ToList();
            var paths = new Dictionary<ulong, IReadOnlyList<PubKey>?>();
            if (repairable.Count > 1)
            {
                var found = RoutePlanner.FindPaths(graph, [.. repairable.Select(r => (r.From, r.To))]);
                for (var i = 0; i < repairable.Count; i++)
                {
                    paths[repairable[i].SessionId] = found[i];
                }
            }

            foreach (var route in broken)
            {
                if (!Nodes.IsOnline(route.From) || !Nodes.IsOnline(route.To))
                {
                    if (EndMayReturn(route))
                    {
                        continue;
                    }

                    Log.RouteClosed(_logger, route.SessionId, "an end node is gone");
                    await DropRouteAsync(route, notifyEnds: true);
                    continue;
                }

                RoutePlan? plan;
                try
                {
                    var request = new RouteRequest(route.SessionId, route.From, route.To);
                    plan = paths.TryGetValue(route.SessionId, out var path) && path is null
                        ? null
                        : await PlanAndCommitAsync(graph, request, route.Requester, route.CreatedAt, route.Plan, cancellationToken, path);
                }
                catch (ControlException ex)
                {
                    route.NeedsRepair = true;
                    Log.RerouteFailed(_logger, route.SessionId, ex.Message);
                    continue;
                }

                if (plan is null)
                {
                    // Keep the route: a link may come back. The ends' sessions time out if it does not.
                    if (!route.NoAlternateLogged)
                    {
                        route.NoAlternateLogged = true;
                        Log.NoAlternate(_logger, route.SessionId);
                    }

                    continue;
                }

                var old = route.Plan;
                ReleaseLabels(old);
                route.Reroute(plan);
                route.NoAlternateLogged = false;
                try
                {
                    // A metered route gets terms, caps and receipts on its new path like on its first one.
                    var terms = await RenewTermsAsync(plan, cancellationToken);
                    await InstallAsync(plan, cancellationToken, terms is null ? null : ct => MeterRouteAsync(plan, terms, ct));
                    route.NeedsRepair = false;
                }
                catch (ControlException ex)
                {
                    // Retried at the next maintenance tick (every second), over whatever path is best then.
                    route.NeedsRepair = true;
                    Log.RerouteFailed(_logger, route.SessionId, ex.Message);
                    continue;
                }

                _ = RemoveRulesAsync(old.RelayRules());
                Log.Rerouted(_logger, route.SessionId, new PathText(plan.Path));
                Rerouted?.Invoke(route.SessionId, plan.Path);
            }
        }
        catch (OperationCanceledException)
        {
        }
        finally
        {
            _routeGate.Release();
        }
    }

    /// <summary>
    /// Whether a route whose end lost its control connection is kept a while: the end may only have lost the manager
    /// (its data plane still forwards; it registers again and reports the session). Kept while the end has been offline
    /// for less than <see cref="ManagerOptions.EndOfflineGrace"/> and a neighbour still reports an up link to it; a node
    /// whose process died loses its links within the data plane's dead-peer time, and then its routes close.
    /// </summary>
    private bool EndMayReturn(RouteEntry route)
    {
        var now = _time.GetUtcNow();
        foreach (var end in (ReadOnlySpan<PubKey>)[route.From, route.To])
        {
            var record = Nodes.Get(end);
            if (record is null)
            {
                return false;
            }

            if (record.OfflineSince is not { } since)
            {
                continue;
            }

            if (now - since >= _options.EndOfflineGrace
                || !Links.Snapshot().Any(r => r.To == end && r.Up && now - r.ReportedAt <= _options.LinkReportMaxAge && Nodes.IsOnline(r.From)))
            {
                return false;
            }
        }

        return true;
    }

    /// <summary>Re-installs the rules of every live route (rules expire otherwise).</summary>
    public async Task RefreshRoutesAsync()
    {
        foreach (var route in Routes.Snapshot())
        {
            try
            {
                await InstallAsync(route.Plan, _stopping);
            }
            catch (Exception ex) when (ex is ControlException or OperationCanceledException)
            {
                Log.RefreshFailed(_logger, route.SessionId, ex.Message);
            }
        }
    }

    /// <summary>Relays first (in parallel), then the destination end, then (after <paramref name="beforeSource"/>: metering) the source end.</summary>
    private async Task InstallAsync(RoutePlan plan, CancellationToken cancellationToken, Func<CancellationToken, Task>? beforeSource = null)
    {
        var lifetime = _options.RuleLifetime;
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, _stopping);
        timeout.CancelAfter(_options.CommandTimeout);
        try
        {
            await Task.WhenAll(plan.RelayRules().Select(r => Channel(r.Node).InstallRulesAsync(new InstallRulesMessage { Rules = r.ToMessages(lifetime) }, timeout.Token)));
            await Channel(plan.To).SessionRouteAsync(plan.Destination().ToMessage(lifetime), timeout.Token);
            if (beforeSource is not null)
            {
                await beforeSource(timeout.Token);
            }

            await Channel(plan.From).SessionRouteAsync(plan.Source().ToMessage(lifetime), timeout.Token);
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            throw new ControlException(ControlErrorCode.Unavailable, "a node on the path did not answer in time");
        }
    }

    private INodeChannel Channel(PubKey key) =>
        _connections.TryGetValue(key, out var connection) && Nodes.IsOnline(key)
            ? connection.Channel
            : Shared is { } shared && Nodes.IsOnline(key) && _remoteGenerations.ContainsKey(key)
                ? shared.RemoteChannel(key)
                : throw new ControlException(ControlErrorCode.Unavailable, $"node {key.ToShortString(12)} is offline");

    private void ReleaseLabels(RoutePlan plan)
    {
        foreach (var (node, inLink, label) in plan.Labels())
        {
            Labels.Release(node, inLink, label);
        }
    }

    private async Task RemoveRulesAsync(IReadOnlyList<RelayRules> rules)
    {
        foreach (var relay in rules)
        {
            try
            {
                using var timeout = new CancellationTokenSource(_options.CommandTimeout, _time);
                await Channel(relay.Node).RemoveRulesAsync(new RemoveRulesMessage { Rules = relay.ToMessages(_options.RuleLifetime) }, timeout.Token);
            }
            catch (Exception ex) when (ex is ControlException or OperationCanceledException)
            {
                // Best effort: the rules expire anyway.
            }
        }
    }

    private async Task DropRouteAsync(RouteEntry route, bool notifyEnds)
    {
        if (!Routes.Remove(route))
        {
            return;
        }

        var plan = route.Plan;
        ReleaseLabels(plan);
        EndTerms(route.SessionId);
        Shared?.RouteDropped(plan);
        _ = RemoveRulesAsync(plan.RelayRules());
        if (notifyEnds)
        {
            foreach (var end in (PubKey[])[route.From, route.To])
            {
                try
                {
                    using var timeout = new CancellationTokenSource(_options.CommandTimeout, _time);
                    await Channel(end).RouteClosedAsync(new RouteCloseMessage { SessionId = route.SessionId }, timeout.Token);
                }
                catch (Exception ex) when (ex is ControlException or OperationCanceledException)
                {
                }
            }
        }
    }

    private async Task MaintenanceLoopAsync()
    {
        var nextRefresh = _time.GetUtcNow() + _options.RefreshInterval;
        var tick = TimeSpan.FromMilliseconds(Math.Min(1000, _options.RefreshInterval.TotalMilliseconds));
        while (!_cts.IsCancellationRequested)
        {
            try
            {
                await Task.Delay(tick, _time, _stopping);
            }
            catch (OperationCanceledException)
            {
                return;
            }

            ExpireApps();
            ForgetOfflineNodes();
            Shared?.RefeedRemoteLinks();
            if (_time.GetUtcNow() >= nextRefresh)
            {
                nextRefresh = _time.GetUtcNow() + _options.RefreshInterval;
                await RefreshRoutesAsync();
            }

            // Catches links that died without a report edge (a report lost with its node, or reports gone stale).
            await RepairRoutesAsync(_stopping);
            TendIntents();
            if (Shared is { } shared)
            {
                await shared.TakeOverOrphansAsync(_stopping);
            }
        }
    }

    private static ulong NewSessionId()
    {
        Span<byte> b = stackalloc byte[8];
        RandomNumberGenerator.Fill(b);
        return BitConverter.ToUInt64(b) & 0x7FFF_FFFF_FFFF_FFFF | 1;
    }

    /// <inheritdoc />
    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            return;
        }

        await _cts.CancelAsync();
        if (_maintenance is not null)
        {
            await _maintenance;
        }

        if (Shared is not null)
        {
            await Shared.DisposeAsync();
        }

        _cts.Dispose();
    }

    /// <summary>The control connection of an online node, local to this manager process, and the registration it belongs to.</summary>
    private sealed record NodeConnection(INodeChannel Channel, long Generation);

    /// <summary>Formats a path lazily for logs.</summary>
    internal readonly struct PathText(IReadOnlyList<PubKey> path)
    {
        public override string ToString() => string.Join(" > ", path.Select(p => p.ToShortString(12)));
    }
}
