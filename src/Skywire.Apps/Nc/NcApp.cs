using System.Net;
using Skywire.Core.Sdk;

namespace Skywire.Apps.Nc;

/// <summary>Options of the netcat app.</summary>
public sealed record NcOptions
{
    /// <summary>The node's app API address.</summary>
    public required IPEndPoint NodeApps { get; init; }
    /// <summary>The node's app token (one attempt to reach the node); null: <see cref="TokenFile"/>.</summary>
    public string? Token { get; init; }
    /// <summary>
    /// The node's token file: the app waits for its node (it may start first or restart), re-reading the token
    /// (<see cref="SkywireAppOptions"/>).
    /// </summary>
    public string? TokenFile { get; init; }
    /// <summary>Told why the node could not be used yet, before each wait (with <see cref="TokenFile"/>).</summary>
    public Action<Exception>? OnWaiting { get; init; }
    /// <summary>This app's name in the tracker.</summary>
    public required string Name { get; init; }
    /// <summary>Tracker type.</summary>
    public string Type { get; init; } = "nc";
}

/// <summary>
/// Netcat over the mesh. Listen: accept one stream and copy it to an output until the peer closes its side.
/// Dial: copy an input into a stream to (node, app), close the sending side at end of input, then drain
/// whatever the peer sends back into an output until it closes.
/// </summary>
/// <remarks>
/// Both return normally only for a complete stream: a stream that broke (its session died, its route vanished, the
/// peer aborted) throws a <see cref="Core.Streams.StreamAbortedException"/> (an <see cref="IOException"/>), whichever
/// direction notices first; `skywire app nc` then exits 1, never 0 with a truncated transfer.
/// </remarks>
public static class NcApp
{
    private const int BufferSize = 64 * 1024;

    private static Task<SkywireApp> ConnectAsync(NcOptions options, CancellationToken cancellationToken) =>
        options.TokenFile is { } file
            ? SkywireApp.ConnectAsync(new SkywireAppOptions { NodeApps = options.NodeApps, TokenFile = file, OnRetry = options.OnWaiting }, cancellationToken)
            : SkywireApp.ConnectAsync(options.NodeApps, options.Token ?? throw new ArgumentException("give Token or TokenFile", nameof(options)), cancellationToken);

    /// <summary>Registers, accepts one stream and copies it to <paramref name="output"/>. Returns bytes copied.</summary>
    public static async Task<long> ListenAsync(NcOptions options, Stream output, Action<string>? onReady = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(output);
        await using var app = await ConnectAsync(options, cancellationToken);
        await app.RegisterAsync(options.Name, options.Type, cancellationToken);
        onReady?.Invoke($"{app.NodeKey}/{options.Name}");
        await using var stream = await app.AcceptAsync(cancellationToken);
        try
        {
            var total = await CopyAsync(stream, output, cancellationToken);
            await output.FlushAsync(cancellationToken);
            return total;
        }
        catch
        {
            // Not everything reached the output (or the app was told to stop): the peer must not read this as a
            // complete exchange, which the graceful close of `await using` would signal.
            stream.Abort();
            throw;
        }
    }

    /// <summary>Dials <paramref name="target"/> (<c>NODEKEY/APPNAME</c>) and sends <paramref name="input"/>; peer data goes to <paramref name="output"/>.</summary>
    public static async Task<long> DialAsync(NcOptions options, string target, Stream input, Stream? output, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(target);
        ArgumentNullException.ThrowIfNull(input);
        var slash = target.IndexOf('/', StringComparison.Ordinal);
        if (slash <= 0 || slash == target.Length - 1)
        {
            throw new FormatException($"'{target}' is not NODEKEY/APPNAME");
        }

        await using var app = await ConnectAsync(options, cancellationToken);
        await app.RegisterAsync(options.Name, options.Type, cancellationToken);
        await using var stream = await app.DialAsync(target[..slash], target[(slash + 1)..], cancellationToken);
        var back = CopyAsync(stream, output ?? Stream.Null, cancellationToken);
        var send = SendAsync(input, stream, cancellationToken);
        try
        {
            // A broken stream fails the reading direction even while the input has nothing to send (a reading from a
            // terminal or a pipe cannot be cancelled): report it at once instead of waiting for more input.
            if (await Task.WhenAny(send, back) == back && back.IsFaulted)
            {
                await back;
            }

            var sent = await send;
            await back;
            if (output is not null)
            {
                await output.FlushAsync(cancellationToken);
            }

            return sent;
        }
        catch
        {
            // Interrupted (SIGINT/SIGTERM cancel the token), the input failed, or the stream broke: the input was not
            // sent to its end, so the stream is aborted (a reset the listener reports as an error), never closed
            // gracefully by `await using` (a clean end of stream the listener would report as complete: issue 12.1).
            stream.Abort();
            throw;
        }
    }

    private static async Task<long> SendAsync(Stream input, SkywireStream stream, CancellationToken cancellationToken)
    {
        var sent = await CopyAsync(input, stream, cancellationToken);
        await stream.CompleteWritesAsync(cancellationToken);
        return sent;
    }

    private static async Task<long> CopyAsync(Stream from, Stream to, CancellationToken cancellationToken)
    {
        var buffer = new byte[BufferSize];
        long total = 0;
        while (true)
        {
            var n = await from.ReadAsync(buffer, cancellationToken);
            if (n == 0)
            {
                return total;
            }

            await to.WriteAsync(buffer.AsMemory(0, n), cancellationToken);
            total += n;
        }
    }
}
