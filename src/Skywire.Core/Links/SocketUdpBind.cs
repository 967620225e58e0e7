using System.Net;
using System.Net.Sockets;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace Skywire.Core.Links;

/// <summary>
/// The <see cref="IUdpBind"/> of a node: one unconnected UDP socket for every peer. On Linux (unless
/// <c>udpOffload</c> is false) it receives with UDP GRO and sends batches with UDP GSO (<see cref="UdpOffload"/>,
/// docs/protocol.md §3.4); elsewhere one datagram per call. One socket rather than one connected socket per peer
/// keeps addresses roaming-friendly (a connected socket per peer, 1.5x faster single sends in
/// reference/fast-io-dotnet.md, is not done).
/// </summary>
public sealed partial class SocketUdpBind : IUdpBind
{
    private readonly bool _udpOffload;
    private readonly int _socketBufferBytes;
    private readonly ILogger _logger;
    private Socket? _socket;
    private volatile bool _gso;
    private volatile bool _gsoWorked;
    private int _gsoRefusalsInARow;
    private bool _gro;
    private volatile bool _closed;

    /// <summary>GSO refusals in a row, with no GSO send taken in between, that turn GSO off after it had worked.</summary>
    internal const int GsoRefusalsBeforeOff = 256;

    /// <summary>Creates an unbound bind.</summary>
    /// <param name="udpOffload">Use UDP GSO/GRO when the kernel has them.</param>
    /// <param name="socketBufferBytes">SO_RCVBUF / SO_SNDBUF request (the kernel may cap it).</param>
    /// <param name="logger">Where the loss of GSO is logged.</param>
    public SocketUdpBind(bool udpOffload = true, int socketBufferBytes = 4 * 1024 * 1024, ILogger? logger = null)
    {
        _udpOffload = udpOffload;
        _socketBufferBytes = socketBufferBytes;
        _logger = logger ?? NullLogger.Instance;
    }

    /// <inheritdoc/>
    public IPEndPoint? LocalEndPoint { get; private set; }

    /// <inheritdoc/>
    public AddressFamily AddressFamily => _socket?.AddressFamily ?? AddressFamily.Unspecified;

    /// <inheritdoc/>
    public bool DualMode { get; private set; }

    /// <inheritdoc/>
    public bool GsoActive => _gso;

    /// <inheritdoc/>
    public bool GroActive => _gro;

    /// <inheritdoc/>
    public IPEndPoint Open(IPEndPoint endPoint)
    {
        ArgumentNullException.ThrowIfNull(endPoint);
        ObjectDisposedException.ThrowIf(_closed, this);
        if (_socket is not null)
        {
            throw new InvalidOperationException("The bind is already open.");
        }

        var socket = new Socket(endPoint.AddressFamily, SocketType.Dgram, ProtocolType.Udp);
        try
        {
            if (endPoint.AddressFamily == AddressFamily.InterNetworkV6 && endPoint.Address.Equals(IPAddress.IPv6Any))
            {
                socket.DualMode = true;
            }

            socket.ReceiveBufferSize = _socketBufferBytes;
            socket.SendBufferSize = _socketBufferBytes;
            socket.Bind(endPoint);
        }
        catch
        {
            socket.Dispose();
            throw;
        }

        DualMode = socket.DualMode;
        if (_udpOffload)
        {
            _gro = UdpOffload.TryEnableGro(socket);
            _gso = UdpOffload.ProbeGso(socket);
        }

        LocalEndPoint = (IPEndPoint)socket.LocalEndPoint!;
        _socket = socket;
        return LocalEndPoint;
    }

    /// <inheritdoc/>
    public bool TryReceive(Span<byte> buffer, SocketAddress from, out int length, out int segmentSize)
    {
        length = segmentSize = 0;
        var socket = _socket;
        while (socket is not null && !_closed)
        {
            try
            {
                if (_gro)
                {
                    // Up to 64 KiB of datagrams from one sender, each `segmentSize` bytes but a shorter last one.
                    length = UdpOffload.Receive(socket, buffer, from, out segmentSize);
                }
                else
                {
                    length = socket.ReceiveFrom(buffer, SocketFlags.None, from);
                    segmentSize = length;
                }
            }
            catch (SocketException ex) when (!_closed && ex.SocketErrorCode is SocketError.ConnectionReset or SocketError.MessageSize or SocketError.NetworkReset)
            {
                // ICMP errors surfacing on an unconnected socket (Windows) and oversized datagrams: not fatal.
                continue;
            }
            catch (SocketException) when (_closed)
            {
                return false;
            }
            catch (ObjectDisposedException)
            {
                return false;
            }

            // A receive woken by the shutdown in Dispose returns 0 bytes: the end, not a datagram.
            return !_closed;
        }

        return false;
    }

    /// <inheritdoc/>
    public bool Send(ReadOnlySpan<byte> datagram, SocketAddress to)
    {
        var socket = _socket;
        if (socket is null)
        {
            return false;
        }

        try
        {
            socket.SendTo(datagram, SocketFlags.None, to);
            return true;
        }
        catch (Exception ex) when (ex is SocketException or ObjectDisposedException)
        {
            return false;
        }
    }

    /// <inheritdoc/>
    public UdpBatchResult SendBatch(SocketAddress to, ReadOnlySpan<byte> slots, int stride, ReadOnlySpan<int> lengths)
    {
        var socket = _socket;
        if (socket is null)
        {
            return new UdpBatchResult(0, 0, Count(lengths), 0);
        }

        int sent = 0, failed = 0, batched = 0;
        long bytes = 0;
        var i = 0;
        while (i < lengths.Length)
        {
            var size = lengths[i];
            if (size == 0)
            {
                i++;
                continue;
            }

            // A run: equal sizes, plus at most one shorter last datagram, within the kernel's limits.
            var j = i + 1;
            var runBytes = size;
            if (_gso)
            {
                while (j < lengths.Length && j - i < UdpOffload.MaxSegments && lengths[j] == size && runBytes + size <= UdpOffload.MaxGsoBytes)
                {
                    runBytes += size;
                    j++;
                }

                if (j < lengths.Length && j - i < UdpOffload.MaxSegments && lengths[j] > 0 && lengths[j] < size && runBytes + lengths[j] <= UdpOffload.MaxGsoBytes)
                {
                    runBytes += lengths[j];
                    j++;
                }
            }

            if (j - i > 1)
            {
                var result = UdpOffload.SendSegments(socket, to, slots, stride, lengths, i, j - i, size);
                if (result == UdpOffload.SendResult.Sent)
                {
                    _gsoWorked = true;
                    _gsoRefusalsInARow = 0;
                    batched++;
                    sent += j - i;
                    bytes += runBytes;
                    i = j;
                    continue;
                }

                // The kernel refuses a GSO send with EINVAL both when it cannot segment at all and when the segment
                // size exceeds the path MTU towards this destination (a narrower link somewhere: the run is sent one by
                // one below, fragmented by the kernel). Once GSO has worked on this socket a refusal is taken for the
                // latter, so one narrow peer does not cost every other peer its batching; GSO is turned off only if
                // it never worked, or if it keeps being refused with no success in between.
                if (result == UdpOffload.SendResult.Unsupported && _gso && (!_gsoWorked || ++_gsoRefusalsInARow >= GsoRefusalsBeforeOff))
                {
                    _gso = false;
                    Log.GsoDisabled(_logger);
                }
            }

            // One by one: a single datagram, no GSO, or a GSO send that failed (nothing of it was sent).
            for (; i < j; i++)
            {
                if (lengths[i] == 0)
                {
                    continue;
                }

                if (Send(slots.Slice(i * stride, lengths[i]), to))
                {
                    sent++;
                    bytes += lengths[i];
                }
                else
                {
                    failed++;
                }
            }
        }

        return new UdpBatchResult(sent, bytes, failed, batched);
    }

    /// <summary>Closes the socket; a blocked <see cref="TryReceive"/> returns false.</summary>
    public void Dispose()
    {
        if (_closed)
        {
            return;
        }

        _closed = true;
        if (_socket is { } socket)
        {
            try
            {
                // Wakes a receive blocked in recvmsg (the GRO path), which a close alone does not.
                socket.Shutdown(SocketShutdown.Both);
            }
            catch (SocketException)
            {
                // ENOTCONN on an unconnected socket: the receiver is woken all the same.
            }

            socket.Dispose();
        }
    }

    private static int Count(ReadOnlySpan<int> lengths)
    {
        var n = 0;
        foreach (var length in lengths)
        {
            n += length > 0 ? 1 : 0;
        }

        return n;
    }

    private static partial class Log
    {
        [LoggerMessage(EventId = 1011, Level = LogLevel.Warning, Message = "UDP GSO send refused by the kernel or device; sending datagrams one by one from now on")]
        public static partial void GsoDisabled(ILogger logger);
    }
}
