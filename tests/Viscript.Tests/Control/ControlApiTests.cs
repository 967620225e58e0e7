using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using Viscript.Core;
using Viscript.Core.Control;
using Viscript.Daemon;
using Viscript.Signal;
using Viscript.Tests.Support;

namespace Viscript.Tests.Control;

public class ControlApiTests
{
    private static string Config(params string[] extra) => TestConfigs.Build([TestConfigs.App("t", "sleep"), TestConfigs.App("echo", "echo"), .. extra]);

    [Fact]
    public async Task Command_StartPingRuShutdown_ThroughTheRealSignalServer()
    {
        await using var d = await InProcessDaemon.StartAsync(Config());
        using var sub = d.Host.Events.Subscribe();

        var (status, ok, _) = await d.CommandAsync("s", "t");
        Assert.Equal(HttpStatusCode.OK, status);
        Assert.StartsWith("Added external app (ID: 1, Command: ", Assert.Single(ok!.Lines), StringComparison.Ordinal);
        // Under load start_secs may mark it Running before the REG arrives: wait for the registration itself.
        await InProcessDaemon.WaitAsync(sub, e => e.Kind == "registered" && e.Id == 1);

        var la = (await d.CommandAsync("la")).Ok!.Lines;
        Assert.Matches(@"^ID\s+APP\s+PID\s+STATE\s+SIGNAL\s+UPTIME$", la[0]);
        Assert.Matches(@"^1\s+t\s+\d+\s+Running\s+yes\s+\d+s$", la[1]);

        Assert.True((await d.Client.PingAsync(1)).Milliseconds > 0);
        Assert.StartsWith("ping time ", Assert.Single((await d.CommandAsync("ping", "1")).Ok!.Lines), StringComparison.Ordinal);

        var ru = await d.Client.ResourceUsageAsync(1);
        Assert.NotNull(ru.Heap);
        Assert.True(ru.Heap.HeapAlloc > 0);
        Assert.True(ru.RssBytes > 0);
        var ruLines = (await d.CommandAsync("ru", "1")).Ok!.Lines;
        Assert.StartsWith("MemStats HeapAlloc:", ruLines[1], StringComparison.Ordinal);

        var pid = d.Host.Supervisor.Get(1).Pid!.Value;
        var sd = await d.Client.StopAsync(1);
        Assert.Equal(pid, sd.ReportedPid);
        Assert.Equal("Exited(0)", sd.Process.Display);
        Assert.Equal("Exited", sd.Process.State);
        Assert.True(sd.Process.StopRequested);
        Assert.False(Pids.IsAlive(pid));
    }

    [Fact]
    public async Task Errors_AreProblemJson_WithStableCodes()
    {
        await using var d = await InProcessDaemon.StartAsync(Config());
        async Task Expect(int code, HttpStatusCode status, params string[] args)
        {
            var (s, _, problem) = await d.CommandAsync(args);
            Assert.Equal(status, s);
            Assert.Equal(code, problem!.Code);
            Assert.Equal((int)status, problem.Status);
            Assert.StartsWith("urn:viscript:error:", problem.Type, StringComparison.Ordinal);
            Assert.NotEmpty(problem.Detail);
        }
        await Expect(3, HttpStatusCode.BadRequest, "frobnicate");
        await Expect(10, HttpStatusCode.NotFound, "s", "nope");
        await Expect(2, HttpStatusCode.BadRequest, "s");
        await Expect(2, HttpStatusCode.BadRequest, "ping");
        await Expect(11, HttpStatusCode.BadRequest, "ping", "abc");
        await Expect(11, HttpStatusCode.BadRequest, "ping", "-1");
        await Expect(12, HttpStatusCode.NotFound, "ping", "99");
        await Expect(2, HttpStatusCode.BadRequest, "la", "-x");

        // On the wire: application/problem+json.
        using (var raw = await d.Http.PostAsJsonAsync("api/command", new CommandRequest(null, ["frobnicate"]), InProcessDaemon.Json))
        {
            Assert.Equal("application/problem+json", raw.Content.Headers.ContentType?.MediaType);
        }

        using var bad = await d.Http.PostAsync("api/processes/xyz/ping", null);
        Assert.Equal(HttpStatusCode.BadRequest, bad.StatusCode);
        Assert.Equal(11, (await bad.Content.ReadFromJsonAsync<ProblemBody>(InProcessDaemon.Json))!.Code);

        using var malformed = await d.Http.PostAsync("api/command", new StringContent("{not json", System.Text.Encoding.UTF8, "application/json"));
        Assert.Equal(HttpStatusCode.BadRequest, malformed.StatusCode);
        Assert.Equal(2, (await malformed.Content.ReadFromJsonAsync<ProblemBody>(InProcessDaemon.Json))!.Code);

        using var missing = await d.Http.GetAsync("api/nothing-here");
        Assert.Equal(HttpStatusCode.BadRequest, missing.StatusCode);
    }

    [Fact]
    public async Task NotASignalClient_IsReportedClearly()
    {
        await using var d = await InProcessDaemon.StartAsync("apps:\n  sleep:\n    path: sleep\n    default_args: [\"1000\"]\n");
        await d.CommandAsync("s", "sleep");
        var (status, _, problem) = await d.CommandAsync("ping", "1");
        Assert.Equal(HttpStatusCode.Conflict, status);
        Assert.Equal((int)ErrorCode.NotSignalClient, problem!.Code);
        Assert.Contains("not a signal client", problem.Detail, StringComparison.Ordinal);
        var ru = (await d.CommandAsync("ru", "1")).Ok!.Lines;
        Assert.Contains("(not a signal client: no heap figures)", ru);
    }

    [Fact]
    public async Task Token_IsRequired_WhenConfigured()
    {
        await using var d = await InProcessDaemon.StartAsync(Config(), token: "s3cret-token");
        using var anonymous = new HttpClient { BaseAddress = d.Http.BaseAddress };
        using var denied = await anonymous.GetAsync("api/processes");
        Assert.Equal(HttpStatusCode.Unauthorized, denied.StatusCode);
        Assert.Equal(40, (await denied.Content.ReadFromJsonAsync<ProblemBody>(InProcessDaemon.Json))!.Code);
        anonymous.DefaultRequestHeaders.Authorization = new("Bearer", "wrong");
        using var wrong = await anonymous.PostAsync("api/processes/1/sd", null);
        Assert.Equal(HttpStatusCode.Unauthorized, wrong.StatusCode);
        using var allowed = await d.Http.GetAsync("api/processes");
        Assert.Equal(HttpStatusCode.OK, allowed.StatusCode);
    }

    [Fact]
    public async Task NonLoopbackListener_WithoutToken_IsRefused()
    {
        using var dir = new TempDir();
        var ex = await Assert.ThrowsAsync<ViscriptException>(() => DaemonHost.StartAsync(new DaemonOptions
        {
            ConfigPath = dir.Write("config.yaml", "apps:\n"),
            Signal = new IPEndPoint(IPAddress.Any, 0),
            Control = new IPEndPoint(IPAddress.Loopback, 0),
        }));
        Assert.Equal(ErrorCode.Usage, ex.Code);
        Assert.Contains("token", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Structured_Endpoints_ListAppsAndProcesses()
    {
        await using var d = await InProcessDaemon.StartAsync(Config());
        var apps = await d.Client.AppsAsync();
        Assert.Equal(["echo", "t"], apps.Select(a => a.Name));
        using var created = await d.Http.PostAsJsonAsync("api/processes", new StartRequest("t", ["args", "X y"]), InProcessDaemon.Json);
        Assert.Equal(HttpStatusCode.Created, created.StatusCode);
        var info = await created.Content.ReadFromJsonAsync<ProcessInfo>(InProcessDaemon.Json);
        Assert.Equal(1UL, info!.Id);
        Assert.EndsWith("args 'X y'", info.CommandLine, StringComparison.Ordinal);
        var list = await d.Client.ProcessesAsync();
        Assert.Equal(1UL, Assert.Single(list).Id);
        var infoJson = await d.Client.InfoAsync();
        Assert.Equal(d.Host.ControlUrl, infoJson.ControlUrl);
        var unknown = await Assert.ThrowsAsync<ViscriptApiException>(() => d.Client.StartAsync("zzz"));
        Assert.Equal(HttpStatusCode.NotFound, unknown.Status);
        Assert.Equal(ErrorCode.UnknownApp, unknown.Code);
    }

    [Fact]
    public async Task EventStream_DeliversStateChanges()
    {
        await using var d = await InProcessDaemon.StartAsync(Config());
        using var response = await d.Http.GetAsync("api/events", HttpCompletionOption.ResponseHeadersRead);
        Assert.Equal("text/event-stream", response.Content.Headers.ContentType?.MediaType);
        using var reader = new StreamReader(await response.Content.ReadAsStreamAsync());
        Assert.Equal(": subscribed", await reader.ReadLineAsync());
        await d.CommandAsync("s", "t");
        var seen = new List<string>();
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        while (await reader.ReadLineAsync(cts.Token) is { } line)
        {
            if (line.StartsWith("data: ", StringComparison.Ordinal))
            {
                var e = JsonSerializer.Deserialize<ProcessEvent>(line[6..], InProcessDaemon.Json)!;
                seen.Add($"{e.Kind}:{e.To}");
                if (e.Kind == "registered")
                {
                    break;
                }
            }
        }
        Assert.Equal("state:Starting", seen[0]);
        Assert.Contains("state:Running", seen);
        Assert.Equal("registered:", seen[^1]);
    }

    [Fact]
    public async Task Logs_AndStdin_AndFollowEndsWhenTheProcessEnds()
    {
        await using var d = await InProcessDaemon.StartAsync(Config());
        using var sub = d.Host.Events.Subscribe();
        await d.CommandAsync("s", "echo");
        await InProcessDaemon.WaitAsync(sub, e => e.Kind == "registered" && e.Id == 1);

        using var follow = await d.Http.GetAsync("api/processes/1/logs?follow=true&n=10", HttpCompletionOption.ResponseHeadersRead);
        using var reader = new StreamReader(await follow.Content.ReadAsStreamAsync());
        Assert.Equal(": following", await reader.ReadLineAsync());
        await d.Client.WriteInputAsync(1, "Hi There");

        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        var texts = new List<string>();
        string? evt = null;
        var killed = false;
        while (await reader.ReadLineAsync(cts.Token) is { } line)
        {
            if (line.StartsWith("event: ", StringComparison.Ordinal))
            {
                evt = line[7..];
            }
            else if (line.StartsWith("data: ", StringComparison.Ordinal) && evt == "line")
            {
                texts.Add(JsonSerializer.Deserialize<LogLineInfo>(line[6..], InProcessDaemon.Json)!.Text);
                if (texts[^1] == "echo: Hi There" && !killed)
                {
                    killed = true;
                    await d.CommandAsync("kill", "1");
                }
            }
            else if (line.StartsWith("data: ", StringComparison.Ordinal) && evt == "end")
            {
                break;
            }
        }
        Assert.Equal("end", evt);
        Assert.Contains("testapp echo ready", texts);
        Assert.Contains("echo: Hi There", texts);

        var tail = await d.Client.LogsAsync(1, 1);
        Assert.Single(tail);
        var (status, _, problem) = await d.CommandAsync("attach", "1");
        Assert.Equal(HttpStatusCode.Conflict, status);
        Assert.Equal((int)ErrorCode.NotRunning, problem!.Code);
    }

    [Fact]
    public async Task RemoteSignalClient_IsListed_Pinged_RuD_AndShutDown()
    {
        await using var d = await InProcessDaemon.StartAsync(Config());
        using var sub = d.Host.Events.Subscribe();
        var shutdown = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        await using var client = new SignalClient(new SignalClientOptions
        {
            ServerAddress = d.Host.SignalEndPoint.ToString(),
            ClientId = 500,
            ExitOnUnhandledShutdown = false,
        });
        client.ShutdownRequested += (_, _) => shutdown.TrySetResult();
        client.Start();
        await client.WaitForRegistrationAsync(new CancellationTokenSource(TimeSpan.FromSeconds(30)).Token);
        await InProcessDaemon.WaitAsync(sub, e => e.Kind == "registered" && e.Id == 500);

        var la = (await d.CommandAsync("la")).Ok!.Lines;
        Assert.Matches(@"^500\s+-\s+\d+\s+Remote\s+remote 127\.0\.0\.1:\d+\s+\d+s$", la[1]);
        Assert.StartsWith("ping time", (await d.CommandAsync("ping", "500")).Ok!.Lines[0], StringComparison.Ordinal);
        Assert.StartsWith("MemStats", (await d.CommandAsync("ru", "500")).Ok!.Lines[1], StringComparison.Ordinal);
        var sd = (await d.CommandAsync("sd", "500")).Ok!.Lines;
        Assert.Equal($"shutdown pid {Environment.ProcessId}", sd[0]);
        await shutdown.Task.WaitAsync(TimeSpan.FromSeconds(30));
        // Only signal clients viscript launched have output or can be killed.
        Assert.Equal((int)ErrorCode.NotRunning, (await d.CommandAsync("kill", "500")).Problem!.Code);
    }

    [Fact]
    public async Task ManyApps_AllRegister_AndStopCleanly()
    {
        const int Count = 200;
        var yaml = $"apps:\n  mini:\n    path: {Path.Combine(Paths.RepoRoot, "tests", "apps", "mini-signal-client.sh")}\n    stop_timeout: 5s\n";
        await using var d = await InProcessDaemon.StartAsync(yaml);
        using var sub = d.Host.Events.Subscribe(capacity: 100_000);
        var pids = new List<int>();
        for (var i = 0; i < Count; i++)
        {
            pids.Add(d.Host.Supervisor.Start("mini").Pid!.Value);
        }
        var registered = new HashSet<ulong>();
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(120));
        await foreach (var e in sub.Reader.ReadAllAsync(cts.Token))
        {
            if (e.Kind == "registered" && registered.Add(e.Id) && registered.Count == Count)
            {
                break;
            }
        }
        Assert.Equal(Enumerable.Range(1, Count).Select(i => (ulong)i), registered.Order());
        var list = d.Host.Supervisor.List();
        Assert.Equal(Count, list.Count);
        Assert.All(list, p => Assert.True(p.SignalRegistered && p.State == "Running", $"{p.Id} {p.State}"));
        var la = (await d.CommandAsync("la")).Ok!.Lines;
        Assert.Equal(Count + 1, la.Count);

        await d.Host.Supervisor.StopAllAsync();
        foreach (var pid in pids)
        {
            Assert.True(await Pids.WaitGoneAsync(pid, TimeSpan.FromSeconds(10)), $"pid {pid} survived");
        }
    }
}
