using Viscript.Core;
using Viscript.Core.Commands;
using Viscript.Core.Config;
using Viscript.Core.Supervision;
using Viscript.Tests.Support;

namespace Viscript.Tests.Commands;

/// <summary>Several starts in one command (issue 19.3): <c>start -n N</c>, <c>start -m APP...</c>, <c>start -g GROUP|all</c>.</summary>
public sealed class StartManyTests : IAsyncDisposable
{
    private readonly TempDir _dir = new();
    private readonly Supervisor _sup;
    private readonly CommandInterpreter _cmd;

    public StartManyTests()
    {
        var cfg = ConfigLoader.Parse("""
            apps:
              web:
                path: sleep
                default_args: ["1000"]
                groups: [front, edge]
              api:
                path: sleep
                default_args: ["1000"]
                groups: front
              batch:
                path: sleep
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

    private List<string> Started() => [.. _sup.List().Select(p => $"{p.Id}:{p.App}")];

    [Fact]
    public async Task Count_StartsThatManyInstances_EachUnderItsOwnId_WithTheTypedArgs()
    {
        var r = await _cmd.ExecuteLineAsync("s -n 3 web 2000");
        Assert.True(r.Success, string.Join("\n", r.Lines));
        Assert.Equal(
        [
            "Added external app (ID: 1, Command: sleep 2000)",
            "Added external app (ID: 2, Command: sleep 2000)",
            "Added external app (ID: 3, Command: sleep 2000)",
        ], r.Lines);
        Assert.Equal(["1:web", "2:web", "3:web"], Started());
    }

    [Fact]
    public async Task Many_StartsEachNamedApp_WithItsDefaultArgs_TimesTheCount()
    {
        var r = await _cmd.ExecuteLineAsync("start -n 2 -m batch web");
        Assert.True(r.Success, string.Join("\n", r.Lines));
        Assert.Equal(["1:batch", "2:batch", "3:web", "4:web"], Started());
        Assert.All(r.Lines, l => Assert.EndsWith("Command: sleep 1000)", l, StringComparison.Ordinal));
    }

    [Fact]
    public async Task Group_StartsItsAppsInNameOrder_AndAllStartsEveryApp()
    {
        var front = await _cmd.ExecuteLineAsync("s -g FRONT");
        Assert.True(front.Success, string.Join("\n", front.Lines));
        Assert.Equal(["1:api", "2:web"], Started());
        var all = await _cmd.ExecuteLineAsync("s -g all");
        Assert.Equal(3, all.Lines.Count);
        Assert.Equal(["1:api", "2:web", "3:api", "4:batch", "5:web"], Started());
    }

    [Theory]
    [InlineData("s -m web nope", ErrorCode.UnknownApp)]
    [InlineData("s -n 2 nope", ErrorCode.UnknownApp)]
    [InlineData("s -g nosuchgroup", ErrorCode.UnknownApp)]
    [InlineData("s -n 0 web", ErrorCode.Usage)]
    [InlineData("s -n x web", ErrorCode.Usage)]
    [InlineData("s -n 10001 web", ErrorCode.Usage)]
    [InlineData("s -n 5000 -m web api batch", ErrorCode.Usage)]
    [InlineData("s -n", ErrorCode.Usage)]
    [InlineData("s -g", ErrorCode.Usage)]
    [InlineData("s -g front web", ErrorCode.Usage)]
    [InlineData("s -a -n 2 web", ErrorCode.Usage)]
    [InlineData("s -a -g front", ErrorCode.Usage)]
    [InlineData("s -z web", ErrorCode.Usage)]
    public async Task BadRequests_StartNothing(string line, ErrorCode code)
    {
        var r = await _cmd.ExecuteLineAsync(line);
        Assert.Equal(code, r.Code);
        Assert.Empty(Started());
    }

    [Fact]
    public async Task OptionsAfterTheAppName_AreTheAppsArguments()
    {
        var r = await _cmd.ExecuteLineAsync("s web -n 3");
        Assert.Equal("Added external app (ID: 1, Command: sleep -n 3)", Assert.Single(r.Lines));
    }

    [Fact]
    public async Task Apps_CarryTheirGroups()
    {
        var web = Assert.Single(_cmd.Directory.Local.Apps, a => a.Name == "web");
        Assert.Equal(["front", "edge"], web.Groups);
    }

    [Theory]
    [InlineData("groups: all", "'all' is not a group name")]
    [InlineData("groups: [\"a b\"]", "must be letters, digits")]
    [InlineData("groups: {x: 1}", "expected a list of strings")]
    public void Config_BadGroups_AreReportedWithTheKey(string line, string message)
    {
        var ex = Assert.Throws<ConfigException>(() => ConfigLoader.Parse($"""
            apps:
              web:
                path: sleep
                {line}
            """, Path.Combine(_dir.Path, "config.yaml")));
        Assert.Contains(ex.Errors, e => e.ToString().Contains("apps.web.groups", StringComparison.Ordinal) && e.ToString().Contains(message, StringComparison.Ordinal));
    }
}
