using Microsoft.Extensions.Logging;
using Skywire.Apps.Vpn.Packets;
using Skywire.Apps.Vpn.Tun;

namespace Skywire.Apps.Vpn;

/// <summary>
/// The dedicated thread that reads the TUN device: it takes every packet that is ready (up to a batch), picks its peer,
/// gathers each peer's packets into one record batch, and sends each batch in one write. Never one write per packet
/// under load; nothing allocated per packet.
/// </summary>
internal sealed class TunReader : IDisposable
{
    private const int MaxBatch = 64;
    private static readonly TimeSpan PollInterval = TimeSpan.FromMilliseconds(250);

    private readonly ITunDevice _tun;
    private readonly Func<ReadOnlySpan<byte>, VpnPeer?> _route;
    private readonly VpnStatistics _statistics;
    private readonly ILogger _logger;
    private readonly Thread _thread;
    private volatile bool _stopping;

    // route: the peer a packet goes to (by destination), or null to drop it (counted).
    public TunReader(ITunDevice tun, Func<ReadOnlySpan<byte>, VpnPeer?> route, VpnStatistics statistics, ILogger logger)
    {
        _tun = tun;
        _route = route;
        _statistics = statistics;
        _logger = logger;
        _thread = new Thread(Run) { IsBackground = true, Name = "vpn-tun " + tun.Name };
    }

    public void Start() => _thread.Start();

    private void Run()
    {
        var buffer = GC.AllocateArray<byte>(65536, pinned: true);
        var dirty = new List<VpnPeer>(16);
        while (!_stopping)
        {
            if (!_tun.WaitReadable(PollInterval))
            {
                continue;
            }

            for (var i = 0; i < MaxBatch && !_stopping; i++)
            {
                int n;
                try
                {
                    n = _tun.Read(buffer);
                }
                catch (IOException ex)
                {
                    VpnLog.TunReadFailed(_logger, _tun.Name, ex.Message);
                    break;
                }

                if (n == 0)
                {
                    break;
                }

                var packet = buffer.AsSpan(0, n);
                if (IpPacket.Validate(packet) == 0)
                {
                    Interlocked.Increment(ref _statistics._malformed);
                    continue;
                }

                var peer = _route(packet);
                if (peer is null || packet.Length > peer.MaxPacket)
                {
                    Interlocked.Increment(ref _statistics._noPeer);
                    continue;
                }

                if (!peer.TryAdd(packet))
                {
                    peer.Flush();
                    peer.TryAdd(packet);
                }

                if (!peer.Dirty)
                {
                    peer.Dirty = true;
                    dirty.Add(peer);
                }
            }

            foreach (var peer in dirty)
            {
                peer.Flush();
                peer.Dirty = false;
            }

            dirty.Clear();
        }
    }

    /// <summary>Stops the thread (within one poll interval) and waits for it.</summary>
    public void Dispose()
    {
        _stopping = true;
        if (_thread.IsAlive)
        {
            _thread.Join();
        }
    }
}
