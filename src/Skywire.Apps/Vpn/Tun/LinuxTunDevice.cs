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
[SupportedOSPlatform("linux")]
public sealed partial class LinuxTunDevice : ITunDevice
{
    private const int ORdWr = 0x2, ONonBlock = 0x800, OCloExec = 0x80000;
    private const uint TunSetIff = 0x400454ca;
    private const short IffTun = 0x0001, IffNoPi = 0x1000;
    private const short PollIn = 0x1;
    private const int EAgain = 11, EIntr = 4;
    private const int IfNameSize = 16;

    private int _fd;
    private int _disposed;

    private LinuxTunDevice(int fd, string name)
    {
        _fd = fd;
        Name = name;
    }

    /// <inheritdoc/>
    public string Name { get; }

    /// <summary>
    /// Creates the device <paramref name="name"/> (at most 15 bytes; a <c>%d</c> in it lets the kernel pick a number).
    /// </summary>
    /// <exception cref="IOException">No /dev/net/tun, no permission (CAP_NET_ADMIN), or the name is taken.</exception>
    public static unsafe LinuxTunDevice Open(string name)
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
        *(short*)(ifreq + IfNameSize) = IffTun | IffNoPi;
        if (Ioctl(fd, TunSetIff, ifreq) < 0)
        {
            var error = Marshal.GetLastPInvokeErrorMessage();
            Close(fd);
            throw new IOException($"cannot create TUN device '{name}': {error}");
        }

        var actual = new Span<byte>(ifreq, IfNameSize);
        var end = actual.IndexOf((byte)0);
        return new LinuxTunDevice(fd, Encoding.ASCII.GetString(end < 0 ? actual : actual[..end]));
    }

    /// <inheritdoc/>
    public unsafe bool WaitReadable(TimeSpan timeout)
    {
        var fd = Volatile.Read(ref _fd);
        if (fd < 0)
        {
            return false;
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

    /// <inheritdoc/>
    public unsafe void Write(ReadOnlySpan<byte> packet)
    {
        var fd = Volatile.Read(ref _fd);
        ObjectDisposedException.ThrowIf(fd < 0, this);
        nint n;
        fixed (byte* p = packet)
        {
            n = WriteFile(fd, p, (nuint)packet.Length);
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

    [LibraryImport("libc", EntryPoint = "read", SetLastError = true)]
    private static unsafe partial nint ReadFile(int fd, byte* buffer, nuint count);

    [LibraryImport("libc", EntryPoint = "write", SetLastError = true)]
    private static unsafe partial nint WriteFile(int fd, byte* buffer, nuint count);

    [LibraryImport("libc", EntryPoint = "poll", SetLastError = true)]
    private static unsafe partial int Poll(PollFd* fds, nuint count, int timeout);

    [LibraryImport("libc", EntryPoint = "close", SetLastError = true)]
    private static partial int Close(int fd);
}
