using System.Buffers;
using System.Net.Sockets;

namespace Skywire.Core.AppApi;

/// <summary>
/// Copies both directions between an app's TCP connection and a mesh stream. End of input on one side becomes a
/// half-close on the other; an error on either side resets both (never a silent truncation that looks like EOF).
/// </summary>
internal static class StreamPipe
{
    public static async Task RunAsync(Stream app, Stream mesh, IAppHost host, CancellationToken cancellationToken)
    {
        using var failed = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        var up = CopyAsync(app, mesh, async () => await host.CompleteWritesAsync(mesh, failed.Token), failed);
        var down = CopyAsync(mesh, app, () =>
        {
            if (app is NetworkStream ns)
            {
                ns.Socket.Shutdown(SocketShutdown.Send);
            }

            return ValueTask.CompletedTask;
        }, failed);
        await Task.WhenAll(up, down);
        if (failed.IsCancellationRequested)
        {
            // Reset rather than FIN on both sides, so neither end mistakes a failure for a clean end of stream.
            host.AbortStream(mesh);
            if (app is NetworkStream appSocket)
            {
                appSocket.Socket.LingerState = new LingerOption(true, 0);
            }
        }

        await app.DisposeAsync();
        await mesh.DisposeAsync();
    }

    private static async Task CopyAsync(Stream from, Stream to, Func<ValueTask> complete, CancellationTokenSource failed)
    {
        var buffer = ArrayPool<byte>.Shared.Rent(64 * 1024);
        try
        {
            while (true)
            {
                var n = await from.ReadAsync(buffer, failed.Token);
                if (n == 0)
                {
                    await complete();
                    return;
                }

                await to.WriteAsync(buffer.AsMemory(0, n), failed.Token);
            }
        }
        catch (Exception)
        {
            await failed.CancelAsync();
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }
}
