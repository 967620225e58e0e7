using System.Net;
using System.Net.Sockets;

namespace Skywire.Core.Links;

/// <summary>
/// The UDP side of a data plane (wireguard-go's <c>conn.Bind</c>): one bound endpoint that receives datagrams,
/// possibly in batches, and sends them, possibly in batches. <see cref="SocketUdpBind"/> is the real one (a
/// socket, with UDP GSO/GRO on Linux); tests use an in-memory double (the TestKit's <c>InMemoryUdpNetwork</c>).
/// </summary>
/// <remarks>
/// Contract:
/// <list type="bullet">
/// <item><see cref="Open"/> binds once; port 0 picks a free port, and the address actually bound is returned.</item>
/// <item><see cref="TryReceive"/> blocks until a datagram (or a batch) arrives and returns false once the bind is
/// closed: <see cref="IDisposable.Dispose"/> makes a blocked receive return. One thread receives.</item>
/// <item>Sends never block for long and never throw for network reasons: a datagram that cannot be sent is
/// reported (false, or counted in <see cref="UdpBatchResult.Failed"/>) and lost, as UDP loses datagrams.
/// Sends may come from any thread, before <see cref="Open"/> (they fail) and after closing (they fail).</item>
/// <item>A batch is packets laid out at a fixed stride in one buffer; each is a datagram of its own on the wire.</item>
/// </list>
/// </remarks>
public interface IUdpBind : IDisposable
{
    /// <summary>Binds to <paramref name="endPoint"/> (port 0: any free port) and returns the address bound.</summary>
    /// <exception cref="InvalidOperationException">Already open, or closed.</exception>
    /// <exception cref="SocketException">The address cannot be bound.</exception>
    IPEndPoint Open(IPEndPoint endPoint);

    /// <summary>The bound address (null before <see cref="Open"/>).</summary>
    IPEndPoint? LocalEndPoint { get; }

    /// <summary>The address family of the bound address.</summary>
    AddressFamily AddressFamily { get; }

    /// <summary>True when an IPv6 bind also sends to and receives from IPv4 (as IPv4-mapped addresses).</summary>
    bool DualMode { get; }

    /// <summary>True while batches leave in one system call each (UDP GSO); may turn false when the kernel refuses one.</summary>
    bool GsoActive { get; }

    /// <summary>True when receives return batches (UDP GRO).</summary>
    bool GroActive { get; }

    /// <summary>
    /// Receives the next datagram, or batch of datagrams from one sender, into <paramref name="buffer"/>: the
    /// datagrams lie back to back, each <paramref name="segmentSize"/> bytes long but a shorter last one
    /// (<paramref name="segmentSize"/> equals <paramref name="length"/> for a single datagram). The sender's
    /// address is written into <paramref name="from"/>. Blocks; false when the bind was closed.
    /// </summary>
    /// <exception cref="SocketException">The receive failed for good (the bind is unusable).</exception>
    bool TryReceive(Span<byte> buffer, SocketAddress from, out int length, out int segmentSize);

    /// <summary>Sends one datagram; false when it could not be sent.</summary>
    bool Send(ReadOnlySpan<byte> datagram, SocketAddress to);

    /// <summary>
    /// Sends the datagrams <c>slots[(i * stride)..][..lengths[i]]</c> to <paramref name="to"/> in order (a length of
    /// 0 skips that slot), runs of equal size in one system call each when <see cref="GsoActive"/>.
    /// </summary>
    UdpBatchResult SendBatch(SocketAddress to, ReadOnlySpan<byte> slots, int stride, ReadOnlySpan<int> lengths);
}

/// <summary>What <see cref="IUdpBind.SendBatch"/> did.</summary>
/// <param name="Sent">Datagrams sent.</param>
/// <param name="Bytes">Their bytes.</param>
/// <param name="Failed">Datagrams that could not be sent (lost).</param>
/// <param name="BatchedCalls">System calls that sent more than one datagram (UDP GSO).</param>
public readonly record struct UdpBatchResult(int Sent, long Bytes, int Failed, int BatchedCalls);
