namespace Skywire.Core.Diagnostics;

/// <summary>
/// The names of the <see cref="System.Diagnostics.Metrics.Meter"/>s the components publish (docs/operations.md
/// "Metrics"): what <c>--metrics</c> exports and what <c>dotnet-counters monitor --counters</c> takes.
/// </summary>
public static class SkywireMeters
{
    /// <summary>A node's links, routes, sessions, streams, multiplexers and app API.</summary>
    public const string Node = "Skywire.Node";

    /// <summary>A node's UDP data plane (packets, bytes, drops by reason, links up).</summary>
    public const string DataPlane = Core.DataPlane.NodeDataPlane.MeterName;

    /// <summary>The manager's registry, routes and app tracker.</summary>
    public const string Manager = "Skywire.Manager";

    /// <summary>The messenger's connections, messages and offline store.</summary>
    public const string Messenger = "Skywire.Messenger";

    /// <summary>The signal protocol (viscript supervision), in every component started by viscript.</summary>
    public const string Signal = "Viscript.Signal";
}
