using Viscript.Core.Config;
using Viscript.Tests.Support;

namespace Viscript.Tests.Config;

public class ConfigLoaderTests
{
    // The shape of the original viscript config.yaml (2017), unchanged.
    private const string Original = """
        apps:
          meshnet-run-node:
            daemon: true
            path: bin/meshnet/meshnet-run-node
            default_args: []
            desc: "runs a meshnet node"
            help: |
              Usage: meshnet-run-node [args]
              Starts a node.
          socks-client:
            daemon: true
            path: bin/meshnet/socks-client
            default_args: ["-port", "8000"]
            desc: socks client
            help: help text
        settings:
          verboseInput: false
          verifyParsingByPrinting: false
          runHeadless: true
        """;

    [Fact]
    public void OriginalSchema_LoadsUnchanged()
    {
        using var dir = new TempDir();
        var file = dir.Write("config.yaml", Original);
        var cfg = ConfigLoader.LoadFile(file);
        Assert.Equal(2, cfg.Apps.Count);
        var node = cfg.Apps["meshnet-run-node"];
        Assert.True(node.Daemon);
        Assert.Equal(Path.Combine(dir.Path, "bin/meshnet/meshnet-run-node"), node.Path);
        Assert.Empty(node.DefaultArgs);
        Assert.Equal("runs a meshnet node", node.Description);
        Assert.StartsWith("Usage: meshnet-run-node", node.Help, StringComparison.Ordinal);
        Assert.Equal(["-port", "8000"], cfg.Apps["socks-client"].DefaultArgs);
        Assert.True(cfg.Settings.RunHeadless);
        Assert.Empty(cfg.Warnings);
        // New keys keep their defaults.
        Assert.Equal(RestartPolicy.Never, node.Restart);
        Assert.Equal(ArgsMode.Replace, node.ArgsMode);
        Assert.False(node.SignalFlags);
    }

    [Fact]
    public void AppNames_AreCaseInsensitive_ForLookup()
    {
        var cfg = ConfigLoader.Parse(Original, "/tmp/x/config.yaml");
        Assert.True(cfg.Apps.ContainsKey("Socks-Client"));
    }

    [Fact]
    public void NewKeys_AreParsed()
    {
        const string Yaml = """
            apps:
              web:
                path: ./bin/web
                env: { PORT: "8080", MODE: prod }
                cwd: data
                autostart: true
                restart: on-failure
                max_retries: 5
                backoff: 250ms
                backoff_max: 1m
                start_secs: 2
                stable_secs: 2m
                stop_timeout: 1.5s
                args_mode: extend
                signal_flags: true
            settings:
              log_dir: /var/log/viscript
              log_buffer_lines: 10
            """;
        var cfg = ConfigLoader.Parse(Yaml, "/etc/viscript/config.yaml");
        var app = cfg.Apps["web"];
        Assert.Equal("/etc/viscript/bin/web", app.Path);
        Assert.Equal("/etc/viscript/data", app.WorkingDirectory);
        Assert.Equal("8080", app.Environment["PORT"]);
        Assert.True(app.Autostart);
        Assert.Equal(RestartPolicy.OnFailure, app.Restart);
        Assert.Equal(5, app.MaxRetries);
        Assert.Equal(TimeSpan.FromMilliseconds(250), app.Backoff);
        Assert.Equal(TimeSpan.FromMinutes(1), app.BackoffMax);
        Assert.Equal(TimeSpan.FromSeconds(2), app.StartSecs);
        Assert.Equal(TimeSpan.FromMinutes(2), app.StableSecs);
        Assert.Equal(TimeSpan.FromSeconds(1.5), app.StopTimeout);
        Assert.Equal(ArgsMode.Extend, app.ArgsMode);
        Assert.True(app.SignalFlags);
        Assert.Equal("/var/log/viscript", cfg.LogDirectory);
        Assert.Equal(10, cfg.Settings.LogBufferLines);
    }

    [Fact]
    public void BareCommand_IsLeftForPathLookup()
    {
        var cfg = ConfigLoader.Parse("apps:\n  s:\n    path: sleep\n", "/a/config.yaml");
        Assert.Equal("sleep", cfg.Apps["s"].Path);
    }

    [Fact]
    public void Errors_NameFileLineAndKey_AllAtOnce()
    {
        const string Yaml = """
            apps:
              good:
                path: /bin/true
              bad:
                path: /bin/false
                restart: sometimes
                max_retries: lots
              nopath:
                desc: forgot the path
            settings:
              runHeadless: maybe
            """;
        var ex = Assert.Throws<ConfigException>(() => ConfigLoader.Parse(Yaml, "/cfg/config.yaml"));
        Assert.Equal(4, ex.Errors.Count);
        Assert.Contains(ex.Errors, e => e.StartsWith("/cfg/config.yaml:6:", StringComparison.Ordinal) && e.Contains("apps.bad.restart", StringComparison.Ordinal) && e.Contains("never|on-failure|always", StringComparison.Ordinal));
        Assert.Contains(ex.Errors, e => e.StartsWith("/cfg/config.yaml:7:", StringComparison.Ordinal) && e.Contains("apps.bad.max_retries", StringComparison.Ordinal));
        Assert.Contains(ex.Errors, e => e.StartsWith("/cfg/config.yaml:9:", StringComparison.Ordinal) && e.Contains("apps.nopath.path", StringComparison.Ordinal) && e.Contains("missing", StringComparison.Ordinal));
        Assert.Contains(ex.Errors, e => e.StartsWith("/cfg/config.yaml:11:", StringComparison.Ordinal) && e.Contains("settings.runHeadless", StringComparison.Ordinal));
    }

    [Theory]
    [InlineData("apps:\n  a:\n    path: x\n    default_args: \"-v\"\n", "apps.a.default_args", 4)]
    [InlineData("apps:\n  a:\n    path: [x]\n", "apps.a.path", 3)]
    [InlineData("apps:\n  a:\n    path: x\n    env: [A]\n", "apps.a.env", 4)]
    [InlineData("apps:\n  a:\n    path: x\n    backoff: soon\n", "apps.a.backoff", 4)]
    [InlineData("apps:\n  a:\n    path: x\n    backoff: 10s\n    backoff_max: 1s\n", "apps.a.backoff_max", 3)]
    [InlineData("apps: [a, b]\n", "apps", 1)]
    [InlineData("- a\n- b\n", "(root)", 1)]
    [InlineData("apps:\n  a b:\n    path: x\n", "apps.a b", 2)]
    [InlineData("apps:\n  a:\n    path: x\n  A:\n    path: y\n", "apps.A", 4)]
    public void BadValues_AreRefused_WithKeyAndLine(string yaml, string key, int line)
    {
        var ex = Assert.Throws<ConfigException>(() => ConfigLoader.Parse(yaml, "c.yaml"));
        Assert.Contains(ex.Errors, e => e.Contains($"c.yaml:{line}:", StringComparison.Ordinal) && e.Contains(key + ":", StringComparison.Ordinal));
    }

    [Theory]
    [InlineData("apps:\n  a:\n    path: x\n   bad indent: [\n", 4)]
    [InlineData("apps:\n  a: {path: x\n", 3)]
    [InlineData("apps:\n  a:\n    path: x\n  a:\n    path: y\n", 4)]
    public void SyntaxErrors_NameTheLine(string yaml, int line)
    {
        var ex = Assert.Throws<ConfigException>(() => ConfigLoader.Parse(yaml, "c.yaml"));
        var error = Assert.Single(ex.Errors);
        Assert.StartsWith("c.yaml:", error, StringComparison.Ordinal);
        var reportedLine = int.Parse(error.Split(':')[1], System.Globalization.CultureInfo.InvariantCulture);
        Assert.InRange(reportedLine, line - 1, line + 1);
    }

    [Fact]
    public void UnknownKeys_AreWarnings_NotErrors()
    {
        var cfg = ConfigLoader.Parse("apps:\n  a:\n    path: x\n    restrat: always\nextra: 1\n", "c.yaml");
        Assert.Equal(2, cfg.Warnings.Count);
        Assert.Contains(cfg.Warnings, w => w.StartsWith("c.yaml:4:", StringComparison.Ordinal) && w.Contains("apps.a.restrat", StringComparison.Ordinal));
    }

    [Theory]
    [InlineData("")]
    [InlineData("# only a comment\n")]
    [InlineData("apps:\nsettings:\n")]
    public void EmptyConfigs_Load(string yaml) => Assert.Empty(ConfigLoader.Parse(yaml, "c.yaml").Apps);

    [Fact]
    public void MissingFile_IsReported()
    {
        var ex = Assert.Throws<ConfigException>(() => ConfigLoader.LoadFile("/nonexistent/dir/config.yaml"));
        Assert.Contains("/nonexistent/dir/config.yaml", ex.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("500ms", 0.5)]
    [InlineData("2", 2)]
    [InlineData("2s", 2)]
    [InlineData("1.5m", 90)]
    [InlineData("1h", 3600)]
    public void Durations_Parse(string text, double seconds)
    {
        Assert.True(ConfigLoader.TryParseDuration(text, out var d));
        Assert.Equal(seconds, d.TotalSeconds, 3);
    }

    [Theory]
    [InlineData("")]
    [InlineData("-1s")]
    [InlineData("abc")]
    [InlineData("NaN")]
    public void BadDurations_AreRejected(string text) => Assert.False(ConfigLoader.TryParseDuration(text, out _));

    [Fact]
    public void RepositoryConfig_IsValid()
    {
        var cfg = ConfigLoader.LoadFile(Path.Combine(Paths.RepoRoot, "config.yaml"));
        Assert.NotEmpty(cfg.Apps);
        Assert.Empty(cfg.Warnings);
    }

    [Fact]
    public void RandomMutations_NeverThrowAnythingButConfigException()
    {
        var random = new Random(42);
        var text = Original;
        for (var i = 0; i < 2000; i++)
        {
            var chars = text.ToCharArray();
            var pos = random.Next(chars.Length);
            const string Noise = "\n :-[]{}\"'#&*!|>%@`\t";
            chars[pos] = Noise[random.Next(Noise.Length)];
            var mutated = new string(chars, 0, random.Next(pos, chars.Length + 1));
            try
            {
                ConfigLoader.Parse(mutated, "m.yaml");
            }
            catch (ConfigException ex)
            {
                Assert.All(ex.Errors, e => Assert.StartsWith("m.yaml", e, StringComparison.Ordinal));
            }
        }
    }
}
