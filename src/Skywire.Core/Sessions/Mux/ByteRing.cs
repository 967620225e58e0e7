using System.Buffers;

namespace Skywire.Core.Sessions.Mux;

/// <summary>
/// A byte buffer addressed by absolute stream offset, holding the window [<see cref="Base"/>, Base + capacity).
/// It grows (power of two, pooled) up to a maximum and gives its array back to the pool when it drains, so an
/// idle stream holds no buffer. After a drain it rents at once the capacity the last fill needed: a busy stream's
/// ring drains and refills all the time (the app reads all that arrived, the peer acks all that was sent), and
/// growing from the minimum on every refill copied the live bytes at each doubling (3-4 % of a node's CPU in a bulk
/// transfer, issue 19.2).
/// </summary>
internal sealed class ByteRing
{
    private const int MinCapacity = 4096;
    private readonly int _maxCapacity;
    private byte[]? _buffer;
    private long _base;
    private long _highWater;
    private int _peak;      // the most bytes held since the array was rented
    private int _lastNeed;  // the capacity the last fill (rent to drain) needed

    public ByteRing(int maxCapacity) => _maxCapacity = (int)Math.Max(MinCapacity, System.Numerics.BitOperations.RoundUpToPowerOf2((uint)maxCapacity));

    public long Base => _base;

    public int AllocatedBytes => _buffer?.Length ?? 0;

    /// <summary>Writes bytes at an absolute offset; the caller guarantees Base &lt;= offset and end - Base &lt;= max capacity.</summary>
    public void Write(long offset, ReadOnlySpan<byte> data)
    {
        if (data.IsEmpty)
        {
            return;
        }
        var end = offset + data.Length;
        EnsureCapacity(end);
        var buffer = _buffer!;
        var mask = buffer.Length - 1;
        var index = (int)(offset & mask);
        var first = Math.Min(data.Length, buffer.Length - index);
        data[..first].CopyTo(buffer.AsSpan(index));
        if (first < data.Length)
        {
            data[first..].CopyTo(buffer);
        }
        if (end > _highWater)
        {
            _highWater = end;
            _peak = Math.Max(_peak, (int)(end - _base));
        }
    }

    /// <summary>Copies bytes at an absolute offset; the range must have been written.</summary>
    public void Read(long offset, Span<byte> destination)
    {
        if (destination.IsEmpty)
        {
            return;
        }
        var buffer = _buffer!;
        var mask = buffer.Length - 1;
        var index = (int)(offset & mask);
        var first = Math.Min(destination.Length, buffer.Length - index);
        buffer.AsSpan(index, first).CopyTo(destination);
        if (first < destination.Length)
        {
            buffer.AsSpan(0, destination.Length - first).CopyTo(destination[first..]);
        }
    }

    /// <summary>Forgets everything below <paramref name="newBase"/>; returns the array when nothing is left.</summary>
    public void Release(long newBase)
    {
        if (newBase <= _base)
        {
            return;
        }
        _base = newBase;
        if (_highWater < _base)
        {
            _highWater = _base;
        }
        if (_highWater == _base && _buffer is not null)
        {
            _lastNeed = _peak;
            ArrayPool<byte>.Shared.Return(_buffer);
            _buffer = null;
        }
    }

    /// <summary>Returns the pooled array (the ring may not be used for reading afterwards).</summary>
    public void Free()
    {
        if (_buffer is not null)
        {
            ArrayPool<byte>.Shared.Return(_buffer);
            _buffer = null;
        }
        _highWater = _base;
    }

    private void EnsureCapacity(long end)
    {
        var needed = end - _base;
        if (needed > _maxCapacity)
        {
            throw new InvalidOperationException("Ring buffer overflow.");
        }
        if (_buffer is not null && needed <= _buffer.Length)
        {
            return;
        }
        // An empty ring starts at what its last fill needed (its peak since that rent), not at the minimum.
        var wanted = _buffer is null ? Math.Max(needed, _lastNeed) : needed;
        var capacity = (int)Math.Min((ulong)_maxCapacity, Math.Max((ulong)MinCapacity, System.Numerics.BitOperations.RoundUpToPowerOf2((ulong)wanted)));
        if (_buffer is null)
        {
            _peak = (int)needed;
        }
        var grown = ArrayPool<byte>.Shared.Rent(capacity);
        // ArrayPool may hand out a larger array; the mask needs a power of two.
        if (!System.Numerics.BitOperations.IsPow2(grown.Length))
        {
            ArrayPool<byte>.Shared.Return(grown);
            grown = new byte[capacity];
        }
        if (_buffer is not null)
        {
            var live = (int)(_highWater - _base);
            if (live > 0)
            {
                var oldMask = _buffer.Length - 1;
                var newMask = grown.Length - 1;
                for (var done = 0; done < live;)
                {
                    var off = _base + done;
                    var oi = (int)(off & oldMask);
                    var ni = (int)(off & newMask);
                    var n = Math.Min(live - done, Math.Min(_buffer.Length - oi, grown.Length - ni));
                    _buffer.AsSpan(oi, n).CopyTo(grown.AsSpan(ni));
                    done += n;
                }
            }
            ArrayPool<byte>.Shared.Return(_buffer);
        }
        _buffer = grown;
    }
}
