namespace Skywire.Core.Channels;

/// <summary>
/// The one retry delay of this code base (reconnects to the manager and the messenger, accept loops under descriptor
/// exhaustion): capped exponential backoff with decorrelated jitter (each delay is drawn uniformly between the
/// initial delay and three times the previous one, then capped), so that many clients that lost the same server do
/// not come back in step, and a delay never drops below the initial one. Waits run on an injected
/// <see cref="TimeProvider"/>. Not thread-safe: one instance per retry loop.
/// </summary>
/// <remarks>"Exponential Backoff And Jitter" (AWS Architecture Blog, 2015) compares the variants; decorrelated jitter
/// spreads retries about as well as full jitter without the near-zero delays that hammer a server that is down.</remarks>
public sealed class Backoff
{
    private readonly TimeSpan _initial;
    private readonly TimeSpan _max;
    private readonly Random _random;
    private TimeSpan _previous;

    /// <param name="initial">The first delay and the smallest one (positive).</param>
    /// <param name="max">The largest delay (at least <paramref name="initial"/>).</param>
    /// <param name="random">Source of jitter (tests pass a seeded one); null: <see cref="Random.Shared"/>.</param>
    public Backoff(TimeSpan initial, TimeSpan max, Random? random = null)
    {
        ArgumentOutOfRangeException.ThrowIfLessThanOrEqual(initial, TimeSpan.Zero);
        ArgumentOutOfRangeException.ThrowIfLessThan(max, initial);
        _initial = initial;
        _max = max;
        _random = random ?? Random.Shared;
        _previous = initial;
    }

    /// <summary>Delays handed out since the last <see cref="Reset"/>.</summary>
    public int Attempts { get; private set; }

    /// <summary>The next delay: uniform in [initial, 3 × previous] (the previous of the first is the initial one), capped.</summary>
    public TimeSpan Next()
    {
        var high = Math.Min(_max.Ticks, _previous.Ticks * 3);
        var delay = TimeSpan.FromTicks(high <= _initial.Ticks ? _initial.Ticks : _random.NextInt64(_initial.Ticks, high + 1));
        Attempts++;
        _previous = delay;
        return delay;
    }

    /// <summary>Waits <see cref="Next"/> on <paramref name="time"/>.</summary>
    /// <exception cref="OperationCanceledException"><paramref name="cancellationToken"/> fired first.</exception>
    public Task DelayAsync(TimeProvider time, CancellationToken cancellationToken) => Task.Delay(Next(), time, cancellationToken);

    /// <summary>Starts over from the initial delay (after a success).</summary>
    public void Reset()
    {
        Attempts = 0;
        _previous = _initial;
    }
}
