using System.Globalization;
using Viscript.Core.Cluster;
using Viscript.Core.Control;
using Viscript.Core.Supervision;

namespace Viscript.Core.Commands;

/// <summary>What an interactive front-end should do after a command.</summary>
public enum CommandAction
{
    /// <summary>Just print the lines.</summary>
    None = 0,
    /// <summary>Clear the screen.</summary>
    Clear = 1,
    /// <summary>Leave the REPL or shell (in the daemon's REPL: stop the daemon).</summary>
    Quit = 2,
    /// <summary>Attach the terminal to <see cref="CommandResult.Target"/>.</summary>
    Attach = 3,
    /// <summary>Stream new output of <see cref="CommandResult.Target"/> until detached.</summary>
    Follow = 4,
}

/// <summary>Outcome of one command: lines to print and an error code (0 = success).</summary>
/// <param name="Code">Error code.</param>
/// <param name="Lines">Lines to print.</param>
/// <param name="Action">What the front-end does next.</param>
/// <param name="TargetId">The action's process id on its host.</param>
/// <param name="Target">The action's target as the namespace writes it: <c>ID</c>, or <c>HOST:ID</c> on an agent.</param>
public sealed record CommandResult(ErrorCode Code, IReadOnlyList<string> Lines, CommandAction Action = CommandAction.None, ulong? TargetId = null, string? Target = null)
{
    /// <summary>Success with lines.</summary>
    public static CommandResult Ok(params IReadOnlyList<string> lines) => new(ErrorCode.Ok, lines);

    /// <summary>Failure with a message.</summary>
    public static CommandResult Fail(ErrorCode code, string message) => new(code, [message]);

    /// <summary>Whether the command succeeded.</summary>
    public bool Success => Code == ErrorCode.Ok;

    /// <summary>The wire form.</summary>
    public CommandResponse ToResponse() => new((int)Code, Lines, Action == CommandAction.None ? null : Action.ToString().ToLowerInvariant(), TargetId, Target);
}

/// <summary>
/// The viscript command language (original names and aliases, plus kill/restart/logs, and <c>hosts</c> in a cluster).
/// One instance serves the REPL and the control API (<c>POST /api/command</c>), so the CLI and GUI see exactly the
/// REPL's behaviour. Ids and apps are <c>ID</c>/<c>APP</c> on this host or <c>HOST:ID</c>/<c>HOST:APP</c> on an agent
/// (<see cref="ClusterDirectory"/>); the output of a command is the same whichever host it acts on.
/// </summary>
public sealed partial class CommandInterpreter
{
    private static readonly (string Usage, string Text)[] s_help =
    [
        ("apps [HOST]", "List the apps of config.yaml (of every host in a cluster)."),
        ("help <app>", "Show an app's help text."),
        ("start (s) [-a] <app> [args]", "Start an app (HOST:app on an agent); -a attaches to it."),
        ("start -n N <app> [args]", "Start N instances of an app in one call."),
        ("start [-n N] -m <app>...", "Start several apps (their default args)."),
        ("start [-n N] -g <group|all>", "Start every app of a group (groups: in config.yaml), or all."),
        ("list_apps (la, ps) [-a] [-f] [HOST]", "List running and recently finished processes; -a all, -f full command lines."),
        ("forget <id> | -a", "Drop a finished process (-a: every finished one) from the list; ids are not reused."),
        ("ping <id>", "Signal round trip to a process."),
        ("res_usage (ru) <id>", "CPU, memory, threads, files (and heap for signal clients)."),
        ("shutdown (sd) <id>", "Stop: signal SHUTDOWN, then SIGTERM, then SIGKILL."),
        ("kill <id>", "Kill the process tree at once."),
        ("restart <id>", "Stop if running, then start again (same id)."),
        ("logs <id> [-n N] [-f]", "Show captured output; -f follows it."),
        ("attach <id>", "Send typed lines to the process, show its output."),
        ("detach, ^Z, CTRL+Z", "Detach from the attached process."),
        ("hosts", "The hosts of the cluster: state, last seen, version, load, memory."),
        ("clear (c, cls)", "Clear the screen."),
        ("quit (q, exit)", "Stop viscript (REPL) or leave the shell (cli)."),
    ];

    /// <summary>How long <c>la</c> (without <c>-a</c>) keeps showing a finished process.</summary>
    public static readonly TimeSpan RecentlyFinished = TimeSpan.FromMinutes(10);

    /// <summary>An interpreter for a daemon without agents.</summary>
    public CommandInterpreter(Supervisor supervisor)
        : this(new ClusterDirectory(new LocalProcessHost(supervisor, "local")))
    {
    }

    /// <summary>An interpreter over the hosts of <paramref name="directory"/>.</summary>
    public CommandInterpreter(ClusterDirectory directory)
    {
        ArgumentNullException.ThrowIfNull(directory);
        Directory = directory;
    }

    /// <summary>The hosts commands act on.</summary>
    public ClusterDirectory Directory { get; }

    /// <summary>This daemon's supervisor.</summary>
    public Supervisor Supervisor => Directory.Local.Supervisor;

    /// <summary>Parses and runs a line.</summary>
    public async Task<CommandResult> ExecuteLineAsync(string line, CancellationToken cancellationToken = default)
    {
        List<string> tokens;
        try
        {
            tokens = CommandLineParser.Tokenize(line);
        }
        catch (ViscriptException ex)
        {
            return CommandResult.Fail(ex.Code, ex.Message);
        }
        return await ExecuteAsync(tokens, cancellationToken);
    }

    /// <summary>Runs a tokenized command. Never throws for bad input; failures come back with their code.</summary>
    public async Task<CommandResult> ExecuteAsync(IReadOnlyList<string> tokens, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(tokens);
        if (tokens.Count == 0)
        {
            return CommandResult.Ok();
        }
        var name = tokens[0].ToLowerInvariant();
        var args = tokens.Skip(1).ToList();
        try
        {
            return name switch
            {
                "help" or "h" or "?" => Help(args),
                "apps" => Apps(args),
                "start" or "s" => await StartAsync(args, cancellationToken),
                "list_apps" or "la" or "ps" or "list_tasks" => ListApps(args),
                "forget" => Forget(args),
                "ping" => await PingAsync(args, cancellationToken),
                "res_usage" or "ru" => await ResUsageAsync(args, cancellationToken),
                "shutdown" or "sd" => await StopAsync(args, "shutdown", (h, id, ct) => h.StopAsync(id, ct), cancellationToken),
                "kill" => await StopAsync(args, "kill", (h, id, ct) => h.KillAsync(id, ct), cancellationToken),
                "restart" => await RestartAsync(args, cancellationToken),
                "logs" => await LogsAsync(args, cancellationToken),
                "attach" => await AttachAsync(args, cancellationToken),
                "hosts" => Hosts(args),
                "detach" or "^z" => CommandResult.Ok("No app is attached."),
                "clear" or "c" or "cls" => new CommandResult(ErrorCode.Ok, [], CommandAction.Clear),
                "quit" or "q" or "exit" => new CommandResult(ErrorCode.Ok, [], CommandAction.Quit),
                _ => CommandResult.Fail(ErrorCode.UnknownCommand, $"\"{tokens[0]}\" is an unknown command. Type \"help\" for the list."),
            };
        }
        catch (ViscriptException ex)
        {
            return CommandResult.Fail(ex.Code, ex.Message);
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            throw;
        }
    }

    private CommandResult Help(List<string> args)
    {
        if (args.Count > 0)
        {
            var (host, appName) = Directory.ParseApp(args[0]);
            var app = host.Apps.FirstOrDefault(a => string.Equals(a.Name, appName, StringComparison.OrdinalIgnoreCase))
                ?? throw new ViscriptException(ErrorCode.UnknownApp, $"App with name '{args[0]}' doesn't exist. Try running 'apps'.");
            var lines = new List<string> { $"{app.Name}: {app.Description}" };
            if (!string.IsNullOrWhiteSpace(app.Help))
            {
                lines.AddRange(app.Help.Split('\n').Select(l => l.TrimEnd('\r')));
            }
            else
            {
                lines.Add("(no help text in config.yaml)");
            }
            return CommandResult.Ok(lines);
        }
        var width = s_help.Max(h => h.Usage.Length) + 3;
        var output = new List<string> { "Commands (ids are the sequence ids shown by 'la'; HOST:ID on an agent of a cluster):" };
        output.AddRange(s_help.Select(h => "  " + h.Usage.PadRight(width) + h.Text));
        return CommandResult.Ok(output);
    }

    private CommandResult Apps(List<string> args)
    {
        if (args.Count > 1)
        {
            return CommandResult.Fail(ErrorCode.Usage, "Usage: apps [HOST]");
        }
        IEnumerable<IProcessHost> hosts = args.Count == 1 ? [Directory.Resolve(args[0])] : [Directory.Local, .. Directory.Remotes];
        var apps = hosts.SelectMany(h => h.Apps.Select(a => (Name: h.IsLocal ? a.Name : $"{h.Name}:{a.Name}", a.Description))).ToList();
        if (apps.Count == 0)
        {
            return CommandResult.Ok("No available apps found.");
        }
        var width = apps.Max(a => a.Name.Length) + 4;
        var lines = apps.Select(a => a.Name.PadRight(width) + "- " + a.Description).ToList();
        lines.Add("Type \"help <name>\" for expected parameters.");
        return CommandResult.Ok(lines);
    }

    /// <summary>Upper bound of <c>start -n N</c> and of the starts of one command (a typo must not fork-bomb the host).</summary>
    public const int MaxStartsPerCommand = 10_000;

    /// <summary>
    /// <c>start [-a] &lt;app&gt; [args]</c>, plus several starts in one call (issue 19.3): <c>-n N</c> starts N instances,
    /// <c>-m APP...</c> several apps (their default arguments), <c>-g GROUP</c> every app of a group (<c>groups:</c> in
    /// config.yaml; <c>-g all</c> every app, as <c>supervisorctl start all</c>; <c>HOST:GROUP</c> on an agent).
    /// Every name is checked before the first start; a failed start ends the command with its code after the lines of
    /// the starts that happened.
    /// </summary>
    private async Task<CommandResult> StartAsync(List<string> args, CancellationToken ct)
    {
        var attach = false;
        var count = 1;
        string? group = null;
        var many = false;
        while (args.Count > 0 && args[0].StartsWith('-') && args[0].Length > 1)
        {
            var option = args[0];
            args.RemoveAt(0);
            switch (option)
            {
                case "-a":
                    attach = true;
                    break;
                case "-m":
                    many = true;
                    break;
                case "-n" or "-g" when args.Count == 0:
                    return CommandResult.Fail(ErrorCode.Usage, $"start: {option} needs a value. {StartUsage}");
                case "-n":
                    if (!int.TryParse(args[0], NumberStyles.None, CultureInfo.InvariantCulture, out count) || count < 1 || count > MaxStartsPerCommand)
                    {
                        return CommandResult.Fail(ErrorCode.Usage, $"start: -n takes a count from 1 to {MaxStartsPerCommand}, got '{args[0]}'.");
                    }
                    args.RemoveAt(0);
                    break;
                case "-g":
                    group = args[0];
                    args.RemoveAt(0);
                    break;
                case "--":
                    goto parsed;
                default:
                    return CommandResult.Fail(ErrorCode.Usage, $"start: unknown option '{option}'. {StartUsage}");
            }
        }
    parsed:
        List<(IProcessHost Host, string App)> targets;
        IReadOnlyList<string> appArgs = [];
        if (group is not null)
        {
            if (args.Count > 0 || many)
            {
                return CommandResult.Fail(ErrorCode.Usage, $"start: -g takes no app names or arguments. {StartUsage}");
            }
            var (host, name) = Directory.ParseApp(group);
            var all = string.Equals(name, "all", StringComparison.OrdinalIgnoreCase);
            targets = [.. host.Apps
                .Where(a => all || (a.Groups?.Contains(name, StringComparer.OrdinalIgnoreCase) ?? false))
                .OrderBy(a => a.Name, StringComparer.Ordinal)
                .Select(a => (host, a.Name))];
            if (targets.Count == 0)
            {
                return CommandResult.Fail(ErrorCode.UnknownApp, $"No app is in group '{group}'. Groups are set with 'groups:' in config.yaml; '-g all' starts every app.");
            }
        }
        else if (args.Count == 0)
        {
            return CommandResult.Fail(ErrorCode.Usage, "Must pass an app name to start, e.g. start <app> [args]. Try running 'apps'.");
        }
        else if (many)
        {
            targets = [.. args.Select(Directory.ParseApp)];
        }
        else
        {
            targets = [Directory.ParseApp(args[0])];
            appArgs = args.Skip(1).ToList();
        }
        var total = (long)targets.Count * count;
        if (total > MaxStartsPerCommand)
        {
            return CommandResult.Fail(ErrorCode.Usage, $"start: {total} starts in one command; at most {MaxStartsPerCommand}.");
        }
        if (attach && total > 1)
        {
            return CommandResult.Fail(ErrorCode.Usage, "start: -a attaches to one app; it cannot be combined with -n, -m or -g.");
        }
        if (total > 1)
        {
            foreach (var (host, app) in targets)
            {
                if (!host.Apps.Any(a => string.Equals(a.Name, app, StringComparison.OrdinalIgnoreCase)))
                {
                    return CommandResult.Fail(ErrorCode.UnknownApp, $"App with name '{(host.IsLocal ? app : $"{host.Name}:{app}")}' doesn't exist. Try running 'apps'. Nothing was started.");
                }
            }
        }
        var lines = new List<string>((int)total);
        ProcessInfo? last = null;
        IProcessHost? lastHost = null;
        foreach (var (host, app) in targets)
        {
            for (var i = 0; i < count; i++)
            {
                try
                {
                    last = await host.StartAsync(app, appArgs, ct);
                }
                catch (ViscriptException ex) when (lines.Count > 0)
                {
                    lines.Add(ex.Message);
                    return new CommandResult(ex.Code, lines);
                }
                lastHost = host;
                lines.Add($"Added external app (ID: {ClusterDirectory.Qualify(host, last.Id)}, Command: {last.CommandLine})");
            }
        }
        return attach && last is not null && lastHost is not null && !last.Daemon
            ? new CommandResult(ErrorCode.Ok, lines, CommandAction.Attach, last.Id, ClusterDirectory.Qualify(lastHost, last.Id))
            : CommandResult.Ok(lines);
    }

    private const string StartUsage = "Usage: start [-a] <app> [args] | start -n N <app> [args] | start [-n N] -m <app>... | start [-n N] -g <group|all>";

    private CommandResult ListApps(List<string> args)
    {
        var full = false;
        var all = false;
        IProcessHost? only = null;
        foreach (var a in args)
        {
            if (a == "-f")
            {
                full = true;
            }
            else if (a == "-a")
            {
                all = true;
            }
            else if (a is "-af" or "-fa")
            {
                (all, full) = (true, true);
            }
            else if (!a.StartsWith('-') && only is null)
            {
                only = Directory.Resolve(a);
            }
            else
            {
                return CommandResult.Fail(ErrorCode.Usage, $"Unknown option '{a}'. Usage: list_apps [-a] [-f] [HOST]");
            }
        }
        var list = only is null ? Directory.ListAll() : only.List().Select(p => p with { Host = only.Name }).ToList();
        var hidden = 0;
        if (!all)
        {
            // Running apps and those that finished within RecentlyFinished; older finished rows only with -a.
            var since = Supervisor.Time.GetUtcNow() - RecentlyFinished;
            var shown = list.Where(p => p.EndedAt is not { } ended || ended >= since).ToList();
            hidden = list.Count - shown.Count;
            list = shown;
        }
        var hint = hidden == 0 ? null
            : $"({hidden} finished more than {RecentlyFinished.TotalMinutes:0} minutes ago not shown: 'la -a' lists them, 'forget -a' drops every finished row)";
        if (list.Count == 0)
        {
            return hint is null
                ? CommandResult.Ok("No external apps running.", "Try starting one with \"start\" command (\"help\" or \"h\" for help).")
                : CommandResult.Ok("No external apps running.", hint);
        }
        var withHost = Directory.IsPrimary;
        var header = new List<string> { "ID", "APP", "PID", "STATE", "SIGNAL", "UPTIME" };
        if (withHost)
        {
            header.Insert(0, "HOST");
        }
        if (full)
        {
            header.Add("COMMAND");
        }
        var rows = new List<string[]> { header.ToArray() };
        foreach (var p in list)
        {
            var signal = p.Remote ? $"remote {p.RemoteEndPoint}" : p.SignalRegistered ? "yes" : "no";
            var row = new List<string>
            {
                p.Id.ToString(CultureInfo.InvariantCulture),
                p.App ?? "-",
                p.Pid?.ToString(CultureInfo.InvariantCulture) ?? "-",
                p.Display,
                signal,
                p.UptimeSeconds is { } up ? FormatUptime(up) : "-",
            };
            if (withHost)
            {
                row.Insert(0, p.Host ?? Directory.Local.Name);
            }
            if (full)
            {
                row.Add(p.CommandLine);
            }
            rows.Add([.. row]);
        }
        var lines = Table(rows);
        return hint is null ? CommandResult.Ok(lines) : CommandResult.Ok([.. lines, hint]);
    }


    private CommandResult Forget(List<string> args)
    {
        if (args is ["-a"])
        {
            var gone = Supervisor.ForgetFinished();
            return CommandResult.Ok(gone.Count == 0 ? "No finished apps to forget." : $"Forgot {gone.Count} finished app(s): {string.Join(", ", gone.Select(p => p.Id))}");
        }
        if (args.Count != 1 || args[0].StartsWith('-'))
        {
            return CommandResult.Fail(ErrorCode.Usage, "Usage: forget <id> | forget -a");
        }
        var (host, id) = Directory.ParseTarget(args, "forget");
        if (!host.IsLocal)
        {
            return CommandResult.Fail(ErrorCode.Usage, $"forget acts on this host's processes; run it on {host.Name}'s own viscript.");
        }
        var info = Supervisor.Forget(id);
        return CommandResult.Ok($"Forgot {info.App} (ID: {id}, {info.Display}); ids are not reused.");
    }

    private CommandResult Hosts(List<string> args)
    {
        if (args.Count > 0)
        {
            return CommandResult.Fail(ErrorCode.Usage, "Usage: hosts");
        }
        var lines = FormatHosts(Directory.Hosts(), Directory.Time.GetUtcNow());
        if (!Directory.IsPrimary)
        {
            lines.Add("(this viscript has no agents: start it with --agents ADDR --agents-allow FILE to make it a primary)");
        }
        return CommandResult.Ok(lines);
    }

    private async Task<CommandResult> PingAsync(List<string> args, CancellationToken ct)
    {
        var (host, id) = Directory.ParseTarget(args, "ping");
        var rtt = await host.PingAsync(id, ct);
        return CommandResult.Ok($"ping time {FormatDuration(rtt)}");
    }

    private async Task<CommandResult> ResUsageAsync(List<string> args, CancellationToken ct)
    {
        var (host, id) = Directory.ParseTarget(args, "res_usage");
        var r = await host.ResourceUsageAsync(id, ct);
        return CommandResult.Ok(FormatResources(r, ClusterDirectory.Qualify(host, id)));
    }

    private async Task<CommandResult> StopAsync(List<string> args, string command, Func<IProcessHost, ulong, CancellationToken, Task<StopReport>> stop, CancellationToken ct)
    {
        var (host, id) = Directory.ParseTarget(args, command);
        var r = await stop(host, id, ct);
        var lines = new List<string>();
        if (r.ReportedPid is { } reported)
        {
            lines.Add($"shutdown pid {reported}");
        }
        else if (r.Pid is { } pid)
        {
            lines.Add($"shutdown pid {pid}");
        }
        var label = ClusterDirectory.Qualify(host, id);
        lines.Add(r.Process.Remote
            ? $"[ {label} ] remote signal client asked to shut down"
            : $"[ {label} ] {r.Process.App} {r.Process.Display}");
        return CommandResult.Ok(lines);
    }

    private async Task<CommandResult> RestartAsync(List<string> args, CancellationToken ct)
    {
        var (host, id) = Directory.ParseTarget(args, "restart");
        var r = await host.RestartAsync(id, ct);
        var lines = new List<string>();
        if (r.Pid is { } old)
        {
            lines.Add($"stopped pid {old}");
        }
        lines.Add($"[ {ClusterDirectory.Qualify(host, id)} ] {r.Process.App} pid {r.Process.Pid?.ToString(CultureInfo.InvariantCulture) ?? "-"} {r.Process.Display}");
        return CommandResult.Ok(lines);
    }

    private async Task<CommandResult> LogsAsync(List<string> args, CancellationToken ct)
    {
        string? target = null;
        var count = 50;
        var follow = false;
        for (var i = 0; i < args.Count; i++)
        {
            switch (args[i])
            {
                case "-f":
                    follow = true;
                    break;
                case "-n":
                    if (i + 1 >= args.Count || !int.TryParse(args[i + 1], NumberStyles.None, CultureInfo.InvariantCulture, out count))
                    {
                        return CommandResult.Fail(ErrorCode.Usage, "-n needs a number of lines, e.g. logs 1 -n 100");
                    }
                    i++;
                    break;
                default:
                    if (target is not null)
                    {
                        return CommandResult.Fail(ErrorCode.Usage, $"Unexpected argument '{args[i]}'. Usage: logs <id> [-n N] [-f]");
                    }
                    target = args[i];
                    break;
            }
        }
        if (target is null)
        {
            return CommandResult.Fail(ErrorCode.Usage, "No id passed! e.g. logs 1");
        }
        var (host, id) = Directory.ParseTarget(target, "logs");
        var logs = await host.LogsAsync(id, count, ct);
        var lines = logs.Select(FormatLogLine).ToList();
        return new CommandResult(ErrorCode.Ok, lines, follow ? CommandAction.Follow : CommandAction.None, id, ClusterDirectory.Qualify(host, id));
    }

    private async Task<CommandResult> AttachAsync(List<string> args, CancellationToken ct)
    {
        var (host, id) = Directory.ParseTarget(args, "attach");
        var info = await host.GetAttachableAsync(id, ct);
        var target = ClusterDirectory.Qualify(host, id);
        return new CommandResult(ErrorCode.Ok, [$"Attached to [ {target} ] {info.CommandLine} (type ^Z or 'detach' on a line of its own to detach)"], CommandAction.Attach, id, target);
    }

    /// <summary>Parses the id argument (the original's messages, with the command as example). Bare ids only; see <see cref="ClusterDirectory.ParseTarget(IReadOnlyList{string}, string)"/> for <c>HOST:ID</c>.</summary>
    public static ulong ParseId(IReadOnlyList<string> args, string command)
    {
        ArgumentNullException.ThrowIfNull(args);
        if (args.Count == 0)
        {
            throw new ViscriptException(ErrorCode.Usage, $"No id passed! e.g. {command} 1");
        }
        if (args.Count > 1)
        {
            throw new ViscriptException(ErrorCode.Usage, $"Too many arguments: {command} takes one id, e.g. {command} 1");
        }
        if (!ulong.TryParse(args[0], NumberStyles.None, CultureInfo.InvariantCulture, out var id) || id == 0)
        {
            throw new ViscriptException(ErrorCode.BadId, $"Id must be a positive integer, got '{args[0]}'.");
        }
        return id;
    }
}
