namespace Skywire.TestKit;

/// <summary>Faults applied to every datagram crossing one direction of a pipe or relay.</summary>
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
}
