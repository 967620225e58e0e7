namespace Viscript.Core.Hosting;

/// <summary>
/// The one reconnect/restart delay of viscript: <c>initial × 2^(failures-1)</c>, capped at <c>max</c>, with ±20 % jitter so
/// that several clients of one server (agents of a primary, viscripts watching one manager) do not retry in step.
/// </summary>
public static class Backoff
{
    /// <summary>The delay before attempt <paramref name="failures"/> + 1 (1-based count of failures in a row).</summary>
    public static TimeSpan Delay(TimeSpan initial, TimeSpan max, int failures, Random? random = null)
    {
        var baseDelay = initial.TotalMilliseconds * Math.Pow(2, Math.Clamp(failures - 1, 0, 16));
        var capped = Math.Min(baseDelay, max.TotalMilliseconds);
        return TimeSpan.FromMilliseconds(capped * (0.8 + (0.4 * (random ?? Random.Shared).NextDouble())));
    }
}
