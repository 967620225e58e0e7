using System.Buffers;
using System.Text;

namespace Viscript.Core.Supervision;

/// <summary>
/// Reads one pipe of a child (stdout or stderr) to its end and turns the bytes into lines: each complete line goes to
/// the ring buffer and the log file; lines longer than <see cref="MaxLineChars"/> are split; an unfinished line that
/// sits for <see cref="PartialLineDelay"/> (a prompt) is shown to live followers without being stored. The pipe is read
/// continuously, so a child never blocks on a full pipe: a flooding app costs CPU, not memory.
/// </summary>
internal static class OutputPump
{
    /// <summary>Longest line kept; longer output is split.</summary>
    public const int MaxLineChars = 16 * 1024;

    /// <summary>How long an unfinished line waits for its newline before live followers are shown it.</summary>
    public static readonly TimeSpan PartialLineDelay = TimeSpan.FromMilliseconds(50);

    private const int ReadSize = 16 * 1024;

    /// <summary>Pumps <paramref name="stream"/> until it ends or fails; completes normally in both cases.</summary>
    public static async Task RunAsync(Stream stream, LogStream kind, LogBuffer logs, LogFile? file)
    {
        var buffer = ArrayPool<byte>.Shared.Rent(ReadSize);
        var chars = ArrayPool<char>.Shared.Rent(Encoding.UTF8.GetMaxCharCount(ReadSize));
        var decoder = Encoding.UTF8.GetDecoder();
        var pending = new StringBuilder();
        try
        {
            while (await ReadAsync(stream, buffer, kind, logs, pending) is var n and > 0)
            {
                var count = decoder.GetChars(buffer, 0, n, chars, 0, flush: false);
                var span = chars.AsSpan(0, count);
                while (span.Length > 0)
                {
                    var nl = span.IndexOf('\n');
                    var piece = nl < 0 ? span : span[..nl];
                    var room = MaxLineChars - pending.Length;
                    if (piece.Length >= room)
                    {
                        pending.Append(piece[..room]);
                        Emit(kind, pending, logs, file);
                        span = span[room..];
                        continue;
                    }

                    pending.Append(piece);
                    if (nl < 0)
                    {
                        break;
                    }

                    Emit(kind, pending, logs, file);
                    span = span[(nl + 1)..];
                }

                file?.Flush();
            }

            if (pending.Length > 0)
            {
                Emit(kind, pending, logs, file);
                file?.Flush();
            }
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
            ArrayPool<char>.Shared.Return(chars);
        }
    }

    /// <summary>One read; 0 at the end of the pipe or when it broke. Publishes a waiting unfinished line meanwhile.</summary>
    private static async Task<int> ReadAsync(Stream stream, byte[] buffer, LogStream kind, LogBuffer logs, StringBuilder pending)
    {
        try
        {
            var read = stream.ReadAsync(buffer.AsMemory(0, ReadSize));
            if (pending.Length == 0 || read.IsCompleted)
            {
                return await read;
            }

            // An unfinished line and nothing more for a moment (a prompt): show it to live followers now.
            // The ring buffer and the log file keep whole lines only.
            var readTask = read.AsTask();
            using var idleCts = new CancellationTokenSource();
            var idle = Task.Delay(PartialLineDelay, TimeProvider.System, idleCts.Token);
            if (await Task.WhenAny(readTask, idle) == idle)
            {
                logs.PublishPartial(kind, pending.ToString());
            }

            await idleCts.CancelAsync();
            return await readTask;
        }
        catch (Exception ex) when (ex is IOException or ObjectDisposedException)
        {
            return 0;
        }
    }

    private static void Emit(LogStream kind, StringBuilder pending, LogBuffer logs, LogFile? file)
    {
        if (pending.Length > 0 && pending[^1] == '\r')
        {
            pending.Length--;
        }

        var text = pending.ToString();
        pending.Clear();
        logs.Append(kind, text);
        file?.Write(kind == LogStream.Stderr ? "[stderr] " + text : text);
    }
}
