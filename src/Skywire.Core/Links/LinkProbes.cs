namespace Skywire.Core.Links;

/// <summary>
/// RTT and loss probes of one link (docs/protocol.md §3.3): which probes left when, which were answered,
/// and the smoothed RTT. Used under the link's gate.
/// </summary>
internal sealed class LinkProbes
{
    /// <summary>Largest probe window (<c>DataPlaneOptions.ProbeWindow</c>).</summary>
    public const int MaxWindow = 64;

    private readonly long[] _sentAt = new long[MaxWindow];
    private readonly uint[] _ids = new uint[MaxWindow];
    private readonly bool[] _answered = new bool[MaxWindow];
    private uint _nextId;

    /// <summary>TimeProvider timestamp of the next probe.</summary>
    public long NextAt;

    /// <summary>Smoothed RTT (EWMA, gain 1/8), null before the first reply.</summary>
    public double? SrttSeconds { get; private set; }

    /// <summary>The latest probe round trip.</summary>
    public double? LastRttSeconds { get; private set; }

    /// <summary>Records a probe leaving at <paramref name="now"/>; returns its id.</summary>
    public uint Record(long now, int window)
    {
        var id = ++_nextId;
        var slot = (int)(id % (uint)window);
        _ids[slot] = id;
        _sentAt[slot] = now;
        _answered[slot] = false;
        return id;
    }

    /// <summary>A reply to probe <paramref name="id"/> arrived: measures its round trip (a duplicate or unknown id is ignored).</summary>
    public void OnReply(uint id, int window, TimeProvider time)
    {
        var slot = (int)(id % (uint)window);
        if (_ids[slot] != id || _answered[slot] || _sentAt[slot] == 0)
        {
            return;
        }

        _answered[slot] = true;
        var rtt = time.GetElapsedTime(_sentAt[slot]).TotalSeconds;
        LastRttSeconds = rtt;
        SrttSeconds = SrttSeconds is { } s ? (s * 7 + rtt) / 8 : rtt;
    }

    /// <summary>Fraction of probes in the window, old enough to judge, that got no reply.</summary>
    public double Loss(long now, int window, TimeSpan timeout, TimeProvider time)
    {
        int judged = 0, lost = 0;
        for (var i = 0; i < window; i++)
        {
            if (_sentAt[i] == 0)
            {
                continue;
            }

            if (_answered[i])
            {
                judged++;
            }
            else if (time.GetElapsedTime(_sentAt[i], now) > timeout)
            {
                judged++;
                lost++;
            }
        }

        return judged == 0 ? 0 : (double)lost / judged;
    }

    /// <summary>Forgets every probe and the RTT (the keys were dropped).</summary>
    public void Reset()
    {
        Array.Clear(_sentAt);
        Array.Clear(_answered);
        SrttSeconds = null;
        LastRttSeconds = null;
    }
}
