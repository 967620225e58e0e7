using System.Text;

namespace Viscript.Daemon;

/// <summary>
/// The input row of the daemon's REPL on a terminal: the prompt and the line being typed, kept here (keys are read
/// one by one, not by the terminal's line discipline), so that anything else the REPL prints (events, results, an
/// attached app's output) goes above it: <see cref="Hide"/>, the output, <see cref="Show"/>. Keys: printable
/// characters, Backspace/Delete, Left/Right, Home/End (CTRL+A/E), CTRL+U/K/W, Up/Down (history), Enter, CTRL+D on an
/// empty line (end of input). Not thread-safe: the REPL calls it under its output lock. Every method returns the
/// terminal text to write (VT100: cursor up/forward, erase to the end of the screen).
/// </summary>
public sealed class LineEditor(Func<string> prompt, Func<int> width)
{
    private const int MaxHistory = 500;

    private readonly StringBuilder _line = new();
    private readonly List<string> _history = [];
    private int _cursor;
    private int _historyIndex;
    private string _draft = "";
    private bool _visible;
    private int _cursorRow;

    /// <summary>What the result of a key asks the REPL to do.</summary>
    public enum Outcome
    {
        /// <summary>Keep reading keys.</summary>
        None = 0,

        /// <summary>A line was entered (<see cref="KeyResult.Line"/>).</summary>
        Line = 1,

        /// <summary>CTRL+D on an empty line: end of input.</summary>
        EndOfInput = 2,
    }

    /// <summary>Terminal text to write, and what the key did.</summary>
    /// <param name="Echo">Text to write.</param>
    /// <param name="Outcome">What happened.</param>
    /// <param name="Line">The entered line, for <see cref="Outcome.Line"/>.</param>
    public readonly record struct KeyResult(string Echo, Outcome Outcome, string? Line = null);

    /// <summary>The line typed so far.</summary>
    public string Text => _line.ToString();

    /// <summary>Whether the input row is on the screen.</summary>
    public bool Visible => _visible;

    /// <summary>Erases the input row(s); the cursor ends at the start of the first one. Empty when not shown.</summary>
    public string Hide()
    {
        if (!_visible)
        {
            return "";
        }
        _visible = false;
        var up = _cursorRow > 0 ? $"\x1b[{_cursorRow}A" : "";
        _cursorRow = 0;
        return up + "\r\x1b[J";
    }

    /// <summary>Draws the prompt and the line, the cursor at its place (the caller stands at the start of a row).</summary>
    public string Show()
    {
        var w = Math.Max(width(), 10);
        var p = prompt();
        var text = p + _line;
        var s = new StringBuilder(text);
        var length = text.Length;
        if (length > 0 && length % w == 0)
        {
            // The cursor waits in the last column; move it to the next row explicitly, so rows are counted the same everywhere.
            s.Append("\r\n");
        }
        var endRow = length / w;
        var target = p.Length + _cursor;
        var (row, col) = (target / w, target % w);
        _visible = true;
        _cursorRow = row;
        if (target == length)
        {
            return s.ToString();   // the cursor is at the end already
        }
        if (endRow > row)
        {
            s.Append("\x1b[").Append(endRow - row).Append('A');
        }
        s.Append('\r');
        if (col > 0)
        {
            s.Append("\x1b[").Append(col).Append('C');
        }
        return s.ToString();
    }

    /// <summary>Handles one key.</summary>
    public KeyResult Key(ConsoleKeyInfo key)
    {
        var ctrl = (key.Modifiers & ConsoleModifiers.Control) != 0;
        switch (key.Key)
        {
            case ConsoleKey.Enter:
                return Enter();
            case ConsoleKey.Backspace:
                if (_cursor > 0)
                {
                    _line.Remove(--_cursor, 1);
                }
                break;
            case ConsoleKey.Delete:
                if (_cursor < _line.Length)
                {
                    _line.Remove(_cursor, 1);
                }
                break;
            case ConsoleKey.LeftArrow:
                _cursor = Math.Max(0, _cursor - 1);
                break;
            case ConsoleKey.RightArrow:
                _cursor = Math.Min(_line.Length, _cursor + 1);
                break;
            case ConsoleKey.Home:
            case ConsoleKey.A when ctrl:
                _cursor = 0;
                break;
            case ConsoleKey.End:
            case ConsoleKey.E when ctrl:
                _cursor = _line.Length;
                break;
            case ConsoleKey.U when ctrl:
                _line.Remove(0, _cursor);
                _cursor = 0;
                break;
            case ConsoleKey.K when ctrl:
                _line.Length = _cursor;
                break;
            case ConsoleKey.W when ctrl:
                var start = _cursor;
                while (start > 0 && _line[start - 1] == ' ')
                {
                    start--;
                }
                while (start > 0 && _line[start - 1] != ' ')
                {
                    start--;
                }
                _line.Remove(start, _cursor - start);
                _cursor = start;
                break;
            case ConsoleKey.D when ctrl:
                if (_line.Length == 0)
                {
                    return new KeyResult(Hide(), Outcome.EndOfInput);
                }
                if (_cursor < _line.Length)
                {
                    _line.Remove(_cursor, 1);
                }
                break;
            case ConsoleKey.UpArrow:
                Recall(-1);
                break;
            case ConsoleKey.DownArrow:
                Recall(+1);
                break;
            default:
                if (key.KeyChar == '\n' || key.KeyChar == '\r')
                {
                    return Enter();
                }
                if (ctrl || char.IsControl(key.KeyChar) || key.KeyChar == '\0')
                {
                    return new KeyResult("", Outcome.None);
                }
                _line.Insert(_cursor++, key.KeyChar);
                if (_cursor == _line.Length && _visible && (prompt().Length + _cursor) % Math.Max(width(), 10) != 0)
                {
                    // Typing at the end of the row: the character alone is the echo.
                    return new KeyResult(key.KeyChar.ToString(), Outcome.None);
                }
                break;
        }
        return new KeyResult(Hide() + Show(), Outcome.None);
    }

    private KeyResult Enter()
    {
        var line = _line.ToString();
        // The entered line stays on the screen, whole, with its prompt; the next output starts on a new row.
        var echo = Hide() + prompt() + line + "\r\n";
        if (line.Length > 0 && (_history.Count == 0 || _history[^1] != line))
        {
            _history.Add(line);
            if (_history.Count > MaxHistory)
            {
                _history.RemoveAt(0);
            }
        }
        _historyIndex = _history.Count;
        _draft = "";
        _line.Clear();
        _cursor = 0;
        return new KeyResult(echo, Outcome.Line, line);
    }

    private void Recall(int step)
    {
        var index = Math.Clamp(_historyIndex + step, 0, _history.Count);
        if (index == _historyIndex)
        {
            return;
        }
        if (_historyIndex == _history.Count)
        {
            _draft = _line.ToString();
        }
        _historyIndex = index;
        _line.Clear().Append(index == _history.Count ? _draft : _history[index]);
        _cursor = _line.Length;
    }
}
