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
    private const int MaxBatch = 256; // a TSO super-packet alone makes about 45
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
        var icmp = new byte[IcmpTooBig.MaxLength];
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
                if (peer is null)
                {
                    Interlocked.Increment(ref _statistics._noPeer);
                    continue;
                }

                if (packet.Length > peer.Mtu)
                {
                    AnswerTooBig(packet, peer.Mtu, icmp);
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

    // A packet larger than the peer's path: ICMP "too big" back to its sender (through the TUN), so it sends smaller.
    private void AnswerTooBig(ReadOnlySpan<byte> packet, int mtu, byte[] icmp)
    {
        Interlocked.Increment(ref _statistics._tooBig);
        var length = IcmpTooBig.Write(packet, mtu, icmp);
        if (length == 0)
        {
            return;
        }

        try
        {
            _tun.Write(icmp.AsSpan(0, length));
        }
        catch (Exception ex) when (ex is IOException or ObjectDisposedException)
        {
            Interlocked.Increment(ref _statistics._tunErrors);
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
