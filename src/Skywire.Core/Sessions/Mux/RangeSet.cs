
namespace Skywire.Core.Sessions.Mux;

/// <summary>A sorted set of disjoint half-open ranges [Start, End) of 64-bit numbers, merged on insert.</summary>
/// <remarks>Small and linear by design: the sets it holds (SACK holes, packet numbers) have few ranges.</remarks>
internal sealed class RangeSet
{
    private readonly List<(long Start, long End)> _ranges = [];

    public int Count => _ranges.Count;

    public (long Start, long End) this[int index] => _ranges[index];

    public bool IsEmpty => _ranges.Count == 0;

    public void Clear() => _ranges.Clear();

    /// <summary>Adds [start, end); returns the number of values that were not in the set before.</summary>
    public long Add(long start, long end)
    {
        if (start >= end)
        {
            return 0;
        }
        // First range whose End >= start (it may touch or overlap the new one).
        var i = LowerBoundByEnd(start);
        if (i == _ranges.Count || _ranges[i].Start > end)
        {
            _ranges.Insert(i, (start, end));
            return end - start;
        }
        var added = 0L;
        var newStart = Math.Min(start, _ranges[i].Start);
        var newEnd = end;
        var cursor = start;
        var j = i;
        while (j < _ranges.Count && _ranges[j].Start <= end)
        {
            var r = _ranges[j];
            if (r.Start > cursor)
            {
                added += r.Start - cursor;
            }
            cursor = Math.Max(cursor, r.End);
            newEnd = Math.Max(newEnd, r.End);
            j++;
        }
        if (cursor < end)
        {
            added += end - cursor;
        }
        _ranges[i] = (newStart, newEnd);
        if (j - i > 1)
        {
            _ranges.RemoveRange(i + 1, j - i - 1);
        }
        return added;
    }

    /// <summary>Removes [start, end) from the set.</summary>
    public void Remove(long start, long end)
    {
        if (start >= end)
        {
            return;
        }
        var i = LowerBoundByEnd(start + 1);
        while (i < _ranges.Count && _ranges[i].Start < end)
        {
            var r = _ranges[i];
            if (r.Start < start && r.End > end)
            {
                _ranges[i] = (r.Start, start);
                _ranges.Insert(i + 1, (end, r.End));
                return;
            }
            if (r.Start < start)
            {
                _ranges[i] = (r.Start, start);
                i++;
            }
            else if (r.End > end)
            {
                _ranges[i] = (end, r.End);
                return;
            }
            else
            {
                _ranges.RemoveAt(i);
            }
        }
    }

    /// <summary>Drops every value below <paramref name="floor"/>.</summary>
    public void RemoveBelow(long floor)
    {
        var n = 0;
        while (n < _ranges.Count && _ranges[n].End <= floor)
        {
            n++;
        }
        if (n > 0)
        {
            _ranges.RemoveRange(0, n);
        }
        if (_ranges.Count > 0 && _ranges[0].Start < floor)
        {
            _ranges[0] = (floor, _ranges[0].End);
        }
    }

    /// <summary>Keeps only the <paramref name="max"/> highest ranges.</summary>
    public void TrimToHighest(int max)
    {
        if (_ranges.Count > max)
        {
            _ranges.RemoveRange(0, _ranges.Count - max);
        }
    }

    public bool Contains(long value)
    {
        var i = LowerBoundByEnd(value + 1);
        return i < _ranges.Count && _ranges[i].Start <= value;
    }

    /// <summary>End of the range that contains <paramref name="value"/>, or <paramref name="value"/> when none does.</summary>
    public long ContiguousEnd(long value)
    {
        var i = LowerBoundByEnd(value + 1);
        return i < _ranges.Count && _ranges[i].Start <= value ? _ranges[i].End : value;
    }

    /// <summary>Start of the first range at or after <paramref name="value"/> that does not contain it, or long.MaxValue.</summary>
    public long NextStartAfter(long value)
    {
        var i = LowerBoundByEnd(value + 1);
        if (i < _ranges.Count && _ranges[i].Start <= value)
        {
            i++;
        }
        return i < _ranges.Count ? _ranges[i].Start : long.MaxValue;
    }

    // Index of the first range with End >= value.
    private int LowerBoundByEnd(long value)
    {
        int lo = 0, hi = _ranges.Count;
        while (lo < hi)
        {
            var mid = (lo + hi) >>> 1;
            if (_ranges[mid].End < value)
            {
                lo = mid + 1;
            }
            else
            {
                hi = mid;
            }
        }
        return lo;
    }
}
