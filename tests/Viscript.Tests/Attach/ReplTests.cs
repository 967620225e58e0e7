using Microsoft.Extensions.Time.Testing;
using Viscript.Core.Commands;
using Viscript.Daemon;
using Viscript.Tests.Support;

namespace Viscript.Tests.Attach;

/// <summary>
/// Issue 18.5: the daemon's REPL on a terminal (keys fed as the key thread would feed them, output captured as the
/// terminal would receive it): the <c>viscript&gt; </c> prompt, events above the line being typed, an attached app that
/// ends detaching by itself; <c>la</c> with recently finished rows, <c>la -a</c>, <c>forget</c>.
/// </summary>
public sealed class ReplTests
{
    private const string Erase = "\r\x1b[J";

    private const string Apps = "apps:\n"
        + "  sleeper:\n    path: /bin/sh\n    default_args: [\"-c\", \"exec sleep 600\"]\n    stop_timeout: 5s\n"
        + "  once:\n    path: /bin/sh\n    default_args: [\"-c\", \"exit 3\"]\n    restart: never\n"
        + "  echo3:\n    path: /bin/sh\n    default_args: [\"-c\", \"read x; echo got $x; echo bye; exit 3\"]\n    restart: never\n"
        + "settings:\n  runHeadless: true\n";

    private static ConsoleKeyInfo Ch(char c) => new(c, ConsoleKey.NoName, false, false, false);

    private static ConsoleKeyInfo K(ConsoleKey key, char c = '\0', bool ctrl = false) => new(c, key, false, false, ctrl);

    private static void Type(Repl repl, string text)
    {
        foreach (var c in text)
        {
            repl.Key(Ch(c));
        }
    }

    [Fact]
    public void LineEditor_EditsAndRecallsHistory_AndRedrawsTheRowWhole()
    {
        var editor = new LineEditor(() => Repl.Prompt, () => 80);
        Assert.Equal(Repl.Prompt, editor.Show());
        foreach (var c in "la -x")
        {
            editor.Key(Ch(c));
        }
        editor.Key(K(ConsoleKey.Backspace));
        editor.Key(Ch('a'));
        editor.Key(K(ConsoleKey.Home));
        var moved = editor.Key(K(ConsoleKey.RightArrow));
        // A redraw: erase the row, prompt and line again, the cursor put back after "l" (prompt length + 1).
        Assert.Equal(Erase + "viscript> la -a\r\x1b[11C", moved.Echo);
        var entered = editor.Key(K(ConsoleKey.Enter, '\r'));
        Assert.Equal((LineEditor.Outcome.Line, "la -a"), (entered.Outcome, entered.Line));
        Assert.Equal(Erase + "viscript> la -a\r\n", entered.Echo);
        Assert.False(editor.Visible);
        Assert.Equal("", editor.Hide());

        editor.Show();
        foreach (var c in "ping 1")
        {
            editor.Key(Ch(c));
        }
        editor.Key(K(ConsoleKey.W, '\x17', ctrl: true));
        Assert.Equal("ping ", editor.Text);
        editor.Key(K(ConsoleKey.UpArrow));
        Assert.Equal("la -a", editor.Text);
        editor.Key(K(ConsoleKey.DownArrow));
        Assert.Equal("ping ", editor.Text);
        editor.Key(K(ConsoleKey.U, '\x15', ctrl: true));
        Assert.Equal("", editor.Text);
        Assert.Equal(LineEditor.Outcome.EndOfInput, editor.Key(K(ConsoleKey.D, '\x04', ctrl: true)).Outcome);
    }

    [Fact]
    public void LineEditor_WrappedLine_HidesEveryRowItCovers()
    {
        var editor = new LineEditor(() => Repl.Prompt, () => 20);
        editor.Show();
        foreach (var c in "start sleeper and more")
        {
            editor.Key(Ch(c));
        }
        // 10 + 22 = 32 characters on 20 columns: the cursor is on the second row, so hiding goes up one row first.
        Assert.Equal("\x1b[1A" + Erase, editor.Hide());
        // Drawn again with the cursor moved to column 0 of the first row, then right to column 12 (after "vi").
        for (var i = 0; i < 20; i++)
        {
            editor.Key(K(ConsoleKey.LeftArrow));
        }
        Assert.Equal("viscript> start sleeper and more\x1b[1A\r\x1b[12C", editor.Show());
    }

    [Fact]
    public async Task Terminal_EventWhileTyping_PrintsAboveThePromptAndRedrawsTheLine()
    {
        await using var d = await InProcessDaemon.StartAsync(Apps);
        var output = new ObservableWriter();
        var repl = new Repl(d.Host, TextReader.Null, output, () => 80);
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        var events = repl.PrintEventsAsync(cts.Token);
        var run = repl.RunAsync(cts.Token);
        await output.WaitAsync(t => t.EndsWith("Type \"help\" for commands.\n" + Repl.Prompt, StringComparison.Ordinal));

        Type(repl, "la -");
        await output.WaitAsync(t => t.EndsWith(Repl.Prompt + "la -", StringComparison.Ordinal));
        // An event arrives (an app started through the API) while "la -" is half typed.
        await d.Client.StartAsync("sleeper", null, cts.Token);
        var text = await output.WaitAsync(t => t.Contains("sleeper: pid", StringComparison.Ordinal) && t.EndsWith(Repl.Prompt + "la -", StringComparison.Ordinal));
        // The row holding the typed text is erased before the event is printed, and drawn again below it.
        Assert.Contains(Repl.Prompt + "la -" + Erase + "[event] [ 1 ] sleeper: ", text, StringComparison.Ordinal);
        Assert.Contains("\n" + Repl.Prompt + "la -" + Erase + "[event] [ 1 ] sleeper: pid", text, StringComparison.Ordinal);
        Assert.DoesNotContain("la -[event]", text, StringComparison.Ordinal);

        Type(repl, "a");
        repl.Key(K(ConsoleKey.Enter, '\r'));
        text = await output.WaitAsync(t => t.Contains("sleeper", StringComparison.Ordinal) && t.Contains("Running", StringComparison.Ordinal)
            && t.TrimEnd().EndsWith(Repl.Prompt.TrimEnd(), StringComparison.Ordinal) && t.Contains("ID", StringComparison.Ordinal));
        Assert.Contains(Repl.Prompt + "la -a\r\n", text, StringComparison.Ordinal);

        repl.Key(K(ConsoleKey.D, '\x04', ctrl: true));
        Assert.False(await run.WaitAsync(TimeSpan.FromSeconds(30)));
        await cts.CancelAsync();
        await events;
    }

    [Fact]
    public async Task Attached_AppExits_TheReplDetachesByItself_AfterItsLastOutput()
    {
        await using var d = await InProcessDaemon.StartAsync(Apps);
        var input = new LineQueue();
        var output = new ObservableWriter();
        var repl = new Repl(d.Host, input, output);
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        var run = repl.RunAsync(cts.Token);
        input.Send("start -a echo3");
        await output.WaitAsync(t => t.Contains("'detach' to detach.\n", StringComparison.Ordinal));
        input.Send("hi");
        var text = await output.WaitAsync(t => t.Contains("detached.", StringComparison.Ordinal));
        var tail = PartialLineTests.After(text, "'detach' to detach.\n");
        Assert.Equal("got hi\nbye\n1 ended: Exited(3); detached.\n", tail);
        // Detached: the next line is a command again, not the app's input.
        input.Send("la");
        await output.WaitAsync(t => PartialLineTests.After(t, "detached.\n").Contains("Exited(3)", StringComparison.Ordinal));
        input.Complete();
        Assert.False(await run.WaitAsync(TimeSpan.FromSeconds(30)));
    }

    [Fact]
    public async Task La_ShowsRecentlyFinished_HidesOlderOnes_LaDashAShowsAll_ForgetDropsFinishedRows_IdsNotReused()
    {
        var time = new FakeTimeProvider(DateTimeOffset.UtcNow);
        await using var d = await InProcessDaemon.StartAsync(Apps, configure: o => o with { TimeProvider = time });
        using var events = new EventRecorder(d.Host.Supervisor);
        var interpreter = d.Host.Interpreter;
        d.Host.Supervisor.Start("once");
        await events.WaitStateAsync(1, "Exited(3)");
        d.Host.Supervisor.Start("sleeper");

        var la = await interpreter.ExecuteLineAsync("la");
        Assert.Contains(la.Lines, l => l.Contains("once", StringComparison.Ordinal) && l.Contains("Exited(3)", StringComparison.Ordinal));

        time.Advance(CommandInterpreter.RecentlyFinished + TimeSpan.FromSeconds(1));
        la = await interpreter.ExecuteLineAsync("la");
        Assert.DoesNotContain(la.Lines, l => l.Contains("once", StringComparison.Ordinal));
        Assert.Contains(la.Lines, l => l.Contains("sleeper", StringComparison.Ordinal));
        Assert.Contains("1 finished more than 10 minutes ago not shown: 'la -a' lists them", la.Lines[^1], StringComparison.Ordinal);
        var all = await interpreter.ExecuteLineAsync("la -a");
        Assert.Contains(all.Lines, l => l.Contains("once", StringComparison.Ordinal));

        var refused = await interpreter.ExecuteLineAsync("forget 2");
        Assert.Equal(Viscript.Core.ErrorCode.AlreadyRunning, refused.Code);
        Assert.Contains("has not finished (", refused.Lines[0], StringComparison.Ordinal);
        var forgot = await interpreter.ExecuteLineAsync("forget 1");
        Assert.True(forgot.Success, string.Join('\n', forgot.Lines));
        Assert.DoesNotContain((await interpreter.ExecuteLineAsync("la -a")).Lines, l => l.Contains("once", StringComparison.Ordinal));
        Assert.Equal(Viscript.Core.ErrorCode.NoSuchProcess, (await interpreter.ExecuteLineAsync("forget 1")).Code);

        // A new start gets a new id, never the forgotten one; forget -a drops every finished row and keeps running ones.
        Assert.Equal(3UL, d.Host.Supervisor.Start("once").Id);
        await events.WaitStateAsync(3, "Exited(3)");
        var forgotAll = await interpreter.ExecuteLineAsync("forget -a");
        Assert.Equal("Forgot 1 finished app(s): 3", forgotAll.Lines[0]);
        Assert.Equal([2UL], d.Host.Supervisor.List().Select(p => p.Id));
        Assert.True((await interpreter.ExecuteLineAsync("kill 2")).Success);
    }

    /// <summary>A TextReader fed line by line by the test.</summary>
    private sealed class LineQueue : TextReader
    {
        private readonly System.Threading.Channels.Channel<string?> _lines = System.Threading.Channels.Channel.CreateUnbounded<string?>();

        public void Send(string line) => _lines.Writer.TryWrite(line);

        public void Complete() => _lines.Writer.TryWrite(null);

        public override async ValueTask<string?> ReadLineAsync(CancellationToken cancellationToken) => await _lines.Reader.ReadAsync(cancellationToken);

        public override Task<string?> ReadLineAsync() => ReadLineAsync(CancellationToken.None).AsTask();
    }
}
