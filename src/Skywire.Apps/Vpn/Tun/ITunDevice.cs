namespace Skywire.Apps.Vpn.Tun;

/// <summary>
/// A layer-3 virtual network device (TUN): IP packets the host routes into it come out of <see cref="Read"/>, and
/// packets given to <see cref="Write"/> enter the host's stack as if they arrived on it. One packet per call, no
/// packet-information header (IFF_NO_PI). <see cref="Read"/> is used by one thread; <see cref="Write"/> may be called
/// from several. Disposing removes the device (and with it its addresses and routes).
/// </summary>
/// <remarks>Linux: <see cref="LinuxTunDevice"/>. Tests use an in-memory double.</remarks>
public interface ITunDevice : IDisposable
{
    /// <summary>The interface name (e.g. <c>skyvpn0</c>).</summary>
    string Name { get; }

    /// <summary>Waits until a packet can be read or <paramref name="timeout"/> passes; false on timeout or after dispose.</summary>
    bool WaitReadable(TimeSpan timeout);

    /// <summary>Reads one packet without waiting: its length, or 0 when none is ready (or the device is closed).</summary>
    /// <exception cref="IOException">The device failed.</exception>
    int Read(Span<byte> packet);

    /// <summary>Hands one IP packet to the host.</summary>
    /// <exception cref="IOException">The device failed or refused the packet.</exception>
    void Write(ReadOnlySpan<byte> packet);

    /// <summary>
    /// True when the device takes coalesced TCP super-packets (<see cref="WriteSegmented"/>): a Linux TUN opened with
    /// IFF_VNET_HDR and TSO offloads. <see cref="Read"/> always returns ordinary packets (the device cuts what the
    /// kernel hands it in one piece).
    /// </summary>
    bool Offloads => false;

    /// <summary>
    /// Hands one coalesced TCP packet to the host (only when <see cref="Offloads"/>): its IP length covers all
    /// segments, <paramref name="header"/> says how the kernel cuts it (<see cref="TunWriter"/> builds both).
    /// </summary>
    /// <exception cref="IOException">The device failed or refused the packet.</exception>
    void WriteSegmented(ReadOnlySpan<byte> packet, VirtioNetHeader header) =>
        throw new NotSupportedException("this TUN device takes no segmentation offloads");
}
