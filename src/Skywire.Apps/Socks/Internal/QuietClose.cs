using Skywire.Core.Streams;

namespace Skywire.Apps.Socks.Internal;

/// <summary>Closing streams on paths where the stream may already be broken.</summary>
internal static class QuietClose
{
    /// <summary>Disposes (a graceful close for a stream that is still fine); a second failure is ignored.</summary>
    public static async ValueTask DisposeAsync(Stream stream)
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

    /// <summary>Aborts (the peer sees an error, never a clean end), then releases the stream.</summary>
    public static async ValueTask AbortAsync(DuplexStream stream)
    {
        stream.Abort();
        await DisposeAsync(stream);
    }
}
