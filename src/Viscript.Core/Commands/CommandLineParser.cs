using System.Text;

namespace Viscript.Core.Commands;

/// <summary>
/// Splits a command line into arguments, shell-like: whitespace separates; <c>"..."</c> groups with
/// <c>\"</c> and <c>\\</c> escapes; <c>'...'</c> groups literally; outside quotes a backslash escapes the next character.
/// Adjacent pieces join (<c>a"b c"</c> is one argument <c>ab c</c>). Case is preserved.
/// </summary>
public static class CommandLineParser
{
    /// <summary>Tokenizes <paramref name="line"/>.</summary>
    /// <exception cref="ViscriptException">Usage: an unterminated quote or a trailing backslash.</exception>
    public static List<string> Tokenize(string line)
    {
        ArgumentNullException.ThrowIfNull(line);
        var tokens = new List<string>();
        var current = new StringBuilder();
        var inToken = false;
        var i = 0;
        while (i < line.Length)
        {
            var c = line[i];
            if (char.IsWhiteSpace(c))
            {
                if (inToken)
                {
                    tokens.Add(current.ToString());
                    current.Clear();
                    inToken = false;
                }
                i++;
                continue;
            }
            inToken = true;
            switch (c)
            {
                case '\'':
                {
                    var end = line.IndexOf('\'', i + 1);
                    if (end < 0)
                    {
                        throw new ViscriptException(ErrorCode.Usage, $"Unterminated ' quote starting at column {i + 1}.");
                    }
                    current.Append(line, i + 1, end - i - 1);
                    i = end + 1;
                    break;
                }
                case '"':
                {
                    var start = i;
                    i++;
                    var closed = false;
                    while (i < line.Length)
                    {
                        var d = line[i];
                        if (d == '"')
                        {
                            closed = true;
                            i++;
                            break;
                        }
                        if (d == '\\' && i + 1 < line.Length && line[i + 1] is '"' or '\\')
                        {
                            current.Append(line[i + 1]);
                            i += 2;
                            continue;
                        }
                        current.Append(d);
                        i++;
                    }
                    if (!closed)
                    {
                        throw new ViscriptException(ErrorCode.Usage, $"Unterminated \" quote starting at column {start + 1}.");
                    }
                    break;
                }
                case '\\':
                    if (i + 1 >= line.Length)
                    {
                        throw new ViscriptException(ErrorCode.Usage, "Trailing backslash at the end of the line.");
                    }
                    current.Append(line[i + 1]);
                    i += 2;
                    break;
                default:
                    current.Append(c);
                    i++;
                    break;
            }
        }
        if (inToken)
        {
            tokens.Add(current.ToString());
        }
        return tokens;
    }
}
