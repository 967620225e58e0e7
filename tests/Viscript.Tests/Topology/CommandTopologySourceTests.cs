using Skywire.TestKit.Logging;
using Viscript.Core.Control;
using Viscript.Core.Topology;

namespace Viscript.Tests.Topology;

/// <summary>The topology command contract (docs/gui.md "Topology source"), with /bin/sh standing in for skywire.</summary>
public sealed class CommandTopologySourceTests
{
    private static readonly TimeSpan Limit = TimeSpan.FromSeconds(30);

    private static async Task<TopologyView> WaitAsync(CommandTopologySource source, Func<TopologyView, bool> until)
    {
        var deadline = DateTime.UtcNow + Limit;
        while (!until(source.Current))
        {
            Assert.True(DateTime.UtcNow < deadline, $"topology never matched; last: {source.Current}");
            await Task.Delay(20, TestContext.Current.CancellationToken);
        }
        return source.Current;
    }

    private static CommandTopologySource Start(TestLog log, string script) => Started(new CommandTopologySource(new TopologyCommandOptions
    {
        Command = ["/bin/sh", "-c", script],
        Label = "KEY@127.0.0.1:1",
        InitialBackoff = TimeSpan.FromMilliseconds(50),
        MaxBackoff = TimeSpan.FromMilliseconds(200),
        LoggerFactory = log,
    }));

    private static CommandTopologySource Started(CommandTopologySource source)
    {
        source.Start();
        return source;
    }

    [Fact]
    public async Task EachLine_ReplacesTheView()
    {
        using var log = new TestLog(TestContext.Current.TestOutputHelper!.WriteLine);
        var doc1 = """{"manager":"M","nodes":[{"key":"a","linkAddress":"127.0.0.1:1","online":true,"apps":["x"]}],"links":[],"routes":[]}""";
        var doc2 = """{"manager":"M","nodes":[],"links":[{"from":"a","to":"b","up":true,"rttMs":1.5,"loss":0}],"routes":[]}""";
        await using (var one = Start(log, $"echo '{doc1}'; sleep 1000"))
        {
            var first = await WaitAsync(one, v => v.Nodes.Count == 1);
            Assert.True(first.Configured);
            Assert.Null(first.Error);
            Assert.Equal("M", first.Manager);
            Assert.Equal(["x"], first.Nodes[0].Apps);
            Assert.NotNull(first.FetchedAt);
        }
        await using var two = Start(log, $"echo '{doc1}'; echo '{doc2}'; sleep 1000");
        var last = await WaitAsync(two, v => v.Links.Count == 1);
        Assert.Empty(last.Nodes);
        Assert.Equal(1.5, last.Links[0].RttMs);
        Assert.Equal(0, two.Restarts);
    }

    [Fact]
    public async Task ErrorLines_AndExits_AreShown_AndTheCommandIsRestartedWithBackoff()
    {
        using var log = new TestLog(TestContext.Current.TestOutputHelper!.WriteLine);
        await using var source = Start(log, """echo '{"manager":"M","error":"key 02ab is not an admin"}'; exit 3""");
        var view = await WaitAsync(source, v => v.Error is not null && v.Error.Contains("not an admin", StringComparison.Ordinal));
        Assert.True(view.Configured);
        Assert.Empty(view.Nodes);
        await WaitAsync(source, _ => source.Restarts >= 2);
    }

    [Fact]
    public async Task Garbage_OrACrash_IsReportedWithTheReason()
    {
        using var log = new TestLog(TestContext.Current.TestOutputHelper!.WriteLine);
        await using (var garbage = Start(log, "echo 'not json'; sleep 1000"))
        {
            var view = await WaitAsync(garbage, v => v.Error?.Contains("not a topology document", StringComparison.Ordinal) == true);
            Assert.Equal("KEY@127.0.0.1:1", view.Manager);
        }
        await using var crash = Start(log, "echo 'manager unreachable' >&2; exit 7");
        await WaitAsync(crash, v => v.Error?.Contains("exited with code 7: manager unreachable", StringComparison.Ordinal) == true);
        Assert.Contains(log.Entries, e => e.EventId.Id == 4200);
    }

    [Fact]
    public void NoSource_IsNotConfigured() => Assert.False(NoTopologySource.Instance.Current.Configured);
}
