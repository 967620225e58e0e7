using System.Net;

namespace Viscript.Signal.Internal;

/// <summary>Why a connection was not admitted.</summary>
internal enum AdmitResult
{
    Admitted = 0,
    ListenerFull = 10,
    AddressFull = 20,
    RemoteShareFull = 30,
}

/// <summary>
/// Connection caps of one listener: in total, per source address (loopback exempt, see
/// <see cref="SignalServerOptions.MaxConnectionsPerAddress"/>), and for all non-loopback sources together at most half
/// of the total, so that strangers on the network can never take the slots local apps need. Thread-safe; every
/// admitted connection is released once.
/// </summary>
internal sealed class ConnectionLimiter(int maxConnections, int maxPerAddress)
{
    private readonly Lock _gate = new();
    private readonly Dictionary<IPAddress, int> _perAddress = [];
    private int _total;
    private int _remote;

    public int MaxConnections { get; } = maxConnections;

    public int MaxPerAddress { get; } = maxPerAddress;

    /// <summary>Most connections from non-loopback sources together: half the listener cap (at least 1).</summary>
    public int MaxRemote => Math.Max(1, MaxConnections / 2);

    /// <summary>Connections held now.</summary>
    public int Count
    {
        get
        {
            lock (_gate)
            {
                return _total;
            }
        }
    }

    /// <summary>Counts the connection in when both caps allow it. <paramref name="address"/> null = loopback (not capped per address).</summary>
    public AdmitResult TryAdmit(IPAddress? address)
    {
        lock (_gate)
        {
            if (_total >= MaxConnections)
            {
                return AdmitResult.ListenerFull;
            }

            if (address is not null)
            {
                if (_remote >= MaxRemote)
                {
                    return AdmitResult.RemoteShareFull;
                }

                _perAddress.TryGetValue(address, out var count);
                if (count >= MaxPerAddress)
                {
                    return AdmitResult.AddressFull;
                }

                _perAddress[address] = count + 1;
                _remote++;
            }

            _total++;
            return AdmitResult.Admitted;
        }
    }

    /// <summary>Counts an admitted connection out.</summary>
    public void Release(IPAddress? address)
    {
        lock (_gate)
        {
            _total--;
            if (address is not null)
            {
                _remote--;
            }

            if (address is not null && _perAddress.TryGetValue(address, out var count))
            {
                if (count <= 1)
                {
                    _perAddress.Remove(address);
                }
                else
                {
                    _perAddress[address] = count - 1;
                }
            }
        }
    }
}

/// <summary>
/// Lets one report of a repeated event through per interval and counts the ones it held back, so that a flood of
/// refused connections or failed accepts costs one diagnostic line a second, not one per event.
/// </summary>
internal sealed class ReportThrottle(TimeProvider time, TimeSpan interval)
{
    private readonly Lock _gate = new();
    private long _lastReport = long.MinValue;
    private long _suppressed;

    /// <summary>Whether this occurrence should be reported; <paramref name="suppressed"/> = how many were held back since the last report.</summary>
    public bool ShouldReport(out long suppressed)
    {
        lock (_gate)
        {
            var now = time.GetTimestamp();
            if (_lastReport != long.MinValue && time.GetElapsedTime(_lastReport, now) < interval)
            {
                _suppressed++;
                suppressed = 0;
                return false;
            }

            suppressed = _suppressed;
            _suppressed = 0;
            _lastReport = now;
            return true;
        }
    }
}
