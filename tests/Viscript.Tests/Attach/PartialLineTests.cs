using System.Diagnostics;
using System.Text;
using System.Threading.Channels;
using Viscript.Core.Commands;
using Viscript.Core.Config;
using Viscript.Core.Supervision;
using Viscript.Daemon;
using Viscript.Tests.EndToEnd;
using Viscript.Tests.Support;

namespace Viscript.Tests.Attach;

/// <summary>A prompt without newline (<c>printf 'name? '</c>) shows at once while attached: renderer, buffer, REPL, CLI.</summary>
public sealed class PartialLineTests
{
    // Waits for a first line (so that an attach can come first), then prompts without a newline, then answers.
    public const string PromptApp = "apps:\n  prompt:\n    path: /bin/sh\n    default_args: [\"-c\", \"read go; printf 'name? '; read name; echo \\\"hello $name\\\"; read end\"]\nsettings:\n  runHeadless: true\n";

    /// <summary>The text after the last <paramref name="marker"/> (what the app showed after the attach banner).</summary>
    public static string After(string text, string marker) => text.LastIndexOf(marker, StringComparison.Ordinal) is var i and >= 0 ? text[(i + marker.Length)..] : "";

    private static LogLine Line(string text, bool partial = false, LogStream stream = LogStream.Stdout) => new(0, default, stream, text, partial);

    [Fact]
    public void LiveOutput_PartialThenRest_NoRepeat()
    {
        var live = new LiveOutput();
        Assert.Equal("name", live.Render(Line("name", partial: true)));
        Assert.Equal("? ", live.Render(Line("name? ", partial: true)));
        Assert.True(live.RowOpen);
        Assert.Equal("bob\n", live.Render(Line("name? bob")));
        Assert.False(live.RowOpen);
        Assert.Equal("plain\n", live.Render(Line("plain")));
    }

    [Fact]
    public void LiveOutput_UserEnter_RestStartsANewRow_UnrelatedOutputBreaksTheRow()
    {
        var live = new LiveOutput();
        Assert.Equal("name? ", live.Render(Line("name? ", partial: true)));
        live.RowEndedByUser();
        Assert.Equal("", live.BreakRow());
        Assert.Equal("hello bob\n", live.Render(Line("name? hello bob")));

        Assert.Equal("[stderr] x", live.Render(Line("x", partial: true, LogStream.Stderr)));
        Assert.Equal("\n", live.BreakRow());
        Assert.Equal("", live.BreakRow());
        // Another stream while a row is open: the row is closed first, then the line prints whole.
        Assert.Equal("y", live.Render(Line("y", partial: true)));
        Assert.Equal("\n[stderr] other\n", live.Render(Line("other", stream: LogStream.Stderr)));
    }

    [Fact]
    public async Task LogBuffer_PartialsGoToPartialFollowersOnly_AndToLateOnes_NeverToTheRing()
    {
        var logs = new LogBuffer(10);
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        await using var plain = logs.FollowAsync(0, cts.Token).GetAsyncEnumerator(cts.Token);
        await using var live = logs.FollowAsync(0, partials: true, cts.Token).GetAsyncEnumerator(cts.Token);
        // An iterator subscribes on its first MoveNextAsync.
        var plainNext = plain.MoveNextAsync();
        var liveNext = live.MoveNextAsync();
        logs.PublishPartial(LogStream.Stdout, "name? ");
        Assert.True(await liveNext);
        Assert.Equal(("name? ", true, 0L), (live.Current.Text, live.Current.Partial, live.Current.Seq));
        // A follower that comes while the line is unfinished sees it at once.
        await using (var late = logs.FollowAsync(0, partials: true, cts.Token).GetAsyncEnumerator(cts.Token))
        {
            Assert.True(await late.MoveNextAsync());
            Assert.Equal("name? ", late.Current.Text);
        }
        logs.Append(LogStream.Stdout, "name? bob");
        Assert.True(await live.MoveNextAsync());
        Assert.Equal(("name? bob", false), (live.Current.Text, live.Current.Partial));
        Assert.True(await plainNext);
        Assert.Equal(("name? bob", false), (plain.Current.Text, plain.Current.Partial));
        Assert.Equal(["name? bob"], logs.Tail(10).Select(l => l.Text));
        // Once complete, a new follower gets no stale partial.
        await using var after = logs.FollowAsync(0, partials: true, cts.Token).GetAsyncEnumerator(cts.Token);
        var next = after.MoveNextAsync();
        logs.Append(LogStream.Stdout, "next");
        Assert.True(await next);
        Assert.Equal("next", after.Current.Text);
    }

    [Fact]
    public async Task Supervisor_PublishesThePrompt_AndKeepsWholeLines()
    {
        await using var sup = new Supervisor(ConfigLoader.Parse(PromptApp, "/tmp/config.yaml"), options: new SupervisorOptions { WriteLogFiles = false });
        sup.Start("prompt");
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        await using var follow = sup.GetLogs(1).FollowAsync(0, partials: true, cts.Token).GetAsyncEnumerator(cts.Token);
        await sup.WriteInputAsync(1, "go");
        Assert.True(await follow.MoveNextAsync());
        Assert.Equal(("name? ", true), (follow.Current.Text, follow.Current.Partial));
        await sup.WriteInputAsync(1, "bob");
        Assert.True(await follow.MoveNextAsync());
        Assert.Equal(("name? hello bob", false), (follow.Current.Text, follow.Current.Partial));
        Assert.Equal(["name? hello bob"], sup.GetLogs(1).Tail(10).Where(l => l.Stream == LogStream.Stdout).Select(l => l.Text));
    }

    [Fact]
    public async Task Repl_Attached_ShowsThePromptBeforeItsNewline()
    {
        await using var d = await InProcessDaemon.StartAsync(PromptApp);
        var input = new QueueReader();
        var output = new ObservableWriter();
        var repl = new Repl(d.Host, input, output);
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        var run = repl.RunAsync(cts.Token);
        input.Send("start -a prompt");
        const string marker = "'detach' to detach.\n";
        await output.WaitAsync(t => t.Contains(marker, StringComparison.Ordinal));
        input.Send("go");
        var shown = After(await output.WaitAsync(t => After(t, marker).Contains("name? ", StringComparison.Ordinal)), marker);
        // The prompt is the last thing written: no newline after it, nothing waits for one.
        Assert.Equal("name? ", shown);
        input.Send("bob");
        var answered = After(await output.WaitAsync(t => t.Contains("hello bob\n", StringComparison.Ordinal)), marker);
        Assert.Equal("name? hello bob\n", answered);
        input.Send("^Z");
        await output.WaitAsync(t => t.Contains("Detaching external app", StringComparison.Ordinal));
        input.Complete();
        Assert.False(await run.WaitAsync(TimeSpan.FromSeconds(30)));
    }

    /// <summary>A TextReader fed line by line by the test.</summary>
    private sealed class QueueReader : TextReader
    {
        private readonly Channel<string?> _lines = Channel.CreateUnbounded<string?>();

        public void Send(string line) => _lines.Writer.TryWrite(line);

        public void Complete() => _lines.Writer.TryWrite(null);

        public override async ValueTask<string?> ReadLineAsync(CancellationToken cancellationToken) => await _lines.Reader.ReadAsync(cancellationToken);

        public override Task<string?> ReadLineAsync() => ReadLineAsync(CancellationToken.None).AsTask();
    }
}

/// <summary>A TextWriter whose whole text can be awaited for a condition (every write re-checks the waiters).</summary>
public sealed class ObservableWriter : TextWriter
{
    private readonly StringBuilder _text = new();
    private readonly List<(Func<string, bool> Match, TaskCompletionSource<string> Tcs)> _waiters = [];

    public override Encoding Encoding => Encoding.UTF8;

    public string Text
    {
        get
        {
            lock (_text)
            {
                return _text.ToString();
            }
        }
    }

    public override void Write(char value) => Write(value.ToString());

    public override void Write(string? value)
    {
        lock (_text)
        {
            _text.Append(value);
            var text = _text.ToString();
            foreach (var w in _waiters.ToList())
            {
                if (w.Match(text))
                {
                    w.Tcs.TrySetResult(text);
                    _waiters.Remove(w);
                }
            }
        }
    }

    public override void WriteLine(string? value) => Write(value + "\n");

    /// <summary>Waits (bounded) until the text written so far satisfies <paramref name="match"/>; returns that text.</summary>
    public Task<string> WaitAsync(Func<string, bool> match, int seconds = 30)
    {
        var tcs = new TaskCompletionSource<string>(TaskCreationOptions.RunContinuationsAsynchronously);
        lock (_text)
        {
            var text = _text.ToString();
            if (match(text))
            {
                return Task.FromResult(text);
            }
            _waiters.Add((match, tcs));
        }
        return tcs.Task.WaitAsync(TimeSpan.FromSeconds(seconds));
    }
}

/// <summary><c>viscript cli attach</c> through the executables: the prompt reaches the CLI's stdout before its newline.</summary>
[Trait("Category", "E2E")]
public sealed class ExePartialLineTests : ExeTestBase
{
    [Fact]
    public async Task CliAttach_ShowsThePromptBeforeItsNewline()
    {
        await using var d = await DaemonProcess.StartAsync(Dir.Write("config.yaml", PartialLineTests.PromptApp));
        Assert.Equal(0, (await d.CliAsync("s", "prompt")).ExitCode);
        using var cli = Process.Start(d.CliStartInfo("attach", "1"))!;
        try
        {
            var output = new ObservableWriter();
            var pump = Task.Run(async () =>
            {
                var buffer = new char[256];
                int n;
                while ((n = await cli.StandardOutput.ReadAsync(buffer)) > 0)
                {
                    output.Write(new string(buffer, 0, n));
                }
            });
            const string marker = "detaches.\n";
            await output.WaitAsync(t => t.Contains(marker, StringComparison.Ordinal));
            await cli.StandardInput.WriteLineAsync("go");
            await cli.StandardInput.FlushAsync();
            var shown = PartialLineTests.After(await output.WaitAsync(t => PartialLineTests.After(t, marker).Contains("name? ", StringComparison.Ordinal)), marker);
            Assert.Equal("name? ", shown);
            await cli.StandardInput.WriteLineAsync("bob");
            await cli.StandardInput.FlushAsync();
            var answered = PartialLineTests.After(await output.WaitAsync(t => t.Contains("hello bob\n", StringComparison.Ordinal)), marker);
            Assert.Equal("name? hello bob\n", answered);
            await cli.StandardInput.WriteLineAsync("^Z");
            await cli.StandardInput.FlushAsync();
            await cli.WaitForExitAsync().WaitAsync(TimeSpan.FromSeconds(30));
            Assert.Equal(0, cli.ExitCode);
            await pump.WaitAsync(TimeSpan.FromSeconds(30));
        }
        finally
        {
            if (!cli.HasExited)
            {
                cli.Kill();
            }
        }
    }
}
