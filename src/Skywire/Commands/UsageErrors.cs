using System.CommandLine;
using System.CommandLine.Invocation;

namespace Skywire.Commands;

/// <summary>
/// Parse errors (an unknown option, a missing required one, a validator's message) print as <c>error: …</c> lines
/// and one line naming the command's <c>--help</c>, then exit 2 (usage): the error is not buried under the full help
/// text, and the code is the documented one (System.CommandLine's own action prints the whole help and exits 1).
/// </summary>
internal static class UsageErrors
{
    /// <summary>Whether <paramref name="parse"/> failed; if so, prints the errors to <paramref name="error"/>.</summary>
    public static bool TryReport(ParseResult parse, TextWriter error, out int exitCode)
    {
        ArgumentNullException.ThrowIfNull(parse);
        ArgumentNullException.ThrowIfNull(error);
        exitCode = Common.Ok;
        // --help and --version win over errors (their actions run instead of the error action).
        if (parse.Action is not ParseErrorAction || parse.Errors.Count == 0)
        {
            return false;
        }

        foreach (var message in parse.Errors.Select(e => e.Message).Distinct(StringComparer.Ordinal))
        {
            error.WriteLine("error: " + message);
        }

        error.WriteLine($"Run '{CommandPath(parse.CommandResult)} --help' for the options.");
        exitCode = Common.Usage;
        return true;
    }

    /// <summary>"skywire app socks-client": the names from the root to the command that was parsed.</summary>
    public static string CommandPath(System.CommandLine.Parsing.CommandResult result)
    {
        ArgumentNullException.ThrowIfNull(result);
        var names = new List<string>();
        for (System.CommandLine.Parsing.SymbolResult? r = result; r is not null; r = r.Parent)
        {
            if (r is System.CommandLine.Parsing.CommandResult c)
            {
                names.Add(c.Parent is null ? "skywire" : c.Command.Name);
            }
        }

        names.Reverse();
        return string.Join(' ', names);
    }
}
