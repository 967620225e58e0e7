using System.Globalization;
using System.Text;
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
    /// <summary>Attach the terminal to <see cref="CommandResult.TargetId"/>.</summary>
    Attach = 3,
    /// <summary>Stream new output of <see cref="CommandResult.TargetId"/> until detached.</summary>
    Follow = 4,
}

/// <summary>Outcome of one command: lines to print and an error code (0 = success).</summary>
public sealed record CommandResult(ErrorCode Code, IReadOnlyList<string> Lines, CommandAction Action = CommandAction.None, ulong? TargetId = null)
{
    /// <summary>Success with lines.</summary>
    public static CommandResult Ok(params IReadOnlyList<string> lines) => new(ErrorCode.Ok, lines);

    /// <summary>Failure with a message.</summary>
    public static CommandResult Fail(ErrorCode code, string message) => new(code, [message]);

    /// <summary>Whether the command succeeded.</summary>
    public bool Success => Code == ErrorCode.Ok;

    /// <summary>The wire form.</summary>
    public CommandResponse ToResponse() => new((int)Code, Lines, Action == CommandAction.None ? null : Action.ToString().ToLowerInvariant(), TargetId);
}

/// <summary>
/// The viscript command language (original names and aliases, plus kill/restart/logs). One instance serves the REPL and
/// the control API (<c>POST /api/command</c>), so the CLI and GUI see exactly the REPL's behaviour.
/// </summary>
public sealed class CommandInterpreter(Supervisor supervisor)
{
    private static readonly (string Usage, string Text)[] s_help =
    [
        ("apps", "List the apps of config.yaml."),
        ("help <app>", "Show an app's help text."),
        ("start (s) [-a] <app> [args]", "Start an app; -a attaches to it."),
        ("list_apps (la, ps) [-f]", "List processes; -f shows full command lines."),
        ("ping <id>", "Signal round trip to a process."),
        ("res_usage (ru) <id>", "CPU, memory, threads, files (and heap for signal clients)."),
        ("shutdown (sd) <id>", "Stop: signal SHUTDOWN, then SIGTERM, then SIGKILL."),
        ("kill <id>", "Kill the process tree at once."),
        ("restart <id>", "Stop if running, then start again (same id)."),
        ("logs <id> [-n N] [-f]", "Show captured output; -f follows it."),
        ("attach <id>", "Send typed lines to the process, show its output."),
        ("detach, ^Z, CTRL+Z", "Detach from the attached process."),
        ("clear (c, cls)", "Clear the screen."),
        ("quit (q, exit)", "Stop viscript (REPL) or leave the shell (cli)."),
    ];

    /// <summary>The supervisor commands act on.</summary>
    public Supervisor Supervisor { get; } = supervisor;

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
                "apps" => Apps(),
                "start" or "s" => Start(args),
                "list_apps" or "la" or "ps" or "list_tasks" => ListApps(args),
                "ping" => await PingAsync(args, cancellationToken),
                "res_usage" or "ru" => await ResUsageAsync(args, cancellationToken),
                "shutdown" or "sd" => await ShutdownAsync(args, cancellationToken),
                "kill" => await KillAsync(args, cancellationToken),
                "restart" => await RestartAsync(args, cancellationToken),
                "logs" => Logs(args),
                "attach" => Attach(args),
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
            var app = Supervisor.GetApp(args[0]);
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
        var output = new List<string> { "Commands (ids are the sequence ids shown by 'la'):" };
        output.AddRange(s_help.Select(h => "  " + h.Usage.PadRight(width) + h.Text));
        return CommandResult.Ok(output);
    }

    private CommandResult Apps()
    {
        var apps = Supervisor.Config.Apps.Values.OrderBy(a => a.Name, StringComparer.OrdinalIgnoreCase).ToList();
        if (apps.Count == 0)
        {
            return CommandResult.Ok("No available apps found.");
        }
        var width = apps.Max(a => a.Name.Length) + 4;
        var lines = apps.Select(a => a.Name.PadRight(width) + "- " + a.Description).ToList();
        lines.Add("Type \"help <name>\" for expected parameters.");
        return CommandResult.Ok(lines);
    }

    private CommandResult Start(List<string> args)
    {
        var attach = false;
        if (args.Count > 0 && args[0] == "-a")
        {
            attach = true;
            args.RemoveAt(0);
        }
        if (args.Count == 0)
        {
            return CommandResult.Fail(ErrorCode.Usage, "Must pass an app name to start, e.g. start <app> [args]. Try running 'apps'.");
        }
        var info = Supervisor.Start(args[0], args.Skip(1).ToList());
        var line = $"Added external app (ID: {info.Id}, Command: {info.CommandLine})";
        return attach && !info.Daemon
            ? new CommandResult(ErrorCode.Ok, [line], CommandAction.Attach, info.Id)
            : CommandResult.Ok(line);
    }

    private CommandResult ListApps(List<string> args)
    {
        var full = false;
        foreach (var a in args)
        {
            if (a == "-f")
            {
                full = true;
            }
            else
            {
                return CommandResult.Fail(ErrorCode.Usage, $"Unknown option '{a}'. Usage: list_apps [-f]");
            }
        }
        var list = Supervisor.List();
        if (list.Count == 0)
        {
            return CommandResult.Ok("No external apps running.", "Try starting one with \"start\" command (\"help\" or \"h\" for help).");
        }
        var rows = new List<string[]> { full ? ["ID", "APP", "PID", "STATE", "SIGNAL", "UPTIME", "COMMAND"] : ["ID", "APP", "PID", "STATE", "SIGNAL", "UPTIME"] };
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
            if (full)
            {
                row.Add(p.CommandLine);
            }
            rows.Add([.. row]);
        }
        return CommandResult.Ok(Table(rows));
    }

    private async Task<CommandResult> PingAsync(List<string> args, CancellationToken ct)
    {
        var id = ParseId(args, "ping");
        var rtt = await Supervisor.PingAsync(id, ct);
        return CommandResult.Ok($"ping time {FormatDuration(rtt)}");
    }

    private async Task<CommandResult> ResUsageAsync(List<string> args, CancellationToken ct)
    {
        var id = ParseId(args, "res_usage");
        var r = await Supervisor.ResourceUsageAsync(id, ct);
        return CommandResult.Ok(FormatResources(r));
    }

    /// <summary>Text lines of an <c>ru</c> report.</summary>
    public static IReadOnlyList<string> FormatResources(ResourceReport r)
    {
        var lines = new List<string>();
        var head = new StringBuilder($"[ {r.Id} ]");
        if (r.Pid is { } pid)
        {
            head.Append(CultureInfo.InvariantCulture, $" pid {pid}");
        }
        if (r.CpuPercent is { } cpu)
        {
            head.Append(CultureInfo.InvariantCulture, $" cpu {cpu:0.0}%");
        }
        if (r.CpuTimeSeconds is { } t)
        {
            head.Append(CultureInfo.InvariantCulture, $" cputime {t:0.00}s");
        }
        if (r.RssBytes is { } rss)
        {
            head.Append(CultureInfo.InvariantCulture, $" rss {FormatBytes(rss)}");
        }
        if (r.Threads is { } th)
        {
            head.Append(CultureInfo.InvariantCulture, $" threads {th}");
        }
        if (r.OpenFiles is { } files)
        {
            head.Append(CultureInfo.InvariantCulture, $" files {files}");
        }
        lines.Add(head.ToString());
        if (r.Heap is { } h)
        {
            lines.Add($"MemStats HeapAlloc:{h.HeapAlloc} HeapSys:{h.HeapSys} HeapIdle:{h.HeapIdle} HeapInuse:{h.HeapInuse} StackSys:{h.StackSys} StackInuse:{h.StackInuse}");
        }
        else if (r.SignalError is { } err)
        {
            lines.Add($"(signal TOP failed: {err})");
        }
        else
        {
            lines.Add("(not a signal client: no heap figures)");
        }
        return lines;
    }

    private async Task<CommandResult> ShutdownAsync(List<string> args, CancellationToken ct)
    {
        var id = ParseId(args, "shutdown");
        var r = await Supervisor.StopAsync(id, ct);
        return CommandResult.Ok(StopLines(r));
    }

    private async Task<CommandResult> KillAsync(List<string> args, CancellationToken ct)
    {
        var id = ParseId(args, "kill");
        var r = await Supervisor.KillAsync(id, ct);
        return CommandResult.Ok(StopLines(r));
    }

    private async Task<CommandResult> RestartAsync(List<string> args, CancellationToken ct)
    {
        var id = ParseId(args, "restart");
        var r = await Supervisor.RestartAsync(id, ct);
        var lines = new List<string>();
        if (r.Pid is { } old)
        {
            lines.Add($"stopped pid {old}");
        }
        lines.Add($"[ {r.Id} ] {r.Process.App} pid {r.Process.Pid?.ToString(CultureInfo.InvariantCulture) ?? "-"} {r.Process.Display}");
        return CommandResult.Ok(lines);
    }

    private static List<string> StopLines(StopReport r)
    {
        var lines = new List<string>();
        if (r.ReportedPid is { } reported)
        {
            lines.Add($"shutdown pid {reported}");
        }
        else if (r.Pid is { } pid)
        {
            lines.Add($"shutdown pid {pid}");
        }
        lines.Add(r.Process.Remote
            ? $"[ {r.Id} ] remote signal client asked to shut down"
            : $"[ {r.Id} ] {r.Process.App} {r.Process.Display}");
        return lines;
    }

    private CommandResult Logs(List<string> args)
    {
        ulong? id = null;
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
                    if (id is not null)
                    {
                        return CommandResult.Fail(ErrorCode.Usage, $"Unexpected argument '{args[i]}'. Usage: logs <id> [-n N] [-f]");
                    }
                    id = ParseId([args[i]], "logs");
                    break;
            }
        }
        if (id is null)
        {
            return CommandResult.Fail(ErrorCode.Usage, "No id passed! e.g. logs 1");
        }
        var logs = Supervisor.GetLogs(id.Value);
        var lines = logs.Tail(count).Select(FormatLogLine).ToList();
        return new CommandResult(ErrorCode.Ok, lines, follow ? CommandAction.Follow : CommandAction.None, id);
    }

    /// <summary>How a captured line is printed (stderr lines marked).</summary>
    public static string FormatLogLine(LogLine l) => l.Stream switch
    {
        LogStream.Stderr => "[stderr] " + l.Text,
        LogStream.System => "[viscript] " + l.Text,
        _ => l.Text,
    };

    private CommandResult Attach(List<string> args)
    {
        var id = ParseId(args, "attach");
        var info = Supervisor.GetAttachable(id);
        return new CommandResult(ErrorCode.Ok, [$"Attached to [ {id} ] {info.CommandLine} (type ^Z or 'detach' on a line of its own to detach)"], CommandAction.Attach, id);
    }

    /// <summary>Parses the id argument (the original's messages, with the command as example).</summary>
    public static ulong ParseId(IReadOnlyList<string> args, string command)
    {
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

    /// <summary>Aligns rows into columns separated by two spaces.</summary>
    public static List<string> Table(IReadOnlyList<string[]> rows)
    {
        var widths = new int[rows.Max(r => r.Length)];
        foreach (var r in rows)
        {
            for (var i = 0; i < r.Length; i++)
            {
                widths[i] = Math.Max(widths[i], r[i].Length);
            }
        }
        return rows.Select(r => string.Join("  ", r.Select((cell, i) => i == r.Length - 1 ? cell : cell.PadRight(widths[i]))).TrimEnd()).ToList();
    }

    /// <summary>Uptime as 45s, 3m05s, 2h03m, 4d02h.</summary>
    public static string FormatUptime(double seconds)
    {
        var t = TimeSpan.FromSeconds(Math.Floor(seconds));
        return t.TotalDays >= 1 ? $"{(int)t.TotalDays}d{t.Hours:00}h"
            : t.TotalHours >= 1 ? $"{(int)t.TotalHours}h{t.Minutes:00}m"
            : t.TotalMinutes >= 1 ? $"{(int)t.TotalMinutes}m{t.Seconds:00}s"
            : $"{t.Seconds}s";
    }

    /// <summary>A short duration in the Go style the original printed (1.2034ms, 2.5s).</summary>
    public static string FormatDuration(TimeSpan d) => d.TotalMilliseconds < 1000
        ? string.Create(CultureInfo.InvariantCulture, $"{d.TotalMilliseconds:0.###}ms")
        : string.Create(CultureInfo.InvariantCulture, $"{d.TotalSeconds:0.###}s");

    /// <summary>Bytes as KiB/MiB/GiB.</summary>
    public static string FormatBytes(long bytes) => bytes switch
    {
        >= 1L << 30 => string.Create(CultureInfo.InvariantCulture, $"{bytes / (double)(1L << 30):0.0}GiB"),
        >= 1L << 20 => string.Create(CultureInfo.InvariantCulture, $"{bytes / (double)(1L << 20):0.0}MiB"),
        >= 1L << 10 => string.Create(CultureInfo.InvariantCulture, $"{bytes / 1024.0:0.0}KiB"),
        _ => $"{bytes}B",
    };
}
