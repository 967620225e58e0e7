using System.Globalization;
using YamlDotNet.Core;
using YamlDotNet.RepresentationModel;

namespace Viscript.Core.Config;

/// <summary>A config file that cannot be used; <see cref="Exception.Message"/> lists every problem as <c>file:line:column: key: text</c>.</summary>
public sealed class ConfigException : Exception
{
    /// <summary>Creates the exception from the collected errors.</summary>
    public ConfigException(IReadOnlyList<string> errors)
        : base(string.Join(Environment.NewLine, errors)) => Errors = errors;

    /// <summary>Creates the exception.</summary>
    public ConfigException() : this(["invalid config"]) { }

    /// <summary>Creates the exception.</summary>
    public ConfigException(string message) : this([message]) { }

    /// <summary>Creates the exception.</summary>
    public ConfigException(string message, Exception inner) : base(message, inner) => Errors = [message];

    /// <summary>Every problem found, one per line.</summary>
    public IReadOnlyList<string> Errors { get; }
}

/// <summary>
/// Loads config.yaml. The original schema (apps.&lt;n&gt;.daemon|path|default_args|desc|help,
/// settings.runHeadless|verboseInput|verifyParsingByPrinting) loads unchanged; newer keys are additive.
/// All errors are collected and reported together with file, line and key; nothing starts half-configured.
/// </summary>
public static class ConfigLoader
{
    /// <summary>Largest config file accepted.</summary>
    public const int MaxFileBytes = 4 * 1024 * 1024;

    private static readonly string[] s_appKeys =
    [
        "daemon", "path", "default_args", "desc", "help", "env", "cwd", "autostart", "restart", "max_retries",
        "backoff", "backoff_max", "start_secs", "stable_secs", "stop_timeout", "shutdown_wait", "args_mode", "signal_flags",
        "groups",
    ];

    private static readonly string[] s_settingKeys =
    [
        "runHeadless", "verboseInput", "verifyParsingByPrinting", "log_dir", "log_buffer_lines", "log_file_max_bytes",
    ];

    /// <summary>Reads and validates a file.</summary>
    /// <exception cref="ConfigException">The file is missing, unreadable or invalid.</exception>
    public static ViscriptConfig LoadFile(string path)
    {
        var full = System.IO.Path.GetFullPath(path);
        string text;
        try
        {
            var info = new FileInfo(full);
            if (!info.Exists)
            {
                throw new ConfigException([$"{full}: file not found"]);
            }
            if (info.Length > MaxFileBytes)
            {
                throw new ConfigException([$"{full}: file is larger than {MaxFileBytes} bytes"]);
            }
            text = File.ReadAllText(full);
        }
        catch (IOException ex)
        {
            throw new ConfigException([$"{full}: {ex.Message}"]);
        }
        catch (UnauthorizedAccessException ex)
        {
            throw new ConfigException([$"{full}: {ex.Message}"]);
        }
        return Parse(text, full);
    }

    /// <summary>Parses config text; <paramref name="filePath"/> names it in errors and anchors relative paths.</summary>
    /// <exception cref="ConfigException">The text is invalid.</exception>
    public static ViscriptConfig Parse(string text, string filePath)
    {
        var baseDir = System.IO.Path.GetDirectoryName(System.IO.Path.GetFullPath(filePath)) ?? Directory.GetCurrentDirectory();
        var ctx = new Context(filePath);
        var stream = new YamlStream();
        var parser = new Parser(new StringReader(text));
        try
        {
            stream.Load(parser);
        }
        catch (YamlException ex)
        {
            // YamlDotNet marks are 1-based lines and columns.
            var inner = ex.InnerException is YamlException ie ? ie.Message : null;
            throw new ConfigException([$"{filePath}:{ex.Start.Line}:{ex.Start.Column}: YAML syntax error: {inner ?? ex.Message}"]);
        }
        catch (Exception ex) when (ex is InvalidOperationException or ArgumentException or IndexOutOfRangeException)
        {
            // Some malformed inputs make YamlDotNet's scanner fail without a mark: report where parsing had got to.
            var mark = parser.Current?.End ?? Mark.Empty;
            throw new ConfigException([$"{filePath}:{mark.Line}:{mark.Column}: YAML syntax error after this point"]);
        }

        var apps = new Dictionary<string, AppOptions>(StringComparer.OrdinalIgnoreCase);
        var settings = new SettingsOptions();
        if (stream.Documents.Count > 0 && stream.Documents[0].RootNode is not YamlScalarNode { Value: null or "" or "~" })
        {
            var rootNode = stream.Documents[0].RootNode;
            if (rootNode is not YamlMappingNode root)
            {
                ctx.Error(rootNode, "(root)", "expected a mapping with 'apps' and 'settings'");
            }
            else
            {
                foreach (var (keyNode, value) in root.Children)
                {
                    var key = KeyOf(keyNode);
                    switch (key)
                    {
                        case "apps":
                            ReadApps(ctx, value, baseDir, apps);
                            break;
                        case "settings":
                            settings = ReadSettings(ctx, value, baseDir);
                            break;
                        default:
                            ctx.Warn(keyNode, key, "unknown top-level key ignored");
                            break;
                    }
                }
            }
        }

        if (ctx.Errors.Count > 0)
        {
            throw new ConfigException(ctx.Errors);
        }
        return new ViscriptConfig
        {
            FilePath = System.IO.Path.GetFullPath(filePath),
            BaseDirectory = baseDir,
            Apps = apps,
            Settings = settings,
            Warnings = ctx.Warnings,
        };
    }

    private static void ReadApps(Context ctx, YamlNode node, string baseDir, Dictionary<string, AppOptions> apps)
    {
        if (IsNull(node))
        {
            return;
        }
        if (node is not YamlMappingNode map)
        {
            ctx.Error(node, "apps", "expected a mapping of app names");
            return;
        }
        foreach (var (keyNode, value) in map.Children)
        {
            var name = KeyOf(keyNode);
            var where = $"apps.{name}";
            if (name.Length == 0 || name.Any(c => char.IsWhiteSpace(c) || char.IsControl(c)))
            {
                ctx.Error(keyNode, where, "app names must be non-empty and contain no spaces");
                continue;
            }
            if (apps.ContainsKey(name))
            {
                ctx.Error(keyNode, where, "duplicate app name (names are case-insensitive)");
                continue;
            }
            if (value is not YamlMappingNode appMap)
            {
                ctx.Error(value, where, "expected a mapping with at least 'path'");
                continue;
            }
            var app = ReadApp(ctx, name, appMap, baseDir);
            if (app is not null)
            {
                apps[name] = app;
            }
        }
    }

    private static AppOptions? ReadApp(Context ctx, string name, YamlMappingNode map, string baseDir)
    {
        var where = $"apps.{name}";
        var errorsBefore = ctx.Errors.Count;
        string? path = null;
        var app = new AppOptions { Name = name, Path = "" };
        foreach (var (keyNode, value) in map.Children)
        {
            var key = KeyOf(keyNode);
            var k = $"{where}.{key}";
            switch (key)
            {
                case "path":
                    path = ctx.String(value, k);
                    if (path is not null && path.Trim().Length == 0)
                    {
                        ctx.Error(value, k, "must not be empty");
                    }
                    break;
                case "daemon":
                    app = app with { Daemon = ctx.Bool(value, k) };
                    break;
                case "default_args":
                    app = app with { DefaultArgs = ctx.StringList(value, k) };
                    break;
                case "desc":
                    app = app with { Description = ctx.String(value, k) ?? "" };
                    break;
                case "help":
                    app = app with { Help = (ctx.String(value, k) ?? "").TrimEnd() };
                    break;
                case "env":
                    app = app with { Environment = ctx.StringMap(value, k) };
                    break;
                case "cwd":
                    var cwd = ctx.String(value, k);
                    app = app with { WorkingDirectory = cwd is null ? null : System.IO.Path.GetFullPath(cwd, baseDir) };
                    break;
                case "autostart":
                    app = app with { Autostart = ctx.Bool(value, k) };
                    break;
                case "restart":
                    app = app with { Restart = ctx.Enum(value, k, RestartPolicy.Never, ("never", RestartPolicy.Never), ("on-failure", RestartPolicy.OnFailure), ("always", RestartPolicy.Always)) };
                    break;
                case "max_retries":
                    app = app with { MaxRetries = ctx.Int(value, k, 0, 1_000_000) };
                    break;
                case "backoff":
                    app = app with { Backoff = ctx.Duration(value, k) };
                    break;
                case "backoff_max":
                    app = app with { BackoffMax = ctx.Duration(value, k) };
                    break;
                case "start_secs":
                    app = app with { StartSecs = ctx.Duration(value, k) };
                    break;
                case "stable_secs":
                    app = app with { StableSecs = ctx.Duration(value, k) };
                    break;
                case "stop_timeout":
                    app = app with { StopTimeout = ctx.Duration(value, k) };
                    break;
                case "shutdown_wait":
                    app = app with { ShutdownWait = ctx.Duration(value, k) };
                    break;
                case "args_mode":
                    app = app with { ArgsMode = ctx.Enum(value, k, ArgsMode.Replace, ("replace", ArgsMode.Replace), ("extend", ArgsMode.Extend)) };
                    break;
                case "signal_flags":
                    app = app with { SignalFlags = ctx.Bool(value, k) };
                    break;
                case "groups":
                    app = app with { Groups = ReadGroups(ctx, value, k) };
                    break;
                default:
                    ctx.Warn(keyNode, k, $"unknown key ignored (known: {string.Join(", ", s_appKeys)})");
                    break;
            }
        }
        if (path is null)
        {
            if (!map.Children.Any(c => KeyOf(c.Key) == "path"))
            {
                ctx.Error(map, $"{where}.path", "missing (the executable to run)");
            }
            return null;
        }
        if (app.BackoffMax < app.Backoff)
        {
            ctx.Error(map, $"{where}.backoff_max", "must not be smaller than backoff");
        }
        if (ctx.Errors.Count > errorsBefore)
        {
            return null;
        }
        // A path with a directory part is relative to the config folder; a bare name is looked up in PATH at start.
        var resolved = path.Contains('/', StringComparison.Ordinal) || path.Contains('\\', StringComparison.Ordinal)
            ? System.IO.Path.GetFullPath(path, baseDir)
            : path;
        return app with { Path = resolved };
    }

    private static SettingsOptions ReadSettings(Context ctx, YamlNode node, string baseDir)
    {
        var settings = new SettingsOptions();
        if (IsNull(node))
        {
            return settings;
        }
        if (node is not YamlMappingNode map)
        {
            ctx.Error(node, "settings", "expected a mapping");
            return settings;
        }
        foreach (var (keyNode, value) in map.Children)
        {
            var key = KeyOf(keyNode);
            var k = $"settings.{key}";
            switch (key)
            {
                case "runHeadless":
                    settings = settings with { RunHeadless = ctx.Bool(value, k) };
                    break;
                case "verboseInput":
                    settings = settings with { VerboseInput = ctx.Bool(value, k) };
                    break;
                case "verifyParsingByPrinting":
                    settings = settings with { VerifyParsingByPrinting = ctx.Bool(value, k) };
                    break;
                case "log_dir":
                    var dir = ctx.String(value, k);
                    settings = settings with { LogDir = dir is null ? null : System.IO.Path.GetFullPath(dir, baseDir) };
                    break;
                case "log_buffer_lines":
                    settings = settings with { LogBufferLines = ctx.Int(value, k, 1, 10_000_000) };
                    break;
                case "log_file_max_bytes":
                    settings = settings with { LogFileMaxBytes = ctx.Int(value, k, 0, int.MaxValue) };
                    break;
                default:
                    ctx.Warn(keyNode, k, $"unknown key ignored (known: {string.Join(", ", s_settingKeys)})");
                    break;
            }
        }
        return settings;
    }

    /// <summary><c>groups:</c> one name or a list of names (letters, digits, <c>.</c>, <c>_</c>, <c>-</c>; not <c>all</c>, which means every app).</summary>
    private static List<string> ReadGroups(Context ctx, YamlNode value, string key)
    {
        var names = value is YamlScalarNode { Value: { Length: > 0 } one } && !IsNull(value) ? [one] : ctx.StringList(value, key);
        foreach (var name in names)
        {
            if (name.Length == 0 || !name.All(c => char.IsAsciiLetterOrDigit(c) || c is '.' or '_' or '-'))
            {
                ctx.Error(value, key, $"group '{name}' must be letters, digits, '.', '_' or '-'");
            }
            else if (string.Equals(name, "all", StringComparison.OrdinalIgnoreCase))
            {
                ctx.Error(value, key, "'all' is not a group name: 'start -g all' already starts every app");
            }
        }
        return names;
    }

    // Complex keys (sequences or mappings as keys) never match a known key and are reported as unknown.
    private static string KeyOf(YamlNode node) => node is YamlScalarNode s ? s.Value ?? "" : node.ToString();

    private static bool IsNull(YamlNode node) => node is YamlScalarNode s && s.Style == YamlDotNet.Core.ScalarStyle.Plain && (s.Value is null or "" or "~" or "null");

    /// <summary>Parses a duration: a number of seconds, or a number with ms, s, m or h.</summary>
    public static bool TryParseDuration(string text, out TimeSpan value)
    {
        value = default;
        text = text.Trim();
        double factor = 1;
        if (text.EndsWith("ms", StringComparison.Ordinal))
        {
            factor = 0.001;
            text = text[..^2];
        }
        else if (text.EndsWith('s'))
        {
            text = text[..^1];
        }
        else if (text.EndsWith('m'))
        {
            factor = 60;
            text = text[..^1];
        }
        else if (text.EndsWith('h'))
        {
            factor = 3600;
            text = text[..^1];
        }
        if (!double.TryParse(text, NumberStyles.Float, CultureInfo.InvariantCulture, out var n) || n < 0 || double.IsNaN(n) || n * factor > 86400 * 365)
        {
            return false;
        }
        value = TimeSpan.FromSeconds(n * factor);
        return true;
    }

    private sealed class Context(string file)
    {
        public List<string> Errors { get; } = [];

        public List<string> Warnings { get; } = [];

        public void Error(YamlNode node, string key, string message) =>
            Errors.Add($"{file}:{node.Start.Line}:{node.Start.Column}: {key}: {message}");

        public void Warn(YamlNode node, string key, string message) =>
            Warnings.Add($"{file}:{node.Start.Line}:{node.Start.Column}: {key}: {message}");

        public string? String(YamlNode node, string key)
        {
            if (node is YamlScalarNode s)
            {
                return s.Value ?? "";
            }
            Error(node, key, "expected a string");
            return null;
        }

        public bool Bool(YamlNode node, string key)
        {
            if (node is YamlScalarNode s)
            {
                switch (s.Value?.ToLowerInvariant())
                {
                    case "true" or "yes" or "on":
                        return true;
                    case "false" or "no" or "off":
                        return false;
                }
            }
            Error(node, key, "expected true or false");
            return false;
        }

        public int Int(YamlNode node, string key, int min, int max)
        {
            if (node is YamlScalarNode s && int.TryParse(s.Value, NumberStyles.Integer, CultureInfo.InvariantCulture, out var v))
            {
                if (v >= min && v <= max)
                {
                    return v;
                }
                Error(node, key, $"must be between {min} and {max}");
                return min;
            }
            Error(node, key, "expected an integer");
            return min;
        }

        public TimeSpan Duration(YamlNode node, string key)
        {
            if (node is YamlScalarNode s && TryParseDuration(s.Value ?? "", out var d))
            {
                return d;
            }
            Error(node, key, "expected a duration such as 500ms, 2s, 1.5m or a number of seconds");
            return TimeSpan.Zero;
        }

        public T Enum<T>(YamlNode node, string key, T fallback, params (string Name, T Value)[] choices)
        {
            if (node is YamlScalarNode s)
            {
                foreach (var (name, value) in choices)
                {
                    if (string.Equals(name, s.Value, StringComparison.OrdinalIgnoreCase))
                    {
                        return value;
                    }
                }
            }
            Error(node, key, $"expected one of {string.Join("|", choices.Select(c => c.Name))}");
            return fallback;
        }

        public List<string> StringList(YamlNode node, string key)
        {
            if (IsNull(node))
            {
                return [];
            }
            if (node is not YamlSequenceNode seq)
            {
                Error(node, key, "expected a list of strings, e.g. [\"-port\", \"8000\"]");
                return [];
            }
            var list = new List<string>();
            foreach (var item in seq.Children)
            {
                if (item is YamlScalarNode s)
                {
                    list.Add(s.Value ?? "");
                }
                else
                {
                    Error(item, key, "list items must be strings");
                }
            }
            return list;
        }

        public Dictionary<string, string> StringMap(YamlNode node, string key)
        {
            var dict = new Dictionary<string, string>(StringComparer.Ordinal);
            if (IsNull(node))
            {
                return dict;
            }
            if (node is not YamlMappingNode map)
            {
                Error(node, key, "expected a mapping of NAME: value");
                return dict;
            }
            foreach (var (k, v) in map.Children)
            {
                var name = KeyOf(k);
                if (name.Length == 0 || name.Contains('=', StringComparison.Ordinal))
                {
                    Error(k, $"{key}.{name}", "invalid environment variable name");
                    continue;
                }
                if (v is YamlScalarNode s)
                {
                    dict[name] = s.Value ?? "";
                }
                else
                {
                    Error(v, $"{key}.{name}", "expected a string value");
                }
            }
            return dict;
        }
    }
}
