using Viscript.Core;
using Viscript.Core.Commands;
using Viscript.Core.Config;
using Viscript.Core.Supervision;
using Viscript.Tests.Support;

namespace Viscript.Tests.Commands;

public sealed class CommandInterpreterTests : IAsyncDisposable
{
    private readonly TempDir _dir = new();
    private readonly Supervisor _sup;
    private readonly CommandInterpreter _cmd;

    public CommandInterpreterTests()
    {
        var cfg = ConfigLoader.Parse("""
            apps:
              zeta:
                path: sleep
                default_args: ["1000"]
                desc: last app
              Alpha-Long-Name:
                path: sleep
                default_args: ["1000"]
                desc: first app
                help: |
                  Usage: alpha [n]
                  Line two.
              d:
                path: sleep
                daemon: true
                default_args: ["1000"]
            """, Path.Combine(_dir.Path, "config.yaml"));
        _sup = new Supervisor(cfg, new FakeSignalGateway(), new SupervisorOptions { WriteLogFiles = false });
        _cmd = new CommandInterpreter(_sup);
    }

    public async ValueTask DisposeAsync()
    {
        await _sup.DisposeAsync();
        _dir.Dispose();
    }

    [Fact]
    public async Task Apps_AreSortedAndAligned()
    {
        var r = await _cmd.ExecuteLineAsync("apps");
        Assert.Equal(
        [
            "Alpha-Long-Name    - first app",
            "d                  - ",
            "zeta               - last app",
            "Type \"help <name>\" for expected parameters.",
        ], r.Lines);
    }

    [Theory]
    [InlineData("help")]
    [InlineData("h")]
    [InlineData("?")]
    [InlineData("HELP")]
    public async Task Help_AliasesAndCase(string line)
    {
        var r = await _cmd.ExecuteLineAsync(line);
        Assert.True(r.Success);
        Assert.Contains(r.Lines, l => l.Contains("start (s) [-a] <app> [args]", StringComparison.Ordinal));
    }

    [Fact]
    public async Task HelpApp_ShowsConfigText_AppNamesCaseInsensitive()
    {
        var r = await _cmd.ExecuteLineAsync("help alpha-long-name");
        Assert.Equal(["Alpha-Long-Name: first app", "Usage: alpha [n]", "Line two."], r.Lines);
        var missing = await _cmd.ExecuteLineAsync("help nope");
        Assert.Equal(ErrorCode.UnknownApp, missing.Code);
    }

    [Fact]
    public async Task Start_PreservesArgumentCase_AndAttachOnlyForNonDaemons()
    {
        var r = await _cmd.ExecuteLineAsync("S -a ZETA 'Mixed Case' X");
        Assert.Equal("Added external app (ID: 1, Command: sleep 'Mixed Case' X)", Assert.Single(r.Lines));
        Assert.Equal(CommandAction.Attach, r.Action);
        Assert.Equal(1UL, r.TargetId);
        var d = await _cmd.ExecuteLineAsync("start -a d");
        Assert.Equal(CommandAction.None, d.Action);
        var bare = await _cmd.ExecuteLineAsync("start -a");
        Assert.Equal(ErrorCode.Usage, bare.Code);
    }

    [Fact]
    public async Task ListApps_EmptyThenTable()
    {
        var empty = await _cmd.ExecuteLineAsync("la");
        Assert.Equal("No external apps running.", empty.Lines[0]);
        await _cmd.ExecuteLineAsync("s zeta");
        var table = await _cmd.ExecuteLineAsync("list_apps -f");
        Assert.Matches(@"^ID\s+APP\s+PID\s+STATE\s+SIGNAL\s+UPTIME\s+COMMAND$", table.Lines[0]);
        Assert.Matches(@"^1\s+zeta\s+\d+\s+\w+\s+no\s+\d+s\s+sleep 1000$", table.Lines[1]);
        Assert.Equal(table.Lines[0].IndexOf("PID", StringComparison.Ordinal), table.Lines[1].IndexOf(table.Lines[1].Split("  ", StringSplitOptions.RemoveEmptyEntries)[2].Trim(), StringComparison.Ordinal));
        Assert.Equal((await _cmd.ExecuteLineAsync("ps")).Lines.Count, (await _cmd.ExecuteLineAsync("la")).Lines.Count);
    }

    [Theory]
    [InlineData("clear", CommandAction.Clear)]
    [InlineData("cls", CommandAction.Clear)]
    [InlineData("quit", CommandAction.Quit)]
    [InlineData("exit", CommandAction.Quit)]
    public async Task TerminalActions(string line, CommandAction action) => Assert.Equal(action, (await _cmd.ExecuteLineAsync(line)).Action);

    [Theory]
    [InlineData("", ErrorCode.Ok)]
    [InlineData("nope", ErrorCode.UnknownCommand)]
    [InlineData("ping", ErrorCode.Usage)]
    [InlineData("ping 1 2", ErrorCode.Usage)]
    [InlineData("ping 0", ErrorCode.BadId)]
    [InlineData("ping 1.5", ErrorCode.BadId)]
    [InlineData("ru 99999999999999999999999", ErrorCode.BadId)]
    [InlineData("sd 7", ErrorCode.NoSuchProcess)]
    [InlineData("kill 7", ErrorCode.NoSuchProcess)]
    [InlineData("restart 7", ErrorCode.NoSuchProcess)]
    [InlineData("logs", ErrorCode.Usage)]
    [InlineData("logs 7", ErrorCode.NoSuchProcess)]
    [InlineData("logs 1 -n x", ErrorCode.Usage)]
    [InlineData("attach 7", ErrorCode.NoSuchProcess)]
    [InlineData("s \"unterminated", ErrorCode.Usage)]
    [InlineData("la -x", ErrorCode.Usage)]
    public async Task BadInput_GivesStableCodes(string line, ErrorCode code)
    {
        var r = await _cmd.ExecuteLineAsync(line);
        Assert.Equal(code, r.Code);
        if (code != ErrorCode.Ok)
        {
            Assert.NotEmpty(Assert.Single(r.Lines));
        }
    }

    [Fact]
    public async Task Logs_TailAndFollowAction()
    {
        await _cmd.ExecuteLineAsync("s zeta");
        var logs = await _cmd.ExecuteLineAsync("logs 1 -n 10 -f");
        Assert.Equal(CommandAction.Follow, logs.Action);
        Assert.Equal(1UL, logs.TargetId);
    }

    [Theory]
    [InlineData(5, "5s")]
    [InlineData(65, "1m05s")]
    [InlineData(3725, "1h02m")]
    [InlineData(90000, "1d01h")]
    public void Uptime_Format(double seconds, string expected) => Assert.Equal(expected, CommandInterpreter.FormatUptime(seconds));

    [Fact]
    public void ErrorCodes_AreStableAndMapToHttp()
    {
        Assert.Equal([0, 1, 2, 3, 4, 10, 11, 12, 13, 14, 15, 20, 21, 30, 40, 50, 51, 60, 70, 71], Enum.GetValues<ErrorCode>().Select(c => (int)c));
        Assert.All(Enum.GetValues<ErrorCode>(), c => Assert.NotEqual("error", c.Slug()));
        Assert.Equal(404, ErrorCode.UnknownApp.HttpStatus());
        Assert.Equal(504, ErrorCode.SignalTimeout.HttpStatus());
        Assert.Equal(404, ErrorCode.UnknownHost.HttpStatus());
        Assert.Equal(503, ErrorCode.HostUnreachable.HttpStatus());
    }
}
