using System.Buffers;
using System.Net;
using System.Text;
using Skywire.Core.Sdk;

namespace Skywire.Apps.Chat;

/// <summary>One chat message received from another node's app.</summary>
/// <param name="FromNode">The sender's node key, as the mesh authenticated it.</param>
/// <param name="FromApp">The sender's app name, when its node told it.</param>
/// <param name="Text">The message.</param>
public readonly record struct NodeChatMessage(string FromNode, string? FromApp, string Text);

/// <summary>
/// Chat between nodes through the app API: each message is one mesh stream to (node key, app name)
/// carrying the UTF-8 text; the receiver answers one byte (0x06) once it has the whole message, so
/// a sender that returns knows the message arrived. Messages are at most <see cref="MaxMessageBytes"/>.
/// </summary>
public static class NodeChat
{
    /// <summary>Tracker type of chat apps.</summary>
    public const string AppType = "chat";

    /// <summary>Largest message, in UTF-8 bytes.</summary>
    public const int MaxMessageBytes = 64 * 1024;

    private const byte Ack = 0x06;

    /// <summary>Registers <paramref name="name"/> and hands every incoming message to <paramref name="onMessage"/> until cancelled.</summary>
    public static async Task ListenAsync(IPEndPoint nodeApps, string token, string name, Func<NodeChatMessage, ValueTask> onMessage,
        Action<string>? onReady = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(onMessage);
        await using var app = await SkywireApp.ConnectAsync(nodeApps, token, cancellationToken);
        await app.RegisterAsync(name, AppType, cancellationToken);
        onReady?.Invoke($"{app.NodeKey}/{name}");
        while (true)
        {
            var stream = await app.AcceptAsync(cancellationToken);
            _ = ReceiveOneAsync(stream, onMessage, cancellationToken);
        }
    }

    /// <summary>Sends <paramref name="text"/> to <paramref name="target"/> (<c>NODEKEY/APPNAME</c>) and waits until the receiver has it.</summary>
    public static async Task SendAsync(IPEndPoint nodeApps, string token, string name, string target, string text, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(target);
        ArgumentNullException.ThrowIfNull(text);
        var bytes = Encoding.UTF8.GetBytes(text);
        if (bytes.Length > MaxMessageBytes)
        {
            throw new ArgumentException($"a chat message is at most {MaxMessageBytes} bytes (this one is {bytes.Length})", nameof(text));
        }

        var slash = target.IndexOf('/', StringComparison.Ordinal);
        if (slash <= 0 || slash == target.Length - 1)
        {
            throw new FormatException($"'{target}' is not NODEKEY/APPNAME");
        }

        // A sender dials without registering: one-shot sends under the same name would otherwise race the
        // node's removal of the previous registration.
        _ = name;
        await using var app = await SkywireApp.ConnectAsync(nodeApps, token, cancellationToken);
        await using var stream = await app.DialAsync(target[..slash], target[(slash + 1)..], cancellationToken);
        try
        {
            await stream.WriteAsync(bytes, cancellationToken);
        }
        catch
        {
            // Cancelled or failed before the whole message was written: abort, so the receiver never takes what
            // arrived for a complete message (the graceful close of `await using` would end it cleanly: issue 12.1).
            stream.Abort();
            throw;
        }

        stream.CompleteWrites();
        var reply = new byte[1];
        if (await stream.ReadAsync(reply, cancellationToken) != 1 || reply[0] != Ack)
        {
            throw new IOException($"{target} closed the stream without confirming the message");
        }
    }

    private static async Task ReceiveOneAsync(SkywireStream stream, Func<NodeChatMessage, ValueTask> onMessage, CancellationToken cancellationToken)
    {
        await using (stream)
        {
            var buffer = ArrayPool<byte>.Shared.Rent(MaxMessageBytes + 1);
            try
            {
                var length = 0;
                int n;
                while ((n = await stream.ReadAsync(buffer.AsMemory(length, MaxMessageBytes + 1 - length), cancellationToken)) > 0)
                {
                    length += n;
                    if (length > MaxMessageBytes)
                    {
                        return; // Oversized: close without the acknowledgement, so the sender reports failure.
                    }
                }

                await onMessage(new NodeChatMessage(stream.RemoteNode, stream.RemoteApp, Encoding.UTF8.GetString(buffer, 0, length)));
                await stream.WriteAsync(new[] { Ack }, cancellationToken);
                stream.CompleteWrites();
            }
            catch (Exception ex) when (ex is IOException or OperationCanceledException or ObjectDisposedException)
            {
                // The sender went away or we are stopping: that message is not acknowledged, which the sender reports.
            }
            finally
            {
                ArrayPool<byte>.Shared.Return(buffer);
            }
        }
    }
}
