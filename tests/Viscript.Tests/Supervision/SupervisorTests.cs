using Microsoft.Extensions.Time.Testing;
using Viscript.Core;
using Viscript.Core.Config;
using Viscript.Core.Supervision;
using Viscript.Signal;
using Viscript.Tests.Support;

namespace Viscript.Tests.Supervision;

public sealed class SupervisorTests : IAsyncLifetime
{
    private readonly TempDir _dir = new();
    private readonly List<Supervisor> _supervisors = [];

    private Supervisor Create(string yaml, ISignalGateway? signal = null, TimeProvider? time = null, TimeSpan? shutdownTimeout = null)
    {
        var cfg = ConfigLoader.Parse(yaml, Path.Combine(_dir.Path, "config.yaml"));
        var sup = new Supervisor(cfg, signal ?? new FakeSignalGateway(), new SupervisorOptions
        {
            TimeProvider = time ?? TimeProvider.System,
            ShutdownTimeout = shutdownTimeout ?? TimeSpan.FromSeconds(10),
        });
        _supervisors.Add(sup);
        return sup;
    }

    public ValueTask InitializeAsync() => ValueTask.CompletedTask;

    public async ValueTask DisposeAsync()
    {
        foreach (var s in _supervisors)
        {
            await s.DisposeAsync();
        }
        _dir.Dispose();
    }

    private static async Task WaitForLogAsync(Supervisor sup, ulong id, string text)
    {
        await foreach (var line in sup.GetLogs(id).FollowAsync(int.MaxValue).WithCancellation(new CancellationTokenSource(TimeSpan.FromSeconds(30)).Token))
        {
            if (line.Text.Contains(text, StringComparison.Ordinal))
            {
                return;
            }
        }
    }

    [Fact]
    public async Task Start_Sleep_RunsThenStopsWithSigterm()
    {
        var sup = Create("apps:\n  sleeper:\n    path: sleep\n    default_args: [\"1000\"]\n    start_secs: 0\n    stop_timeout: 10s\n");
        using var events = new EventRecorder(sup);
        var info = sup.Start("sleeper");
        Assert.Equal(1UL, info.Id);
        Assert.Equal("sleep 1000", info.CommandLine);
        Assert.NotNull(info.Pid);
        Assert.Equal("Running", sup.Get(1).State);
        Assert.True(Pids.IsAlive(info.Pid!.Value));

        var stop = await sup.StopAsync(1);
        Assert.Equal(info.Pid, stop.Pid);
        Assert.Equal("Exited(143)", stop.Process.Display);
        Assert.True(stop.Process.StopRequested);
        Assert.False(Pids.IsAlive(info.Pid.Value));
        var states = events.Events.Where(e => e.Kind == "state").Select(e => e.To).ToList();
        Assert.Equal(["Starting", "Running", "Stopping", "Exited(143)"], states);
        Assert.True(events.Events.Last(e => e.Kind == "state").StopRequested);
    }

    [Fact]
    public void Start_UnknownApp_IsUnknownApp()
    {
        var sup = Create("apps:\n  a:\n    path: sleep\n");
        var ex = Assert.Throws<ViscriptException>(() => sup.Start("nope"));
        Assert.Equal(ErrorCode.UnknownApp, ex.Code);
        Assert.Empty(sup.List());
    }

    [Fact]
    public void Start_MissingExecutable_ConsumesIdAndIsFatal()
    {
        var sup = Create("apps:\n  broken:\n    path: ./does/not/exist\n  ok:\n    path: sleep\n    default_args: [\"1000\"]\n");
        var ex = Assert.Throws<ViscriptException>(() => sup.Start("broken"));
        Assert.Equal(ErrorCode.StartFailed, ex.Code);
        Assert.Contains("ID: 1", ex.Message, StringComparison.Ordinal);
        Assert.Equal("Fatal", sup.Get(1).State);
        Assert.Equal(2UL, sup.Start("ok").Id);
    }

    [Fact]
    public void Start_NonExecutableFile_IsFatalAtOnce()
    {
        var file = _dir.Write("data.txt", "not a program\n");
        var sup = Create($"apps:\n  data:\n    path: {file}\n");
        Assert.Equal(ErrorCode.StartFailed, Assert.Throws<ViscriptException>(() => sup.Start("data")).Code);
        Assert.Equal("Fatal", sup.Get(1).State);
    }

    private const string DoubleFork = "(sleep 1000 & echo grandchild $!)";

    private static int PidAfter(Supervisor sup, ulong id, string prefix) => int.Parse(
        sup.GetLogs(id).Tail(20).First(l => l.Text.StartsWith(prefix + " ", StringComparison.Ordinal)).Text[(prefix.Length + 1)..],
        System.Globalization.CultureInfo.InvariantCulture);

    [Fact]
    public async Task Apps_AreSessionLeaders_AndSdStopsTheWholeGroup()
    {
        var sup = Create($"apps:\n  sh:\n    path: /bin/sh\n    default_args: [\"-c\", \"{DoubleFork}; exec sleep 1000\"]\n");
        var info = sup.Start("sh");
        await WaitForLogAsync(sup, 1, "grandchild");
        var pid = info.Pid!.Value;
        var grandchild = PidAfter(sup, 1, "grandchild");
        var leader = ProcStat.Read(pid)!.Value;
        // setsid made the app a session and group leader (same pid: no extra fork); the orphaned grandchild stays in its group.
        Assert.Equal((pid, pid), (leader.Pgrp, leader.Session));
        Assert.Equal(pid, ProcStat.Read(grandchild)!.Value.Pgrp);
        Assert.Contains("sleep", File.ReadAllText($"/proc/{pid}/cmdline"), StringComparison.Ordinal);

        var r = await sup.StopAsync(1);
        Assert.Equal("Exited(143)", r.Process.Display);
        Assert.False(Pids.IsAlive(grandchild), "the double-forked grandchild survived sd");
    }

    [Fact]
    public async Task Exit_OnItsOwn_StopsWhatTheAppLeftBehind()
    {
        var sup = Create($"apps:\n  quick:\n    path: /bin/sh\n    default_args: [\"-c\", \"{DoubleFork}; (trap '' TERM; exec sleep 1000) & echo stubborn $!; read line\"]\n    stop_timeout: 300ms\n");
        using var events = new EventRecorder(sup);
        sup.Start("quick");
        await WaitForLogAsync(sup, 1, "stubborn");
        var grandchild = PidAfter(sup, 1, "grandchild");
        var stubborn = PidAfter(sup, 1, "stubborn");
        Assert.True(Pids.IsAlive(stubborn));
        await sup.WriteInputAsync(1, "done");
        // Exited is reported only once the leftovers are gone (SIGTERM, then SIGKILL after stop_timeout for the one ignoring it).
        var exited = await events.WaitStateAsync(1, "Exited");
        Assert.Equal("Exited(0)", exited.To);
        Assert.False(exited.StopRequested);
        Assert.False(Pids.IsAlive(grandchild), "grandchild survived");
        Assert.False(Pids.IsAlive(stubborn), "the grandchild ignoring SIGTERM survived");
    }

    [Fact]
    public async Task Start_PassesArgumentsAndSignalEnvironment()
    {
        var sup = Create(TestConfigs.Build(TestConfigs.App("t", "args")));
        var info = sup.Start("t", ["args", "Hello World", "MiXed"]);
        await WaitForLogAsync(sup, info.Id, "env:");
        var lines = sup.GetLogs(info.Id).Tail(10).Select(l => l.Text).ToList();
        Assert.Contains("args: Hello World|MiXed", lines);
        Assert.Contains($"env: SIGNAL_CLIENT=true SIGNAL_CLIENT_ID={info.Id} SIGNAL_SERVER_ADDRESS=127.0.0.1:1", lines);
    }

    [Fact]
    public void BuildArguments_ReplaceExtendAndSignalFlags()
    {
        var app = new AppOptions { Name = "a", Path = "x", DefaultArgs = ["-d"] };
        Assert.Equal(["-d"], Supervisor.BuildArguments(app, [], 5));
        Assert.Equal(["-u"], Supervisor.BuildArguments(app, ["-u"], 5));
        Assert.Equal(["-d", "-u"], Supervisor.BuildArguments(app with { ArgsMode = ArgsMode.Extend }, ["-u"], 5));
        Assert.Equal(["-d", "-signal-client-id", "5", "-signal-client"], Supervisor.BuildArguments(app with { SignalFlags = true }, null, 5));
    }

    [Fact]
    public void BackoffDelay_DoublesUpToTheCap()
    {
        var app = new AppOptions { Name = "a", Path = "x", Backoff = TimeSpan.FromSeconds(1), BackoffMax = TimeSpan.FromSeconds(5) };
        Assert.Equal([1, 2, 4, 5, 5], Enumerable.Range(1, 5).Select(n => Supervisor.BackoffDelay(app, n).TotalSeconds));
    }

    [Fact]
    public async Task Crash_OnFailure_BacksOffThenGoesFatal_OnTheFakeClock()
    {
        var time = new FakeTimeProvider(DateTimeOffset.UtcNow);
        var sup = Create(TestConfigs.Build(TestConfigs.App("crasher", "crash 3 0", "restart: on-failure", "max_retries: 2", "backoff: 10s", "backoff_max: 15s")), time: time);
        using var events = new EventRecorder(sup);
        sup.Start("crasher");

        var b1 = await events.WaitStateAsync(1, "Backoff");
        Assert.Equal(3, b1.ExitCode);
        Assert.Contains("restart 1/2 in 10s", b1.Message, StringComparison.Ordinal);
        Assert.Equal("Backoff", sup.Get(1).State);
        time.Advance(TimeSpan.FromSeconds(9));
        Assert.Equal("Backoff", sup.Get(1).State);
        time.Advance(TimeSpan.FromSeconds(1));
        await events.WaitStateAsync(1, "Starting", occurrence: 2);

        var b2 = await events.WaitStateAsync(1, "Backoff", occurrence: 2);
        Assert.Contains("restart 2/2 in 15s", b2.Message, StringComparison.Ordinal);
        time.Advance(TimeSpan.FromSeconds(15));
        var fatal = await events.WaitStateAsync(1, "Fatal");
        Assert.Contains("3 quick failures", fatal.Message, StringComparison.Ordinal);
        var info = sup.Get(1);
        Assert.Equal(2, info.Restarts);
        Assert.Equal(3, info.ExitCode);
    }

    [Fact]
    public async Task CleanExit_OnFailure_IsExited_ButAlwaysRestarts()
    {
        var time = new FakeTimeProvider(DateTimeOffset.UtcNow);
        var sup = Create(TestConfigs.Build(
            TestConfigs.App("once", "crash 0 0", "restart: on-failure"),
            TestConfigs.App("again", "crash 0 0", "restart: always", "max_retries: 0")), time: time);
        using var events = new EventRecorder(sup);
        sup.Start("once");
        sup.Start("again");
        var exited = await events.WaitStateAsync(1, "Exited");
        Assert.Equal("Exited(0)", exited.To);
        Assert.False(exited.StopRequested);
        Assert.False(sup.Get(1).StopRequested);
        // max_retries 0: the first quick exit is already one failure too many.
        await events.WaitStateAsync(2, "Fatal");
    }

    [Fact]
    public async Task Stop_DuringBackoff_IsExitedWithLastCodeAndNeverRestarts()
    {
        var time = new FakeTimeProvider(DateTimeOffset.UtcNow);
        var sup = Create(TestConfigs.Build(TestConfigs.App("crasher", "crash 1 0", "restart: always", "backoff: 5s")), time: time);
        using var events = new EventRecorder(sup);
        sup.Start("crasher");
        await events.WaitStateAsync(1, "Backoff");
        var r = await sup.StopAsync(1);
        Assert.Equal("Exited(1)", r.Process.Display);
        Assert.True(r.Process.StopRequested);
        Assert.Null(r.Pid); // nothing ran: `sd` must not print "shutdown pid" of the run that had already ended
        time.Advance(TimeSpan.FromMinutes(1));
        Assert.Equal("Exited", sup.Get(1).State);
        Assert.DoesNotContain(events.Events, e => e.Kind == "state" && e.To == "Starting" && e.From == "Backoff");
    }

    [Fact]
    public async Task SignalRegistration_MarksRunningBeforeStartSecs()
    {
        var signal = new FakeSignalGateway();
        var sup = Create("apps:\n  s:\n    path: sleep\n    default_args: [\"1000\"]\n    start_secs: 1h\n", signal);
        using var events = new EventRecorder(sup);
        sup.Start("s");
        Assert.Equal("Starting", sup.Get(1).State);
        signal.Register(1);
        var e = await events.WaitStateAsync(1, "Running");
        Assert.Equal("signal client registered", e.Message);
        Assert.True(sup.Get(1).SignalRegistered);
    }

    [Fact]
    public async Task Sd_OfAClientThatAcknowledgedShutdown_WaitsLongerThanTheGoClientsTenSeconds()
    {
        // An original Go client acknowledges SHUTDOWN and exits 10 s later (hard-coded). This one ignores SIGTERM, so a
        // SIGTERM at stop_timeout (10 s) would end in SIGKILL; with shutdown_wait (15 s) it exits by itself: Exited(0).
        var signal = new FakeSignalGateway();
        var sup = Create("apps:\n  go:\n    path: sh\n    default_args: [\"-c\", \"trap '' TERM; sleep 11\"]\n", signal);
        sup.Start("go");
        signal.Register(1);
        var report = await sup.StopAsync(1);
        Assert.Equal(4242, report.ReportedPid);
        Assert.Equal("Exited(0)", report.Process.Display);
    }

    [Fact]
    public void Logs_OfARemoteSignalClient_IsNotRunning13()
    {
        var signal = new FakeSignalGateway();
        var sup = Create("apps:\n  s:\n    path: sleep\n", signal);
        signal.Register(7, "192.0.2.1:5000");
        Assert.Equal(ErrorCode.NotRunning, Assert.Throws<ViscriptException>(() => sup.GetLogs(7)).Code);
        Assert.Equal(ErrorCode.NoSuchProcess, Assert.Throws<ViscriptException>(() => sup.GetLogs(8)).Code);
    }

    [Fact]
    public async Task Ping_MapsEveryFailure()
    {
        var signal = new FakeSignalGateway();
        var sup = Create("apps:\n  s:\n    path: sleep\n    default_args: [\"1000\"]\n", signal);
        sup.Start("s");
        Assert.Equal(ErrorCode.NotSignalClient, (await Assert.ThrowsAsync<ViscriptException>(() => sup.PingAsync(1))).Code);
        Assert.Equal(ErrorCode.NoSuchProcess, (await Assert.ThrowsAsync<ViscriptException>(() => sup.PingAsync(99))).Code);

        signal.Register(1);
        Assert.Equal(TimeSpan.FromMilliseconds(1.5), await sup.PingAsync(1));
        signal.Ping = _ => throw new SignalException(SignalErrorKind.Timeout, "no answer in 5s");
        Assert.Equal(ErrorCode.SignalTimeout, (await Assert.ThrowsAsync<ViscriptException>(() => sup.PingAsync(1))).Code);
        signal.Ping = _ => throw new SignalException(SignalErrorKind.Disconnected, "gone");
        Assert.Equal(ErrorCode.SignalFailed, (await Assert.ThrowsAsync<ViscriptException>(() => sup.PingAsync(1))).Code);

        signal.Disconnect(1);
        await sup.KillAsync(1);
        Assert.Equal(ErrorCode.NotRunning, (await Assert.ThrowsAsync<ViscriptException>(() => sup.PingAsync(1))).Code);
    }

    [Fact]
    public async Task ResourceUsage_ReadsProc_AndHeapForSignalClients()
    {
        var signal = new FakeSignalGateway();
        var sup = Create("apps:\n  s:\n    path: sleep\n    default_args: [\"1000\"]\n", signal);
        var info = sup.Start("s");
        var r = await sup.ResourceUsageAsync(1);
        // The kernel syncs a fresh process's RSS counters lazily (a just-exec'd process may read 0 pages): poll, bounded.
        for (var deadline = DateTime.UtcNow.AddSeconds(20); r.RssBytes is not > 0 && DateTime.UtcNow < deadline;)
        {
            await Task.Delay(20, TestContext.Current.CancellationToken);
            r = await sup.ResourceUsageAsync(1);
        }

        Assert.Equal(info.Pid, r.Pid);
        Assert.True(r.RssBytes > 0);
        Assert.True(r.Threads >= 1);
        Assert.True(r.OpenFiles >= 3);
        Assert.Null(r.Heap);

        signal.Register(1);
        r = await sup.ResourceUsageAsync(1);
        Assert.Equal(6UL, r.Heap!.StackInuse);
        await sup.KillAsync(1);
        Assert.Equal(ErrorCode.NotRunning, (await Assert.ThrowsAsync<ViscriptException>(() => sup.ResourceUsageAsync(1))).Code);
    }

    [Fact]
    public async Task Shutdown_SignalClient_AsksOverSignalFirst_ThenEscalates()
    {
        var signal = new FakeSignalGateway();
        var sup = Create(TestConfigs.Build(TestConfigs.App("t", "sleep", "stop_timeout: 300ms")), signal);
        var info = sup.Start("t");
        signal.Register(1);
        // The fake acknowledges SHUTDOWN but the test app does not exit on it: SIGTERM follows after stop_timeout.
        var r = await sup.StopAsync(1);
        Assert.Equal([1UL], signal.ShutdownCalls);
        Assert.Equal(4242, r.ReportedPid);
        Assert.Equal(info.Pid, r.Pid);
        Assert.Equal("Exited", r.Process.State);
        Assert.False(Pids.IsAlive(info.Pid!.Value));
    }

    [Fact]
    public async Task Shutdown_AppIgnoringSigterm_IsKilledAfterStopTimeout()
    {
        var sup = Create(TestConfigs.Build(TestConfigs.App("stubborn", "ignore-term", "stop_timeout: 300ms")));
        var info = sup.Start("stubborn");
        await WaitForLogAsync(sup, 1, "ignoring SIGTERM from now on");
        var r = await sup.StopAsync(1);
        Assert.Equal("Exited(137)", r.Process.Display);
        Assert.False(Pids.IsAlive(info.Pid!.Value));
        Assert.Contains(sup.GetLogs(1).Tail(10), l => l.Text == "testapp ignoring SIGTERM");
    }

    [Fact]
    public async Task StopAll_LeavesNoChildOrGrandchild()
    {
        var sup = Create(TestConfigs.Build(
            TestConfigs.App("stubborn", "ignore-term", "stop_timeout: 60s"),
            TestConfigs.App("spawner", "spawn"),
            "  s:\n    path: sleep\n    default_args: [\"1000\"]\n"), shutdownTimeout: TimeSpan.FromSeconds(1));
        var pids = new List<int> { sup.Start("stubborn").Pid!.Value, sup.Start("spawner").Pid!.Value, sup.Start("s").Pid!.Value, sup.Start("s").Pid!.Value };
        await WaitForLogAsync(sup, 1, "ignoring SIGTERM from now on");
        await WaitForLogAsync(sup, 2, "grandchild");
        var grandchild = int.Parse(sup.GetLogs(2).Tail(5).First(l => l.Text.StartsWith("grandchild", StringComparison.Ordinal)).Text.Split(' ')[1], System.Globalization.CultureInfo.InvariantCulture);
        pids.Add(grandchild);

        await sup.StopAllAsync();
        foreach (var pid in pids)
        {
            Assert.True(await Pids.WaitGoneAsync(pid, TimeSpan.FromSeconds(10)), $"pid {pid} survived");
        }
        Assert.All(sup.List(), p => Assert.Equal("Exited", p.State));
        Assert.Equal(ErrorCode.NotRunning, Assert.Throws<ViscriptException>(() => sup.Start("s")).Code);
    }

    [Fact]
    public async Task Restart_KeepsIdWithNewPid()
    {
        var sup = Create("apps:\n  s:\n    path: sleep\n    default_args: [\"1000\"]\n");
        var first = sup.Start("s");
        var r = await sup.RestartAsync(1);
        Assert.Equal(first.Pid, r.Pid);
        Assert.NotEqual(first.Pid, r.Process.Pid);
        Assert.Equal(1UL, r.Process.Id);
        Assert.True(Pids.IsAlive(r.Process.Pid!.Value));
        Assert.False(Pids.IsAlive(first.Pid!.Value));
        Assert.Single(sup.List());
    }

    [Fact]
    public async Task Input_ReachesTheProcess()
    {
        var sup = Create(TestConfigs.Build(TestConfigs.App("echo", "echo")));
        sup.Start("echo");
        await WaitForLogAsync(sup, 1, "echo ready");
        await sup.WriteInputAsync(1, "Hello 'there'");
        await WaitForLogAsync(sup, 1, "echo: Hello 'there'");
    }

    [Fact]
    public async Task Flood_KeepsMemoryAndFilesBounded()
    {
        var yaml = TestConfigs.Build(TestConfigs.App("flood", "flood", "start_secs: 0")) + "  log_buffer_lines: 100\n  log_file_max_bytes: 1000000\n";
        var sup = Create(yaml);
        sup.Start("flood");
        var logs = sup.GetLogs(1);
        await WaitForLogAsync(sup, 1, "flood line 200000");
        Assert.Equal(100, logs.Tail(1000).Count);
        Assert.True(logs.TotalLines >= 200_000);
        // The supervisor still answers while the flood goes on.
        Assert.Equal("Running", sup.List().Single().State);
        var ru = await sup.ResourceUsageAsync(1);
        Assert.NotNull(ru.Pid);
        await sup.KillAsync(1);
        var file = Path.Combine(_dir.Path, "logs", "flood-1.log");
        Assert.True(File.Exists(file + ".1"));
        Assert.InRange(new FileInfo(file).Length, 1, 1_000_000 + 64 * 1024);
    }

    [Fact]
    public async Task RemoteClient_IsListed_Pinged_AndShutDown()
    {
        var signal = new FakeSignalGateway();
        var sup = Create("apps:\n  s:\n    path: sleep\n    default_args: [\"1000\"]\n", signal);
        signal.Register(1, "10.1.2.3:5555");
        // Id 1 is held by a client viscript did not launch: the next start skips it.
        Assert.Equal(2UL, sup.Start("s").Id);
        var remote = sup.List().Single(p => p.Id == 1);
        Assert.True(remote.Remote);
        Assert.Null(remote.App);
        Assert.Equal("Remote", remote.Display);
        Assert.Equal("10.1.2.3:5555", remote.RemoteEndPoint);
        Assert.Equal(TimeSpan.FromMilliseconds(1.5), await sup.PingAsync(1));
        Assert.Equal(6UL, (await sup.ResourceUsageAsync(1)).Heap!.StackInuse);
        var r = await sup.StopAsync(1);
        Assert.Equal(4242, r.ReportedPid);
        Assert.Equal(ErrorCode.NotRunning, (await Assert.ThrowsAsync<ViscriptException>(() => sup.KillAsync(1))).Code);
    }
}
