namespace Skywire.Core.Manager;

/// <summary>Quotes client-supplied text in error replies and logs: bounded and printable.</summary>
/// <remarks>
/// A request may carry a string up to a frame long; an error that echoed it whole could itself exceed the frame
/// (and be dropped), and a log line that echoed it could carry control characters.
/// </remarks>
internal static class Quote
{
    /// <summary>At most <paramref name="max"/> characters of <paramref name="value"/>, control characters as '?', "..." when cut.</summary>
    public static string Of(string? value, int max = 80)
    {
        if (value is null)
        {
            return "";
        }

        var head = new string([.. value.Take(max).Select(c => char.IsControl(c) ? '?' : c)]);
        return value.Length > max ? head + "..." : head;
    }
}
