using Microsoft.Extensions.Logging;

namespace Skywire.Core.Diagnostics;

/// <summary>
/// Bounds the log lines of events a stranger can cause at will (links it opens with fresh keys and lets die,
/// connections that never finish their handshake, registrations past a limit), so a flood cannot fill the disk
/// through the log: at most <c>perSecond</c> lines a second; the rest are counted and summed up, either in one line
/// a second (<see cref="DrainSuppressed"/>) or before the next line allowed (<see cref="TryTake(out long)"/>). The
/// events themselves are still raised. Any thread.
/// </summary>
internal sealed partial class LogBudget
{
    private readonly Lock _gate = new();
    private readonly int _perSecond;
    private readonly TimeProvider _time;
    private long _windowStart;
    private int _used;
    private long _suppressed;

    public LogBudget(int perSecond, TimeProvider time, string? what = null)
    {
        _perSecond = perSecond;
        _time = time;
        _what = what ?? "lines";
        _windowStart = time.GetTimestamp();
    }

    private readonly string _what;

    /// <summary>True when one more line may be logged now; false (counted) when this second's budget is spent.</summary>
    public bool TryTake() => Take(drain: false, out _);

    /// <summary>
    /// True when one more line may be logged now, with <paramref name="suppressed"/> the lines refused since the last
    /// one allowed (for the caller to say so first); false (counted) when this second's budget is spent.
    /// </summary>
    public bool TryTake(out long suppressed) => Take(drain: true, out suppressed);

    /// <summary>
    /// True when one more line may be logged now; before it, <paramref name="logger"/> gets one line with the count
    /// of those held back since the last line allowed. False (counted) when this second's budget is spent.
    /// </summary>
    public bool TryTake(ILogger logger)
    {
        if (!TryTake(out var suppressed))
        {
            return false;
        }

        if (suppressed > 0)
        {
            Log.Suppressed(logger, suppressed, _what, _perSecond);
        }

        return true;
    }

    private bool Take(bool drain, out long suppressed)
    {
        lock (_gate)
        {
            suppressed = 0;
            var now = _time.GetTimestamp();
            if (now - _windowStart >= _time.TimestampFrequency)
            {
                _windowStart = now;
                _used = 0;
            }

            if (_used < _perSecond)
            {
                _used++;
                if (drain)
                {
                    suppressed = _suppressed;
                    _suppressed = 0;
                }

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

    private static partial class Log
    {
        [LoggerMessage(EventId = 1790, Level = LogLevel.Warning, Message = "{Count} more {What} were not logged (at most {PerSecond} a second)")]
        public static partial void Suppressed(ILogger logger, long count, string what, int perSecond);
    }
}
