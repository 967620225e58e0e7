namespace Skywire.Core.Links;

/// <summary>
/// Sliding-window replay filter over 64-bit packet counters (RFC 6479 style, as WireGuard):
/// a ring of 64-bit words; counters more than <see cref="WindowSize"/> behind the highest seen
/// are rejected, others are accepted once. Not thread-safe: one receive thread owns it.
/// </summary>
/// <remarks>
/// Use <see cref="IsAcceptable"/> before authenticating a packet (cheap rejection) and
/// <see cref="TryMark"/> only after its tag verified, so forged packets cannot move the window.
/// </remarks>
public sealed class ReplayWindow
{
    private const int Words = 32;
    private const int WordBits = 64;

    /// <summary>How far behind the highest counter a packet may arrive and still be accepted.</summary>
    public const int WindowSize = (Words - 1) * WordBits;

    private readonly ulong[] _bitmap = new ulong[Words];
    private ulong _highest;

    /// <summary>The highest counter marked so far (0 when none).</summary>
    public ulong Highest => _highest;

    /// <summary>False when <paramref name="counter"/> is too old or was already marked.</summary>
    public bool IsAcceptable(ulong counter)
    {
        if (counter > _highest)
        {
            return true;
        }

        if (_highest - counter >= WindowSize)
        {
            return false;
        }

        return (_bitmap[(int)((counter / WordBits) % Words)] & (1UL << (int)(counter % WordBits))) == 0;
    }

    /// <summary>Marks <paramref name="counter"/> as seen; false when it is too old or a duplicate.</summary>
    public bool TryMark(ulong counter)
    {
        if (!IsAcceptable(counter))
        {
            return false;
        }

        if (counter > _highest)
        {
            var current = _highest / WordBits;
            var next = counter / WordBits;
            var clear = Math.Min(next - current, Words);
            for (ulong i = 1; i <= clear; i++)
            {
                _bitmap[(int)((current + i) % Words)] = 0;
            }

            _highest = counter;
        }

        _bitmap[(int)((counter / WordBits) % Words)] |= 1UL << (int)(counter % WordBits);
        return true;
    }
}
