using System.Net;
using System.Net.Sockets;
using System.Runtime.InteropServices;

namespace Skywire.Core.Links;

/// <summary>
/// Linux UDP segmentation offloads for the link socket: GSO on send (one <c>sendmsg</c> with a
/// <c>UDP_SEGMENT</c> control message carries up to 64 equal-size datagrams, cut by the kernel) and
/// GRO on receive (<c>UDP_GRO</c>: one <c>recvmsg</c> returns up to 64 KiB of datagrams from one
/// sender, all of the size given in a control message except a shorter last one). The kernel then
/// walks its UDP stack once per batch instead of once per datagram. Nothing changes on the wire: a
/// peer without GRO receives the same datagrams one by one.
/// </summary>
/// <remarks>
/// .NET has no API for either (dotnet/runtime#101036), so both calls are P/Invoked on the socket's
/// descriptor (64-bit Linux layouts of <c>msghdr</c>, <c>iovec</c> and <c>cmsghdr</c>). Everything
/// here is best effort: <see cref="IsSupported"/> is false elsewhere, and callers fall back to
/// <see cref="Socket.SendTo(ReadOnlySpan{byte}, SocketFlags, SocketAddress)"/> and
/// <see cref="Socket.ReceiveFrom(Span{byte}, SocketFlags, SocketAddress)"/>.
/// </remarks>
internal static unsafe partial class UdpOffload
{
    /// <summary>Most datagrams in one GSO send (the kernel's UDP_MAX_SEGMENTS is 64, later 128).</summary>
    public const int MaxSegments = 64;

    /// <summary>Most bytes in one GSO send (the largest UDP payload over IPv4).</summary>
    public const int MaxGsoBytes = 65507;

    private const int SolUdp = 17;
    private const int UdpSegment = 103;
    private const int UdpGro = 104;
    private const int CmsgHeaderLength = 16; // cmsghdr: size_t len, int level, int type
    private const int ControlLength = 64;

    // errno values (Linux).
    private const int EINTR = 4;
    private const int EIO = 5;
    private const int EAGAIN = 11;
    private const int EINVAL = 22;
    private const int EMSGSIZE = 90;
    private const int EOPNOTSUPP = 95;

    /// <summary>64-bit Linux: the only layout the structures below describe.</summary>
    public static bool IsSupported { get; } = OperatingSystem.IsLinux() && Environment.Is64BitProcess;

    /// <summary>Asks the kernel to coalesce received datagrams (UDP_GRO). False when it refuses (kernel before 5.0).</summary>
    public static bool TryEnableGro(Socket socket)
    {
        if (!IsSupported)
        {
            return false;
        }

        try
        {
            socket.SetRawSocketOption(SolUdp, UdpGro, BitConverter.GetBytes(1));
            return true;
        }
        catch (SocketException)
        {
            return false;
        }
    }

    /// <summary>True when the kernel knows UDP_SEGMENT (Linux 4.18+): setting the socket default to 0 (off) succeeds.</summary>
    public static bool ProbeGso(Socket socket)
    {
        if (!IsSupported)
        {
            return false;
        }

        try
        {
            socket.SetRawSocketOption(SolUdp, UdpSegment, BitConverter.GetBytes(0));
            return true;
        }
        catch (SocketException)
        {
            return false;
        }
    }

    /// <summary>Outcome of <see cref="SendSegments"/>.</summary>
    public enum SendResult
    {
        /// <summary>The kernel took every datagram.</summary>
        Sent,

        /// <summary>Not sent: the device or kernel cannot segment (EIO, EINVAL, EOPNOTSUPP). Turn GSO off and send one by one.</summary>
        Unsupported,

        /// <summary>Not sent for another reason (buffer full on a non-blocking socket, ...): send these one by one.</summary>
        Failed,
    }

    /// <summary>
    /// Sends <paramref name="count"/> datagrams that lie at <paramref name="stride"/>-byte intervals in
    /// <paramref name="slots"/> from <paramref name="first"/>, with the lengths in <paramref name="lengths"/>,
    /// to <paramref name="to"/> in one <c>sendmsg</c> cut every <paramref name="segmentSize"/> bytes.
    /// Every datagram but the last must be exactly <paramref name="segmentSize"/> long, the last at most that;
    /// at most <see cref="MaxSegments"/> datagrams and <see cref="MaxGsoBytes"/> bytes.
    /// </summary>
    public static SendResult SendSegments(Socket socket, SocketAddress to, ReadOnlySpan<byte> slots, int stride, ReadOnlySpan<int> lengths, int first, int count, int segmentSize)
    {
        var iov = stackalloc IoVec[MaxSegments];
        var control = stackalloc byte[ControlLength];
        new Span<byte>(control, ControlLength).Clear();
        *(nuint*)control = CmsgHeaderLength + sizeof(ushort);
        *(int*)(control + 8) = SolUdp;
        *(int*)(control + 12) = UdpSegment;
        *(ushort*)(control + CmsgHeaderLength) = (ushort)segmentSize;

        var handle = socket.SafeHandle;
        var added = false;
        try
        {
            handle.DangerousAddRef(ref added);
            var fd = (int)handle.DangerousGetHandle();
            fixed (byte* name = to.Buffer.Span)
            fixed (byte* data = slots)
            {
                for (var i = 0; i < count; i++)
                {
                    iov[i].Base = data + ((first + i) * stride);
                    iov[i].Length = (nuint)lengths[first + i];
                }

                var msg = new MsgHdr
                {
                    Name = name,
                    NameLength = (uint)to.Size,
                    Iov = iov,
                    IovLength = (nuint)count,
                    Control = control,
                    ControlLength = CmsgHeaderLength + 8, // CMSG_SPACE(sizeof(u16))
                };
                while (true)
                {
                    if (SendMsg(fd, &msg, 0) >= 0)
                    {
                        return SendResult.Sent;
                    }

                    var errno = Marshal.GetLastPInvokeError();
                    if (errno == EINTR)
                    {
                        continue;
                    }

                    return errno is EIO or EINVAL or EOPNOTSUPP or EMSGSIZE ? SendResult.Unsupported : SendResult.Failed;
                }
            }
        }
        catch (ObjectDisposedException)
        {
            return SendResult.Failed;
        }
        finally
        {
            if (added)
            {
                handle.DangerousRelease();
            }
        }
    }

    /// <summary>
    /// Receives into <paramref name="buffer"/> (blocking) with the sender's address in <paramref name="from"/>.
    /// Returns the byte count (0 after a shutdown of the socket) and, in <paramref name="segmentSize"/>, the
    /// size of each coalesced datagram (the whole length when the kernel did not coalesce).
    /// </summary>
    /// <exception cref="SocketException">The receive failed.</exception>
    /// <exception cref="ObjectDisposedException">The socket was disposed.</exception>
    public static int Receive(Socket socket, Span<byte> buffer, SocketAddress from, out int segmentSize)
    {
        var control = stackalloc byte[ControlLength];
        var handle = socket.SafeHandle;
        var added = false;
        try
        {
            handle.DangerousAddRef(ref added);
            var fd = (int)handle.DangerousGetHandle();
            fixed (byte* name = from.Buffer.Span)
            fixed (byte* data = buffer)
            {
                while (true)
                {
                    var iov = new IoVec { Base = data, Length = (nuint)buffer.Length };
                    var msg = new MsgHdr
                    {
                        Name = name,
                        NameLength = (uint)from.Buffer.Length,
                        Iov = &iov,
                        IovLength = 1,
                        Control = control,
                        ControlLength = ControlLength,
                    };
                    var n = RecvMsg(fd, &msg, 0);
                    if (n < 0)
                    {
                        var errno = Marshal.GetLastPInvokeError();
                        if (errno == EINTR)
                        {
                            continue;
                        }

                        if (errno == EAGAIN)
                        {
                            // The descriptor is non-blocking (someone used an async call on it): wait for data.
                            socket.Poll(1_000_000, SelectMode.SelectRead);
                            continue;
                        }

                        throw new SocketException(errno == EMSGSIZE ? (int)SocketError.MessageSize : (int)SocketError.SocketError);
                    }

                    from.Size = (int)msg.NameLength;
                    segmentSize = (int)n;
                    var c = control;
                    var end = control + (int)msg.ControlLength;
                    while (c + CmsgHeaderLength <= end)
                    {
                        var length = (int)*(nuint*)c;
                        if (length < CmsgHeaderLength || c + length > end)
                        {
                            break;
                        }

                        if (*(int*)(c + 8) == SolUdp && *(int*)(c + 12) == UdpGro && length >= CmsgHeaderLength + sizeof(int))
                        {
                            var size = *(int*)(c + CmsgHeaderLength);
                            if (size > 0 && size < n)
                            {
                                segmentSize = size;
                            }
                        }

                        c += (length + 7) & ~7;
                    }

                    return (int)n;
                }
            }
        }
        finally
        {
            if (added)
            {
                handle.DangerousRelease();
            }
        }
    }

    [StructLayout(LayoutKind.Sequential)]
    private struct IoVec
    {
        public byte* Base;
        public nuint Length;
    }

    [StructLayout(LayoutKind.Sequential)]
    private struct MsgHdr
    {
        public byte* Name;
        public uint NameLength;
        public IoVec* Iov;
        public nuint IovLength;
        public byte* Control;
        public nuint ControlLength;
        public int Flags;
    }

    [LibraryImport("libc", EntryPoint = "sendmsg", SetLastError = true)]
    private static partial nint SendMsg(int fd, MsgHdr* msg, int flags);

    [LibraryImport("libc", EntryPoint = "recvmsg", SetLastError = true)]
    private static partial nint RecvMsg(int fd, MsgHdr* msg, int flags);
}
