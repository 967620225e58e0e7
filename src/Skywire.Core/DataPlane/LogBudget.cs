namespace Skywire.Core.DataPlane;

/// <summary>
/// Bounds the log lines of events a stranger can cause at will (links it opens with fresh keys and lets die: two
/// lines each), so a handshake flood cannot fill the disk through the log: at most <c>perSecond</c> lines a second;
/// the rest are counted and summed up in one line a second (<see cref="DrainSuppressed"/>). The events themselves
/// are still raised. Any thread.
/// </summary>
internal sealed class LogBudget
{
    private readonly Lock _gate = new();
    private readonly int _perSecond;
    private readonly TimeProvider _time;
    private long _windowStart;
    private int _used;
    private long _suppressed;

    public LogBudget(int perSecond, TimeProvider time)
    {
        _perSecond = perSecond;
        _time = time;
        _windowStart = time.GetTimestamp();
    }

    /// <summary>True when one more line may be logged now; false (counted) when this second's budget is spent.</summary>
    public bool TryTake()
    {
        lock (_gate)
        {
            var now = _time.GetTimestamp();
            if (now - _windowStart >= _time.TimestampFrequency)
            {
                _windowStart = now;
                _used = 0;
            }

            if (_used < _perSecond)
            {
                _used++;
                return true;
            }

            _suppressed++;
            return false;
        }
    }

    /// <summary>The lines not logged since the last call (0 when none).</summary>
    public long DrainSuppressed()
    {
        lock (_gate)
        {
            var n = _suppressed;
            _suppressed = 0;
            return n;
        }
    }
}
