using System.Security.Cryptography;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Skywire.Core.Channels;
using Skywire.Core.Routing;
using Skywire.Protocol.Control;

namespace Skywire.Core.Manager;

/// <summary>
/// The manager's logic without sockets: node registry, reported links, app tracker, routes and their rules.
/// Nodes are reached through <see cref="INodeChannel"/>. Keys are 66 lowercase hex characters.
/// Registry reads and writes happen under one lock; route changes (build, re-route, close) are serialized by
/// an async gate so two re-routes of the same route never interleave.
/// </summary>
public sealed partial class MeshController : IAsyncDisposable
{
    private readonly object _sync = new();
    private readonly SemaphoreSlim _routeGate = new(1, 1);
    private readonly Dictionary<string, NodeEntry> _nodes = new(StringComparer.Ordinal);
    private readonly Dictionary<(string From, string To), LinkEntry> _links = [];
    private readonly Dictionary<(string Node, string Name), AppEntry> _apps = [];
    private readonly Dictionary<ulong, RouteEntry> _routes = [];
    private readonly HashSet<(string Node, string InLink, uint Label)> _labels = [];
    private readonly ManagerOptions _options;
    private readonly ILogger _logger;
    private readonly TimeProvider _time;
    private readonly CancellationTokenSource _cts = new();
    private Task? _maintenance;
    private int _disposed;

    public MeshController(ManagerOptions? options = null, ILogger? logger = null)
    {
        _options = options ?? ManagerOptions.Default;
        _logger = logger ?? NullLogger.Instance;
        _time = _options.TimeProvider;
    }

    /// <summary>Raised after a route was re-routed (route id, new path); for tests and logs.</summary>
    public event Action<ulong, IReadOnlyList<string>>? Rerouted;

    /// <summary>Starts rule refresh and app expiry.</summary>
    public void Start() => _maintenance ??= Task.Run(MaintenanceLoopAsync);

    // ---------------------------------------------------------------- registry

    /// <summary>A node proved its key and said hello. A previous connection of the same key is replaced.</summary>
    public void NodeConnected(string key, string linkAddress, INodeChannel channel)
    {
        List<NodeEntry> others;
        lock (_sync)
        {
            _nodes[key] = new NodeEntry(key, linkAddress, channel, _time.GetUtcNow());
            others = [.. _nodes.Values.Where(n => n.Key != key && n.Online)];
        }

        Log.NodeRegistered(_logger, key, linkAddress);
        if (_options.AutoLink)
        {
            foreach (var other in others)
            {
                _ = TryLinkAsync(key, other.Key);
            }
        }
    }

    /// <summary>A node's control connection closed: its apps leave, its links are down, routes through it re-route.</summary>
    public void NodeDisconnected(string key, INodeChannel channel)
    {
        lock (_sync)
        {
            if (!_nodes.TryGetValue(key, out var node) || !ReferenceEquals(node.Channel, channel))
            {
                return; // replaced by a newer connection
            }

            node.Online = false;
            foreach (var appKey in _apps.Keys.Where(k => k.Node == key).ToList())
            {
                _apps.Remove(appKey);
            }
        }

        Log.NodeGone(_logger, key);
        _ = RepairRoutesAsync(_cts.Token);
    }

    /// <summary>A node reported the state of its links.</summary>
    public void ReportLinks(string key, LinkReportMessage report)
    {
        var wentDown = false;
        lock (_sync)
        {
            var now = _time.GetUtcNow();
            var reported = new HashSet<string>(StringComparer.Ordinal);
            foreach (var link in report.Links)
            {
                reported.Add(link.Peer);
                var id = (key, link.Peer);
                if (_links.TryGetValue(id, out var old) && old.State.Up && !link.Up)
                {
                    wentDown = true;
                }

                _links[id] = new LinkEntry(link, now);
            }

            // Links the node no longer lists are gone.
            foreach (var id in _links.Keys.Where(k => k.From == key && !reported.Contains(k.To)).ToList())
            {
                wentDown |= _links[id].State.Up;
                _links.Remove(id);
            }
        }

        if (wentDown)
        {
            _ = RepairRoutesAsync(_cts.Token);
        }
    }

    /// <summary>Resolves a full key or a unique prefix of a registered node's key.</summary>
    /// <exception cref="ControlException">NotFound when nothing or more than one node matches.</exception>
    public string ResolveNode(string keyOrPrefix)
    {
        var prefix = keyOrPrefix.Trim().ToLowerInvariant();
        if (prefix.Length == 0)
        {
            throw new ControlException(ControlErrorCode.BadRequest, "empty node key");
        }

        lock (_sync)
        {
            if (_nodes.ContainsKey(prefix))
            {
                return prefix;
            }

            var matches = _nodes.Keys.Where(k => k.StartsWith(prefix, StringComparison.Ordinal)).Take(2).ToList();
            return matches.Count switch
            {
                1 => matches[0],
                0 => throw new ControlException(ControlErrorCode.NotFound, $"no node matches '{keyOrPrefix}'"),
                _ => throw new ControlException(ControlErrorCode.NotFound, $"'{keyOrPrefix}' matches more than one node"),
            };
        }
    }

    /// <summary>Registered nodes.</summary>
    public NodeListMessage ListNodes()
    {
        lock (_sync)
        {
            return new NodeListMessage
            {
                Nodes = [.. _nodes.Values.OrderBy(n => n.Key, StringComparer.Ordinal).Select(n => new NodeInfo
                {
                    Key = n.Key,
                    LinkAddress = n.LinkAddress,
                    Online = n.Online,
                    ConnectedAt = n.ConnectedAt,
                    Apps = [.. _apps.Keys.Where(a => a.Node == n.Key).Select(a => a.Name).Order(StringComparer.Ordinal)],
                })],
            };
        }
    }

    /// <summary>Links as reported by their ends.</summary>
    public LinkListMessage ListLinks()
    {
        lock (_sync)
        {
            return new LinkListMessage
            {
                Links = [.. _links.OrderBy(l => l.Key.From, StringComparer.Ordinal).ThenBy(l => l.Key.To, StringComparer.Ordinal).Select(l => new LinkInfo
                {
                    From = l.Key.From,
                    To = l.Key.To,
                    Up = l.Value.State.Up && IsOnline(l.Key.From),
                    RttMicros = l.Value.State.RttMicros,
                    Loss = l.Value.State.Loss,
                })],
            };
        }
    }

    /// <summary>Live routes.</summary>
    public RouteListMessage ListRoutes()
    {
        lock (_sync)
        {
            return new RouteListMessage
            {
                Routes = [.. _routes.Values.OrderBy(r => r.CreatedAt).Select(r => new RouteInfo
                {
                    SessionId = r.SessionId,
                    From = r.From,
                    To = r.To,
                    Path = [.. r.Path],
                    Reroutes = r.Reroutes,
                    CreatedAt = r.CreatedAt,
                })],
            };
        }
    }

    // ---------------------------------------------------------------- app tracker

    /// <summary>Registers (or refreshes) an app of a node. Names are unique per node.</summary>
    public void RegisterApp(string node, AppRegisterMessage app)
    {
        ValidateName(app.Name, "app name");
        ValidateName(app.Type, "app type");
        lock (_sync)
        {
            _apps[(node, app.Name)] = new AppEntry(app.Type, _time.GetUtcNow());
        }

        Log.AppRegistered(_logger, app.Name, app.Type, node);
    }

    /// <summary>Removes an app.</summary>
    public void UnregisterApp(string node, string name)
    {
        lock (_sync)
        {
            _apps.Remove((node, name));
        }
    }

    /// <summary>Marks apps of a node alive.</summary>
    public void HeartbeatApps(string node, IEnumerable<string> names)
    {
        lock (_sync)
        {
            var now = _time.GetUtcNow();
            foreach (var name in names)
            {
                if (_apps.TryGetValue((node, name), out var app))
                {
                    app.LastSeen = now;
                }
            }
        }
    }

    /// <summary>Lists apps: all, by name, or by type.</summary>
    public AppListResultMessage ListApps(AppListMessage query)
    {
        lock (_sync)
        {
            IEnumerable<KeyValuePair<(string Node, string Name), AppEntry>> apps = _apps;
            apps = query.By switch
            {
                "all" or "" => apps,
                "name" => apps.Where(a => a.Key.Name == query.Value),
                "type" => apps.Where(a => a.Value.Type == query.Value),
                _ => throw new ControlException(ControlErrorCode.BadRequest, $"unknown app query '{query.By}' (all, name, type)"),
            };
            return new AppListResultMessage
            {
                Apps = [.. apps.OrderBy(a => a.Key.Name, StringComparer.Ordinal).ThenBy(a => a.Key.Node, StringComparer.Ordinal)
                    .Select(a => new AppInfo { Name = a.Key.Name, Type = a.Value.Type, Node = a.Key.Node })],
            };
        }
    }

    /// <summary>Removes apps whose heartbeat is older than the TTL.</summary>
    public int ExpireApps()
    {
        var cutoff = _time.GetUtcNow() - _options.AppTtl;
        lock (_sync)
        {
            var dead = _apps.Where(a => a.Value.LastSeen < cutoff).Select(a => a.Key).ToList();
            foreach (var key in dead)
            {
                _apps.Remove(key);
                Log.AppExpired(_logger, key.Name, key.Node);
            }

            return dead.Count;
        }
    }

    private static void ValidateName(string value, string what)
    {
        if (string.IsNullOrEmpty(value) || value.Length > 64 || value.Any(c => char.IsControl(c) || c == '/' || char.IsWhiteSpace(c)))
        {
            throw new ControlException(ControlErrorCode.BadRequest, $"invalid {what} '{value}' (1-64 characters, no spaces, '/' or control characters)");
        }
    }

    // ---------------------------------------------------------------- links

    /// <summary>Asks node <paramref name="a"/> to open a link to node <paramref name="b"/>.</summary>
    public async Task LinkNodesAsync(string a, string b, CancellationToken cancellationToken)
    {
        a = ResolveNode(a);
        b = ResolveNode(b);
        if (a == b)
        {
            throw new ControlException(ControlErrorCode.BadRequest, "a node cannot link to itself");
        }

        NodeEntry from, to;
        lock (_sync)
        {
            from = _nodes[a];
            to = _nodes[b];
        }

        if (!from.Online || !to.Online)
        {
            throw new ControlException(ControlErrorCode.Unavailable, $"node {(from.Online ? b : a)} is offline");
        }

        await from.Channel.OpenLinkAsync(new OpenLinkMessage { Peer = b, Address = to.LinkAddress }, cancellationToken);
        Log.LinkRequested(_logger, a, b);
    }

    private async Task TryLinkAsync(string a, string b)
    {
        try
        {
            await LinkNodesAsync(a, b, _cts.Token);
        }
        catch (Exception ex) when (ex is ControlException or OperationCanceledException)
        {
            Log.AutoLinkFailed(_logger, a, b, ex.Message);
        }
    }

    // ---------------------------------------------------------------- routes

    /// <summary>Builds a route between two nodes, installs its rules and tells both ends their labels.</summary>
    public async Task<RouteResultMessage> BuildRouteAsync(string from, string to, CancellationToken cancellationToken)
    {
        from = ResolveNode(from);
        to = ResolveNode(to);
        if (from == to)
        {
            throw new ControlException(ControlErrorCode.BadRequest, "a route needs two different nodes");
        }

        await _routeGate.WaitAsync(cancellationToken);
        try
        {
            var path = FindPath(from, to) ?? throw new ControlException(ControlErrorCode.NoRoute, $"no path from {Short(from)} to {Short(to)}");
            var route = new RouteEntry(NewSessionId(), from, to, _time.GetUtcNow());
            AssignPath(route, path);
            lock (_sync)
            {
                _routes[route.SessionId] = route;
            }

            try
            {
                await InstallAsync(route, cancellationToken);
            }
            catch
            {
                await DropRouteAsync(route, notifyEnds: true);
                throw;
            }

            Log.RouteBuilt(_logger, route.SessionId, new PathText(path));
            return new RouteResultMessage { SessionId = route.SessionId, Path = [.. path] };
        }
        finally
        {
            _routeGate.Release();
        }
    }

    /// <summary>An end node no longer needs a route.</summary>
    public async Task CloseRouteAsync(string node, ulong sessionId)
    {
        RouteEntry? route;
        lock (_sync)
        {
            if (!_routes.TryGetValue(sessionId, out route) || (route.From != node && route.To != node))
            {
                return;
            }
        }

        await _routeGate.WaitAsync(_cts.Token);
        try
        {
            await DropRouteAsync(route, notifyEnds: true);
        }
        finally
        {
            _routeGate.Release();
        }
    }

    /// <summary>Re-routes every live route whose path uses a dead link or node; closes routes whose end is gone.</summary>
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
            List<RouteEntry> broken;
            lock (_sync)
            {
                broken = [.. _routes.Values.Where(r => r.NeedsRepair || !PathUsable(r.Path))];
            }

            foreach (var route in broken)
            {
                if (!IsOnline(route.From) || !IsOnline(route.To))
                {
                    Log.RouteClosed(_logger, route.SessionId, "an end node is gone");
                    await DropRouteAsync(route, notifyEnds: true);
                    continue;
                }

                var path = FindPath(route.From, route.To);
                if (path is null)
                {
                    // Keep the route: a link may come back. The ends' sessions time out if it does not.
                    Log.NoAlternate(_logger, route.SessionId);
                    continue;
                }

                var oldRules = RelayRules(route);
                ReleaseLabels(route);
                AssignPath(route, path);
                route.Reroutes++;
                try
                {
                    await InstallAsync(route, cancellationToken);
                    route.NeedsRepair = false;
                }
                catch (ControlException ex)
                {
                    // Retried at the next maintenance tick (every second), over whatever path is best then.
                    route.NeedsRepair = true;
                    Log.RerouteFailed(_logger, route.SessionId, ex.Message);
                    continue;
                }

                _ = RemoveRulesAsync(oldRules);
                Log.Rerouted(_logger, route.SessionId, new PathText(path));
                Rerouted?.Invoke(route.SessionId, path);
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

    private bool PathUsable(List<string> path)
    {
        for (var i = 0; i < path.Count; i++)
        {
            if (!IsOnline(path[i]))
            {
                return false;
            }

            if (i > 0 && !EdgeUsable(path[i - 1], path[i]))
            {
                return false;
            }
        }

        return true;
    }

    // Caller holds _sync or tolerates a racy read of a bool.
    private bool IsOnline(string key) => _nodes.TryGetValue(key, out var n) && n.Online;

    private bool EdgeUsable(string a, string b)
    {
        lock (_sync)
        {
            if (!IsOnline(a) || !IsOnline(b))
            {
                return false;
            }

            var ab = _links.TryGetValue((a, b), out var x) ? x.State : null;
            var ba = _links.TryGetValue((b, a), out var y) ? y.State : null;
            if (ab is null && ba is null)
            {
                return false;
            }

            return (ab?.Up ?? true) && (ba?.Up ?? true);
        }
    }

    private static double Weight(LinkState? a, LinkState? b)
    {
        var rtt = Math.Max(a?.RttMicros ?? 0, b?.RttMicros ?? 0);
        var loss = Math.Max(a?.Loss ?? 0, b?.Loss ?? 0);
        // 1 ms per hop floor keeps hop count meaningful on a LAN; loss costs like 200 ms of delay per 100 %.
        return Math.Max(rtt, 1000) + (loss * 200_000);
    }

    /// <summary>Weighted shortest path over usable links (both directions must be up), by <see cref="RouteComputer"/>.</summary>
    private List<string>? FindPath(string from, string to)
    {
        var graph = new RouteGraph<string>(StringComparer.Ordinal);
        lock (_sync)
        {
            foreach (var ((a, b), entry) in _links)
            {
                if (a == b || !EdgeUsable(a, b))
                {
                    continue;
                }

                var reverse = _links.TryGetValue((b, a), out var r) ? r.State : null;
                // Only one end has reported so far: treat the link as symmetric.
                graph.SetLink(a, b, Weight(entry.State, reverse), bidirectional: reverse is null);
            }
        }

        if (!graph.Contains(from) || !graph.Contains(to))
        {
            return null;
        }

        return RouteComputer.ShortestPath(graph, from, to) is { } route ? [.. route.Nodes] : null;
    }

    private void AssignPath(RouteEntry route, List<string> path)
    {
        route.Path = path;
        var k = path.Count - 1;
        route.Forward = new uint[k + 1];
        route.Reverse = new uint[k + 1];
        lock (_sync)
        {
            for (var i = 1; i <= k; i++)
            {
                route.Forward[i] = NewLabel(path[i], path[i - 1]);
            }

            for (var i = 0; i < k; i++)
            {
                route.Reverse[i] = NewLabel(path[i], path[i + 1]);
            }
        }
    }

    private uint NewLabel(string node, string inLink)
    {
        while (true)
        {
            var label = (uint)RandomNumberGenerator.GetInt32(1, int.MaxValue);
            if (_labels.Add((node, inLink, label)))
            {
                return label;
            }
        }
    }

    private void ReleaseLabels(RouteEntry route)
    {
        lock (_sync)
        {
            var p = route.Path;
            for (var i = 1; i < p.Count; i++)
            {
                _labels.Remove((p[i], p[i - 1], route.Forward[i]));
            }

            for (var i = 0; i < p.Count - 1; i++)
            {
                _labels.Remove((p[i], p[i + 1], route.Reverse[i]));
            }
        }
    }

    /// <summary>Per relay node: the forward and reverse rules of a route.</summary>
    private List<(string Node, List<RuleMessage> Rules)> RelayRules(RouteEntry route)
    {
        var p = route.Path;
        var ttl = (int)_options.RuleLifetime.TotalMilliseconds;
        var result = new List<(string, List<RuleMessage>)>();
        for (var i = 1; i < p.Count - 1; i++)
        {
            result.Add((p[i],
            [
                new RuleMessage { InLink = p[i - 1], InRoute = route.Forward[i], OutLink = p[i + 1], OutRoute = route.Forward[i + 1], TtlMs = ttl },
                new RuleMessage { InLink = p[i + 1], InRoute = route.Reverse[i], OutLink = p[i - 1], OutRoute = route.Reverse[i - 1], TtlMs = ttl },
            ]));
        }

        return result;
    }

    private (SessionRouteMessage Source, SessionRouteMessage Destination) EndRoutes(RouteEntry route)
    {
        var p = route.Path;
        var k = p.Count - 1;
        var ttl = (int)_options.RuleLifetime.TotalMilliseconds;
        var source = new SessionRouteMessage
        {
            SessionId = route.SessionId, Peer = route.To, Initiator = true,
            OutLink = p[1], OutRoute = route.Forward[1], InLink = p[1], InRoute = route.Reverse[0], TtlMs = ttl,
        };
        var destination = new SessionRouteMessage
        {
            SessionId = route.SessionId, Peer = route.From, Initiator = false,
            OutLink = p[k - 1], OutRoute = route.Reverse[k - 1], InLink = p[k - 1], InRoute = route.Forward[k], TtlMs = ttl,
        };
        return (source, destination);
    }

    /// <summary>Relays first (in parallel), then the destination end, then the source end.</summary>
    private async Task InstallAsync(RouteEntry route, CancellationToken cancellationToken)
    {
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, _cts.Token);
        timeout.CancelAfter(_options.CommandTimeout);
        try
        {
            await Task.WhenAll(RelayRules(route).Select(r => Channel(r.Node).InstallRulesAsync(new InstallRulesMessage { Rules = r.Rules }, timeout.Token)));
            var (source, destination) = EndRoutes(route);
            await Channel(route.To).SessionRouteAsync(destination, timeout.Token);
            await Channel(route.From).SessionRouteAsync(source, timeout.Token);
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            throw new ControlException(ControlErrorCode.Unavailable, "a node on the path did not answer in time");
        }
    }

    private INodeChannel Channel(string key)
    {
        lock (_sync)
        {
            return _nodes.TryGetValue(key, out var n) && n.Online
                ? n.Channel
                : throw new ControlException(ControlErrorCode.Unavailable, $"node {Short(key)} is offline");
        }
    }

    private async Task RemoveRulesAsync(List<(string Node, List<RuleMessage> Rules)> rules)
    {
        foreach (var (node, list) in rules)
        {
            try
            {
                using var timeout = new CancellationTokenSource(_options.CommandTimeout);
                await Channel(node).RemoveRulesAsync(new RemoveRulesMessage { Rules = list }, timeout.Token);
            }
            catch (Exception ex) when (ex is ControlException or OperationCanceledException)
            {
                // Best effort: the rules expire anyway.
            }
        }
    }

    private async Task DropRouteAsync(RouteEntry route, bool notifyEnds)
    {
        lock (_sync)
        {
            if (!_routes.Remove(route.SessionId))
            {
                return;
            }
        }

        var rules = RelayRules(route);
        ReleaseLabels(route);
        _ = RemoveRulesAsync(rules);
        if (notifyEnds)
        {
            foreach (var end in new[] { route.From, route.To })
            {
                try
                {
                    using var timeout = new CancellationTokenSource(_options.CommandTimeout);
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
                await Task.Delay(tick, _time, _cts.Token);
            }
            catch (OperationCanceledException)
            {
                return;
            }

            ExpireApps();
            if (_time.GetUtcNow() >= nextRefresh)
            {
                nextRefresh = _time.GetUtcNow() + _options.RefreshInterval;
                await RefreshRoutesAsync();
            }

            // Catches links that died without a report edge (e.g. a report lost with its node).
            await RepairRoutesAsync(_cts.Token);
        }
    }

    /// <summary>Re-installs the rules of every live route (rules expire otherwise).</summary>
    public async Task RefreshRoutesAsync()
    {
        List<RouteEntry> routes;
        lock (_sync)
        {
            routes = [.. _routes.Values];
        }

        foreach (var route in routes)
        {
            try
            {
                await InstallAsync(route, _cts.Token);
            }
            catch (Exception ex) when (ex is ControlException or OperationCanceledException)
            {
                Log.RefreshFailed(_logger, route.SessionId, ex.Message);
            }
        }
    }

    private static ulong NewSessionId()
    {
        Span<byte> b = stackalloc byte[8];
        RandomNumberGenerator.Fill(b);
        return BitConverter.ToUInt64(b) & 0x7FFF_FFFF_FFFF_FFFF | 1;
    }

    internal static string Short(string key) => key.Length > 12 ? key[..12] : key;

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

        _cts.Dispose();
    }

    private sealed class NodeEntry(string key, string linkAddress, INodeChannel channel, DateTimeOffset connectedAt)
    {
        public string Key { get; } = key;
        public string LinkAddress { get; } = linkAddress;
        public INodeChannel Channel { get; } = channel;
        public DateTimeOffset ConnectedAt { get; } = connectedAt;
        public bool Online { get; set; } = true;
    }

    /// <summary>Formats a path lazily for logs.</summary>
    internal readonly struct PathText(List<string> path)
    {
        public override string ToString() => string.Join(" > ", path.Select(Short));
    }

    private sealed record LinkEntry(LinkState State, DateTimeOffset ReportedAt);

    private sealed class AppEntry(string type, DateTimeOffset lastSeen)
    {
        public string Type { get; } = type;
        public DateTimeOffset LastSeen { get; set; } = lastSeen;
    }

    private sealed class RouteEntry(ulong sessionId, string from, string to, DateTimeOffset createdAt)
    {
        public ulong SessionId { get; } = sessionId;
        public string From { get; } = from;
        public string To { get; } = to;
        public DateTimeOffset CreatedAt { get; } = createdAt;
        public List<string> Path { get; set; } = [];
        public uint[] Forward { get; set; } = [];
        public uint[] Reverse { get; set; } = [];
        public int Reroutes { get; set; }
        public bool NeedsRepair { get; set; }
    }

    private static partial class Log
    {
        [LoggerMessage(EventId = 2100, Level = LogLevel.Information, Message = "Node {Node} registered (links at {LinkAddress})")]
        public static partial void NodeRegistered(ILogger logger, string node, string linkAddress);

        [LoggerMessage(EventId = 2101, Level = LogLevel.Information, Message = "Node {Node} went offline")]
        public static partial void NodeGone(ILogger logger, string node);

        [LoggerMessage(EventId = 2102, Level = LogLevel.Information, Message = "App {Name} ({Type}) registered on {Node}")]
        public static partial void AppRegistered(ILogger logger, string name, string type, string node);

        [LoggerMessage(EventId = 2103, Level = LogLevel.Information, Message = "App {Name} on {Node} expired (no heartbeat)")]
        public static partial void AppExpired(ILogger logger, string name, string node);

        [LoggerMessage(EventId = 2104, Level = LogLevel.Information, Message = "Asked {From} to link to {To}")]
        public static partial void LinkRequested(ILogger logger, string from, string to);

        [LoggerMessage(EventId = 2105, Level = LogLevel.Warning, Message = "Auto-link {From} -> {To} failed: {Reason}")]
        public static partial void AutoLinkFailed(ILogger logger, string from, string to, string reason);

        [LoggerMessage(EventId = 2106, Level = LogLevel.Information, Message = "Route {SessionId} built: {Path}")]
        public static partial void RouteBuilt(ILogger logger, ulong sessionId, PathText path);

        [LoggerMessage(EventId = 2107, Level = LogLevel.Information, Message = "Route {SessionId} re-routed: {Path}")]
        public static partial void Rerouted(ILogger logger, ulong sessionId, PathText path);

        [LoggerMessage(EventId = 2108, Level = LogLevel.Warning, Message = "Route {SessionId} is broken and has no alternate path yet")]
        public static partial void NoAlternate(ILogger logger, ulong sessionId);

        [LoggerMessage(EventId = 2109, Level = LogLevel.Warning, Message = "Re-route of {SessionId} failed: {Reason}")]
        public static partial void RerouteFailed(ILogger logger, ulong sessionId, string reason);

        [LoggerMessage(EventId = 2110, Level = LogLevel.Information, Message = "Route {SessionId} closed: {Reason}")]
        public static partial void RouteClosed(ILogger logger, ulong sessionId, string reason);

        [LoggerMessage(EventId = 2111, Level = LogLevel.Warning, Message = "Refresh of route {SessionId} failed: {Reason}")]
        public static partial void RefreshFailed(ILogger logger, ulong sessionId, string reason);
    }
}
