namespace Viscript.Core.Config;

/// <summary>What the supervisor does when a process ends without being asked to.</summary>
public enum RestartPolicy
{
    /// <summary>Never restart (the original viscript behaviour, and the default).</summary>
    Never = 0,
    /// <summary>Restart when the exit code is not 0 or the process died by a signal.</summary>
    OnFailure = 10,
    /// <summary>Restart whatever the exit code.</summary>
    Always = 20,
}

/// <summary>How arguments typed after <c>start &lt;app&gt;</c> combine with <c>default_args</c>.</summary>
public enum ArgsMode
{
    /// <summary>Typed arguments replace the defaults (the original rule).</summary>
    Replace = 0,
    /// <summary>Typed arguments are appended after the defaults.</summary>
    Extend = 10,
}

/// <summary>One entry of <c>apps:</c> in config.yaml.</summary>
public sealed record AppOptions
{
    /// <summary>Name used on the command line (<c>start &lt;name&gt;</c>).</summary>
    public required string Name { get; init; }

    /// <summary>Executable. A relative path with a directory part is resolved against the config folder; a bare name goes through PATH.</summary>
    public required string Path { get; init; }

    /// <summary>Arguments used when the user passes none (or always, before the user's, with <see cref="ArgsMode.Extend"/>).</summary>
    public IReadOnlyList<string> DefaultArgs { get; init; } = [];

    /// <summary>True: never attached on start (original <c>daemon</c> key).</summary>
    public bool Daemon { get; init; }

    /// <summary>One-line description shown by <c>apps</c>.</summary>
    public string Description { get; init; } = "";

    /// <summary>Text shown by <c>help &lt;app&gt;</c>.</summary>
    public string Help { get; init; } = "";

    /// <summary>Extra environment variables.</summary>
    public IReadOnlyDictionary<string, string> Environment { get; init; } = new Dictionary<string, string>();

    /// <summary>Working directory (absolute after loading); null = the config folder.</summary>
    public string? WorkingDirectory { get; init; }

    /// <summary>Start once when the daemon starts.</summary>
    public bool Autostart { get; init; }

    /// <summary>Restart policy.</summary>
    public RestartPolicy Restart { get; init; } = RestartPolicy.Never;

    /// <summary>Consecutive failures (runs shorter than <see cref="StableSecs"/>) tolerated before the process goes Fatal.</summary>
    public int MaxRetries { get; init; } = 3;

    /// <summary>First backoff delay; doubles on each consecutive failure.</summary>
    public TimeSpan Backoff { get; init; } = TimeSpan.FromSeconds(1);

    /// <summary>Upper bound of the backoff delay.</summary>
    public TimeSpan BackoffMax { get; init; } = TimeSpan.FromSeconds(30);

    /// <summary>Uptime after which a process counts as started (Starting to Running without a signal REG).</summary>
    public TimeSpan StartSecs { get; init; } = TimeSpan.FromSeconds(1);

    /// <summary>
    /// Uptime after which a run counts as stable: a restarted process that ends sooner is a failure for the backoff and
    /// <see cref="MaxRetries"/>, even if it got past <see cref="StartSecs"/>; a run that lasts this long resets the count.
    /// Never shorter than <see cref="StartSecs"/> in effect.
    /// </summary>
    public TimeSpan StableSecs { get; init; } = TimeSpan.FromSeconds(60);

    /// <summary>How long each stop step (signal SHUTDOWN, then SIGTERM) waits before escalating.</summary>
    public TimeSpan StopTimeout { get; init; } = TimeSpan.FromSeconds(10);

    /// <summary>
    /// How long a signal client that acknowledged SHUTDOWN gets to exit before SIGTERM (<c>shutdown_wait</c>). Longer
    /// than the original Go client's own hard-coded 10 s exit delay, so that <c>sd</c> of an original client ends in
    /// <c>Exited(0)</c>, not <c>Exited(143)</c>, also under load.
    /// </summary>
    public TimeSpan ShutdownWait { get; init; } = TimeSpan.FromSeconds(15);

    /// <summary>How typed arguments combine with the defaults.</summary>
    public ArgsMode ArgsMode { get; init; } = ArgsMode.Replace;

    /// <summary>Also append the original <c>-signal-client-id &lt;id&gt; -signal-client</c> flags.</summary>
    public bool SignalFlags { get; init; }

    /// <summary>Groups of the app (<c>groups:</c>, a name or a list): <c>start -g GROUP</c> starts every app of one.</summary>
    public IReadOnlyList<string> Groups { get; init; } = [];
}

/// <summary>The <c>settings:</c> block.</summary>
public sealed record SettingsOptions
{
    /// <summary>Original key: run without GUI.</summary>
    public bool RunHeadless { get; init; }

    /// <summary>Original key: print every input event (accepted, unused headless).</summary>
    public bool VerboseInput { get; init; }

    /// <summary>Original key: print the parsed config at start.</summary>
    public bool VerifyParsingByPrinting { get; init; }

    /// <summary>Folder for per-process log files (absolute after loading); null = <c>logs</c> next to the config.</summary>
    public string? LogDir { get; init; }

    /// <summary>Lines kept in memory per process.</summary>
    public int LogBufferLines { get; init; } = 2000;

    /// <summary>Size at which a process log file is rotated (one previous file is kept as <c>.1</c>).</summary>
    public long LogFileMaxBytes { get; init; } = 10 * 1024 * 1024;
}

/// <summary>A loaded, validated config.yaml.</summary>
public sealed record ViscriptConfig
{
    /// <summary>Full path of the file it came from (null for an empty built-in config).</summary>
    public string? FilePath { get; init; }

    /// <summary>Folder relative paths resolve against.</summary>
    public required string BaseDirectory { get; init; }

    /// <summary>Apps by name (case-insensitive lookup).</summary>
    public IReadOnlyDictionary<string, AppOptions> Apps { get; init; } = new Dictionary<string, AppOptions>(StringComparer.OrdinalIgnoreCase);

    /// <summary>Settings.</summary>
    public SettingsOptions Settings { get; init; } = new();

    /// <summary>Non-fatal remarks (unknown keys) to show the operator.</summary>
    public IReadOnlyList<string> Warnings { get; init; } = [];

    /// <summary>An empty config rooted at <paramref name="baseDirectory"/>.</summary>
    public static ViscriptConfig Empty(string baseDirectory) => new() { BaseDirectory = baseDirectory };

    /// <summary>Log folder to use.</summary>
    public string LogDirectory => Settings.LogDir ?? System.IO.Path.Combine(BaseDirectory, "logs");
}
