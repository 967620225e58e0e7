using System.Globalization;
using System.Net;
using Microsoft.AspNetCore.Connections;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.Extensions.DependencyInjection.Extensions;
using OpenTelemetry.Metrics;
using OpenTelemetry.Resources;
using Viscript.Core;
using Viscript.Core.Cluster;
using Viscript.Core.Commands;
using Viscript.Core.Config;
using Viscript.Core.Control;
using Viscript.Core.Hosting;
using Viscript.Core.Sampling;
using Viscript.Core.Supervision;
using Viscript.Core.Topology;
using Shared.Hosting;
using Viscript.Daemon.Listening;
using Viscript.Signal;

namespace Viscript.Daemon;

/// <summary>Daemon settings from the command line. <see cref="ToString"/> never prints the token.</summary>
public sealed record DaemonOptions
{
    /// <summary>config.yaml path; null = ./config.yaml if it exists, else an empty config.</summary>
    public string? ConfigPath { get; init; }

    /// <summary>Signal server listen address.</summary>
    public IPEndPoint Signal { get; init; } = new(IPAddress.Loopback, 7999);

    /// <summary>Control API listen address.</summary>
    public IPEndPoint Control { get; init; } = new(IPAddress.Loopback, 7777);

    /// <summary>Log folder override.</summary>
    public string? LogDirectory { get; init; }

    /// <summary>
    /// Bearer token for the control API and signal clients from other hosts. Never logged or printed. Null: read
    /// <see cref="TokenFile"/>, else generate one and write it to the default token file (docs/viscript.md "Security").
    /// </summary>
    public string? Token { get; init; }

    /// <summary>
    /// Token file: read when it exists, else created (0600, atomically) with a new token. Null: the default file for the
    /// control address (<see cref="ControlToken.DefaultPath"/>), written with a generated token and removed on exit.
    /// </summary>
    public string? TokenFile { get; init; }

    /// <summary>
    /// Serve the control API without a token (<c>--no-auth</c>, loopback only): every local user can then run
    /// programs as this daemon's user. Off by default.
    /// </summary>
    public bool NoAuth { get; init; }

    /// <summary>Overrides <c>XDG_RUNTIME_DIR</c> for the default token file (tests).</summary>
    public string? RuntimeDirectory { get; init; }

    /// <summary>Headless (no GUI).</summary>
    public bool Headless { get; init; } = true;

    /// <summary>Minimum level of diagnostic logs (written to stderr).</summary>
    public LogLevel LogLevel { get; init; } = LogLevel.Warning;

    /// <summary>Where diagnostics go; null = the console (stderr) at <see cref="LogLevel"/>. Not disposed by the daemon.</summary>
    public ILoggerFactory? LoggerFactory { get; init; }

    /// <summary>Upper bound of the graceful stop of all apps on daemon exit.</summary>
    public TimeSpan ShutdownTimeout { get; init; } = TimeSpan.FromSeconds(30);

    /// <summary>Meter of the supervisor's instruments served at /metrics (one per daemon when tests run several in a process).</summary>
    public string MeterName { get; init; } = Supervisor.MeterName;

    /// <summary>Clock.</summary>
    public TimeProvider TimeProvider { get; init; } = TimeProvider.System;

    /// <summary>Skywire manager for the GUI topology (<c>PUBKEY@host:port</c>); null = none.</summary>
    public string? Manager { get; init; }

    /// <summary>Key file the topology queries authenticate with (the manager's own or an admin key).</summary>
    public string? ManagerKeyFile { get; init; }

    /// <summary>A Skywire ledger directory whose earnings and spending per node the GUI charts (read-only); null = none.</summary>
    public string? Ledger { get; init; }

    /// <summary>
    /// The topology command (argv): a long-lived child printing one topology document per line (docs/gui.md). Null
    /// with <see cref="Manager"/> set: <c>skywire cli --manager M --key K topology --json --watch</c>.
    /// </summary>
    public IReadOnlyList<string>? TopologyCommand { get; init; }

    /// <summary>Limits of the control listener.</summary>
    public ControlListenerOptions Listener { get; init; } = ControlListenerOptions.Default;

    /// <summary>
    /// Make the process a child subreaper, so that orphans of the apps are re-parented to it, reaped and killed on exit
    /// (<see cref="SupervisorOptions.ChildSubreaper"/>). The viscript executable sets it; in-process hosts (tests) leave it off.
    /// </summary>
    public bool ChildSubreaper { get; init; }

    /// <summary>This daemon's place in a cluster (docs/viscript.md "Cluster"): none by default.</summary>
    public ClusterOptions Cluster { get; init; } = new();

    private bool PrintMembers(System.Text.StringBuilder builder)
    {
        builder.Append(CultureInfo.InvariantCulture, $"ConfigPath = {ConfigPath}, Signal = {Signal}, Control = {Control}, LogDirectory = {LogDirectory}, ");
        builder.Append(CultureInfo.InvariantCulture, $"Token = {(Token is null ? "(none)" : "***")}, TokenFile = {TokenFile}, NoAuth = {NoAuth}, Headless = {Headless}, ");
        builder.Append(CultureInfo.InvariantCulture, $"LogLevel = {LogLevel}, ShutdownTimeout = {ShutdownTimeout}, Manager = {Manager}, ManagerKeyFile = {ManagerKeyFile}, ");
        builder.Append(CultureInfo.InvariantCulture, $"TopologyCommand = {(TopologyCommand is null ? "" : string.Join(' ', TopologyCommand))}, Listener = {Listener}, ChildSubreaper = {ChildSubreaper}, Cluster = {Cluster}");
        return true;
    }
}

/// <summary>
/// A daemon's cluster settings (docs/viscript.md "Cluster"): a primary listens on <see cref="AgentsListen"/> for the agents
/// of <see cref="AllowFile"/>; an agent joins <see cref="Join"/>, pinning <see cref="PrimaryKey"/>. Both at once is allowed
/// (a primary that is itself an agent of another). <see cref="ToString"/> shows public keys and paths only.
/// </summary>
public sealed record ClusterOptions
{
    /// <summary>This host's name in the namespace (<c>NAME:ID</c>); an agent is named by the primary's allow-list instead.</summary>
    public string Name { get; init; } = "local";

    /// <summary>The cluster key file (created 0600 on first use); null = <see cref="ClusterKey.DefaultPath"/>.</summary>
    public string? KeyFile { get; init; }

    /// <summary>The agent port of a primary; null = not a primary.</summary>
    public IPEndPoint? AgentsListen { get; init; }

    /// <summary>The allow-list file (<c>NAME PUBLIC-KEY</c> lines), re-read when it changes; required with <see cref="AgentsListen"/>.</summary>
    public string? AllowFile { get; init; }

    /// <summary>How often the allow-list file is checked for changes.</summary>
    public TimeSpan AllowListPollInterval { get; init; } = TimeSpan.FromSeconds(2);

    /// <summary>The primary's agent port (<c>host:port</c>) this daemon joins as an agent; null = not an agent.</summary>
    public string? Join { get; init; }

    /// <summary>The primary's public key (its <c>viscript key</c> output); required with <see cref="Join"/>.</summary>
    public string? PrimaryKey { get; init; }

    /// <summary>First reconnect delay of an agent (doubled per failure, jittered).</summary>
    public TimeSpan InitialBackoff { get; init; } = TimeSpan.FromSeconds(1);

    /// <summary>Longest reconnect delay of an agent.</summary>
    public TimeSpan MaxBackoff { get; init; } = TimeSpan.FromSeconds(15);

    /// <summary>Keepalive and silence timeout of agent connections.</summary>
    public AgentChannelOptions Channel { get; init; } = AgentChannelOptions.Default;

    /// <summary>Whether a key is needed (primary or agent).</summary>
    public bool Enabled => AgentsListen is not null || Join is not null;
}

/// <summary>
/// The composition root of the daemon: signal server, supervisor, control API (Kestrel) and event hub.
/// The REPL is a separate front-end on top (<see cref="Repl"/>).
/// </summary>
public sealed partial class DaemonHost : IAsyncDisposable
{
    private readonly TaskCompletionSource _stopRequested = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly ILoggerFactory _loggerFactory;
    private readonly bool _ownsLoggerFactory;
    private readonly ILogger _logger;
    private WebApplication? _web;
    private SignalServer? _signalServer;
    private CommandTopologySource? _topologyCommand;
    private string? _writtenTokenFile;
    private AgentListener? _agentListener;
    private AllowListWatcher? _allowList;
    private int _disposed;

    private DaemonHost(DaemonOptions options, ViscriptConfig config, ILoggerFactory loggerFactory, bool ownsLoggerFactory)
    {
        Options = options;
        Config = config;
        _loggerFactory = loggerFactory;
        _ownsLoggerFactory = ownsLoggerFactory;
        _logger = loggerFactory.CreateLogger("Viscript.Daemon");
    }

    /// <summary>Options (<see cref="DaemonOptions.Token"/> is the token in force after start; null with <c>--no-auth</c>).</summary>
    public DaemonOptions Options { get; private set; }

    /// <summary>Loaded config.</summary>
    public ViscriptConfig Config { get; }

    /// <summary>The supervisor.</summary>
    public Supervisor Supervisor { get; private set; } = null!;

    /// <summary>The command interpreter (REPL and control API).</summary>
    public CommandInterpreter Interpreter { get; private set; } = null!;

    /// <summary>The hosts commands act on: this daemon's, and a primary's agents.</summary>
    public ClusterDirectory Hosts { get; private set; } = null!;

    /// <summary>CPU and memory history of this host's processes (GUI charts, agents' samples).</summary>
    public ResourceSampler Sampler { get; private set; } = null!;

    /// <summary>This daemon's cluster key (primary or agent), else null.</summary>
    public ClusterKey? ClusterKey { get; private set; }

    /// <summary>Bound agent port of a primary, else null.</summary>
    public IPEndPoint? AgentsEndPoint => _agentListener?.LocalEndPoint;

    /// <summary>An agent's link to its primary, else null.</summary>
    public AgentLink? AgentLink { get; private set; }

    /// <summary>Event fan-out.</summary>
    public EventHub Events { get; } = new();

    /// <summary>Where the GUI's topology comes from.</summary>
    public ITopologySource Topology { get; private set; } = NoTopologySource.Instance;

    /// <summary>Bound signal address (host:port).</summary>
    public IPEndPoint SignalEndPoint { get; private set; } = null!;

    /// <summary>Bound control URL (http://host:port).</summary>
    public string ControlUrl { get; private set; } = "";

    /// <summary>Bound control address.</summary>
    public IPEndPoint ControlEndPoint { get; private set; } = null!;

    /// <summary>The file holding the control token (0600), or null (a token given directly, or <c>--no-auth</c>).</summary>
    public string? TokenFile { get; private set; }

    /// <summary>Caps of the control listener in force.</summary>
    public (int Total, int PerSource) ConnectionCaps { get; private set; }

    /// <summary>Completes when something asked the daemon to stop (quit, signal, API).</summary>
    public Task StopRequested => _stopRequested.Task;

    /// <summary>Asks the daemon to stop; the owner then calls <see cref="DisposeAsync"/>.</summary>
    public void RequestStop() => _stopRequested.TrySetResult();

    /// <summary>Loads the config (throws <see cref="ConfigException"/>), checks the security rules, binds both listeners and starts autostart apps.</summary>
    public static async Task<DaemonHost> StartAsync(DaemonOptions options, CancellationToken cancellationToken = default)
    {
        var config = LoadConfig(options.ConfigPath);
        var loopback = Endpoints.IsLoopback(options.Signal.Address) && Endpoints.IsLoopback(options.Control.Address);
        if (options.NoAuth && !loopback)
        {
            throw new ViscriptException(ErrorCode.Usage, "--no-auth is for loopback listeners only: a listener other hosts can reach always needs a token.");
        }
        if (!loopback && string.IsNullOrEmpty(options.Token) && options.TokenFile is null)
        {
            throw new ViscriptException(ErrorCode.Usage,
                "Refusing to listen on a non-loopback address without a token: pass --token-file FILE or set VISCRIPT_TOKEN (clients from other hosts must present it).");
        }
        if (options.TokenFile is { } file && string.IsNullOrEmpty(options.Token) && !options.NoAuth)
        {
            // An existing file is the operator's token; a missing one is created now, so it is there before any client looks.
            var existing = ControlToken.TryRead(file);
            if (existing is null)
            {
                existing = ControlToken.Generate();
                ControlToken.WriteAtomic(file, existing);
            }
            options = options with { Token = existing };
        }
        ValidateCluster(options.Cluster);
        var owns = options.LoggerFactory is null;
        var loggerFactory = options.LoggerFactory ?? LoggerFactory.Create(b => b
            .SetMinimumLevel(options.LogLevel)
            .AddFilter("Microsoft", LogLevel.Warning)
            .AddSimpleConsole(o => o.SingleLine = true)
            .AddConsole(o => o.LogToStandardErrorThreshold = LogLevel.Trace));
        var host = new DaemonHost(options, config, loggerFactory, owns) { TokenFile = options.TokenFile };
        try
        {
            await host.StartCoreAsync(cancellationToken);
        }
        catch
        {
            await host.DisposeAsync();
            throw;
        }
        return host;
    }

    private static void ValidateCluster(ClusterOptions c)
    {
        if (!AllowList.IsValidName(c.Name))
        {
            throw new ViscriptException(ErrorCode.Usage, $"--name '{c.Name}' is not a valid host name (lowercase letters, digits, '.', '_', '-'; at most 63).");
        }
        if (c.AgentsListen is not null && string.IsNullOrWhiteSpace(c.AllowFile))
        {
            throw new ViscriptException(ErrorCode.Usage, "--agents needs --agents-allow FILE: the agents' keys, one 'NAME PUBLIC-KEY' per line (an empty file allows nobody).");
        }
        if (c.AgentsListen is null && c.AllowFile is not null)
        {
            throw new ViscriptException(ErrorCode.Usage, "--agents-allow is for a primary: pass --agents ADDR too.");
        }
        if (c.Join is not null)
        {
            var colon = c.Join.LastIndexOf(':');
            if (colon <= 0 || !int.TryParse(c.Join[(colon + 1)..], NumberStyles.None, CultureInfo.InvariantCulture, out var port) || port is < 1 or > 65535)
            {
                throw new ViscriptException(ErrorCode.Usage, $"--join '{c.Join}': expected the primary's agent port as host:port.");
            }
            if (c.PrimaryKey is null || !Viscript.Core.Cluster.ClusterKey.IsPublicKey(c.PrimaryKey.Trim().ToLowerInvariant()))
            {
                throw new ViscriptException(ErrorCode.Usage, "--join needs --primary-key KEY: the primary's public key (64 hex characters, its 'viscript key' output).");
            }
        }
        else if (c.PrimaryKey is not null)
        {
            throw new ViscriptException(ErrorCode.Usage, "--primary-key is for an agent: pass --join ADDR too.");
        }
    }

    /// <summary>Loads config: the given path, else ./config.yaml when present, else empty.</summary>
    public static ViscriptConfig LoadConfig(string? path)
    {
        if (path is not null)
        {
            return ConfigLoader.LoadFile(path);
        }
        var local = Path.Combine(Directory.GetCurrentDirectory(), "config.yaml");
        return File.Exists(local) ? ConfigLoader.LoadFile(local) : ViscriptConfig.Empty(Directory.GetCurrentDirectory());
    }

    private async Task StartCoreAsync(CancellationToken cancellationToken)
    {
        // The default: a fresh token, written where this user's `viscript cli` looks once the port is known (below).
        var generated = !Options.NoAuth && string.IsNullOrEmpty(Options.Token);
        if (generated)
        {
            Options = Options with { Token = ControlToken.Generate() };
        }
        if (Options.NoAuth)
        {
            Log.NoAuth(_logger, Options.Control);
        }

        _signalServer = new SignalServer(new SignalServerOptions
        {
            Listen = Options.Signal,
            Token = Options.Token,
            TimeProvider = Options.TimeProvider,
        });
        _signalServer.Diagnostic += (_, text) => Events.Publish(new(Options.TimeProvider.GetUtcNow(), "diagnostic", 0, null, null, null, null, null, text));
        await _signalServer.StartAsync(cancellationToken);
        SignalEndPoint = _signalServer.LocalEndPoint;
        var gateway = new SignalServerGateway(_signalServer);

        Supervisor = new Supervisor(Config, gateway, new SupervisorOptions
        {
            TimeProvider = Options.TimeProvider,
            LogDirectory = Options.LogDirectory is null ? null : Path.GetFullPath(Options.LogDirectory),
            ShutdownTimeout = Options.ShutdownTimeout,
            ChildSubreaper = Options.ChildSubreaper,
            RecordRunState = true,
            MeterName = Options.MeterName,
        }, _loggerFactory.CreateLogger<Supervisor>());
        Supervisor.Changed += (_, e) => Events.Publish(e);
        // Apps a predecessor left when it was killed (SIGKILL) are stopped before anything starts (docs/viscript.md, Processes).
        await Supervisor.StopAbandonedAppsAsync(cancellationToken);
        Sampler = new ResourceSampler(Supervisor.List, new ResourceSamplerOptions { TimeProvider = Options.TimeProvider });
        Sampler.Start();
        StartCluster();
        Interpreter = new CommandInterpreter(Hosts);
        Topology = StartTopologySource();

        var builder = WebApplication.CreateSlimBuilder(new WebApplicationOptions { Args = [], ContentRootPath = AppContext.BaseDirectory });
        builder.Logging.ClearProviders();
        builder.Services.AddSingleton(_loggerFactory);
        builder.Services.AddSingleton<IHostLifetime, ExternalLifetime>();
        // Caps enforced before accept, and an accept loop that backs off instead of spinning (GuardedListenerFactory).
        ConnectionCaps = Options.Listener.Caps(DescriptorLimit.Soft(), DescriptorLimit.Open());
        builder.Services.RemoveAll<IConnectionListenerFactory>();
        builder.Services.AddSingleton<IConnectionListenerFactory>(
            new GuardedListenerFactory(
                new GuardedListenerOptions("control listener", "Viscript.Daemon.Listening.ControlListener", FirstEventId: 4120, ConnectionCaps.Total, ConnectionCaps.PerSource) { TimeProvider = Options.TimeProvider },
                _loggerFactory));
        builder.WebHost.ConfigureKestrel(k =>
        {
            var l = Options.Listener;
            k.AddServerHeader = false;
            k.Limits.MaxConcurrentConnections = ConnectionCaps.Total;
            k.Limits.MaxConcurrentUpgradedConnections = ConnectionCaps.Total;
            k.Limits.RequestHeadersTimeout = l.RequestHeadersTimeout;
            k.Limits.KeepAliveTimeout = l.KeepAliveTimeout;
            k.Limits.MinRequestBodyDataRate = new MinDataRate(l.MinRequestBodyBytesPerSecond, l.MinRequestBodyGrace);
            k.Limits.MaxRequestBodySize = l.MaxRequestBodyBytes;
            k.Listen(Options.Control, listen => listen.Protocols = HttpProtocols.Http1);
        });
        // Binding failures (malformed JSON, missing body) throw, so that the error middleware answers them as problem+json with code 2.
        builder.Services.Configure<Microsoft.AspNetCore.Routing.RouteHandlerOptions>(o => o.ThrowOnBadRequest = true);
        builder.Services.ConfigureHttpJsonOptions(o => o.SerializerOptions.Converters.Add(new System.Text.Json.Serialization.JsonStringEnumConverter()));
        // GET /metrics behind the control token (docs/operations.md "Metrics"); every scrape reads that moment's state.
        builder.Services.AddOpenTelemetry().ConfigureResource(r => r.AddService("viscript")).WithMetrics(m => m
            .AddMeter(Supervisor.InstrumentsMeterName)
            .AddPrometheusExporter(o => o.ScrapeResponseCacheDurationMilliseconds = 0));
        var web = builder.Build();
        GuiEndpoints.Map(web, this);
        ControlApi.Map(web, this);
        await web.StartAsync(cancellationToken);
        _web = web;
        var address = web.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()?.Addresses.FirstOrDefault()
            ?? $"http://{Options.Control}";
        ControlUrl = address.TrimEnd('/');
        ControlEndPoint = Endpoints.TryParse(ControlUrl, out var bound) ? bound : Options.Control;
        if (generated)
        {
            // Before the start line: a client that reads the line finds the token.
            TokenFile = Options.TokenFile ?? ControlToken.DefaultPath(ControlEndPoint, Options.RuntimeDirectory);
            ControlToken.WriteAtomic(TokenFile, Options.Token!);
            _writtenTokenFile = Options.TokenFile is null ? TokenFile : null;
        }
        Log.Started(_logger, SignalEndPoint, ControlUrl);
    }

    private void StartCluster()
    {
        var c = Options.Cluster;
        var version = typeof(DaemonHost).Assembly.GetName().Version?.ToString() ?? "0";
        var local = new LocalProcessHost(Supervisor, c.Name, Sampler);
        if (c.Enabled)
        {
            ClusterKey = Viscript.Core.Cluster.ClusterKey.LoadOrCreate(c.KeyFile ?? Viscript.Core.Cluster.ClusterKey.DefaultPath());
        }
        Hosts = new ClusterDirectory(local, c.AgentsListen is not null, Options.TimeProvider, _loggerFactory.CreateLogger("Viscript.Cluster"))
        {
            LocalVersion = version,
            LocalPublicKey = ClusterKey?.PublicKey,
        };
        Hosts.Changed += (_, e) => Events.Publish(e);
        if (c.AgentsListen is { } listen)
        {
            _allowList = new AllowListWatcher(c.AllowFile!, Hosts.Apply, c.AllowListPollInterval, Options.TimeProvider, _loggerFactory.CreateLogger("Viscript.Cluster.AllowList"));
            _agentListener = new AgentListener(new AgentListenerOptions
            {
                Listen = listen,
                Key = ClusterKey!,
                Channel = c.Channel,
                LoggerFactory = _loggerFactory,
            }, Hosts);
            _agentListener.Start();
        }
        if (c.Join is { } join)
        {
            AgentLink = new AgentLink(local, new AgentLinkOptions
            {
                Primary = join,
                PrimaryKey = c.PrimaryKey!.Trim().ToLowerInvariant(),
                Key = ClusterKey!,
                InitialBackoff = c.InitialBackoff,
                MaxBackoff = c.MaxBackoff,
                Channel = c.Channel,
                Version = version,
                LoggerFactory = _loggerFactory,
            });
            AgentLink.Start();
        }
    }

    /// <summary>The line printed on start for a primary or agent (null otherwise); tests parse it.</summary>
    public string? ClusterLine => ClusterKey is null ? null
        : AgentsEndPoint is { } agents
            ? $"viscript: cluster primary '{Hosts.Local.Name}' agents {agents} key {ClusterKey.PublicKey}" + (AgentLink is null ? "" : $"; agent of {Options.Cluster.Join}")
            : $"viscript: cluster agent of {Options.Cluster.Join} key {ClusterKey.PublicKey}";

    private ITopologySource StartTopologySource()
    {
        var command = Options.TopologyCommand;
        if (command is null && !string.IsNullOrWhiteSpace(Options.Manager))
        {
            if (string.IsNullOrWhiteSpace(Options.ManagerKeyFile))
            {
                return new FixedTopologySource(new TopologyView(true, Options.Manager, "no --manager-key-file: the manager answers topology queries only to its own or an admin key", null, [], [], []));
            }
            var skywire = SiblingExecutable.Locate("skywire", "Skywire", null, "VISCRIPT_SKYWIRE", out var tried);
            if (skywire is null)
            {
                return new FixedTopologySource(new TopologyView(true, Options.Manager,
                    "skywire not found for the topology command (set VISCRIPT_SKYWIRE or --topology-command); tried " + string.Join(", ", tried.Take(4)), null, [], [], []));
            }
            command = [.. SiblingExecutable.CommandFor(skywire), "cli", "--manager", Options.Manager, "--key", Options.ManagerKeyFile, "topology", "--json", "--watch"];
        }
        if (command is null)
        {
            return NoTopologySource.Instance;
        }
        _topologyCommand = new CommandTopologySource(new TopologyCommandOptions
        {
            Command = command,
            Label = Options.Manager,
            TimeProvider = Options.TimeProvider,
            LoggerFactory = _loggerFactory,
        });
        _topologyCommand.Start();
        return _topologyCommand;
    }

    /// <summary>The line printed on start; tests parse it.</summary>
    public string StartLine => $"viscript: signal {SignalEndPoint} control {ControlUrl} pid {Environment.ProcessId}";

    /// <summary>Stops every app (per policy), then the listeners.</summary>
    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            return;
        }
        RequestStop();
        // The cluster first: the primary sees this agent go (its rows show unreachable), not a flurry of stops.
        if (AgentLink is not null)
        {
            await AgentLink.DisposeAsync();
        }
        if (_agentListener is not null)
        {
            foreach (var r in Hosts.Remotes)
            {
                r.Disconnect("the primary is stopping");
            }
            await _agentListener.DisposeAsync();
        }
        _allowList?.Dispose();
        Sampler?.Dispose();
        if (Supervisor is not null)
        {
            await Supervisor.DisposeAsync();
        }
        if (_topologyCommand is not null)
        {
            await _topologyCommand.DisposeAsync();
        }
        if (_signalServer is not null)
        {
            await _signalServer.DisposeAsync();
        }
        if (_web is not null)
        {
            using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(5));
            try
            {
                await _web.StopAsync(cts.Token);
            }
            catch (OperationCanceledException)
            {
                // Streams still open after 5 s are cut; the daemon is exiting.
            }
            await _web.DisposeAsync();
        }
        if (_writtenTokenFile is not null)
        {
            File.Delete(_writtenTokenFile);
        }
        ClusterKey?.Dispose();
        if (_ownsLoggerFactory)
        {
            _loggerFactory.Dispose();
        }
    }

    /// <summary>The daemon handles SIGINT/SIGTERM itself (stop apps first); the host must not.</summary>
    private sealed class ExternalLifetime : IHostLifetime
    {
        public Task WaitForStartAsync(CancellationToken cancellationToken) => Task.CompletedTask;

        public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;
    }

    private sealed class FixedTopologySource(TopologyView view) : ITopologySource
    {
        public TopologyView Current => view;
    }

    // Event ids 4100-4119: daemon host.
    private static partial class Log
    {
        [LoggerMessage(EventId = 4100, Level = LogLevel.Information, Message = "viscript listening: signal {Signal}, control {Control}")]
        public static partial void Started(ILogger logger, IPEndPoint signal, string control);

        [LoggerMessage(EventId = 4101, Level = LogLevel.Warning, Message = "--no-auth: the control API on {Control} takes commands from every local user, who can then run programs as this daemon's user")]
        public static partial void NoAuth(ILogger logger, IPEndPoint control);
    }
}
