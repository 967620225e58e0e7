using Viscript.Core.Control;

namespace Viscript.Core.Supervision;

/// <summary>The operations of the supervisor (start, list, input, ping/ru, stop, kill, restart, stop all, and the cleanup of a predecessor's apps).</summary>
public sealed partial class Supervisor
{
    /// <summary>Starts an app under a new sequence id. The id is consumed even if the start fails.</summary>
    /// <exception cref="ViscriptException">UnknownApp, or StartFailed (the id then shows as Fatal).</exception>
    public ProcessInfo Start(string appName, IReadOnlyList<string>? args = null)
    {
        if (_shuttingDown)
        {
            throw new ViscriptException(ErrorCode.NotRunning, "viscript is shutting down");
        }
        var app = GetApp(appName);
        var id = AllocateId();
        var arguments = BuildArguments(app, args, id);
        var commandLine = string.Join(' ', new[] { app.Path }.Concat(arguments).Select(QuoteForDisplay));
        var p = new ManagedProcess(id, app, arguments, commandLine, new LogBuffer(Config.Settings.LogBufferLines, _time));
        if (_options.WriteLogFiles)
        {
            p.LogFile = new LogFile(Path.Combine(LogDirectory, $"{SafeFileName(app.Name)}-{id}.log"), Config.Settings.LogFileMaxBytes);
        }
        string? error;
        lock (p.Gate)
        {
            // Published under the gate: a concurrent list waits for the launch and never sees the Created state.
            _processes[id] = p;
            error = Launch(p);
        }
        if (error is not null)
        {
            throw new ViscriptException(ErrorCode.StartFailed, $"Could not start {app.Name} (ID: {id}, Command: {commandLine}): {error}");
        }
        return Describe(p);
    }

    /// <summary>Starts every app marked <c>autostart</c>, in name order. Failures are reported, not thrown.</summary>
    public IReadOnlyList<string> StartAutostartApps()
    {
        var lines = new List<string>();
        foreach (var app in Config.Apps.Values.Where(a => a.Autostart).OrderBy(a => a.Name, StringComparer.Ordinal))
        {
            try
            {
                var info = Start(app.Name);
                lines.Add($"Added external app (ID: {info.Id}, Command: {info.CommandLine})");
            }
            catch (ViscriptException ex)
            {
                lines.Add(ex.Message);
            }
        }
        return lines;
    }

    /// <summary>All processes by id, then signal clients viscript did not launch.</summary>
    public IReadOnlyList<ProcessInfo> List()
    {
        var list = _processes.Values.OrderBy(p => p.Id).Select(Describe).ToList();
        foreach (var client in _signal.Clients.Where(c => !_processes.ContainsKey(c.Id)).OrderBy(c => c.Id))
        {
            list.Add(DescribeRemote(client));
        }
        return list;
    }

    /// <summary>One process or remote signal client.</summary>
    /// <exception cref="ViscriptException">NoSuchProcess.</exception>
    public ProcessInfo Get(ulong id)
    {
        if (_processes.TryGetValue(id, out var p))
        {
            return Describe(p);
        }
        if (_signal.TryGetClient(id, out var client) && client is not null)
        {
            return DescribeRemote(client);
        }
        throw NoSuch(id);
    }

    /// <summary>The captured output of a process.</summary>
    /// <exception cref="ViscriptException">NoSuchProcess.</exception>
    /// <exception cref="ViscriptException">NotRunning for a remote signal client (viscript did not launch it: no output captured, docs/viscript.md), NoSuchProcess for an unknown id.</exception>
    public LogBuffer GetLogs(ulong id) => _processes.TryGetValue(id, out var p) ? p.Logs
        : throw (_signal.TryGetClient(id, out _)
            ? new ViscriptException(ErrorCode.NotRunning, $"Signal client {id} was not launched by viscript: no output captured.")
            : NoSuch(id));

    /// <summary>Whether a process is attachable (viscript launched it and it runs).</summary>
    public ProcessInfo GetAttachable(ulong id)
    {
        if (!_processes.TryGetValue(id, out var p))
        {
            throw _signal.TryGetClient(id, out _)
                ? new ViscriptException(ErrorCode.NotRunning, $"Signal client {id} was not launched by viscript: cannot attach.")
                : NoSuch(id);
        }
        lock (p.Gate)
        {
            if (p.Run is null || !p.State.IsActive())
            {
                throw NotRunning(p);
            }
        }
        return Describe(p);
    }

    /// <summary>Writes a line to the process's standard input.</summary>
    public async Task WriteInputAsync(ulong id, string line, CancellationToken cancellationToken = default)
    {
        if (!_processes.TryGetValue(id, out var p))
        {
            throw NoSuch(id);
        }
        ProcessRun run;
        lock (p.Gate)
        {
            run = p.Run is { } r && p.State.IsActive() ? r : throw NotRunning(p);
        }
        await run.StdinGate.WaitAsync(cancellationToken);
        try
        {
            await run.Process.StandardInput.WriteLineAsync(line.AsMemory(), cancellationToken);
            await run.Process.StandardInput.FlushAsync(cancellationToken);
        }
        catch (IOException ex)
        {
            throw new ViscriptException(ErrorCode.NotRunning, $"Process {id} does not read its input any more: {ex.Message}");
        }
        catch (ObjectDisposedException)
        {
            throw new ViscriptException(ErrorCode.NotRunning, $"Process {id} has ended.");
        }
        finally
        {
            run.StdinGate.Release();
        }
    }

    /// <summary>Signal PING round trip.</summary>
    public async Task<TimeSpan> PingAsync(ulong id, CancellationToken cancellationToken = default)
    {
        RequireSignalClient(id);
        var rtt = await _signalRequests.PingAsync(id, cancellationToken);
        _metrics.Pinged(rtt);
        return rtt;
    }

    /// <summary>OS figures from /proc for a process viscript launched, plus heap figures through TOP for signal clients.</summary>
    public async Task<ResourceReport> ResourceUsageAsync(ulong id, CancellationToken cancellationToken = default)
    {
        var registered = _signalRequests.IsRegistered(id);
        _processes.TryGetValue(id, out var p);
        if (p is null && !registered)
        {
            throw NoSuch(id);
        }
        int? pid = null;
        double? cpuPercent = null;
        ProcSample? sample = null;
        if (p is not null)
        {
            ProcessRun run;
            lock (p.Gate)
            {
                run = p.Run is { } r && p.State.IsActive() ? r : throw NotRunning(p);
            }
            pid = run.Pid;
            sample = ProcStats.TryRead(run.Pid);
            var now = _time.GetUtcNow();
            lock (p.Gate)
            {
                if (sample is not null)
                {
                    cpuPercent = SignalRequests.CpuPercent(sample, p.LastSample, p.LastSampleAt, run.StartedAt, now);
                    p.LastSample = sample;
                    p.LastSampleAt = now;
                }
            }
        }
        var (heap, remoteUsage, signalError) = registered
            ? await _signalRequests.TopAsync(id, launched: p is not null, cancellationToken)
            : (null, null, null);
        return new ResourceReport(id, pid ?? remoteUsage?.Pid, cpuPercent, sample?.CpuTime.TotalSeconds ?? heap?.CpuTimeSeconds, sample?.RssBytes ?? (long?)heap?.Rss,
            sample?.Threads ?? heap?.Threads, sample?.OpenFiles ?? remoteUsage?.OpenFiles, heap, signalError);
    }

    /// <summary>
    /// Graceful stop: signal SHUTDOWN when the process is a signal client, then SIGTERM, then SIGKILL of the
    /// process tree, each step after the app's stop_timeout. For a signal client viscript did not launch, only SHUTDOWN is sent.
    /// </summary>
    public async Task<StopReport> StopAsync(ulong id, CancellationToken cancellationToken = default)
    {
        if (!_processes.TryGetValue(id, out var p))
        {
            if (_signal.TryGetClient(id, out var client) && client is not null)
            {
                var reported = await _signalRequests.ShutdownAsync(id, cancellationToken);
                return new StopReport(id, null, reported, DescribeRemote(client));
            }
            throw NoSuch(id);
        }
        ProcessRun? run;
        lock (p.Gate)
        {
            run = BeginStop(p);
        }
        if (run is null)
        {
            // Stopped while waiting in Backoff: no process was running, so no pid was acted on.
            return new StopReport(id, null, null, Describe(p));
        }
        var reportedPid = await EscalateStopAsync(p, run, graceful: true, cancellationToken);
        return new StopReport(id, run.Pid, reportedPid, Describe(p));
    }

    /// <summary>Kills the process tree at once (SIGKILL).</summary>
    public async Task<StopReport> KillAsync(ulong id, CancellationToken cancellationToken = default)
    {
        if (!_processes.TryGetValue(id, out var p))
        {
            throw _signal.TryGetClient(id, out _)
                ? new ViscriptException(ErrorCode.NotRunning, $"Signal client {id} was not launched by viscript: use shutdown.")
                : NoSuch(id);
        }
        ProcessRun? run;
        lock (p.Gate)
        {
            run = BeginStop(p);
        }
        if (run is null)
        {
            // Stopped while waiting in Backoff: no process was running, so no pid was acted on.
            return new StopReport(id, null, null, Describe(p));
        }
        await EscalateStopAsync(p, run, graceful: false, cancellationToken);
        return new StopReport(id, run.Pid, null, Describe(p));
    }

    /// <summary>Stops the process if it runs, then starts it again under the same id (retry count reset).</summary>
    public async Task<StopReport> RestartAsync(ulong id, CancellationToken cancellationToken = default)
    {
        if (_shuttingDown)
        {
            throw new ViscriptException(ErrorCode.NotRunning, "viscript is shutting down");
        }
        if (!_processes.TryGetValue(id, out var p))
        {
            throw _signal.TryGetClient(id, out _)
                ? new ViscriptException(ErrorCode.NotRunning, $"Signal client {id} was not launched by viscript: cannot restart it.")
                : NoSuch(id);
        }
        int? oldPid = null;
        ProcessRun? run;
        lock (p.Gate)
        {
            run = BeginStop(p, allowInactive: true);
        }
        if (run is not null)
        {
            oldPid = run.Pid;
            await EscalateStopAsync(p, run, graceful: true, cancellationToken);
        }
        string? error;
        lock (p.Gate)
        {
            if (p.Forgotten)
            {
                throw NoSuch(id);
            }
            if (p.State.IsActive())
            {
                // Someone else restarted it meanwhile.
                return new StopReport(id, oldPid, null, Describe(p));
            }
            p.Failures = 0;
            p.Restarts++;
            error = Launch(p);
        }
        if (error is not null)
        {
            throw new ViscriptException(ErrorCode.StartFailed, $"Could not restart {p.App.Name} (ID: {id}): {error}");
        }
        return new StopReport(id, oldPid, null, Describe(p));
    }

    /// <summary>
    /// Drops a finished process (Exited or Fatal) from the table, with its captured output (its log file stays on disk):
    /// <c>forget ID</c>. Ids are never reused: the next start still gets the next number.
    /// </summary>
    /// <exception cref="ViscriptException">NoSuchProcess; AlreadyRunning when it has not finished (running, starting, stopping or waiting to restart).</exception>
    public ProcessInfo Forget(ulong id)
    {
        if (!_processes.TryGetValue(id, out var p))
        {
            throw NoSuch(id);
        }
        ProcessInfo info;
        lock (p.Gate)
        {
            if (p.State is not (ProcessState.Exited or ProcessState.Fatal))
            {
                throw new ViscriptException(ErrorCode.AlreadyRunning, $"{p.App.Name} (ID: {id}) has not finished ({ProcessStates.Display(p.State, p.ExitCode)}): stop it first (sd {id}).");
            }
            info = Describe(p);
            p.Forgotten = true;
            _processes.TryRemove(id, out _);
        }
        p.LogFile?.Dispose();
        RaiseEvent(new ProcessEvent(_time.GetUtcNow(), "forgotten", id, p.App.Name, info.Display, null, info.Pid, info.ExitCode, $"{p.App.Name} (ID: {id}) forgotten"));
        return info;
    }

    /// <summary>Forgets every finished process (<c>forget -a</c>); returns them, by id.</summary>
    public IReadOnlyList<ProcessInfo> ForgetFinished()
    {
        var forgotten = new List<ProcessInfo>();
        foreach (var p in _processes.Values.OrderBy(p => p.Id))
        {
            try
            {
                forgotten.Add(Forget(p.Id));
            }
            catch (ViscriptException)
            {
                // Not finished (or already forgotten by a concurrent call): it stays.
            }
        }
        return forgotten;
    }

    /// <summary>Stops every process (graceful, per app policy), killing what remains after <see cref="SupervisorOptions.ShutdownTimeout"/>. No new start is accepted afterwards.</summary>
    public async Task StopAllAsync(CancellationToken cancellationToken = default)
    {
        _shuttingDown = true;
        var stops = new List<Task>();
        foreach (var p in _processes.Values)
        {
            ProcessRun? run;
            lock (p.Gate)
            {
                run = BeginStop(p, allowInactive: true);
            }
            if (run is not null)
            {
                stops.Add(EscalateStopAsync(p, run, graceful: true, cancellationToken));
            }
        }
        Log.StoppingAll(_logger, stops.Count);
        try
        {
            await Task.WhenAll(stops).WaitAsync(_options.ShutdownTimeout, _time, cancellationToken);
        }
        catch (TimeoutException)
        {
            Log.ShutdownTimedOut(_logger, _options.ShutdownTimeout);
        }
        catch (OperationCanceledException)
        {
        }
        // Whatever is still alive (stuck, or cancelled) is killed with its children: no orphan survives the daemon.
        foreach (var p in _processes.Values)
        {
            ProcessRun? run;
            lock (p.Gate)
            {
                run = p.Run;
            }
            if (run is not null && !run.Ended.Task.IsCompleted)
            {
                StopEscalation.KillTree(run);
                try
                {
                    await run.Ended.Task.WaitAsync(TimeSpan.FromSeconds(10), TimeProvider.System, CancellationToken.None);
                }
                catch (TimeoutException)
                {
                    Log.KillTimedOut(_logger, p.Id, run.Pid);
                }
            }
            p.LogFile?.Dispose();
        }
        await _reaper.KillStragglersAsync();
    }

    /// <summary>
    /// Stops the apps a previous daemon left running when it was killed without stopping them (SIGKILL, a crash): for
    /// each run-state file in <see cref="RunStateDirectory"/> whose owner no longer runs, each recorded run that still runs
    /// with the recorded start time — and the members of its session — gets SIGTERM, then SIGKILL after its stop_timeout;
    /// then the file is removed. A pid that now belongs to another process (other start time) is never signalled, and a
    /// file whose owner still runs (another daemon) is left alone. Call before starting apps. Returns how many runs were stopped.
    /// </summary>
    public async Task<int> StopAbandonedAppsAsync(CancellationToken cancellationToken = default)
    {
        if (_runState is null)
        {
            return 0;
        }
        var count = 0;
        foreach (var abandoned in RunStateFile.FindAbandoned(_runState.Directory, _logger))
        {
            cancellationToken.ThrowIfCancellationRequested();
            var stops = new List<Task>();
            foreach (var entry in abandoned.Apps)
            {
                var (leftovers, leaderAlive) = RunStateFile.Leftovers(entry);
                if (leftovers.Count == 0)
                {
                    continue;
                }
                count++;
                Log.AbandonedAppStopping(_logger, abandoned.OwnerPid, entry.Id, entry.App, entry.Pid, leftovers.Count);
                RaiseEvent(new ProcessEvent(_time.GetUtcNow(), "diagnostic", 0, entry.App, null, null, entry.Pid, null,
                    $"stopping {entry.App} (pid {entry.Pid}, id {entry.Id} of viscript pid {abandoned.OwnerPid}, which ended without stopping it)"));
                // The group is signalled only while its leader is known to be the recorded process.
                stops.Add(_leftovers.StopAsync(entry.Id, entry.Pid, entry.OwnSession && leaderAlive, leftovers, entry.StopTimeout));
            }
            await Task.WhenAll(stops);
            RunStateFile.DeleteAbandoned(abandoned.Path);
        }
        return count;
    }
}
