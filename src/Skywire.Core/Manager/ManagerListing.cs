using System.Text.Json;
using System.Text.Json.Serialization.Metadata;
using Skywire.Core.Channels;
using Skywire.Protocol.Control;

namespace Skywire.Core.Manager;

/// <summary>
/// The cli's view of the manager's state, as control messages: whole lists, and pages of them that fit a frame
/// (docs/protocol.md §4.6). A page holds the items after the request's <c>after</c> cursor, at most <c>limit</c> of
/// them (capped by <see cref="ManagerLimits.MaxPageItems"/>) and at most <see cref="ManagerLimits.ReplyPageBytes"/>
/// of them serialized; its <c>next</c> cursor names its last item, or is null on the last page. Cursors are the
/// items' sort keys, so a page after a change neither repeats nor skips an item that stayed.
/// </summary>
public static class ManagerListing
{
    /// <summary>Every registered node, by key, with the names of its apps.</summary>
    public static NodeListMessage Nodes(NodeRegistry nodes, AppTracker apps)
    {
        ArgumentNullException.ThrowIfNull(nodes);
        ArgumentNullException.ThrowIfNull(apps);
        var all = nodes.Snapshot();
        return new NodeListMessage
        {
            Total = all.Count,
            Nodes = [.. all.Select(n => new NodeInfo
            {
                Key = n.Key.ToString(), LinkAddress = n.LinkAddress, Online = n.Online, ConnectedAt = n.ConnectedAt, Apps = [.. apps.NamesOf(n.Key)],
            })],
        };
    }

    /// <summary>Every link report, by reporter and peer, with whether the manager routes over the link (<see cref="MeshGraph.IsConfirmed"/>).</summary>
    public static LinkListMessage Links(LinkTable links, NodeRegistry nodes, DateTimeOffset now, TimeSpan maxAge)
    {
        ArgumentNullException.ThrowIfNull(links);
        ArgumentNullException.ThrowIfNull(nodes);
        var online = nodes.OnlineKeys();
        var reports = links.Snapshot();
        var byEnds = reports.ToDictionary(r => (r.From, r.To));
        return new LinkListMessage
        {
            Total = reports.Count,
            Links = [.. reports.Select(r => new LinkInfo
            {
                From = r.From.ToString(),
                To = r.To.ToString(),
                Up = r.Up && online.Contains(r.From),
                RttMicros = r.RttMicros,
                Loss = r.Loss,
                Confirmed = MeshGraph.IsConfirmed(r, byEnds.GetValueOrDefault((r.To, r.From)), online.Contains(r.From) && online.Contains(r.To), now, maxAge),
            })],
        };
    }

    /// <summary>Every live route, oldest first.</summary>
    public static RouteListMessage Routes(RouteTable routes)
    {
        ArgumentNullException.ThrowIfNull(routes);
        var all = routes.Snapshot();
        return new RouteListMessage
        {
            Total = all.Count,
            Routes = [.. all.Select(r => new RouteInfo
            {
                SessionId = r.SessionId, From = r.From.ToString(), To = r.To.ToString(), Path = [.. r.Plan.Path.Select(p => p.ToString())],
                Reroutes = r.Reroutes, CreatedAt = r.CreatedAt,
            })],
        };
    }

    /// <summary>Apps matching a query (all, by name, by type), by name then node; the query's paging fields are not used here.</summary>
    /// <exception cref="ControlException">BadRequest for an unknown query kind.</exception>
    public static AppListResultMessage Apps(AppTracker apps, AppListMessage query)
    {
        ArgumentNullException.ThrowIfNull(apps);
        ArgumentNullException.ThrowIfNull(query);
        var matches = apps.Query(query.By, query.Value);
        return new AppListResultMessage
        {
            Total = matches.Count,
            Apps = [.. matches.Select(a => new AppInfo { Name = a.Name, Type = a.Type, Node = a.Node.ToString() })],
        };
    }

    /// <summary>One page of a node list.</summary>
    public static NodeListMessage Page(NodeListMessage all, string? after, int limit, ManagerLimits limits)
    {
        ArgumentNullException.ThrowIfNull(all);
        var (items, next) = Page(all.Nodes, n => n.Key, after, limit, limits, ControlJsonContext.Default.NodeInfo);
        return all with { Nodes = items, Next = next };
    }

    /// <summary>One page of a link list.</summary>
    public static LinkListMessage Page(LinkListMessage all, string? after, int limit, ManagerLimits limits)
    {
        ArgumentNullException.ThrowIfNull(all);
        var (items, next) = Page(all.Links, l => l.From + " " + l.To, after, limit, limits, ControlJsonContext.Default.LinkInfo);
        return all with { Links = items, Next = next };
    }

    /// <summary>One page of a route list.</summary>
    public static RouteListMessage Page(RouteListMessage all, string? after, int limit, ManagerLimits limits)
    {
        ArgumentNullException.ThrowIfNull(all);
        // Fixed-width fields: the ordinal order of the cursor is the order of (creation time, session id).
        var (items, next) = Page(all.Routes, r => $"{r.CreatedAt.UtcTicks:D20} {r.SessionId:x16}", after, limit, limits, ControlJsonContext.Default.RouteInfo);
        return all with { Routes = items, Next = next };
    }

    /// <summary>One page of an app list.</summary>
    public static AppListResultMessage Page(AppListResultMessage all, string? after, int limit, ManagerLimits limits)
    {
        ArgumentNullException.ThrowIfNull(all);
        // App names hold no spaces or control characters, so every name character sorts after ' ': the ordinal order
        // of "name node" is the order of (name, node).
        var (items, next) = Page(all.Apps, a => a.Name + " " + a.Node, after, limit, limits, ControlJsonContext.Default.AppInfo);
        return all with { Apps = items, Next = next };
    }

    private static (List<T> Items, string? Next) Page<T>(List<T> all, Func<T, string> cursor, string? after, int limit, ManagerLimits limits, JsonTypeInfo<T> type)
    {
        ArgumentNullException.ThrowIfNull(limits);
        if (limit < 1)
        {
            throw new ControlException(ControlErrorCode.BadRequest, $"limit must be at least 1 (got {limit})");
        }

        limit = Math.Min(limit, limits.MaxPageItems);
        var sorted = all.Select(item => (Cursor: cursor(item), Item: item)).OrderBy(x => x.Cursor, StringComparer.Ordinal).ToList();
        var start = 0;
        if (after is not null)
        {
            while (start < sorted.Count && string.CompareOrdinal(sorted[start].Cursor, after) <= 0)
            {
                start++;
            }
        }

        // Room for the envelope: the list's property name, total, and the next cursor (as long as an item's cursor).
        var budget = limits.ReplyPageBytes - 256;
        var page = new List<T>();
        var bytes = 0;
        var i = start;
        for (; i < sorted.Count && page.Count < limit; i++)
        {
            var size = JsonSerializer.SerializeToUtf8Bytes(sorted[i].Item, type).Length + 1 + sorted[i].Cursor.Length;
            if (page.Count > 0 && bytes + size > budget)
            {
                break;
            }

            // One item always goes, even over the budget: a page never comes back empty while items remain.
            page.Add(sorted[i].Item);
            bytes += size;
        }

        return (page, i < sorted.Count ? sorted[i - 1].Cursor : null);
    }
}
