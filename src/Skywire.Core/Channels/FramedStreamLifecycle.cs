using System.Buffers;
using System.IO.Pipelines;
using Skywire.Protocol.Framing;

namespace Skywire.Core.Channels;

/// <summary>
/// The parts of a framed connection's life that the control channel (<see cref="FrameConnection"/>) and the
/// messenger link share: reading the first frame before the loops start, naming why a read loop ended, and
/// tearing the transport down once. Each connection keeps its own dispatch and write discipline.
/// </summary>
internal static class FramedStreamLifecycle
{
    /// <summary>Reads exactly one frame from <paramref name="reader"/> (the hello, before any loop runs).</summary>
    /// <exception cref="EndOfStreamException">The stream ended first.</exception>
    /// <exception cref="ProtocolViolationException">An oversized or malformed frame.</exception>
    public static async Task<(byte Opcode, uint RequestId, byte[] Payload)> ReadFirstFrameAsync(PipeReader reader, int maxFrameSize, CancellationToken cancellationToken)
    {
        while (true)
        {
            var result = await reader.ReadAsync(cancellationToken);
            var buffer = result.Buffer;
            if (FrameCodec.TryReadFrame(ref buffer, maxFrameSize, out var frame))
            {
                var copy = frame.Payload.ToArray();
                reader.AdvanceTo(buffer.Start);
                return (frame.Opcode, frame.RequestId, copy);
            }

            if (result.IsCompleted)
            {
                throw new EndOfStreamException("connection closed before the first frame");
            }

            reader.AdvanceTo(buffer.Start, buffer.End);
        }
    }

    /// <summary>
    /// Why a read loop that threw <paramref name="exception"/> ended, or false when the exception is not one of
    /// the ways a connection ends (a bug: let it surface).
    /// </summary>
    public static bool TryClassify(Exception exception, bool closedLocally, out ConnectionCloseReason reason, out string detail)
    {
        switch (exception)
        {
            case ProtocolViolationException:
                (reason, detail) = (ConnectionCloseReason.ProtocolViolation, exception.Message);
                return true;
            case OperationCanceledException when closedLocally:
                (reason, detail) = (ConnectionCloseReason.LocalClosed, "closed locally");
                return true;
            case IOException or System.Net.Sockets.SocketException or ObjectDisposedException:
                reason = exception.InnerException is ProtocolViolationException ? ConnectionCloseReason.ProtocolViolation : ConnectionCloseReason.TransportError;
                detail = exception.InnerException?.Message ?? exception.Message;
                return true;
            default:
                (reason, detail) = (ConnectionCloseReason.None, "");
                return false;
        }
    }

    /// <summary>The reason for a read loop that saw the end of the stream with <paramref name="pending"/> bytes unparsed.</summary>
    public static (ConnectionCloseReason Reason, string Detail) EndOfStream(long pending) => pending > 0
        ? (ConnectionCloseReason.ProtocolViolation, $"stream ended inside a frame ({pending} bytes pending)")
        : (ConnectionCloseReason.RemoteClosed, "peer closed the connection");

    /// <summary>
    /// Waits for a closed connection's loops to end. A loop ends by itself once the connection is torn down; one that
    /// ends with an exception other than the cancellation of its teardown is a bug: <paramref name="onFault"/> reports
    /// it (each loop's failure once), and the others are still awaited.
    /// </summary>
    public static async Task JoinAsync(Action<Exception> onFault, params Task?[] loops)
    {
        foreach (var loop in loops)
        {
            if (loop is null)
            {
                continue;
            }

            try
            {
                await loop;
            }
            catch (OperationCanceledException)
            {
                // Cancelled by the teardown: the way a loop stops.
            }
            catch (Exception ex)
            {
                onFault(ex);
            }
        }
    }

    /// <summary>Cancels the connection's token and disposes its stream, ignoring a second close.</summary>
    public static void Teardown(CancellationTokenSource cts, Stream stream)
    {
        try
        {
            cts.Cancel();
        }
        catch (ObjectDisposedException)
        {
        }

        try
        {
            stream.Dispose();
        }
        catch (Exception)
        {
            // Closing a broken transport may throw; the connection is over either way.
        }
    }
}
