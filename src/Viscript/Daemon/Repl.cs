using System.Runtime.InteropServices;
using Viscript.Core;
using Viscript.Core.Cluster;
using Viscript.Core.Commands;
using Viscript.Core.Control;
using Viscript.Core.Supervision;

namespace Viscript.Daemon;

/// <summary>
/// The daemon's terminal: reads command lines from stdin, prints results and events. EOF on stdin ends the REPL,
/// not the daemon. While attached, lines go to the app's stdin and its output is printed; a line <c>^Z</c> or
/// <c>detach</c>, a CTRL+Z character, or SIGTSTP (CTRL+Z in a terminal) detaches.
/// </summary>
public sealed class Repl(DaemonHost daemon, TextReader input, TextWriter output)
{
    private readonly Lock _writeGate = new();
    private readonly LiveOutput _live = new();
    private volatile AttachSession? _attached;

    /// <summary>Writes a line (thread-safe). After a partial line of an attached app, it starts on a new row.</summary>
    public void WriteLine(string line)
    {
        lock (_writeGate)
        {
            output.Write(_live.BreakRow());
            output.WriteLine(line);
            output.Flush();
        }
    }

    /// <summary>Writes output of the attached app: partial lines (prompts) at once, without their newline.</summary>
    private void WriteLive(LogLine line)
    {
        lock (_writeGate)
        {
            var text = _live.Render(line);
            if (text.Length > 0)
            {
                output.Write(text);
                output.Flush();
            }
        }
    }

    private void UserEndedRow()
    {
        lock (_writeGate)
        {
            _live.RowEndedByUser();
        }
    }

    /// <summary>Prints daemon events until <paramref name="cancellationToken"/> is cancelled.</summary>
    public async Task PrintEventsAsync(CancellationToken cancellationToken)
    {
        using var sub = daemon.Events.Subscribe();
        try
        {
            await foreach (var e in sub.Reader.ReadAllAsync(cancellationToken))
            {
                WriteLine(FormatEvent(e));
            }
        }
        catch (OperationCanceledException)
        {
        }
    }

    /// <summary>One event as a REPL line.</summary>
    public static string FormatEvent(ProcessEvent e) => e.Kind switch
    {
        "state" => $"[event] [ {Label(e)} ] {e.App}: {e.From} -> {e.To} ({e.Message})",
        "started" => $"[event] [ {Label(e)} ] {e.App}: {e.Message}",
        "host" => $"[event] {e.Message}",
        _ => e.Host is { } h ? $"[event] {h}: {e.Message}" : $"[event] {e.Message}",
    };

    // An agent's process is HOST:ID, as the commands address it.
    private static string Label(ProcessEvent e) => e.Host is { } h ? $"{h}:{e.Id}" : e.Id.ToString(System.Globalization.CultureInfo.InvariantCulture);

    /// <summary>Reads lines until EOF or <c>quit</c>. Returns true when the user asked to quit.</summary>
    public async Task<bool> RunAsync(CancellationToken cancellationToken)
    {
        using var tstp = OperatingSystem.IsWindows() ? null : PosixSignalRegistration.Create(PosixSignal.SIGTSTP, ctx =>
        {
            // CTRL+Z in a terminal: detach instead of suspending the daemon (it owns children).
            ctx.Cancel = true;
            if (_attached is { } a)
            {
                a.Detach();
            }
            else
            {
                WriteLine("(CTRL+Z: nothing attached)");
            }
        });
        WriteLine("Type \"help\" for commands.");
        while (!cancellationToken.IsCancellationRequested)
        {
            string? line;
            try
            {
                line = await input.ReadLineAsync(cancellationToken);
            }
            catch (OperationCanceledException)
            {
                return false;
            }
            if (line is null)
            {
                _attached?.Detach();
                WriteLine("viscript: end of input; the daemon keeps running (stop it with SIGTERM, SIGINT or the control API).");
                return false;
            }
            if (_attached is { } session)
            {
                // The terminal echoed the typed line and its newline: app output continues on a new row.
                UserEndedRow();
                if (IsDetach(line))
                {
                    session.Detach();
                    continue;
                }
                if (session.ReadOnly)
                {
                    // Any line ends following logs.
                    session.Detach();
                    continue;
                }
                try
                {
                    await session.Host.WriteInputAsync(session.Id, line.TrimEnd('\x1a'), cancellationToken);
                }
                catch (ViscriptException ex)
                {
                    WriteLine($"**** ERROR! ****    {ex.Message}");
                    session.Detach();
                }
                continue;
            }
            var result = await daemon.Interpreter.ExecuteLineAsync(line, cancellationToken);
            foreach (var l in result.Lines)
            {
                WriteLine(result.Success ? l : $"**** ERROR! ****    {l}");
            }
            switch (result.Action)
            {
                case CommandAction.Quit:
                    return true;
                case CommandAction.Clear:
                    lock (_writeGate)
                    {
                        output.Write("\x1b[2J\x1b[H");
                        output.Flush();
                    }
                    break;
                case CommandAction.Attach or CommandAction.Follow when result.TargetId is { } id:
                    try
                    {
                        var host = result.Target is { } target ? daemon.Hosts.ParseTarget(target, "attach").Host : daemon.Hosts.Local;
                        StartSession(host, id, result.Target ?? id.ToString(System.Globalization.CultureInfo.InvariantCulture), readOnly: result.Action == CommandAction.Follow);
                    }
                    catch (ViscriptException ex)
                    {
                        WriteLine($"**** ERROR! ****    {ex.Message}");
                    }
                    break;
            }
        }
        return false;
    }

    private static bool IsDetach(string line)
    {
        var t = line.Trim();
        return t is "^Z" or "^z" or "detach" or "\x1a" || t.EndsWith('\x1a');
    }

    private void StartSession(IProcessHost host, ulong id, string label, bool readOnly)
    {
        var session = new AttachSession(host, id, readOnly, this);
        _attached = session;
        WriteLine(readOnly ? $"Following output of {label}; press Enter (or ^Z) to stop." : $"Attached to {label}; lines now go to its input. ^Z or 'detach' to detach.");
        _ = session.PumpAsync(daemon);
    }

    private sealed class AttachSession(IProcessHost host, ulong id, bool readOnly, Repl repl) : IDisposable
    {
        private readonly CancellationTokenSource _cts = new();

        public ulong Id { get; } = id;

        public IProcessHost Host { get; } = host;

        public bool ReadOnly { get; } = readOnly;

        public async Task PumpAsync(DaemonHost daemon)
        {
            try
            {
                if (!Host.IsLocal)
                {
                    // An agent's process: the same stream, over the agent connection.
                    await foreach (var item in Host.FollowAsync(Id, 0, _cts.Token))
                    {
                        if (item.Line is { } l)
                        {
                            repl.WriteLive(new LogLine(l.Seq, l.Time, Enum.TryParse<LogStream>(l.Stream, true, out var st) ? st : LogStream.Stdout, l.Text, l.Partial));
                        }
                    }
                    return;
                }
                var logs = daemon.Supervisor.GetLogs(Id);
                // The tail was already printed by 'logs'; attach shows only new output, unfinished lines (prompts) included.
                await foreach (var line in logs.FollowAsync(0, partials: true, _cts.Token))
                {
                    repl.WriteLive(line);
                }
            }
            catch (OperationCanceledException)
            {
            }
            catch (ViscriptException ex)
            {
                repl.WriteLine($"**** ERROR! ****    {ex.Message}");
            }
        }

        public void Detach()
        {
            if (ReferenceEquals(repl._attached, this))
            {
                repl._attached = null;
                _cts.Cancel();
                repl.WriteLine(ReadOnly ? "Stopped following." : "Detaching external app");
            }
        }

        public void Dispose() => _cts.Dispose();
    }
}
