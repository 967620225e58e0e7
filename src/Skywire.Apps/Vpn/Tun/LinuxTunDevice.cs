using System.Runtime.InteropServices;
using System.Runtime.Versioning;
using System.Text;

namespace Skywire.Apps.Vpn.Tun;

/// <summary>
/// A Linux TUN device opened through <c>/dev/net/tun</c> (open + TUNSETIFF with IFF_TUN | IFF_NO_PI; see
/// docs/vpn.md). The descriptor is non-blocking: <see cref="WaitReadable"/> polls with a timeout, so a reader thread
/// notices <see cref="Dispose"/> without a signal. The device is not persistent: closing the descriptor deletes it,
/// with its addresses and routes, even when the process dies. Needs CAP_NET_ADMIN.
/// </summary>
/// <remarks>
/// With offloads (the default; docs/vpn.md "Fast path") the device is opened with IFF_VNET_HDR and TUNSETOFFLOAD
/// CSUM | TSO4 | TSO6: the host's TCP hands it segments of up to 64 KiB in one read, which <see cref="Read"/> cuts
/// into MTU-sized packets with full checksums (<see cref="TcpOffload"/>), and <see cref="WriteSegmented"/> takes
/// coalesced ones (<see cref="TunWriter"/>). Every read and write then carries a 10-byte <see cref="VirtioNetHeader"/>.
/// </remarks>
[SupportedOSPlatform("linux")]
public sealed partial class LinuxTunDevice : ITunDevice
{
    private const int ORdWr = 0x2, ONonBlock = 0x800, OCloExec = 0x80000;
    private const uint TunSetIff = 0x400454ca;
    private const uint TunSetOffload = 0x400454d0;
    private const short IffTun = 0x0001, IffNoPi = 0x1000, IffVnetHdr = 0x4000;
    private const uint TunFCsum = 0x01, TunFTso4 = 0x02, TunFTso6 = 0x04;
    private const int MaxFrame = VirtioNetHeader.Length + 65536 + 64;
    private const short PollIn = 0x1;
    private const int EAgain = 11, EIntr = 4;
    private const int IfNameSize = 16;

    private readonly bool _vnet;
    private readonly byte[]? _frame; // the last super-packet read (vnet header first), cut by Read
    private VirtioNetHeader _gso;
    private int _frameLength;
    private int _nextSegment;
    private int _segments;
    private long _dropped;
    private int _fd;
    private int _disposed;

    private LinuxTunDevice(int fd, string name, bool vnet, bool offloads)
    {
        _fd = fd;
        Name = name;
        _vnet = vnet;
        Offloads = offloads;
        _frame = vnet ? GC.AllocateArray<byte>(MaxFrame, pinned: true) : null;
    }

    /// <inheritdoc/>
    public string Name { get; }

    /// <inheritdoc/>
    public bool Offloads { get; }

    /// <summary>Frames read that were not packets the kernel makes (dropped).</summary>
    public long Dropped => Interlocked.Read(ref _dropped);

    /// <summary>
    /// Creates the device <paramref name="name"/> (at most 15 bytes; a <c>%d</c> in it lets the kernel pick a number).
    /// </summary>
    /// <param name="name">The device name.</param>
    /// <param name="offloads">Open with IFF_VNET_HDR and TSO (falls back to plain packets when the kernel refuses).</param>
    /// <exception cref="IOException">No /dev/net/tun, no permission (CAP_NET_ADMIN), or the name is taken.</exception>
    public static unsafe LinuxTunDevice Open(string name, bool offloads = true)
    {
        ArgumentException.ThrowIfNullOrEmpty(name);
        var nameBytes = Encoding.ASCII.GetBytes(name);
        if (nameBytes.Length >= IfNameSize)
        {
            throw new ArgumentException($"interface name '{name}' is longer than 15 characters", nameof(name));
        }

        var fd = OpenFile("/dev/net/tun", ORdWr | ONonBlock | OCloExec);
        if (fd < 0)
        {
            throw new IOException($"cannot open /dev/net/tun: {Marshal.GetLastPInvokeErrorMessage()} (the VPN needs root or CAP_NET_ADMIN)");
        }

        var ifreq = stackalloc byte[40];
        new Span<byte>(ifreq, 40).Clear();
        nameBytes.CopyTo(new Span<byte>(ifreq, IfNameSize));
        *(short*)(ifreq + IfNameSize) = (short)(IffTun | IffNoPi | (offloads ? IffVnetHdr : 0));
        var vnet = offloads;
        var result = Ioctl(fd, TunSetIff, ifreq);
        if (result < 0 && offloads)
        {
            // A kernel without IFF_VNET_HDR: plain packets.
            vnet = false;
            *(short*)(ifreq + IfNameSize) = IffTun | IffNoPi;
            result = Ioctl(fd, TunSetIff, ifreq);
        }

        if (result < 0)
        {
            var error = Marshal.GetLastPInvokeErrorMessage();
            Close(fd);
            throw new IOException($"cannot create TUN device '{name}': {error}");
        }

        var actual = new Span<byte>(ifreq, IfNameSize);
        var end = actual.IndexOf((byte)0);
        var tso = vnet && IoctlValue(fd, TunSetOffload, TunFCsum | TunFTso4 | TunFTso6) == 0;
        return new LinuxTunDevice(fd, Encoding.ASCII.GetString(end < 0 ? actual : actual[..end]), vnet, tso);
    }

    /// <inheritdoc/>
    public unsafe bool WaitReadable(TimeSpan timeout)
    {
        var fd = Volatile.Read(ref _fd);
        if (fd < 0)
        {
            return false;
        }

        if (_nextSegment < _segments)
        {
            return true;
        }

        var poll = new PollFd { Fd = fd, Events = PollIn };
        var result = Poll(&poll, 1, (int)Math.Clamp(timeout.TotalMilliseconds, 0, int.MaxValue));
        return result > 0 && (poll.REvents & PollIn) != 0 && Volatile.Read(ref _fd) >= 0;
    }

    /// <inheritdoc/>
    public unsafe int Read(Span<byte> packet)
    {
        var fd = Volatile.Read(ref _fd);
        if (fd < 0)
        {
            return 0;
        }

        if (_vnet)
        {
            return ReadVnet(fd, packet);
        }

        nint n;
        fixed (byte* p = packet)
        {
            n = ReadFile(fd, p, (nuint)packet.Length);
        }

        if (n >= 0)
        {
            return (int)n;
        }

        var errno = Marshal.GetLastPInvokeError();
        return errno is EAgain or EIntr || Volatile.Read(ref _fd) < 0 ? 0 : throw new IOException($"TUN read on {Name} failed: {Marshal.GetLastPInvokeErrorMessage()}");
    }

    // Reads with the vnet header: a plain packet (its partial checksum completed), or the next segment of a super-packet.
    private unsafe int ReadVnet(int fd, Span<byte> packet)
    {
        var frame = _frame!;
        while (true)
        {
            if (_nextSegment < _segments)
            {
                var length = TcpOffload.Segment(_gso, frame.AsSpan(VirtioNetHeader.Length, _frameLength - VirtioNetHeader.Length), _nextSegment, _segments, packet);
                _nextSegment++;
                if (length > 0)
                {
                    return length;
                }

                Interlocked.Increment(ref _dropped);
                continue;
            }

            nint n;
            fixed (byte* p = frame)
            {
                n = ReadFile(fd, p, (nuint)frame.Length);
            }

            if (n < 0)
            {
                var errno = Marshal.GetLastPInvokeError();
                return errno is EAgain or EIntr || Volatile.Read(ref _fd) < 0 ? 0 : throw new IOException($"TUN read on {Name} failed: {Marshal.GetLastPInvokeErrorMessage()}");
            }

            if (n <= VirtioNetHeader.Length)
            {
                return 0;
            }

            var header = VirtioNetHeader.Read(frame);
            var ip = frame.AsSpan(VirtioNetHeader.Length, (int)n - VirtioNetHeader.Length);
            switch (header.GsoType & ~VirtioNetHeader.GsoEcn)
            {
                case VirtioNetHeader.GsoNone:
                    if (ip.Length > packet.Length || ((header.Flags & VirtioNetHeader.NeedsChecksum) != 0
                        && !TcpOffload.CompleteChecksum(ip, header.ChecksumStart, header.ChecksumOffset)))
                    {
                        Interlocked.Increment(ref _dropped);
                        continue;
                    }

                    ip.CopyTo(packet);
                    return ip.Length;
                case VirtioNetHeader.GsoTcpV4 or VirtioNetHeader.GsoTcpV6:
                    _segments = TcpOffload.SegmentCount(header, ip);
                    _nextSegment = 0;
                    _gso = header;
                    _frameLength = (int)n;
                    if (_segments == 0)
                    {
                        Interlocked.Increment(ref _dropped);
                    }

                    continue;
                default:
                    Interlocked.Increment(ref _dropped);
                    continue;
            }
        }
    }

    /// <inheritdoc/>
    public void Write(ReadOnlySpan<byte> packet) => WriteFrame(default, packet);

    /// <inheritdoc/>
    public void WriteSegmented(ReadOnlySpan<byte> packet, VirtioNetHeader header)
    {
        if (!Offloads)
        {
            throw new NotSupportedException($"TUN device {Name} takes no segmentation offloads");
        }

        WriteFrame(header, packet);
    }

    private unsafe void WriteFrame(VirtioNetHeader header, ReadOnlySpan<byte> packet)
    {
        var fd = Volatile.Read(ref _fd);
        ObjectDisposedException.ThrowIf(fd < 0, this);
        nint n;
        fixed (byte* p = packet)
        {
            if (_vnet)
            {
                var prefix = stackalloc byte[VirtioNetHeader.Length];
                header.Write(new Span<byte>(prefix, VirtioNetHeader.Length));
                var vectors = stackalloc IoVec[2];
                vectors[0] = new IoVec { Base = prefix, Length = VirtioNetHeader.Length };
                vectors[1] = new IoVec { Base = p, Length = (nuint)packet.Length };
                n = WriteVector(fd, vectors, 2);
            }
            else
            {
                n = WriteFile(fd, p, (nuint)packet.Length);
            }
        }

        if (n < 0 && Marshal.GetLastPInvokeError() is not (EAgain or EIntr))
        {
            // EINVAL and friends: the kernel refused this one packet (not a valid IP packet); the device goes on.
            throw new IOException($"TUN write on {Name} failed: {Marshal.GetLastPInvokeErrorMessage()}");
        }
    }

    /// <summary>Closes the descriptor, which deletes the device.</summary>
    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            return;
        }

        var fd = Interlocked.Exchange(ref _fd, -1);
        if (fd >= 0)
        {
            Close(fd);
        }
    }

    [StructLayout(LayoutKind.Sequential)]
    private unsafe struct IoVec
    {
        public byte* Base;
        public nuint Length;
    }

    [StructLayout(LayoutKind.Sequential)]
    private struct PollFd
    {
        public int Fd;
        public short Events;
        public short REvents;
    }

    [LibraryImport("libc", EntryPoint = "open", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial int OpenFile(string path, int flags);

    [LibraryImport("libc", EntryPoint = "ioctl", SetLastError = true)]
    private static unsafe partial int Ioctl(int fd, nuint request, byte* argument);

    [LibraryImport("libc", EntryPoint = "ioctl", SetLastError = true)]
    private static partial int IoctlValue(int fd, nuint request, nuint argument);

    [LibraryImport("libc", EntryPoint = "writev", SetLastError = true)]
    private static unsafe partial nint WriteVector(int fd, IoVec* vectors, int count);

    [LibraryImport("libc", EntryPoint = "read", SetLastError = true)]
    private static unsafe partial nint ReadFile(int fd, byte* buffer, nuint count);

    [LibraryImport("libc", EntryPoint = "write", SetLastError = true)]
    private static unsafe partial nint WriteFile(int fd, byte* buffer, nuint count);

    [LibraryImport("libc", EntryPoint = "poll", SetLastError = true)]
    private static unsafe partial int Poll(PollFd* fds, nuint count, int timeout);

    [LibraryImport("libc", EntryPoint = "close", SetLastError = true)]
    private static partial int Close(int fd);
}
