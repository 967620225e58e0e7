namespace Skywire.TestKit;

/// <summary>
/// Impairments of one direction of a pipe, relay or router (our netem): loss, duplication, reordering, delay with
/// jitter, and a rate limit with a bounded drop-tail queue. Applied in that order to every datagram.
/// </summary>
public sealed record FaultOptions
{
    /// <summary>No faults: every datagram is delivered once, in order, at once.</summary>
    public static FaultOptions None { get; } = new();

    /// <summary>Probability (0..1) that a datagram is dropped.</summary>
    public double DropRate { get; init; }

    /// <summary>Probability (0..1) that a datagram is delivered twice.</summary>
    public double DuplicateRate { get; init; }

    /// <summary>Probability (0..1) that a datagram is held back and delivered after up to <see cref="ReorderWindow"/> later ones.</summary>
    public double ReorderRate { get; init; }

    /// <summary>How many later datagrams may overtake a held-back one (0 disables reordering).</summary>
    public int ReorderWindow { get; init; }

    /// <summary>Fixed one-way delay.</summary>
    public TimeSpan Delay { get; init; }

    /// <summary>Extra random delay, uniform in [0, Jitter) (delays can reorder too).</summary>
    public TimeSpan Jitter { get; init; }

    /// <summary>Seed of the random generator; null picks one (see <see cref="FaultInjector.Seed"/> to reproduce).</summary>
    public int? Seed { get; init; }

    /// <summary>Datagrams queued in the direction before new ones are dropped (a router queue).</summary>
    public int QueueCapacity { get; init; } = 16384;

    /// <summary>
    /// Bottleneck rate in bytes per second (0: unlimited). Datagrams leave one after another at this rate (serialisation
    /// delay size / rate) before the propagation <see cref="Delay"/>; those that find <see cref="QueueBytes"/> already
    /// waiting are dropped (drop-tail, as a router's buffer).
    /// </summary>
    public double RateBytesPerSecond { get; init; }

    /// <summary>Bytes the bottleneck queue holds before it drops (only with a rate). Default 256 KiB.</summary>
    public int QueueBytes { get; init; } = 256 * 1024;

    /// <summary>A path with <paramref name="rtt"/> split evenly over both directions, and the other settings given.</summary>
    public static FaultOptions OneWayOf(TimeSpan rtt, double loss = 0, double rateBytesPerSecond = 0, int? seed = null) => new()
    {
        Delay = rtt / 2,
        DropRate = loss,
        RateBytesPerSecond = rateBytesPerSecond,
        QueueBytes = rateBytesPerSecond > 0 ? (int)Math.Max(64 * 1024, rateBytesPerSecond * Math.Max(rtt.TotalSeconds, 0.02)) : 256 * 1024,
        Seed = seed,
    };
}
