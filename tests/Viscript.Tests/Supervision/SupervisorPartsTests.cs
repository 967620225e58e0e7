using System.IO.Pipelines;
using System.Text;
using Viscript.Core.Supervision;
using Viscript.Tests.Support;

namespace Viscript.Tests.Supervision;

/// <summary>The pieces the supervisor is made of, each on its own: output pump, CPU figure, run-state file.</summary>
public sealed class SupervisorPartsTests : IDisposable
{
    private readonly TempDir _dir = new();

    public void Dispose() => _dir.Dispose();

    /// <summary>
    /// Issue 12.4: an app's log can hold secrets (skywire chat web prints its sign-in link with the token); another
    /// local user must not read it. Before, the folder and file took the umask's modes (0755 and 0644).
    /// </summary>
    [Fact]
    public void LogFile_AndTheFolderItCreates_AreOwnerOnly()
    {
        if (OperatingSystem.IsWindows())
        {
            Assert.Skip("Unix modes");
        }

        var path = Path.Combine(_dir.Path, "logs", "chat.log");
        using (var file = new LogFile(path, 0))
        {
            file.Write("chat web: open http://127.0.0.1:8090/#token=secret");
            file.Flush();
        }

        if (!OperatingSystem.IsWindows())
        {
            Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(path));
            Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute, File.GetUnixFileMode(Path.GetDirectoryName(path)!));
        }
    }

    [Fact]
    public async Task OutputPump_SplitsLines_DropsCarriageReturns_SplitsLongLines_AndKeepsTheUnterminatedTail()
    {
        var logs = new LogBuffer(100);
        var file = new LogFile(Path.Combine(_dir.Path, "out.log"), 0);
        var text = "one\r\ntwo\n" + new string('x', OutputPump.MaxLineChars + 5) + "\ntail";
        await OutputPump.RunAsync(new MemoryStream(Encoding.UTF8.GetBytes(text)), LogStream.Stderr, logs, file);
        file.Dispose();

        Assert.Equal(["one", "two", new string('x', OutputPump.MaxLineChars), "xxxxx", "tail"], logs.Tail(10).Select(l => l.Text));
        Assert.All(logs.Tail(10), l => Assert.Equal(LogStream.Stderr, l.Stream));
        Assert.Equal("[stderr] one", File.ReadLines(Path.Combine(_dir.Path, "out.log")).First());
    }

    [Fact]
    public async Task OutputPump_ShowsAWaitingPromptToFollowers_WithoutStoringIt()
    {
        var logs = new LogBuffer(100);
        var pipe = new Pipe();
        var pump = OutputPump.RunAsync(pipe.Reader.AsStream(), LogStream.Stdout, logs, null);
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        await using var follower = logs.FollowAsync(0, partials: true, cts.Token).GetAsyncEnumerator(cts.Token);

        await pipe.Writer.WriteAsync("name? "u8.ToArray(), cts.Token);
        Assert.True(await follower.MoveNextAsync());
        Assert.Equal(("name? ", true), (follower.Current.Text, follower.Current.Partial));
        Assert.Empty(logs.Tail(10));

        await pipe.Writer.WriteAsync("bob\n"u8.ToArray(), cts.Token);
        await pipe.Writer.CompleteAsync();
        await pump;
        Assert.Equal(["name? bob"], logs.Tail(10).Select(l => l.Text));
    }

    [Fact]
    public void CpuPercent_IsSinceTheRunStarted_ThenSinceThePreviousReadingOfTheSameRun()
    {
        var start = DateTimeOffset.UnixEpoch;
        var first = new ProcSample(TimeSpan.FromSeconds(5), 0, 1, null);
        Assert.Equal(50.0, SignalRequests.CpuPercent(first, null, default, start, start.AddSeconds(10)));

        var second = new ProcSample(TimeSpan.FromSeconds(10), 0, 1, null);
        Assert.Equal(100.0, SignalRequests.CpuPercent(second, first, start.AddSeconds(10), start, start.AddSeconds(15)));

        // A reading from an earlier run of the same id does not count: back to the run's start.
        Assert.Equal(20.0, SignalRequests.CpuPercent(second, first, start.AddSeconds(10), start.AddSeconds(20), start.AddSeconds(70)));
    }

    [Fact]
    public void RunStateFile_RecordsLiveRuns_AndAFileWhoseOwnerRunsIsNotAbandoned()
    {
        var state = new RunStateFile(Path.Combine(_dir.Path, "run"), Microsoft.Extensions.Logging.Abstractions.NullLogger.Instance);
        state.Record(1, "self", Environment.ProcessId, ownSession: false, TimeSpan.FromSeconds(3));
        Assert.True(File.Exists(state.FilePath));
        Assert.Contains("\"App\": \"self\"", File.ReadAllText(state.FilePath), StringComparison.Ordinal);
        Assert.Empty(RunStateFile.FindAbandoned(state.Directory, Microsoft.Extensions.Logging.Abstractions.NullLogger.Instance));

        state.Forget(1, Environment.ProcessId);
        Assert.DoesNotContain("\"self\"", File.ReadAllText(state.FilePath), StringComparison.Ordinal);
        state.Delete();
        Assert.False(File.Exists(state.FilePath));
    }

    [Fact]
    public void RunStateFile_ARecycledPid_IsNeverReturned()
    {
        // Our own pid stands for "a pid that now belongs to someone else": the recorded start time differs.
        var me = ProcStat.Read(Environment.ProcessId)!.Value;
        var stale = new RunStateEntry(4, "gone", me.Pid, me.StartTime - 1, OwnSession: true, TimeSpan.FromSeconds(1));
        Assert.Empty(RunStateFile.Leftovers(stale).Processes);

        var same = stale with { StartTime = me.StartTime, OwnSession = false };
        var (processes, leaderAlive) = RunStateFile.Leftovers(same);
        Assert.True(leaderAlive);
        Assert.Contains((me.Pid, me.StartTime), processes);
    }

    [Fact]
    public async Task RunStateFile_OnlyAFileOfThisUser_WritableByNobodyElse_IsBelieved()
    {
        if (!OperatingSystem.IsLinux())
        {
            Assert.Skip("owners and modes as checked here are Linux's");
            return;
        }

        // An owner that is certainly gone: a process of ours that has exited.
        using var gone = System.Diagnostics.Process.Start("true")!;
        await gone.WaitForExitAsync(TestContext.Current.CancellationToken);
        var dir = Path.Combine(_dir.Path, "run");
        Directory.CreateDirectory(dir);
        var file = Path.Combine(dir, "viscript-1-planted.json");
        File.WriteAllText(file, $$"""
            {"OwnerPid": {{gone.Id}}, "OwnerStartTime": 1, "Apps": [
              {"Id": 1, "App": "victim", "Pid": {{Environment.ProcessId}}, "StartTime": 1, "OwnSession": true, "StopTimeoutMs": 1000}]}
            """);
        var log = Microsoft.Extensions.Logging.Abstractions.NullLogger.Instance;

        File.SetUnixFileMode(file, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.OtherRead | UnixFileMode.OtherWrite);
        Assert.Empty(RunStateFile.FindAbandoned(dir, log));
        Assert.False(RunStateFile.IsTrusted(file, out var why));
        Assert.Contains("others may write", why, StringComparison.Ordinal);

        File.SetUnixFileMode(file, UnixFileMode.UserRead | UnixFileMode.UserWrite);
        Assert.Equal("victim", Assert.Single(Assert.Single(RunStateFile.FindAbandoned(dir, log)).Apps).App);

        var link = Path.Combine(dir, "viscript-2-link.json");
        File.CreateSymbolicLink(link, file);
        Assert.False(RunStateFile.IsTrusted(link, out why));
        File.Delete(link);

        if (Native.EffectiveUserId == 0)
        {
            // Another user's file (root running the tests can plant one).
            using var chown = System.Diagnostics.Process.Start("chown", ["65534", file])!;
            await chown.WaitForExitAsync(TestContext.Current.CancellationToken);
            Assert.Equal(0, chown.ExitCode);
            Assert.Empty(RunStateFile.FindAbandoned(dir, log));
            Assert.False(RunStateFile.IsTrusted(file, out why));
            Assert.Contains("uid 65534", why, StringComparison.Ordinal);
        }
    }
}
