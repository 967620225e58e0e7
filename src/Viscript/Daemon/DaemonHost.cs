using System.Net;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Viscript.Core;
using Viscript.Core.Commands;
using Viscript.Core.Config;
using Viscript.Core.Supervision;
using Viscript.Signal;

namespace Viscript.Daemon;

/// <summary>Daemon settings from the command line.</summary>
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

    /// <summary>Bearer token for the control API and signal clients from other hosts. Never logged.</summary>
    public string? Token { get; init; }

    /// <summary>Headless (no GUI).</summary>
    public bool Headless { get; init; } = true;

    /// <summary>Minimum level of diagnostic logs (written to stderr).</summary>
    public LogLevel LogLevel { get; init; } = LogLevel.Warning;

    /// <summary>Upper bound of the graceful stop of all apps on daemon exit.</summary>
    public TimeSpan ShutdownTimeout { get; init; } = TimeSpan.FromSeconds(30);

    /// <summary>Clock.</summary>
    public TimeProvider TimeProvider { get; init; } = TimeProvider.System;

    /// <summary>Skywire manager for the GUI topology (<c>PUBKEY@host:port</c>); null = none.</summary>
    public string? Manager { get; init; }

    /// <summary>Key file the topology queries authenticate with (the manager's own or an admin key).</summary>
    public string? ManagerKeyFile { get; init; }

    /// <summary>
    /// Make the process a child subreaper, so that orphans of the apps are re-parented to it, reaped and killed on exit
    /// (<see cref="SupervisorOptions.ChildSubreaper"/>). The viscript executable sets it; in-process hosts (tests) leave it off.
    /// </summary>
    public bool ChildSubreaper { get; init; }
}

/// <summary>
/// The composition root of the daemon: signal server, supervisor, control API (Kestrel) and event hub.
/// The REPL is a separate front-end on top (<see cref="Repl"/>).
/// </summary>
public sealed partial class DaemonHost : IAsyncDisposable
{
    private readonly TaskCompletionSource _stopRequested = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly ILoggerFactory _loggerFactory;
    private readonly ILogger _logger;
    private WebApplication? _web;
    private SignalServer? _signalServer;
    private int _disposed;

    private DaemonHost(DaemonOptions options, ViscriptConfig config, ILoggerFactory loggerFactory)
    {
        Options = options;
        Config = config;
        _loggerFactory = loggerFactory;
        _logger = loggerFactory.CreateLogger("Viscript.Daemon");
    }

    /// <summary>Options.</summary>
    public DaemonOptions Options { get; }

    /// <summary>Loaded config.</summary>
    public ViscriptConfig Config { get; }

    /// <summary>The supervisor.</summary>
    public Supervisor Supervisor { get; private set; } = null!;

    /// <summary>The command interpreter (REPL and control API).</summary>
    public CommandInterpreter Interpreter { get; private set; } = null!;

    /// <summary>Event fan-out.</summary>
    public EventHub Events { get; } = new();

    /// <summary>Bound signal address (host:port).</summary>
    public IPEndPoint SignalEndPoint { get; private set; } = null!;

    /// <summary>Bound control URL (http://host:port).</summary>
    public string ControlUrl { get; private set; } = "";

    /// <summary>Completes when something asked the daemon to stop (quit, signal, API).</summary>
    public Task StopRequested => _stopRequested.Task;

    /// <summary>Asks the daemon to stop; the owner then calls <see cref="DisposeAsync"/>.</summary>
    public void RequestStop() => _stopRequested.TrySetResult();

    /// <summary>Loads the config (throws <see cref="ConfigException"/>), checks the security rules, binds both listeners and starts autostart apps.</summary>
    public static async Task<DaemonHost> StartAsync(DaemonOptions options, CancellationToken cancellationToken = default)
    {
        var config = LoadConfig(options.ConfigPath);
        var needsToken = !Endpoints.IsLoopback(options.Signal.Address) || !Endpoints.IsLoopback(options.Control.Address);
        if (needsToken && string.IsNullOrEmpty(options.Token))
        {
            throw new ViscriptException(ErrorCode.Usage,
                "Refusing to listen on a non-loopback address without a token: pass --token or set VISCRIPT_TOKEN (clients from other hosts must present it).");
        }
        var loggerFactory = LoggerFactory.Create(b => b
            .SetMinimumLevel(options.LogLevel)
            .AddFilter("Microsoft", LogLevel.Warning)
            .AddSimpleConsole(o => o.SingleLine = true)
            .AddConsole(o => o.LogToStandardErrorThreshold = LogLevel.Trace));
        var host = new DaemonHost(options, config, loggerFactory);
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
        }, _loggerFactory.CreateLogger<Supervisor>());
        Supervisor.Changed += (_, e) => Events.Publish(e);
        // Apps a predecessor left when it was killed (SIGKILL) are stopped before anything starts (docs/viscript.md, Processes).
        await Supervisor.StopAbandonedAppsAsync(cancellationToken);
        Interpreter = new CommandInterpreter(Supervisor);

        var builder = WebApplication.CreateSlimBuilder(new WebApplicationOptions { Args = [], ContentRootPath = AppContext.BaseDirectory });
        builder.Logging.ClearProviders();
        builder.Services.AddSingleton(_loggerFactory);
        builder.Services.AddSingleton<IHostLifetime, ExternalLifetime>();
        builder.WebHost.ConfigureKestrel(k => k.Listen(Options.Control));
        // Binding failures (malformed JSON, missing body) throw, so that the error middleware answers them as problem+json with code 2.
        builder.Services.Configure<Microsoft.AspNetCore.Routing.RouteHandlerOptions>(o => o.ThrowOnBadRequest = true);
        builder.Services.ConfigureHttpJsonOptions(o => o.SerializerOptions.Converters.Add(new System.Text.Json.Serialization.JsonStringEnumConverter()));
        var web = builder.Build();
        GuiEndpoints.Map(web, this);
        ControlApi.Map(web, this);
        await web.StartAsync(cancellationToken);
        _web = web;
        var address = web.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()?.Addresses.FirstOrDefault()
            ?? $"http://{Options.Control}";
        ControlUrl = address.TrimEnd('/');
        Log.Started(_logger, SignalEndPoint, ControlUrl);
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
        if (Supervisor is not null)
        {
            await Supervisor.DisposeAsync();
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
            }
            await _web.DisposeAsync();
        }
        _loggerFactory.Dispose();
    }

    /// <summary>The daemon handles SIGINT/SIGTERM itself (stop apps first); the host must not.</summary>
    private sealed class ExternalLifetime : IHostLifetime
    {
        public Task WaitForStartAsync(CancellationToken cancellationToken) => Task.CompletedTask;

        public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;
    }

    // Event ids 4100-4199: daemon host.
    private static partial class Log
    {
        [LoggerMessage(EventId = 4100, Level = LogLevel.Information, Message = "viscript listening: signal {Signal}, control {Control}")]
        public static partial void Started(ILogger logger, IPEndPoint signal, string control);
    }
}
