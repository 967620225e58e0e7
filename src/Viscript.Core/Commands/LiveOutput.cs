using Viscript.Core.Supervision;

namespace Viscript.Core.Commands;

/// <summary>
/// Renders a followed output stream (attach, <c>logs -f</c>) on a line terminal, so that an unfinished line such as a
/// prompt (<c>printf 'name? '</c>) shows at once: a partial line is written without its newline, and the complete line
/// then only adds what is missing. Not thread-safe: the caller writes its results under its own output lock.
/// </summary>
public sealed class LiveOutput
{
    private string? _shown;
    private LogStream _stream;
    private bool _rowOpen;

    /// <summary>Whether the cursor stands after a partial line (the next unrelated output needs a newline first).</summary>
    public bool RowOpen => _rowOpen;

    /// <summary>The open partial line as it shows on the screen (empty when no row is open).</summary>
    public string OpenRow => _rowOpen && _shown is not null ? CommandInterpreter.FormatLogLine(new LogLine(0, default, _stream, _shown)) : "";

    /// <summary>Text to write for <paramref name="line"/>: a partial line without newline, a complete one ending with a newline.</summary>
    public string Render(LogLine line) => line.Partial ? Partial(line.Stream, line.Text) : Complete(line.Stream, line.Text);

    /// <summary>Text to write for an unfinished line (no newline at the end).</summary>
    public string Partial(LogStream stream, string text)
    {
        string s;
        if (Continues(stream, text))
        {
            s = text[_shown!.Length..];
        }
        else
        {
            s = (_rowOpen ? "\n" : "") + CommandInterpreter.FormatLogLine(new LogLine(0, default, stream, text));
        }
        _shown = text;
        _stream = stream;
        _rowOpen = true;
        return s;
    }

    /// <summary>Text to write for a complete line (ends with a newline, or is empty when everything was shown already).</summary>
    public string Complete(LogStream stream, string text)
    {
        string s;
        if (Continues(stream, text))
        {
            var rest = text[_shown!.Length..];
            s = _rowOpen || rest.Length > 0 ? rest + "\n" : "";
        }
        else
        {
            s = (_rowOpen ? "\n" : "") + CommandInterpreter.FormatLogLine(new LogLine(0, default, stream, text)) + "\n";
        }
        _shown = null;
        _rowOpen = false;
        return s;
    }

    /// <summary>The user typed a line (its echo ended the row): what follows starts on a new row, without repeating the prompt.</summary>
    public void RowEndedByUser() => _rowOpen = false;

    /// <summary>Newline to write before unrelated output when a partial line is open (else empty).</summary>
    public string BreakRow()
    {
        if (!_rowOpen)
        {
            return "";
        }
        _rowOpen = false;
        return "\n";
    }

    private bool Continues(LogStream stream, string text) => _shown is not null && _stream == stream && text.StartsWith(_shown, StringComparison.Ordinal);
}
