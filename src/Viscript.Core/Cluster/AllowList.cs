using System.Text.RegularExpressions;

namespace Viscript.Core.Cluster;

/// <summary>
/// The agents a primary accepts (docs/viscript.md "Cluster"): a text file, one agent per line as <c>NAME PUBLIC-KEY</c>,
/// <c>#</c> starts a comment. The name is the one the primary gives the agent in its namespace (<c>NAME:id</c>), so an
/// agent cannot choose to pose as another host. Names and keys are unique. Immutable; <see cref="AllowListWatcher"/>
/// re-reads the file when it changes.
/// </summary>
public sealed partial class AllowList
{
    private readonly Dictionary<string, string> _byKey;

    private AllowList(IReadOnlyList<AllowedAgent> agents)
    {
        Agents = agents;
        _byKey = agents.ToDictionary(a => a.PublicKey, a => a.Name, StringComparer.Ordinal);
    }

    /// <summary>An empty list (nobody allowed).</summary>
    public static AllowList Empty { get; } = new([]);

    /// <summary>The agents, in file order.</summary>
    public IReadOnlyList<AllowedAgent> Agents { get; }

    /// <summary>The name given to <paramref name="publicKey"/>, or null when the key is not allowed.</summary>
    public string? NameOf(string publicKey) => _byKey.GetValueOrDefault(publicKey);

    [GeneratedRegex("^[a-z0-9][a-z0-9._-]{0,62}$")]
    private static partial Regex NamePattern();

    /// <summary>Whether <paramref name="name"/> is a valid host name in the namespace (lowercase letters, digits, <c>.</c>, <c>_</c>, <c>-</c>; no <c>:</c>).</summary>
    public static bool IsValidName(string name) => NamePattern().IsMatch(name);

    /// <summary>Parses the text of an allow-list file; every error is reported, each with its line number.</summary>
    /// <exception cref="Config.ConfigException">One or more lines are invalid.</exception>
    public static AllowList Parse(string text, string file)
    {
        var errors = new List<string>();
        var agents = new List<AllowedAgent>();
        var names = new HashSet<string>(StringComparer.Ordinal);
        var keys = new HashSet<string>(StringComparer.Ordinal);
        var lines = text.Split('\n');
        for (var i = 0; i < lines.Length; i++)
        {
            var line = lines[i];
            var hash = line.IndexOf('#', StringComparison.Ordinal);
            if (hash >= 0)
            {
                line = line[..hash];
            }
            var parts = line.Split((char[]?)null, StringSplitOptions.RemoveEmptyEntries);
            if (parts.Length == 0)
            {
                continue;
            }
            var where = $"{file}:{i + 1}";
            if (parts.Length != 2)
            {
                errors.Add($"{where}: expected 'NAME PUBLIC-KEY' (the agent's 'viscript key' output), got {parts.Length} fields");
                continue;
            }
            var (name, key) = (parts[0], parts[1].ToLowerInvariant());
            if (!IsValidName(name))
            {
                errors.Add($"{where}: '{name}' is not a valid host name (lowercase letters, digits, '.', '_', '-'; at most 63)");
            }
            else if (!names.Add(name))
            {
                errors.Add($"{where}: the name '{name}' is listed twice");
            }
            if (!ClusterKey.IsPublicKey(key))
            {
                errors.Add($"{where}: '{parts[1]}' is not a public key (64 hex characters, as 'viscript key' prints)");
            }
            else if (!keys.Add(key))
            {
                errors.Add($"{where}: the key {key[..12]}... is listed twice");
            }
            agents.Add(new AllowedAgent(name, key));
        }
        if (errors.Count > 0)
        {
            throw new Config.ConfigException(errors);
        }
        return new AllowList(agents);
    }

    /// <summary>Reads and parses a file.</summary>
    /// <exception cref="Config.ConfigException">Unreadable or invalid.</exception>
    public static AllowList Load(string path)
    {
        string text;
        try
        {
            if (new FileInfo(path).Length > 1024 * 1024)
            {
                throw new Config.ConfigException([$"{path}: larger than 1 MiB: not an allow-list"]);
            }
            text = File.ReadAllText(path);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            throw new Config.ConfigException([$"{path}: cannot read the agent allow-list: {ex.Message}"]);
        }
        return Parse(text, path);
    }
}

/// <summary>One line of the allow-list.</summary>
/// <param name="Name">Host name given to the agent.</param>
/// <param name="PublicKey">The agent's public key (lowercase hex).</param>
public sealed record AllowedAgent(string Name, string PublicKey);
