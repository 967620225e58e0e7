namespace Skywire.Core.Messenger;

/// <summary>
/// A token bucket: <see cref="Burst"/> tokens at most, refilled at <see cref="RatePerSecond"/>. Thread-safe.
/// Time comes from a <see cref="TimeProvider"/> so tests can drive it.
/// </summary>
public sealed class TokenBucket
{
    private readonly TimeProvider _time;
    private readonly Lock _lock = new();
    private double _tokens;
    private long _lastTimestamp;

    public TokenBucket(double ratePerSecond, double burst, TimeProvider? timeProvider = null)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(ratePerSecond);
        ArgumentOutOfRangeException.ThrowIfLessThan(burst, 1);
        RatePerSecond = ratePerSecond;
        Burst = burst;
        _time = timeProvider ?? TimeProvider.System;
        _tokens = burst;
        _lastTimestamp = _time.GetTimestamp();
    }

    /// <summary>Refill rate.</summary>
    public double RatePerSecond { get; }

    /// <summary>Capacity.</summary>
    public double Burst { get; }

    /// <summary>Takes <paramref name="cost"/> tokens if available.</summary>
    public bool TryTake(double cost = 1)
    {
        lock (_lock)
        {
            var now = _time.GetTimestamp();
            var elapsed = _time.GetElapsedTime(_lastTimestamp, now).TotalSeconds;
            _lastTimestamp = now;
            _tokens = Math.Min(Burst, _tokens + (elapsed * RatePerSecond));
            if (_tokens < cost)
            {
                return false;
            }

            _tokens -= cost;
            return true;
        }
    }
}
