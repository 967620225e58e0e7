using System.Buffers;

namespace Skywire.Core.Streams;

/// <summary>Bytes moved by one relay, and how it ended.</summary>
/// <param name="BytesAToB">Bytes copied from the first stream to the second.</param>
/// <param name="BytesBToA">Bytes copied from the second stream to the first.</param>
/// <param name="Failure">Why the relay aborted both streams (the first error on either side, or the cancellation); null after a clean end.</param>
public readonly record struct StreamRelayResult(long BytesAToB, long BytesBToA, Exception? Failure)
{
    /// <summary>True when both directions ended cleanly and every byte was acknowledged.</summary>
    public bool Clean => Failure is null;
}

/// <summary>
/// The one bidirectional relay: copies two <see cref="DuplexStream"/>s into each other (an app's TCP connection and a
/// mesh stream in the node's app API; a SOCKS client's connection and a mesh stream; a mesh stream and a target
/// connection at the SOCKS exit) and propagates how each side ends to the other:
/// <list type="bullet">
/// <item>a clean end of one side's input becomes a half-close of the other side's output (FIN for FIN);</item>
/// <item>an error on either side (a reset, a failed session, a failed write) or the cancellation aborts both sides
/// (RST/RESET for RST/RESET), never a clean end: a broken stream is never passed on as a complete one;</item>
/// <item>end to end, a side that finished its writes first gets the other's end of stream only once its own bytes were
/// acknowledged (<see cref="DuplexStream.WhenWritesAcknowledgedAsync"/>), and when both directions are done the relay
/// waits for the acknowledgements before closing both sides gracefully, aborting them if that fails.</item>
/// </list>
/// The relay owns both streams: when it returns they are closed (gracefully after a clean end, aborted otherwise).
/// </summary>
public static class StreamRelay
{
    /// <summary>Buffer per direction (pooled).</summary>
    public const int BufferSize = 64 * 1024;

    /// <summary>
    /// How long the relay waits, once both directions ended cleanly, for the last bytes to be acknowledged before it
    /// gives up and aborts both sides (the apps have finished with the streams by then; a slow but live path drains a
    /// send buffer well within it).
    /// </summary>
    public static readonly TimeSpan DefaultLingerTimeout = TimeSpan.FromSeconds(60);

    /// <summary>Relays until both directions end or one side fails, or <paramref name="cancellationToken"/> fires (which aborts both).</summary>
    public static Task<StreamRelayResult> RunAsync(DuplexStream a, DuplexStream b, CancellationToken cancellationToken = default) =>
        RunAsync(a, b, DefaultLingerTimeout, cancellationToken);

    /// <inheritdoc cref="RunAsync(DuplexStream, DuplexStream, CancellationToken)"/>
    public static async Task<StreamRelayResult> RunAsync(DuplexStream a, DuplexStream b, TimeSpan lingerTimeout, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(a);
        ArgumentNullException.ThrowIfNull(b);
        using var relay = new Relay(a, b, cancellationToken);
        return await relay.RunAsync(lingerTimeout);
    }

    private sealed class Relay(DuplexStream a, DuplexStream b, CancellationToken cancellationToken) : IDisposable
    {
        private readonly CancellationTokenSource _failed = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        private readonly int[] _done = new int[2]; // [0]: a to b ended cleanly (b's writes completed), [1]: b to a
        private Exception? _failure;

        public async Task<StreamRelayResult> RunAsync(TimeSpan lingerTimeout)
        {
            var aToB = CopyAsync(a, b, direction: 0);
            var bToA = CopyAsync(b, a, direction: 1);
            var sentA = await aToB;
            var sentB = await bToA;
            if (Volatile.Read(ref _failure) is null)
            {
                try
                {
                    using var linger = CancellationTokenSource.CreateLinkedTokenSource(_failed.Token);
                    linger.CancelAfter(lingerTimeout);
                    await a.WhenWritesAcknowledgedAsync(linger.Token);
                    await b.WhenWritesAcknowledgedAsync(linger.Token);
                }
                catch (Exception ex)
                {
                    Fail(ex);
                }
            }

            // Graceful after a clean end; after a failure both are aborted already and this only releases them.
            await CloseQuietlyAsync(a);
            await CloseQuietlyAsync(b);
            return new StreamRelayResult(sentA, sentB, Volatile.Read(ref _failure));
        }

        private async Task<long> CopyAsync(DuplexStream from, DuplexStream to, int direction)
        {
            // Yield so that both directions start before either blocks the caller.
            await Task.Yield();
            var buffer = ArrayPool<byte>.Shared.Rent(BufferSize);
            long total = 0;
            try
            {
                while (true)
                {
                    var read = await from.ReadAsync(buffer, _failed.Token);
                    if (read == 0)
                    {
                        break;
                    }

                    await to.WriteAsync(buffer.AsMemory(0, read), _failed.Token);
                    total += read;
                }

                // The input ended cleanly. If the other direction is already over (we completed `from`'s writes), `to`
                // learns that the exchange is complete only once `from`'s far end acknowledged those writes.
                if (Volatile.Read(ref _done[1 - direction]) != 0)
                {
                    await from.WhenWritesAcknowledgedAsync(_failed.Token);
                }

                await to.CompleteWritesAsync(_failed.Token);
                Volatile.Write(ref _done[direction], 1);
            }
            catch (Exception ex)
            {
                Fail(ex);
            }
            finally
            {
                ArrayPool<byte>.Shared.Return(buffer);
            }

            return total;
        }

        private void Fail(Exception error)
        {
            if (Interlocked.CompareExchange(ref _failure, error, null) is not null)
            {
                return;
            }

            // Abort first: the peers learn at once, and operations that ignore cancellation are unblocked.
            a.Abort();
            b.Abort();
            _failed.Cancel();
        }

        private static async ValueTask CloseQuietlyAsync(DuplexStream stream)
        {
            try
            {
                await stream.DisposeAsync();
            }
            catch (Exception)
            {
                // Closing a stream that already failed may throw again; it is closed either way.
            }
        }

        public void Dispose() => _failed.Dispose();
    }
}
