using System.Net;
using Viscript.Core;
using Viscript.Core.Cluster;
using Viscript.Core.Control;
using Viscript.Tests.Support;

namespace Viscript.Tests.Cluster;

/// <summary>One console for two hosts (issue 16): a primary and an agent, in-process on loopback.</summary>
[Trait("Category", "Cluster")]
public sealed class ClusterTests
{
    [Fact]
    public async Task Primary_StartsPingsStopsAnAppOnTheAgent_AndBareNamesStayLocal()
    {
        await using var c = await ClusterFixture.StartAsync();
        using var sub = c.Primary.Host.Events.Subscribe();

        var start = await c.CommandAsync("s", "b:t");
        Assert.Equal(HttpStatusCode.OK, start.Status);
        Assert.StartsWith("Added external app (ID: b:1, Command: ", Assert.Single(start.Ok!.Lines), StringComparison.Ordinal);
        // The agent's own events reach the primary, tagged with the host.
        await InProcessDaemon.WaitAsync(sub, e => e is { Kind: "registered", Host: "b", Id: 1 });
        Assert.Equal("Running", c.Agent.Host.Supervisor.Get(1).State);
        Assert.Empty(c.Primary.Host.Supervisor.List());

        var local = await c.CommandAsync("s", "t");
        Assert.StartsWith("Added external app (ID: 1, Command: ", Assert.Single(local.Ok!.Lines), StringComparison.Ordinal);
        await InProcessDaemon.WaitAsync(sub, e => e is { Kind: "registered", Host: null, Id: 1 });

        var la = (await c.CommandAsync("la")).Ok!.Lines;
        Assert.Matches(@"^HOST\s+ID\s+APP\s+PID\s+STATE\s+SIGNAL\s+UPTIME$", la[0]);
        Assert.Matches(@"^main\s+1\s+t\s+\d+\s+Running\s+yes\s+\d+s$", la[1]);
        Assert.Matches($@"^b\s+1\s+t\s+{c.Agent.Host.Supervisor.Get(1).Pid}\s+Running\s+yes\s+\d+s$", la[2]);
        Assert.Contains((await c.Primary.Client.ProcessesAsync()), p => p is { Host: "b", Id: 1, State: "Running" });

        Assert.StartsWith("ping time ", Assert.Single((await c.CommandAsync("ping", "b:1")).Ok!.Lines), StringComparison.Ordinal);
        var ru = (await c.CommandAsync("ru", "b:1")).Ok!.Lines;
        Assert.StartsWith($"[ b:1 ] pid {c.Agent.Host.Supervisor.Get(1).Pid} ", ru[0], StringComparison.Ordinal);
        Assert.StartsWith("MemStats HeapAlloc:", ru[1], StringComparison.Ordinal);
        Assert.Contains("testapp sleeping", string.Join('\n', (await c.CommandAsync("logs", "b:1")).Ok!.Lines), StringComparison.Ordinal);

        var hosts = (await c.CommandAsync("hosts")).Ok!.Lines;
        Assert.Matches(@"^HOST\s+STATE\s+SEEN\s+VERSION\s+LOAD\s+MEMORY\s+RUNNING\s+ADDRESS$", hosts[0]);
        Assert.Matches(@"^main\s+local\s+now\s", hosts[1]);
        Assert.Matches(@"^b\s+connected\s+\d+s ago\s+\S+\s+\S+\s+\S+\s+\d+/\d+\s+127\.0\.0\.1:\d+$", hosts[2]);

        var pid = c.Agent.Host.Supervisor.Get(1).Pid!.Value;
        var sd = (await c.CommandAsync("sd", "b:1")).Ok!.Lines;
        Assert.Equal([$"shutdown pid {pid}", "[ b:1 ] t Exited(0)"], sd);
        Assert.False(Pids.IsAlive(pid));
        // The reply comes after the rows it changed: the primary's table is current when the command returns.
        Assert.Contains(c.Primary.Host.Hosts.ListAll(), p => p is { Host: "b", Id: 1, State: "Exited" });
        Assert.Equal("Running", c.Primary.Host.Supervisor.Get(1).State);
    }

    [Fact]
    public async Task Errors_UnknownHost_NoSuchRemoteProcess_UnknownRemoteApp_HaveTheirCodes()
    {
        await using var c = await ClusterFixture.StartAsync();
        Assert.Equal((int)ErrorCode.UnknownHost, (await c.CommandAsync("ping", "zz:1")).Problem!.Code);
        Assert.Equal(HttpStatusCode.NotFound, (await c.CommandAsync("ping", "zz:1")).Status);
        Assert.Equal((int)ErrorCode.NoSuchProcess, (await c.CommandAsync("sd", "b:9")).Problem!.Code);
        Assert.Equal((int)ErrorCode.UnknownApp, (await c.CommandAsync("s", "b:nope")).Problem!.Code);
        Assert.Equal((int)ErrorCode.BadId, (await c.CommandAsync("ping", "b:x")).Problem!.Code);
        Assert.Equal((int)ErrorCode.UnknownHost, (await c.CommandAsync("s", "zz:t")).Problem!.Code);
    }

    [Fact]
    public async Task FollowAndInput_ToAnAgentsApp_OverTheControlApi()
    {
        await using var c = await ClusterFixture.StartAsync();
        using var sub = c.Primary.Host.Events.Subscribe();
        var started = await c.Primary.Client.CommandAsync(["s", "b:echo"]);
        Assert.StartsWith("Added external app (ID: b:1", started.Lines[0], StringComparison.Ordinal);
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(90));
        using var stream = await c.Primary.Client.OpenLogFollowAsync("b:1", 10, cts.Token);
        await using var items = stream.ReadAllAsync(cts.Token).GetAsyncEnumerator(cts.Token);
        async Task<LogStreamItem> NextLineAsync(string text)
        {
            while (await items.MoveNextAsync())
            {
                if (items.Current.Line?.Text == text || items.Current.End is not null)
                {
                    return items.Current;
                }
            }
            throw new InvalidOperationException("stream ended");
        }
        Assert.Equal("testapp echo ready", (await NextLineAsync("testapp echo ready")).Line?.Text);
        await c.Primary.Client.WriteInputAsync("b:1", "hello cluster", cts.Token);
        Assert.Equal("echo: hello cluster", (await NextLineAsync("echo: hello cluster")).Line?.Text);
        var sd = await c.CommandAsync("sd", "b:1");
        Assert.Equal(HttpStatusCode.OK, sd.Status);
        var end = await NextLineAsync("(none)");
        Assert.NotNull(end.End);
    }

    [Fact]
    public async Task AgentLinkLost_HostUnreachable_CommandsFailFast_AppsKeepRunning_ThenStateIsCurrentAgain()
    {
        await using var c = await ClusterFixture.StartAsync();
        using var sub = c.Primary.Host.Events.Subscribe();
        await c.CommandAsync("s", "b:t");
        await InProcessDaemon.WaitAsync(sub, e => e is { Kind: "registered", Host: "b", Id: 1 });

        // The link goes (as when the network or the primary's view of the agent goes); the agent's apps stay.
        await c.Agent.Host.AgentLink!.DisposeAsync();
        await InProcessDaemon.WaitAsync(sub, e => e is { Kind: "host", Host: "b", To: "unreachable" });
        Assert.Equal("Running", c.Agent.Host.Supervisor.Get(1).State);

        var started = DateTime.UtcNow;
        var ping = await c.CommandAsync("ping", "b:1");
        Assert.Equal((int)ErrorCode.HostUnreachable, ping.Problem!.Code);
        Assert.Equal(HttpStatusCode.ServiceUnavailable, ping.Status);
        Assert.Contains("unreachable", ping.Problem.Detail, StringComparison.Ordinal);
        Assert.True(DateTime.UtcNow - started < TimeSpan.FromSeconds(20), "an unreachable host fails fast, not after a timeout");
        Assert.Equal((int)ErrorCode.HostUnreachable, (await c.CommandAsync("s", "b:t")).Problem!.Code);
        var la = (await c.CommandAsync("la")).Ok!.Lines;
        Assert.Matches(@"^b\s+1\s+t\s+\d+\s+Unreachable\s+yes\s+-$", la.Single(l => l.StartsWith("b ", StringComparison.Ordinal)));
        Assert.Matches(@"^b\s+unreachable\s", (await c.CommandAsync("hosts")).Ok!.Lines[2]);

        // While away, the agent's table changes: the next connection brings it up to date.
        c.Agent.Host.Supervisor.Start("t", null);
        await using var link = c.NewLink();
        link.Start();
        await InProcessDaemon.WaitAsync(sub, e => e is { Kind: "host", Host: "b", To: "connected" });
        var rows = c.Primary.Host.Hosts.Resolve("b").List();
        Assert.Equal([1UL, 2UL], rows.Select(r => r.Id));
        Assert.StartsWith("ping time ", Assert.Single((await c.CommandAsync("ping", "b:1")).Ok!.Lines), StringComparison.Ordinal);
    }

    [Fact]
    public async Task UnlistedAgentKey_IsRefused_AndNeverListed()
    {
        await using var c = await ClusterFixture.StartAsync();
        using var stranger = ClusterKey.LoadOrCreate(Path.Combine(c.Keys.Path, "stranger.key"));
        c.Agent.Log.ExpectError(4343); // the agent's "refused by the primary" line
        await using var link = c.NewLink(stranger);
        var refused = new TaskCompletionSource<string>(TaskCreationOptions.RunContinuationsAsynchronously);
        link.StateChanged += (_, s) =>
        {
            if (s == AgentLink.LinkState.Waiting && link.LastError is { } why)
            {
                refused.TrySetResult(why);
            }
        };
        link.Start();
        var reason = await refused.Task.WaitAsync(TimeSpan.FromSeconds(60));
        Assert.Contains("not on the primary's allow-list", reason, StringComparison.Ordinal);
        Assert.DoesNotContain(c.Primary.Host.Hosts.Hosts(), h => h.PublicKey == stranger.PublicKey);
        Assert.Equal(AgentLink.LinkState.Connected, c.Agent.Host.AgentLink!.State);
    }

    [Fact]
    public async Task AgentPinningAnotherPrimaryKey_DoesNotConnect()
    {
        await using var c = await ClusterFixture.StartAsync();
        await using var link = c.NewLink(primaryKey: new string('a', 64));
        var failed = new TaskCompletionSource<string>(TaskCreationOptions.RunContinuationsAsynchronously);
        link.StateChanged += (_, s) =>
        {
            if (s == AgentLink.LinkState.Waiting && link.LastError is { } why)
            {
                failed.TrySetResult(why);
            }
        };
        link.Start();
        Assert.Contains("not the pinned primary key", await failed.Task.WaitAsync(TimeSpan.FromSeconds(60)), StringComparison.Ordinal);
    }

    [Fact]
    public async Task AllowList_ReReadOnChange_RemovedAgentIsDisconnected()
    {
        await using var c = await ClusterFixture.StartAsync();
        using var sub = c.Primary.Host.Events.Subscribe();
        c.Agent.Log.ExpectError(4343); // it keeps retrying and is refused
        File.WriteAllText(c.AllowFile, "# nobody\n");
        await InProcessDaemon.WaitAsync(sub, e => e is { Kind: "host", Host: "b", To: "unreachable" });
        Assert.Equal((int)ErrorCode.UnknownHost, (await c.CommandAsync("ping", "b:1")).Problem!.Code);
        Assert.Single(c.Primary.Host.Hosts.Hosts());

        File.WriteAllText(c.AllowFile, $"b {c.AgentKey}\n");
        await InProcessDaemon.WaitAsync(sub, e => e is { Kind: "host", Host: "b", To: "connected" });
    }
}
