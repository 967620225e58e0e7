using System.Buffers;
using System.Net.Sockets;

namespace Skywire.Apps.Socks;

/// <summary>A stream whose write side can be closed on its own (TCP FIN, mux stream end).</summary>
public interface IHalfCloseStream
{
    /// <summary>Signals end of data to the peer; reads keep working.</summary>
    ValueTask CompleteWritesAsync(CancellationToken cancellationToken = default);
}

/// <summary>Bytes moved by one relay, and whether both directions ended cleanly.</summary>
/// <param name="BytesAToB">Bytes copied from the first stream to the second.</param>
/// <param name="BytesBToA">Bytes copied from the second stream to the first.</param>
/// <param name="Clean">True when both directions reached end of stream without error.</param>
public readonly record struct SocksRelayResult(long BytesAToB, long BytesBToA, bool Clean);

/// <summary>
/// Copies two streams into each other with pooled 64 KiB buffers. When one direction reaches end
/// of stream, the write side of the other stream is closed (half-close) and the other direction
/// goes on; an error in either direction tears both down. The caller disposes the streams.
/// </summary>
public static class SocksRelay
{
    /// <summary>Relays until both directions end or one fails, or <paramref name="cancellationToken"/> fires.</summary>
    public static async Task<SocksRelayResult> RunAsync(Stream a, Stream b, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(a);
        ArgumentNullException.ThrowIfNull(b);
        using var failed = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        var aToB = CopyAsync(a, b, failed);
        var bToA = CopyAsync(b, a, failed);
        var (sentA, cleanA) = await aToB;
        var (sentB, cleanB) = await bToA;
        return new SocksRelayResult(sentA, sentB, cleanA && cleanB);
    }

    /// <summary>Closes the write side of <paramref name="stream"/> if it supports that; otherwise does nothing.</summary>
    public static async ValueTask CompleteWritesAsync(Stream stream, CancellationToken cancellationToken = default)
    {
        switch (stream)
        {
            case NetworkStream network:
                network.Socket.Shutdown(SocketShutdown.Send);
                break;
            case Core.Sdk.SkywireStream mesh:
                mesh.CompleteWrites();
                break;
            case IHalfCloseStream halfClose:
                await halfClose.CompleteWritesAsync(cancellationToken);
                break;
        }
    }

    private static async Task<(long Bytes, bool Clean)> CopyAsync(Stream from, Stream to, CancellationTokenSource failed)
    {
        // Yield so that both directions start before either blocks the caller.
        await Task.Yield();
        var buffer = ArrayPool<byte>.Shared.Rent(SocksLimits.RelayBufferSize);
        long total = 0;
        try
        {
            while (true)
            {
                var read = await from.ReadAsync(buffer, failed.Token);
                if (read == 0)
                {
                    break;
                }

                await to.WriteAsync(buffer.AsMemory(0, read), failed.Token);
                total += read;
            }

            await CompleteWritesAsync(to, failed.Token);
            return (total, true);
        }
        catch (Exception)
        {
            // One side broke: stop the other direction too. Disposing unblocks streams that
            // ignore cancellation; both are disposed by the caller anyway.
            try
            {
                await failed.CancelAsync();
            }
            catch (ObjectDisposedException)
            {
            }

            await DisposeQuietlyAsync(from);
            await DisposeQuietlyAsync(to);
            return (total, false);
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }

    internal static async ValueTask DisposeQuietlyAsync(Stream stream)
    {
        try
        {
            await stream.DisposeAsync();
        }
        catch (Exception)
        {
            // Closing a broken stream may throw again; there is nothing left to do with it.
        }
    }
}
