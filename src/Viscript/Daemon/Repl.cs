using System.Runtime.InteropServices;
using System.Threading.Channels;
using Viscript.Core;
using Viscript.Core.Cluster;
using Viscript.Core.Commands;
using Viscript.Core.Control;
using Viscript.Core.Supervision;

namespace Viscript.Daemon;

/// <summary>
/// The daemon's terminal: reads command lines from stdin, prints results and events. EOF on stdin ends the REPL,
/// not the daemon. While attached, lines go to the app's stdin and its output is printed; a line <c>^Z</c> or
/// <c>detach</c>, a CTRL+Z character, or SIGTSTP (CTRL+Z in a terminal) detaches; the app ending detaches too.
/// On a terminal (a terminal width given, keys fed through <see cref="Key"/>) the input row is a
/// <see cref="LineEditor"/> with the <c>viscript&gt; </c> prompt: whatever else is printed goes above it and the row is
/// redrawn, so an event never splices into the line being typed. From a pipe or file (no width) lines are read from the
/// input reader and no prompt is printed.
/// </summary>
public sealed class Repl
{
    /// <summary>The prompt on a terminal.</summary>
    public const string Prompt = "viscript> ";

    private readonly DaemonHost _daemon;
    private readonly TextReader _input;
    private readonly TextWriter _output;
    private readonly Lock _writeGate = new();
    private readonly LiveOutput _live = new();
    private readonly LineEditor? _editor;
    private readonly Channel<string?> _typed = Channel.CreateUnbounded<string?>(new UnboundedChannelOptions { SingleReader = true });
    private AttachSession? _attached;
    private bool _closed;

    /// <summary>A REPL over <paramref name="input"/>; on a terminal give <paramref name="terminalWidth"/> and feed keys to <see cref="Key"/>.</summary>
    public Repl(DaemonHost daemon, TextReader input, TextWriter output, Func<int>? terminalWidth = null)
    {
        _daemon = daemon;
        _input = input;
        _output = output;
        if (terminalWidth is not null)
        {
            // Attached: the row belongs to the app (its unfinished line, a prompt of its own, then what is typed).
            _editor = new LineEditor(() => _attached is null ? Prompt : _live.OpenRow, terminalWidth);
        }
    }

    /// <summary>Writes a line (thread-safe): above the input row on a terminal; after a partial line of an attached app, on a new row.</summary>
    public void WriteLine(string line)
    {
        lock (_writeGate)
        {
            if (_editor is not null)
            {
                _output.Write(_editor.Hide() + line + "\n" + (_closed ? "" : _editor.Show()));
            }
            else
            {
                _output.Write(_live.BreakRow());
                _output.WriteLine(line);
            }
            _output.Flush();
        }
    }

    /// <summary>One key typed on the terminal (thread-safe): edits the input row; Enter hands the line to <see cref="RunAsync"/>.</summary>
    public void Key(ConsoleKeyInfo key)
    {
        if (_editor is null)
        {
            throw new InvalidOperationException("The REPL reads lines, not keys (no terminal width was given).");
        }
        lock (_writeGate)
        {
            var r = _editor.Key(key);
            _output.Write(r.Echo);
            _output.Flush();
            if (r.Outcome == LineEditor.Outcome.Line)
            {
                // The typed line ended the row: an attached app's output continues on a new row.
                _live.RowEndedByUser();
                _typed.Writer.TryWrite(r.Line);
            }
            else if (r.Outcome == LineEditor.Outcome.EndOfInput)
            {
                _typed.Writer.TryWrite(null);
            }
        }
    }

    /// <summary>Takes the input row off the screen for good (the daemon is stopping): later lines print without a prompt.</summary>
    public void Close()
    {
        lock (_writeGate)
        {
            _closed = true;
            if (_editor is not null)
            {
                _output.Write(_editor.Hide());
                _output.Flush();
            }
        }
    }

    /// <summary>Draws the input row if it is not on the screen (after a command that printed nothing).</summary>
    private void ShowPrompt()
    {
        if (_editor is null)
        {
            return;
        }
        lock (_writeGate)
        {
            if (!_editor.Visible && !_closed)
            {
                _output.Write(_editor.Show());
                _output.Flush();
            }
        }
    }

    /// <summary>Writes output of the attached app: partial lines (prompts) at once, without their newline.</summary>
    private void WriteLive(LogLine line)
    {
        lock (_writeGate)
        {
            if (_editor is not null)
            {
                // The row on the screen is the open partial line (the editor's prompt while attached) and what is typed:
                // erase it, write the finished rows, and draw the row again (the app's new partial line, if any).
                var all = _live.OpenRow + _live.Render(line);
                var done = _live.RowOpen ? all[..(all.LastIndexOf('\n') + 1)] : all;
                _output.Write(_editor.Hide() + done + (_closed ? "" : _editor.Show()));
                _output.Flush();
                return;
            }
            var text = _live.Render(line);
            if (text.Length > 0)
            {
                _output.Write(text);
                _output.Flush();
            }
        }
    }

    private void UserEndedRow()
    {
        if (_editor is not null)
        {
            return;   // done under the lock when Enter was pressed
        }
        lock (_writeGate)
        {
            _live.RowEndedByUser();
        }
    }

    /// <summary>Prints daemon events until <paramref name="cancellationToken"/> is cancelled.</summary>
    public async Task PrintEventsAsync(CancellationToken cancellationToken)
    {
        using var sub = _daemon.Events.Subscribe();
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
            ShowPrompt();
            string? line;
            try
            {
                line = _editor is null ? await _input.ReadLineAsync(cancellationToken) : await _typed.Reader.ReadAsync(cancellationToken);
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
            var result = await _daemon.Interpreter.ExecuteLineAsync(line, cancellationToken);
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
                        _output.Write((_editor?.Hide() ?? "") + "\x1b[2J\x1b[H");
                        _output.Flush();
                    }
                    break;
                case CommandAction.Attach or CommandAction.Follow when result.TargetId is { } id:
                    try
                    {
                        var host = result.Target is { } target ? _daemon.Hosts.ParseTarget(target, "attach").Host : _daemon.Hosts.Local;
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
        var session = new AttachSession(host, id, label, readOnly, this);
        _attached = session;
        WriteLine(readOnly ? $"Following output of {label}; press Enter (or ^Z) to stop." : $"Attached to {label}; lines now go to its input. ^Z or 'detach' to detach.");
        session.Start(_daemon);
    }

    /// <summary>
    /// One attach (or <c>logs -f</c>): a pump printing the app's new output, and a watch that detaches when the app
    /// finishes (Exited or Fatal), after printing the output it wrote last.
    /// </summary>
    private sealed class AttachSession(IProcessHost host, ulong id, string label, bool readOnly, Repl repl) : IDisposable
    {
        private readonly CancellationTokenSource _cts = new();
        private readonly CancellationTokenSource _pumpCts = new();
        private Task _pump = Task.CompletedTask;
        private long _lastSeq;

        public ulong Id { get; } = id;

        public IProcessHost Host { get; } = host;

        public bool ReadOnly { get; } = readOnly;

        public void Start(DaemonHost daemon)
        {
            // Subscribed before the pump starts and before the state is read: an end in between is seen either way.
            var events = daemon.Events.Subscribe(256);
            _pump = PumpAsync(daemon);
            _ = WatchEndAsync(daemon, events);
        }

        private async Task PumpAsync(DaemonHost daemon)
        {
            using var both = CancellationTokenSource.CreateLinkedTokenSource(_cts.Token, _pumpCts.Token);
            try
            {
                if (!Host.IsLocal)
                {
                    // An agent's process: the same stream, over the agent connection.
                    await foreach (var item in Host.FollowAsync(Id, 0, both.Token))
                    {
                        if (item.Line is { } l)
                        {
                            repl.WriteLive(new LogLine(l.Seq, l.Time, Enum.TryParse<LogStream>(l.Stream, true, out var st) ? st : LogStream.Stdout, l.Text, l.Partial));
                        }
                    }
                    return;
                }
                var logs = daemon.Supervisor.GetLogs(Id);
                Interlocked.Exchange(ref _lastSeq, logs.TotalLines);
                // The tail was already printed by 'logs'; attach shows only new output, unfinished lines (prompts) included.
                await foreach (var line in logs.FollowAsync(0, partials: true, both.Token))
                {
                    repl.WriteLive(line);
                    if (!line.Partial)
                    {
                        Interlocked.Exchange(ref _lastSeq, line.Seq);
                    }
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

        private async Task WatchEndAsync(DaemonHost daemon, EventHub.Subscription events)
        {
            using var _ = events;
            try
            {
                var host = Host.IsLocal ? null : Host.Name;
                var info = await Host.GetAsync(Id, _cts.Token);
                var display = info.Display;
                if (!Finished(info.State))
                {
                    await foreach (var e in events.Reader.ReadAllAsync(_cts.Token))
                    {
                        if (e.Kind == "state" && e.Id == Id && e.Host == host && e.To is { } to && (to.StartsWith("Exited", StringComparison.Ordinal) || to == "Fatal"))
                        {
                            display = to;
                            break;
                        }
                    }
                }
                if (Host.IsLocal)
                {
                    // The pump stops; whatever it had not printed yet comes from the buffer, then the notice.
                    await _pumpCts.CancelAsync();
                    await _pump;
                    var last = Interlocked.Read(ref _lastSeq);
                    var logs = daemon.Supervisor.GetLogs(Id);
                    foreach (var line in logs.Tail(logs.Capacity).Where(l => l.Seq > last && !l.Partial))
                    {
                        repl.WriteLive(line);
                    }
                }
                End($"{label} ended: {display}; {(ReadOnly ? "stopped following" : "detached")}.");
            }
            catch (OperationCanceledException)
            {
            }
            catch (ViscriptException)
            {
                // Gone (forgotten) or its host unreachable: the pump reports it; detaching is the user's.
            }
        }

        private static bool Finished(string state) => state is nameof(ProcessState.Exited) or nameof(ProcessState.Fatal);

        public void Detach() => End(ReadOnly ? "Stopped following." : "Detaching external app");

        private void End(string message)
        {
            if (ReferenceEquals(Interlocked.CompareExchange(ref repl._attached, null, this), this))
            {
                _cts.Cancel();
                repl.WriteLine(message);
            }
        }

        public void Dispose()
        {
            _cts.Dispose();
            _pumpCts.Dispose();
        }
    }
}
