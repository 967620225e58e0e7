using Skywire.Core.Sessions.Mux;

namespace Skywire.Core.Sessions;

/// <summary>
/// An unreliable datagram path between two end points (for example an end-to-end secure session over a route).
/// The stream multiplexer (<see cref="StreamMultiplexer"/>) runs on top of it.
/// </summary>
/// <remarks>
/// The transport may drop, duplicate and reorder datagrams. Datagrams that arrive from the peer are handed to
/// <see cref="StreamMultiplexer.Receive(ReadOnlySpan{byte})"/> by whoever owns the transport.
/// </remarks>
public interface IDatagramTransport
{
    /// <summary>Largest payload, in bytes, that the multiplexer may put in one datagram.</summary>
    int MaxDatagramSize { get; }

    /// <summary>
    /// Sends one datagram. Unreliable: it may be dropped, duplicated or reordered. Must not block for long; the
    /// span is only valid for the duration of the call.
    /// </summary>
    void Send(ReadOnlySpan<byte> datagram);

    /// <summary>
    /// Sends <paramref name="count"/> datagrams, <c>buffers[i][..lengths[i]]</c>, in order, with the semantics of
    /// <see cref="Send"/> for each. A transport that can hand a batch to the kernel at once (UDP GSO) overrides
    /// this; the default sends one by one.
    /// </summary>
    void SendBatch(byte[][] buffers, int[] lengths, int count)
    {
        ArgumentNullException.ThrowIfNull(buffers);
        ArgumentNullException.ThrowIfNull(lengths);
        for (var i = 0; i < count; i++)
        {
            Send(buffers[i].AsSpan(0, lengths[i]));
        }
    }
}
