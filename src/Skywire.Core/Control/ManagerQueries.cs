using Skywire.Core.Channels;
using Skywire.Protocol.Control;

namespace Skywire.Core.Control;

/// <summary>
/// The manager's list calls, page by page (docs/protocol.md §4.6): each method asks for pages until the manager says
/// there are no more, and returns the whole list. Used by `skywire cli` and anything else that lists a manager's state.
/// </summary>
public static class ManagerQueries
{
    /// <summary>Items asked for per page (the manager may send fewer to keep a page under its size budget).</summary>
    public const int PageSize = 500;

    // A manager that keeps answering with a next cursor (state growing as fast as it is read) is not followed forever.
    private const int MaxPages = 10_000;

    /// <summary>Every registered node.</summary>
    public static Task<List<NodeInfo>> ListNodesAsync(FrameConnection manager, CancellationToken cancellationToken = default) =>
        AllPagesAsync(async after =>
        {
            var page = await manager.RequestAsync((byte)ControlOpcode.ListNodes, new ListRequestMessage { After = after, Limit = PageSize },
                ControlJsonContext.Default.ListRequestMessage, ControlJsonContext.Default.NodeListMessage, cancellationToken);
            return (page.Nodes, page.Next);
        });

    /// <summary>Every link report (with whether the manager routes over the link).</summary>
    public static Task<List<LinkInfo>> ListLinksAsync(FrameConnection manager, CancellationToken cancellationToken = default) =>
        AllPagesAsync(async after =>
        {
            var page = await manager.RequestAsync((byte)ControlOpcode.ListLinks, new ListRequestMessage { After = after, Limit = PageSize },
                ControlJsonContext.Default.ListRequestMessage, ControlJsonContext.Default.LinkListMessage, cancellationToken);
            return (page.Links, page.Next);
        });

    /// <summary>Every live route.</summary>
    public static Task<List<RouteInfo>> ListRoutesAsync(FrameConnection manager, CancellationToken cancellationToken = default) =>
        AllPagesAsync(async after =>
        {
            var page = await manager.RequestAsync((byte)ControlOpcode.ListRoutes, new ListRequestMessage { After = after, Limit = PageSize },
                ControlJsonContext.Default.ListRequestMessage, ControlJsonContext.Default.RouteListMessage, cancellationToken);
            return (page.Routes, page.Next);
        });

    /// <summary>Every app matching <paramref name="by"/> ("all", "name", "type") and <paramref name="value"/>.</summary>
    public static Task<List<AppInfo>> ListAppsAsync(FrameConnection manager, string by = "all", string? value = null, CancellationToken cancellationToken = default) =>
        AllPagesAsync(async after =>
        {
            var page = await manager.RequestAsync((byte)ControlOpcode.AppList, new AppListMessage { By = by, Value = value, After = after, Limit = PageSize },
                ControlJsonContext.Default.AppListMessage, ControlJsonContext.Default.AppListResultMessage, cancellationToken);
            return (page.Apps, page.Next);
        });

    /// <summary>Follows <c>next</c> cursors from the first page to the last.</summary>
    /// <exception cref="ControlException">A page failed, or the manager's cursors do not advance.</exception>
    public static async Task<List<T>> AllPagesAsync<T>(Func<string?, Task<(List<T> Items, string? Next)>> page)
    {
        ArgumentNullException.ThrowIfNull(page);
        var all = new List<T>();
        string? after = null;
        for (var pages = 0; pages < MaxPages; pages++)
        {
            var (items, next) = await page(after);
            all.AddRange(items);
            if (next is null)
            {
                return all;
            }

            if (items.Count == 0 || next == after)
            {
                throw new ControlException(ControlErrorCode.Internal, "the manager's list pages do not advance");
            }

            after = next;
        }

        throw new ControlException(ControlErrorCode.Internal, $"the manager's list did not end within {MaxPages} pages");
    }
}
