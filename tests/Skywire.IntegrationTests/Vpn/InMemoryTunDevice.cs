using System.Collections.Concurrent;
using System.Threading.Channels;
using Skywire.Apps.Vpn.Tun;

namespace Skywire.IntegrationTests.Vpn;

/// <summary>
/// The in-memory double of a TUN device: <see cref="Inject"/> is the host routing a packet into the device (the VPN
/// reads it), <see cref="Written"/> collects what the VPN hands to the host.
/// </summary>
internal sealed class InMemoryTunDevice(string name) : ITunDevice
{
    private readonly ConcurrentQueue<byte[]> _toVpn = new();
    private readonly SemaphoreSlim _ready = new(0);
    private readonly Channel<byte[]> _written = Channel.CreateUnbounded<byte[]>();
    private int _disposed;
    private int _segmentedWrites;

    public string Name { get; } = name.Replace("%d", "0", StringComparison.Ordinal);

    public bool IsDisposed => Volatile.Read(ref _disposed) != 0;

    public ChannelReader<byte[]> Written => _written.Reader;

    /// <summary>Whether the device takes coalesced TCP super-packets (as a Linux TUN with IFF_VNET_HDR): the writer then holds TCP segments until its batch ends.</summary>
    public bool Offloads { get; init; }

    /// <summary>Super-packets written (each also in <see cref="Written"/>).</summary>
    public int SegmentedWrites => Volatile.Read(ref _segmentedWrites);

    public void Inject(byte[] packet)
    {
        _toVpn.Enqueue(packet);
        _ready.Release();
    }

    public bool WaitReadable(TimeSpan timeout)
    {
        if (IsDisposed)
        {
            return false;
        }

        if (!_toVpn.IsEmpty)
        {
            return true;
        }

        _ready.Wait(timeout);
        return !_toVpn.IsEmpty && !IsDisposed;
    }

    public int Read(Span<byte> packet)
    {
        if (IsDisposed || !_toVpn.TryDequeue(out var next))
        {
            return 0;
        }

        next.CopyTo(packet);
        return next.Length;
    }

    public void Write(ReadOnlySpan<byte> packet)
    {
        ObjectDisposedException.ThrowIf(IsDisposed, this);
        _written.Writer.TryWrite(packet.ToArray());
    }

    public void WriteSegmented(ReadOnlySpan<byte> packet, VirtioNetHeader header)
    {
        ObjectDisposedException.ThrowIf(IsDisposed, this);
        Interlocked.Increment(ref _segmentedWrites);
        _written.Writer.TryWrite(packet.ToArray());
    }

    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) == 0)
        {
            _written.Writer.TryComplete();
        }
    }
}
