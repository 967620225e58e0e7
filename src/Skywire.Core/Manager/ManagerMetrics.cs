using System.Diagnostics.Metrics;

namespace Skywire.Core.Manager;

/// <summary>
/// The manager's instruments (meter <see cref="MeterName"/>, docs/operations.md "Metrics"): nodes by state, link
/// reports, routes installed and their hops, the app tracker's size and control connections. Observed at collection
/// time from the controller's tables; the executable exports the meter (<c>skywire manager --metrics</c>).
/// </summary>
internal sealed class ManagerMetrics : IDisposable
{
    /// <summary>The meter's name.</summary>
    public const string MeterName = Diagnostics.SkywireMeters.Manager;

    private readonly Meter _meter = new(MeterName);

    public ManagerMetrics(MeshController controller, Func<int> connections, string managerKey)
    {
        var tag = new KeyValuePair<string, object?>("manager", managerKey);
        _meter.CreateObservableGauge("skywire.manager.nodes", () => Nodes(controller, tag), "{node}", "Registered nodes by state (online, offline)");
        _meter.CreateObservableGauge("skywire.manager.links", () => Links(controller, tag), "{link}", "Links as the nodes report them, by state (up, down)");
        _meter.CreateObservableGauge("skywire.manager.routes.installed", () => new Measurement<int>(controller.Routes.Count, tag), "{route}", "Live routes (sessions) whose rules are installed");
        _meter.CreateObservableGauge("skywire.manager.route.hops", () => Hops(controller, tag), "{hop}", "Hops of the live routes, summed");
        _meter.CreateObservableGauge("skywire.manager.apps", () => new Measurement<int>(controller.Apps.Count, tag), "{app}", "Apps in the app tracker");
        _meter.CreateObservableGauge("skywire.manager.connections", () => new Measurement<int>(connections(), tag), "{connection}", "Control connections (nodes and cli) held now");
    }

    /// <inheritdoc />
    public void Dispose() => _meter.Dispose();

    private static IEnumerable<Measurement<int>> Nodes(MeshController controller, KeyValuePair<string, object?> tag)
    {
        var nodes = controller.Nodes.Snapshot();
        var online = nodes.Count(n => n.Online);
        yield return new(online, tag, new("state", "online"));
        yield return new(nodes.Count - online, tag, new("state", "offline"));
    }

    private static IEnumerable<Measurement<int>> Links(MeshController controller, KeyValuePair<string, object?> tag)
    {
        var links = controller.Links.Snapshot();
        var up = links.Count(l => l.Up);
        yield return new(up, tag, new("state", "up"));
        yield return new(links.Count - up, tag, new("state", "down"));
    }

    private static Measurement<int> Hops(MeshController controller, KeyValuePair<string, object?> tag) =>
        new(controller.Routes.Snapshot().Sum(r => Math.Max(0, r.Plan.Path.Count - 1)), tag);
}
