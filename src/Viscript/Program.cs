using System.CommandLine;
using System.Runtime.InteropServices;
using Viscript.Cli;
using Viscript.Core;
using Viscript.Core.Commands;
using Viscript.Core.Config;
using Viscript.Core.Control;
using Viscript.Daemon;

if (args.Length > 0 && args[0] == "cli")
{
    using var cliCts = new CancellationTokenSource();
    Console.CancelKeyPress += (_, e) =>
    {
        e.Cancel = true;
        cliCts.Cancel();
    };
    return await CliClient.RunAsync(args[1..], Console.In, Console.Out, Console.Error, cliCts.Token);
}

if (args.Length > 0 && args[0] == "key")
{
    return ClusterKeyCommand.Run(args[1..], Console.Out, Console.Error);
}

var headless = new Option<bool>("--headless", "-run_headless") { Description = "Run without the web GUI (daemon + REPL on stdin)." };
var gui = new Option<bool>("--gui") { Description = "Serve the web GUI even when config.yaml says runHeadless: true." };
var config = new Option<string?>("--config", "-c") { Description = "config.yaml to load (default ./config.yaml if present)." };
var signal = new Option<string>("--signal") { Description = "Signal server address; port 0 picks a free port.", DefaultValueFactory = _ => "127.0.0.1:7999" };
var control = new Option<string>("--control") { Description = "Control API (HTTP) address; port 0 picks a free port.", DefaultValueFactory = _ => Environment.GetEnvironmentVariable("VISCRIPT_CONTROL") ?? "127.0.0.1:7777" };
var logs = new Option<string?>("--logs") { Description = "Folder for per-app log files (default: logs next to the config)." };
var token = new Option<string?>("--token") { Description = "Token required from control clients and remote signal clients (default env VISCRIPT_TOKEN). Visible to every local user in ps: prefer --token-file or VISCRIPT_TOKEN." };
var tokenFile = new Option<string?>("--token-file") { Description = "Control token file: read if it exists, else created 0600 with a new token (default env VISCRIPT_TOKEN_FILE; without any: a generated token in ~/.viscript or $XDG_RUNTIME_DIR/viscript, removed on exit)." };
var noAuth = new Option<bool>("--no-auth") { Description = "INSECURE: serve the loopback control API without a token; every local user can then run programs as this user." };
var topologyCommand = new Option<string?>("--topology-command") { Description = "Command printing one topology JSON document per line for the GUI (default with --manager: skywire cli ... topology --json --watch; env VISCRIPT_TOPOLOGY_COMMAND)." };
var verbose = new Option<bool>("--verbose", "-v") { Description = "Diagnostic logs (information level) on stderr." };
var noRepl = new Option<bool>("--no-repl") { Description = "Do not read commands from stdin." };
var manager = new Option<string?>("--manager") { Description = "Skywire manager (PUBKEY@host:port) whose mesh the GUI draws (default env VISCRIPT_MANAGER)." };
var managerKey = new Option<string?>("--manager-key-file") { Description = "Key file for the topology queries: the manager's own or an --admin key (default env VISCRIPT_MANAGER_KEY_FILE)." };
var ledgerDir = new Option<string?>("--ledger") { Description = "Skywire ledger directory (a metering manager's --ledger) whose earnings and spending per node the GUI charts, read-only (default env VISCRIPT_LEDGER)." };

var hostName = new Option<string>("--name") { Description = "This host's name in a cluster (HOST:ID); agents are named by the primary's allow-list.", DefaultValueFactory = _ => "local" };
var clusterKey = new Option<string?>("--cluster-key") { Description = "Cluster key file of a primary or agent (default ~/.viscript/cluster.key, created 0600 on first use; 'viscript key' prints its public key)." };
var agents = new Option<string?>("--agents") { Description = "Be a cluster primary: accept agents on this address (TLS, pinned keys; needs --agents-allow)." };
var agentsAllow = new Option<string?>("--agents-allow") { Description = "Allow-list of a primary: one 'NAME PUBLIC-KEY' per line; re-read when it changes." };
var join = new Option<string?>("--join") { Description = "Be an agent: join the primary at this host:port (its --agents address; needs --primary-key)." };
var primaryKey = new Option<string?>("--primary-key") { Description = "The primary's public key (its 'viscript key' output), pinned by the agent." };

var root = new RootCommand("viscript: process manager and console for Skywire. 'viscript cli --help' for the client.")
{
    headless, gui, config, signal, control, logs, token, tokenFile, noAuth, verbose, noRepl, manager, managerKey, ledgerDir, topologyCommand,
    hostName, clusterKey, agents, agentsAllow, join, primaryKey,
};
// Shown in --help; the real dispatch happens above, before parsing, so that cli arguments are passed through untouched.
root.Subcommands.Add(new Command("cli", "Send a command to a running daemon (see 'viscript cli --help')."));
root.Subcommands.Add(new Command("key", "Print this host's cluster public key, creating the key file if needed (see 'viscript key --help')."));

root.SetAction(async (parse, _) =>
{
    if (!Endpoints.TryParse(parse.GetValue(signal)!, out var signalEp))
    {
        Console.Error.WriteLine($"viscript: bad --signal address '{parse.GetValue(signal)}' (expected host:port).");
        return (int)ErrorCode.Usage;
    }
    if (!Endpoints.TryParse(parse.GetValue(control)!, out var controlEp))
    {
        Console.Error.WriteLine($"viscript: bad --control address '{parse.GetValue(control)}' (expected host:port).");
        return (int)ErrorCode.Usage;
    }
    System.Net.IPEndPoint? agentsEp = null;
    if (parse.GetValue(agents) is { } agentsText && !Endpoints.TryParse(agentsText, out agentsEp))
    {
        Console.Error.WriteLine($"viscript: bad --agents address '{agentsText}' (expected host:port).");
        return (int)ErrorCode.Usage;
    }
    IReadOnlyList<string>? topology = null;
    if ((parse.GetValue(topologyCommand) ?? Environment.GetEnvironmentVariable("VISCRIPT_TOPOLOGY_COMMAND")) is { Length: > 0 } topologyText)
    {
        try
        {
            topology = CommandLineParser.Tokenize(topologyText);
        }
        catch (ViscriptException ex)
        {
            Console.Error.WriteLine($"viscript: bad --topology-command: {ex.Message}");
            return (int)ErrorCode.Usage;
        }
    }
    if (parse.GetValue(token) is not null)
    {
        Console.Error.WriteLine("viscript: warning: --token on the command line is visible to every local user (ps, /proc); use --token-file or VISCRIPT_TOKEN.");
    }
    if (parse.GetValue(noAuth))
    {
        Console.Error.WriteLine($"viscript: WARNING: --no-auth: the control API on {controlEp} accepts commands from EVERY local user, who can then run any program as user '{Environment.UserName}'.");
    }
    var options = new DaemonOptions
    {
        ConfigPath = parse.GetValue(config),
        Signal = signalEp,
        Control = controlEp,
        LogDirectory = parse.GetValue(logs),
        Token = parse.GetValue(token) ?? Environment.GetEnvironmentVariable(ControlToken.EnvironmentVariable),
        TokenFile = parse.GetValue(tokenFile) ?? (Environment.GetEnvironmentVariable(ControlToken.FileEnvironmentVariable) is { Length: > 0 } f ? f : null),
        NoAuth = parse.GetValue(noAuth),
        TopologyCommand = topology,
        LogLevel = parse.GetValue(verbose) ? LogLevel.Information : LogLevel.Warning,
        Manager = parse.GetValue(manager) ?? Environment.GetEnvironmentVariable("VISCRIPT_MANAGER"),
        ManagerKeyFile = parse.GetValue(managerKey) ?? Environment.GetEnvironmentVariable("VISCRIPT_MANAGER_KEY_FILE"),
        Ledger = parse.GetValue(ledgerDir) ?? Environment.GetEnvironmentVariable("VISCRIPT_LEDGER"),
        // The daemon owns its process: orphans of the apps come back to it and are reaped (see docs/viscript.md, Processes).
        ChildSubreaper = true,
        Cluster = new ClusterOptions
        {
            Name = parse.GetValue(hostName)!,
            KeyFile = parse.GetValue(clusterKey),
            AgentsListen = agentsEp,
            AllowFile = parse.GetValue(agentsAllow),
            Join = parse.GetValue(join),
            PrimaryKey = parse.GetValue(primaryKey),
        },
    };
    if (parse.GetValue(gui) && parse.GetValue(headless))
    {
        Console.Error.WriteLine("viscript: --gui and --headless contradict each other; give one.");
        return (int)ErrorCode.Usage;
    }
    return await RunDaemonAsync(options, parse.GetValue(headless), parse.GetValue(gui), parse.GetValue(noRepl));
});

return await root.Parse(args).InvokeAsync(new InvocationConfiguration { ProcessTerminationTimeout = null });

static async Task<int> RunDaemonAsync(DaemonOptions options, bool headlessFlag, bool guiFlag, bool noRepl)
{
    // A closed terminal (SIGHUP, then EIO on every write) must not crash the daemon before it stopped its apps.
    Console.SetOut(new HangupSafeWriter(Console.Out));
    Console.SetError(new HangupSafeWriter(Console.Error));
    ViscriptConfig cfg;
    try
    {
        cfg = DaemonHost.LoadConfig(options.ConfigPath);
    }
    catch (ConfigException ex)
    {
        Console.Error.WriteLine("viscript: invalid configuration, nothing started:");
        foreach (var e in ex.Errors)
        {
            Console.Error.WriteLine("  " + e);
        }
        return (int)ErrorCode.BadConfig;
    }
    foreach (var w in cfg.Warnings)
    {
        Console.Error.WriteLine("viscript: warning: " + w);
    }
    // --gui wins over the config's runHeadless (the shipped config.yaml is headless); --headless over everything.
    var isHeadless = headlessFlag || (cfg.Settings.RunHeadless && !guiFlag);
    options = options with { ConfigPath = cfg.FilePath, Headless = isHeadless };
    if (cfg.Settings.VerifyParsingByPrinting)
    {
        PrintConfig(cfg);
    }

    DaemonHost daemon;
    try
    {
        daemon = await DaemonHost.StartAsync(options);
    }
    catch (ViscriptException ex)
    {
        Console.Error.WriteLine("viscript: " + ex.Message);
        return (int)ex.Code;
    }
    catch (ConfigException ex)
    {
        Console.Error.WriteLine("viscript: invalid configuration, nothing started:\n  " + string.Join("\n  ", ex.Errors));
        return (int)ErrorCode.BadConfig;
    }
    catch (Exception ex) when (ex is IOException or System.Net.Sockets.SocketException or InvalidOperationException)
    {
        Console.Error.WriteLine("viscript: could not start listening: " + ex.Message);
        return (int)ErrorCode.Internal;
    }

    var stdout = Console.Out;
    stdout.WriteLine(daemon.StartLine);
    if (daemon.ClusterLine is { } clusterLine)
    {
        stdout.WriteLine(clusterLine);
    }
    if (!isHeadless)
    {
        stdout.WriteLine($"viscript: GUI {daemon.ControlUrl}/");
        if (daemon.Options.Token is not null)
        {
            // The token itself is never printed (stdout often ends up in a log file): the sign-in link comes from the token file.
            var cliHint = daemon.TokenFile is null ? "" : $" (token file {daemon.TokenFile})";
            stdout.WriteLine($"viscript: sign in to the GUI with the link from: viscript cli --control {daemon.ControlEndPoint} --gui-url{cliHint}");
        }
    }
    stdout.Flush();

    // SIGINT, SIGTERM, SIGQUIT, SIGHUP: stop apps per policy, then exit. A second signal does not cut the graceful stop
    // short. SIGHUP (the terminal viscript runs in was closed, an ssh session dropped) used to end the process at once,
    // like SIGKILL, leaving every app running with nobody to stop it; its apps lead their own sessions, so they never
    // get the hangup themselves. A SIGHUP ignored at start (nohup) stays ignored.
    var registrations = new List<PosixSignalRegistration>();
    foreach (var sig in new[] { PosixSignal.SIGINT, PosixSignal.SIGTERM, PosixSignal.SIGQUIT, PosixSignal.SIGHUP })
    {
        registrations.Add(PosixSignalRegistration.Create(sig, ctx =>
        {
            ctx.Cancel = true;
            daemon.RequestStop();
        }));
    }

    // On a terminal the REPL reads keys and keeps the input row below everything it prints (prompt "viscript> ").
    var terminal = !noRepl && !Console.IsInputRedirected && !Console.IsOutputRedirected;
    var repl = new Repl(daemon, Console.In, stdout, terminal ? TerminalWidth : null);
    if (terminal)
    {
        var keys = new Thread(() =>
        {
            try
            {
                while (true)
                {
                    repl.Key(Console.ReadKey(intercept: true));
                }
            }
            catch (Exception ex) when (ex is InvalidOperationException or IOException)
            {
                // stdin is no longer a console, or the terminal is gone (EIO after a hangup; SIGHUP stops the daemon).
            }
        }) { IsBackground = true, Name = "viscript REPL keys" };
        keys.Start();
    }
    using var replCts = new CancellationTokenSource();
    var events = repl.PrintEventsAsync(replCts.Token);
    foreach (var line in daemon.Supervisor.StartAutostartApps())
    {
        repl.WriteLine(line);
    }
    if (!noRepl)
    {
        _ = Task.Run(async () =>
        {
            if (await repl.RunAsync(replCts.Token))
            {
                daemon.RequestStop();
            }
        });
    }

    await daemon.StopRequested;
    repl.Close();
    repl.WriteLine("viscript: stopping apps...");
    await daemon.DisposeAsync();
    await replCts.CancelAsync();
    await events;
    repl.WriteLine("viscript: stopped.");
    foreach (var r in registrations)
    {
        r.Dispose();
    }
    return 0;
}

static int TerminalWidth()
{
    try
    {
        return Console.WindowWidth is > 0 and var w ? w : 80;
    }
    catch (IOException)
    {
        return 80;
    }
}

static void PrintConfig(ViscriptConfig cfg)
{
    Console.WriteLine("[ Config ]");
    foreach (var app in cfg.Apps.Values.OrderBy(a => a.Name, StringComparer.Ordinal))
    {
        Console.WriteLine($"[ App \"{app.Name}\" ]");
        Console.WriteLine($"\tPath: {app.Path}");
        Console.WriteLine($"\tArgs: [{string.Join(", ", app.DefaultArgs)}]");
        Console.WriteLine($"\tDescription: {app.Description}");
        Console.WriteLine($"\tHelp: {app.Help}");
    }
    Console.WriteLine($"Default Settings: runHeadless={cfg.Settings.RunHeadless} verboseInput={cfg.Settings.VerboseInput} verifyParsingByPrinting={cfg.Settings.VerifyParsingByPrinting}");
}
