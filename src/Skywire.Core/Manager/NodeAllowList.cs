using Skywire.Protocol;

namespace Skywire.Core.Manager;

/// <summary>
/// The node keys a manager accepts (docs/operations.md "Who may join"): keys given on the command line plus,
/// optionally, the keys of a file (one key per line, <c>#</c> starts a comment). <see cref="Reload"/> re-reads the
/// file; a file that does not parse leaves the current list in force. Thread-safe: readers see either the old or
/// the new set, never a mix.
/// </summary>
public sealed class NodeAllowList
{
    private readonly HashSet<PubKey> _fixed;
    private HashSet<PubKey> _current;

    /// <summary>Creates the list from fixed keys and, when <paramref name="file"/> is set, the keys in that file.</summary>
    /// <exception cref="NodeAllowListException">The file cannot be read or a line is not a key.</exception>
    public NodeAllowList(IEnumerable<PubKey> keys, string? file = null)
    {
        ArgumentNullException.ThrowIfNull(keys);
        _fixed = [.. keys];
        FilePath = file is null ? null : Path.GetFullPath(file);
        _current = Build(FilePath is null ? [] : ReadFile(FilePath));
    }

    /// <summary>The file the list reloads from, if any (full path).</summary>
    public string? FilePath { get; }

    /// <summary>Number of distinct keys in force.</summary>
    public int Count => Volatile.Read(ref _current).Count;

    /// <summary>Whether <paramref name="key"/> may join.</summary>
    public bool Contains(PubKey key) => Volatile.Read(ref _current).Contains(key);

    /// <summary>The keys in force (a snapshot).</summary>
    public IReadOnlyCollection<PubKey> Keys => [.. Volatile.Read(ref _current)];

    /// <summary>Re-reads the file (no-op without one) and returns the number of keys now in force.</summary>
    /// <exception cref="NodeAllowListException">The file cannot be read or does not parse; the previous list stays.</exception>
    public int Reload()
    {
        if (FilePath is null)
        {
            return Count;
        }

        var next = Build(ReadFile(FilePath));
        Volatile.Write(ref _current, next);
        return next.Count;
    }

    private HashSet<PubKey> Build(IEnumerable<PubKey> fromFile)
    {
        var set = new HashSet<PubKey>(_fixed);
        set.UnionWith(fromFile);
        return set;
    }

    private static List<PubKey> ReadFile(string path)
    {
        string text;
        try
        {
            text = File.ReadAllText(path);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            throw new NodeAllowListException($"cannot read the node allow-list '{path}': {ex.Message}", ex);
        }

        return Parse(text, path);
    }

    /// <summary>
    /// Parses allow-list text: one public key (66 hex) per line; blank lines and everything after <c>#</c> are
    /// ignored. <paramref name="source"/> names the text in error messages.
    /// </summary>
    /// <exception cref="NodeAllowListException">A line holds something other than one key.</exception>
    public static List<PubKey> Parse(string text, string source)
    {
        ArgumentNullException.ThrowIfNull(text);
        var keys = new List<PubKey>();
        var number = 0;
        foreach (var raw in text.Split('\n'))
        {
            number++;
            var line = raw;
            var hash = line.IndexOf('#', StringComparison.Ordinal);
            if (hash >= 0)
            {
                line = line[..hash];
            }

            line = line.Trim();
            if (line.Length == 0)
            {
                continue;
            }

            if (!PubKey.TryParse(line, out var key))
            {
                var shown = line.Length > 80 ? line[..80] + "…" : line;
                throw new NodeAllowListException($"{source}:{number}: '{shown}' is not a public key (66 hex characters, 02 or 03 first)");
            }

            keys.Add(key);
        }

        return keys;
    }
}

/// <summary>A node allow-list file could not be read or parsed.</summary>
public sealed class NodeAllowListException : Exception
{
    public NodeAllowListException() : base("bad node allow-list") { }
    public NodeAllowListException(string message) : base(message) { }
    public NodeAllowListException(string message, Exception inner) : base(message, inner) { }
}
