namespace Viscript.Daemon.Listening;

/// <summary>
/// Limits of the control/GUI listener (docs/viscript.md "Listener limits"). Defaults keep every listener of the
/// process together below the descriptor limit: the .NET runtime aborts ("Out of memory.") when it must create a thread
/// while no descriptor is free, so running out is never acceptable.
/// </summary>
public sealed record ControlListenerOptions
{
    /// <summary>Open connections at most (null: from the descriptor limit, <see cref="DefaultMaxConnections"/>).</summary>
    public int? MaxConnections { get; init; }

    /// <summary>Open connections at most from one source address (null: half of <see cref="MaxConnections"/>, at least 4).</summary>
    public int? MaxConnectionsPerSource { get; init; }

    /// <summary>Time a client has to send a complete request head once it started one.</summary>
    public TimeSpan RequestHeadersTimeout { get; init; } = TimeSpan.FromSeconds(10);

    /// <summary>Time a connection may sit without a request (a new connection too) before it is closed.</summary>
    public TimeSpan KeepAliveTimeout { get; init; } = TimeSpan.FromSeconds(30);

    /// <summary>A request body must arrive at least this fast (bytes per second) after <see cref="MinRequestBodyGrace"/>.</summary>
    public double MinRequestBodyBytesPerSecond { get; init; } = 240;

    /// <summary>Grace period before the body rate is enforced.</summary>
    public TimeSpan MinRequestBodyGrace { get; init; } = TimeSpan.FromSeconds(5);

    /// <summary>Largest request body (commands and stdin lines are small).</summary>
    public long MaxRequestBodyBytes { get; init; } = 1 << 20;

    /// <summary>The default.</summary>
    public static ControlListenerOptions Default { get; } = new();

    /// <summary>
    /// Half of the descriptors still free when the daemon starts (soft limit minus those open, which include two per
    /// loaded assembly: about 200 for viscript) after a reserve of 64 for assemblies loaded later, log files and app
    /// pipes; between 8 and 1024. About 400 under the usual <c>ulimit -n 1024</c>, 8 under 256.
    /// </summary>
    public static int DefaultMaxConnections(long descriptorLimit, long descriptorsOpen) =>
        (int)Math.Clamp((descriptorLimit - descriptorsOpen - 64) / 2, 8, 1024);

    /// <summary>The effective total and per-source caps.</summary>
    public (int Total, int PerSource) Caps(long descriptorLimit, long descriptorsOpen)
    {
        var total = MaxConnections ?? DefaultMaxConnections(descriptorLimit, descriptorsOpen);
        var perSource = MaxConnectionsPerSource ?? Math.Max(4, total / 2);
        return (total, Math.Min(perSource, total));
    }
}
