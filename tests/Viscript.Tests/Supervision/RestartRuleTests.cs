using Microsoft.Extensions.Time.Testing;
using Viscript.Core.Config;
using Viscript.Core.Supervision;
using Viscript.Tests.Support;

namespace Viscript.Tests.Supervision;

/// <summary>
/// Issue 12.6: the restart rule. A run shorter than stable_secs is a failure even when it got past start_secs, so an
/// app that crashes just after start_secs backs off ever longer and ends Fatal instead of restarting forever.
/// </summary>
public sealed class RestartRuleTests : IAsyncLifetime
{
    private static readonly AppOptions App = new()
    {
        Name = "a",
        Path = "x",
        Restart = RestartPolicy.OnFailure,
        MaxRetries = 2,
        Backoff = TimeSpan.FromSeconds(10),
        BackoffMax = TimeSpan.FromSeconds(25),
        StartSecs = TimeSpan.FromSeconds(1),
        StableSecs = TimeSpan.FromSeconds(60),
    };

    private readonly TempDir _dir = new();
    private Supervisor? _supervisor;

    public ValueTask InitializeAsync() => ValueTask.CompletedTask;

    public async ValueTask DisposeAsync()
    {
        if (_supervisor is not null)
        {
            await _supervisor.DisposeAsync();
        }
        _dir.Dispose();
    }

    [Fact]
    public void RunsPastStartSecsButShortOfStableSecs_CountAsFailures_WithGrowingBackoff_ThenFatal()
    {
        var uptime = TimeSpan.FromSeconds(5); // past start_secs, short of stable_secs
        var first = RestartPlanner.Decide(App, 3, uptime, 0, shuttingDown: false);
        Assert.Equal((RestartAction.Backoff, 1, TimeSpan.FromSeconds(10)), (first.Action, first.Failures, first.Delay));
        var second = RestartPlanner.Decide(App, 3, uptime, first.Failures, shuttingDown: false);
        Assert.Equal((RestartAction.Backoff, 2, TimeSpan.FromSeconds(20)), (second.Action, second.Failures, second.Delay));
        var third = RestartPlanner.Decide(App, 3, uptime, second.Failures, shuttingDown: false);
        Assert.Equal(RestartAction.Fatal, third.Action);
        Assert.Contains("3 quick failures", third.Reason, StringComparison.Ordinal);
        Assert.Contains("stable_secs 60s", third.Reason, StringComparison.Ordinal);
    }

    [Fact]
    public void AStableRun_ResetsTheCount_AndRestartsAfterTheFirstBackoffStep()
    {
        var decision = RestartPlanner.Decide(App, 3, TimeSpan.FromSeconds(60), failuresSoFar: 2, shuttingDown: false);
        Assert.Equal((RestartAction.Backoff, 0, TimeSpan.FromSeconds(10)), (decision.Action, decision.Failures, decision.Delay));
        Assert.Contains("stable run", decision.Reason, StringComparison.Ordinal);
    }

    [Fact]
    public void StableSecs_IsNeverShorterThanStartSecs()
    {
        var app = App with { StartSecs = TimeSpan.FromSeconds(90), StableSecs = TimeSpan.FromSeconds(30) };
        Assert.Equal(TimeSpan.FromSeconds(90), RestartPlanner.StableAfter(app));
        var decision = RestartPlanner.Decide(app, 1, TimeSpan.FromSeconds(60), 0, shuttingDown: false);
        Assert.Equal((RestartAction.Backoff, 1), (decision.Action, decision.Failures));
    }

    [Theory]
    [InlineData(RestartPolicy.Never, 1, false)]
    [InlineData(RestartPolicy.OnFailure, 0, false)]
    [InlineData(RestartPolicy.OnFailure, 137, true)]
    [InlineData(RestartPolicy.Always, 0, true)]
    public void Policy_DecidesWhetherToRestartAtAll(RestartPolicy policy, int exitCode, bool restarts) =>
        Assert.Equal(restarts ? RestartAction.Backoff : RestartAction.Exit,
            RestartPlanner.Decide(App with { Restart = policy }, exitCode, TimeSpan.Zero, 0, shuttingDown: false).Action);

    [Fact]
    public void NothingRestarts_WhileTheDaemonShutsDown() =>
        Assert.Equal(RestartAction.Exit, RestartPlanner.Decide(App with { Restart = RestartPolicy.Always }, 1, TimeSpan.Zero, 0, shuttingDown: true).Action);

    [Fact]
    public async Task AppCrashingJustAfterStartSecs_BacksOffLongerEachTime_AndGoesFatal_OnTheFakeClock()
    {
        // The app reads one line and exits 3: the test decides when it crashes, after the fake clock passed start_secs.
        var time = new FakeTimeProvider(DateTimeOffset.UtcNow);
        var yaml = """
            apps:
              crasher:
                path: /bin/sh
                default_args: ["-c", "read line; exit 3"]
                restart: on-failure
                start_secs: 1s
                max_retries: 2
                backoff: 10s
                backoff_max: 1m
            """;
        _supervisor = new Supervisor(ConfigLoader.Parse(yaml, Path.Combine(_dir.Path, "config.yaml")), new FakeSignalGateway(),
            new SupervisorOptions { TimeProvider = time, WriteLogFiles = false });
        using var events = new EventRecorder(_supervisor);
        _supervisor.Start("crasher");

        async Task<string> CrashAfterStartSecsAsync(int run)
        {
            // "started" is raised once the run's start_secs timer exists (the Starting state comes before the spawn).
            var started = 0;
            await events.WaitAsync(e => e.Kind == "started" && e.Id == 1 && ++started == run);
            time.Advance(TimeSpan.FromSeconds(2));
            await events.WaitStateAsync(1, "Running", occurrence: run);
            await _supervisor.WriteInputAsync(1, "crash now");
            var seen = 0;
            var next = await events.WaitAsync(e => e.Kind == "state" && e.Id == 1 && e.From == "Running" && e.To is "Backoff" or "Fatal" && ++seen == run);
            return $"{next.To}: {next.Message}";
        }

        Assert.Contains("Backoff: pid", await CrashAfterStartSecsAsync(1), StringComparison.Ordinal);
        Assert.Contains("restart 1/2 in 10s", events.Events.Last(e => e.To == "Backoff").Message, StringComparison.Ordinal);
        time.Advance(TimeSpan.FromSeconds(10));

        var second = await CrashAfterStartSecsAsync(2);
        Assert.Contains("restart 2/2 in 20s", second, StringComparison.Ordinal); // the old rule reset the count here: 1/2 in 10s, forever
        time.Advance(TimeSpan.FromSeconds(20));

        var third = await CrashAfterStartSecsAsync(3);
        Assert.StartsWith("Fatal", third, StringComparison.Ordinal);
        Assert.Contains("3 quick failures", third, StringComparison.Ordinal);
        Assert.Equal(("Fatal", 3, 2), (_supervisor.Get(1).State, _supervisor.Get(1).ExitCode, _supervisor.Get(1).Restarts));
    }

    [Fact]
    public async Task TheAppsLogSaysWhyItBacksOffAndGoesFatal_AndRestartOfAFatalApp_StartsTheCountOver()
    {
        // supervisord's rule: `start` of a FATAL program gives it its full startretries again.
        var time = new FakeTimeProvider(DateTimeOffset.UtcNow);
        var yaml = """
            apps:
              crasher:
                path: /bin/sh
                default_args: ["-c", "read line; exit 3"]
                restart: on-failure
                start_secs: 1s
                max_retries: 1
                backoff: 10s
            """;
        var logs = Path.Combine(_dir.Path, "logs");
        _supervisor = new Supervisor(ConfigLoader.Parse(yaml, Path.Combine(_dir.Path, "config.yaml")), new FakeSignalGateway(),
            new SupervisorOptions { TimeProvider = time, LogDirectory = logs });
        using var events = new EventRecorder(_supervisor);
        _supervisor.Start("crasher");

        async Task<string> CrashAfterStartSecsAsync(int run)
        {
            var started = 0;
            await events.WaitAsync(e => e.Kind == "started" && e.Id == 1 && ++started == run);
            time.Advance(TimeSpan.FromSeconds(2));
            await events.WaitStateAsync(1, "Running", occurrence: run);
            await _supervisor.WriteInputAsync(1, "crash now");
            var seen = 0;
            var next = await events.WaitAsync(e => e.Kind == "state" && e.Id == 1 && e.From == "Running" && e.To is "Backoff" or "Fatal" && ++seen == run);
            return $"{next.To}: {next.Message}";
        }

        Assert.Contains("restart 1/1 in 10s", await CrashAfterStartSecsAsync(1), StringComparison.Ordinal);
        time.Advance(TimeSpan.FromSeconds(10));
        Assert.StartsWith("Fatal", await CrashAfterStartSecsAsync(2), StringComparison.Ordinal);

        // Where an operator reads the app's output (`logs ID`, its log file), the decisions are written too.
        var lines = _supervisor.GetLogs(1).Tail(100).Where(l => l.Stream == LogStream.System).Select(l => l.Text).ToList();
        Assert.Contains(lines, l => l.StartsWith("Backoff: pid ", StringComparison.Ordinal) && l.Contains("restart 1/1 in 10s", StringComparison.Ordinal));
        Assert.Contains(lines, l => l.StartsWith("Fatal: pid ", StringComparison.Ordinal) && l.Contains("gave up after 2 quick failures", StringComparison.Ordinal));
        var file = await File.ReadAllTextAsync(Path.Combine(logs, "crasher-1.log"), TestContext.Current.CancellationToken);
        Assert.Contains("--- viscript: Backoff: pid ", file, StringComparison.Ordinal);
        Assert.Contains("--- viscript: Fatal: pid ", file, StringComparison.Ordinal);

        // restart of the Fatal id: the count starts over (restart 1/1 again, not Fatal at the first crash).
        await _supervisor.RestartAsync(1, TestContext.Current.CancellationToken);
        Assert.Contains("restart 1/1 in 10s", await CrashAfterStartSecsAsync(3), StringComparison.Ordinal);
        Assert.Equal(("Backoff", 2), (_supervisor.Get(1).State, _supervisor.Get(1).Restarts));
    }
}
