namespace Skywire.Core.Sdk;

/// <summary>Serving every stream dialed to this app: the accept loop apps would otherwise each write (socks-server, vpn-server).</summary>
public sealed partial class SkywireApp
{
    /// <summary>Accepts that wait at the node at once in <see cref="ServeStreamsAsync"/> unless told otherwise.</summary>
    public const int DefaultParallelAccepts = 4;

    /// <summary>
    /// Serves every stream dialed to this app (call <see cref="RegisterAsync"/> first) until <paramref name="cancellationToken"/>
    /// is cancelled. <paramref name="parallelAccepts"/> accepts wait at the node at once, so a burst of streams does not
    /// queue behind one; each accepted stream goes to <paramref name="handler"/>, which owns it (disposes it) and gets a
    /// token that is cancelled when serving stops. Returns once every handler has finished.
    /// </summary>
    /// <remarks>
    /// A failed accept (the node went away and this app does not wait for it) stops every accept and cancels the
    /// handlers; the failure is thrown once they have finished. A handler's own failure ends only its stream: handlers
    /// report what they need themselves, and an exception escaping one is not rethrown here.
    /// </remarks>
    /// <exception cref="Skywire.Core.AppApi.AppApiException">The node refused an accept or could not be reached.</exception>
    public async Task ServeStreamsAsync(Func<SkywireStream, CancellationToken, Task> handler, int parallelAccepts = DefaultParallelAccepts,
        CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(handler);
        ArgumentOutOfRangeException.ThrowIfLessThan(parallelAccepts, 1);
        using var stopping = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        var handlers = new List<Task>();
        try
        {
            await Task.WhenAll(Enumerable.Range(0, parallelAccepts).Select(_ => AcceptLoopAsync()));
        }
        finally
        {
            await stopping.CancelAsync();
            Task[] pending;
            lock (handlers)
            {
                pending = [.. handlers];
            }

            await Task.WhenAll(pending);
        }

        async Task AcceptLoopAsync()
        {
            while (true)
            {
                SkywireStream stream;
                try
                {
                    stream = await AcceptAsync(stopping.Token);
                }
                catch (OperationCanceledException) when (stopping.IsCancellationRequested)
                {
                    return;
                }
                catch
                {
                    // The node is gone: stop every loop and every handler, and report it to the caller.
                    await stopping.CancelAsync();
                    throw;
                }

                var served = RunHandlerAsync(handler, stream, stopping.Token);
                lock (handlers)
                {
                    handlers.RemoveAll(t => t.IsCompleted);
                    handlers.Add(served);
                }
            }
        }
    }

    private static async Task RunHandlerAsync(Func<SkywireStream, CancellationToken, Task> handler, SkywireStream stream, CancellationToken cancellationToken)
    {
        try
        {
            await handler(stream, cancellationToken);
        }
#pragma warning disable CA1031 // a handler's failure ends only its own stream (documented on ServeStreamsAsync)
        catch (Exception)
#pragma warning restore CA1031
        {
            await stream.DisposeAsync();
        }
    }
}
