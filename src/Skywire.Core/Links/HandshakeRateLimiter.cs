using System.Net;
using System.Net.Sockets;

namespace Skywire.Core.Links;

/// <summary>
/// Per-source limit on the handshakes a node under load works on (wireguard-go's ratelimiter): a token bucket per
/// IP address, 20 inits per second with a burst of 5. It runs after the cookie check, so only addresses that proved
/// themselves (mac2) get an entry: a flood from one real address, valid inits or one init replayed (each costs the
/// responder two DH before its timestamp can be judged), then costs at most 20 handshakes a second, and the
/// receive thread stays free for traffic. The table is bounded; entries idle for a second are dropped. Receive
/// thread only.
/// </summary>
internal sealed class HandshakeRateLimiter
{
    /// <summary>Inits per second per source address.</summary>
    public const int PerSecond = 20;

    /// <summary>Inits a quiet address may send at once.</summary>
    public const int Burst = 5;

    /// <summary>Most addresses tracked; beyond it (after dropping idle ones) a new address is refused until the next sweep.</summary>
    public const int MaxEntries = 4096;

    private readonly Dictionary<UInt128, Entry> _entries = [];
    private readonly TimeProvider _time;
    private readonly long _cost;
    private readonly long _maxTokens;
    private long _lastSweep;

    public HandshakeRateLimiter(TimeProvider time)
    {
        _time = time;
        _cost = time.TimestampFrequency / PerSecond;
        _maxTokens = _cost * Burst;
        _lastSweep = time.GetTimestamp();
    }

    /// <summary>Addresses tracked now.</summary>
    public int Count => _entries.Count;

    /// <summary>Takes a token for <paramref name="from"/>'s IP address; false when it has none left.</summary>
    public bool Allow(SocketAddress from)
    {
        var now = _time.GetTimestamp();
        if (now - _lastSweep >= _time.TimestampFrequency)
        {
            Sweep(now);
        }

        var key = KeyOf(from);
        if (!_entries.TryGetValue(key, out var entry))
        {
            if (_entries.Count >= MaxEntries)
            {
                Sweep(now);
                if (_entries.Count >= MaxEntries)
                {
                    return false;
                }
            }

            _entries[key] = new Entry { Tokens = _maxTokens - _cost, LastAt = now };
            return true;
        }

        entry.Tokens = Math.Min(_maxTokens, entry.Tokens + (now - entry.LastAt));
        entry.LastAt = now;
        if (entry.Tokens < _cost)
        {
            return false;
        }

        entry.Tokens -= _cost;
        return true;
    }

    /// <summary>Drops the entries idle for a second (their buckets are full again: nothing to remember).</summary>
    private void Sweep(long now)
    {
        _lastSweep = now;
        foreach (var (key, entry) in _entries)
        {
            if (now - entry.LastAt >= _time.TimestampFrequency)
            {
                _entries.Remove(key);
            }
        }
    }

    /// <summary>The IP address as 128 bits (IPv4 as IPv4-mapped IPv6), without the port: one bucket per host.</summary>
    private static UInt128 KeyOf(SocketAddress address)
    {
        Span<byte> bytes = stackalloc byte[16];
        var raw = address.Buffer.Span;
        if (address.Family == AddressFamily.InterNetwork && address.Size >= 8)
        {
            bytes[10] = 0xff;
            bytes[11] = 0xff;
            raw.Slice(4, 4).CopyTo(bytes[12..]); // sockaddr_in: family 2, port 2, address 4
        }
        else if (address.Family == AddressFamily.InterNetworkV6 && address.Size >= 24)
        {
            raw.Slice(8, 16).CopyTo(bytes); // sockaddr_in6: family 2, port 2, flow info 4, address 16
        }
        else
        {
            var n = Math.Min(16, address.Size);
            raw[..n].CopyTo(bytes);
        }

        return new UInt128(BitConverter.ToUInt64(bytes), BitConverter.ToUInt64(bytes[8..]));
    }

    private sealed class Entry
    {
        public long Tokens;
        public long LastAt;
    }
}
