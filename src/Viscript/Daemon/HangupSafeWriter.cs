using System.Text;

namespace Viscript.Daemon;

/// <summary>
/// The daemon's stdout and stderr: when the terminal viscript runs in goes away (closed window, dropped ssh session)
/// every write to it fails with EIO, and an exception from a status line must not take the daemon down before it has
/// stopped its apps. The first failed write marks the writer lost; from then on output is dropped (there is nobody to
/// read it). Output to a file or a pipe behaves as before.
/// </summary>
internal sealed class HangupSafeWriter(TextWriter inner) : TextWriter
{
    private volatile bool _lost;

    /// <inheritdoc/>
    public override Encoding Encoding => inner.Encoding;

    /// <inheritdoc/>
    public override IFormatProvider FormatProvider => inner.FormatProvider;

    /// <inheritdoc/>
    [System.Diagnostics.CodeAnalysis.AllowNull]
    public override string NewLine
    {
        get => inner.NewLine;
        set => inner.NewLine = value;
    }

    /// <inheritdoc/>
    public override void Write(char value) => Guard(() => inner.Write(value));

    /// <inheritdoc/>
    public override void Write(char[] buffer, int index, int count) => Guard(() => inner.Write(buffer, index, count));

    /// <inheritdoc/>
    public override void Write(ReadOnlySpan<char> buffer)
    {
        if (_lost)
        {
            return;
        }
        try
        {
            inner.Write(buffer);
        }
        catch (IOException)
        {
            _lost = true;
        }
    }

    /// <inheritdoc/>
    public override void Write(string? value) => Guard(() => inner.Write(value));

    /// <inheritdoc/>
    public override void WriteLine() => Guard(inner.WriteLine);

    /// <inheritdoc/>
    public override void WriteLine(string? value) => Guard(() => inner.WriteLine(value));

    /// <inheritdoc/>
    public override void Flush() => Guard(inner.Flush);

    /// <inheritdoc/>
    public override Task WriteAsync(char value) => GuardAsync(() => inner.WriteAsync(value));

    /// <inheritdoc/>
    public override Task WriteAsync(string? value) => GuardAsync(() => inner.WriteAsync(value));

    /// <inheritdoc/>
    public override Task WriteAsync(ReadOnlyMemory<char> buffer, CancellationToken cancellationToken = default) =>
        GuardAsync(() => inner.WriteAsync(buffer, cancellationToken));

    /// <inheritdoc/>
    public override Task WriteLineAsync(string? value) => GuardAsync(() => inner.WriteLineAsync(value));

    /// <inheritdoc/>
    public override Task WriteLineAsync(ReadOnlyMemory<char> buffer, CancellationToken cancellationToken = default) =>
        GuardAsync(() => inner.WriteLineAsync(buffer, cancellationToken));

    /// <inheritdoc/>
    public override Task FlushAsync() => GuardAsync(inner.FlushAsync);

    private void Guard(Action write)
    {
        if (_lost)
        {
            return;
        }
        try
        {
            write();
        }
        catch (IOException)
        {
            _lost = true;
        }
    }

    private async Task GuardAsync(Func<Task> write)
    {
        if (_lost)
        {
            return;
        }
        try
        {
            await write();
        }
        catch (IOException)
        {
            _lost = true;
        }
    }
}
