using Viscript.Core.Control;
using Viscript.Core.Supervision;

namespace Viscript.Core.Sampling;

/// <summary>Sampler settings.</summary>
public sealed record ResourceSamplerOptions
{
    /// <summary>Time between two samples.</summary>
    public TimeSpan Interval { get; init; } = TimeSpan.FromSeconds(2);

    /// <summary>How much history is kept per process.</summary>
    public TimeSpan Window { get; init; } = TimeSpan.FromMinutes(10);

    /// <summary>Clock (and timer).</summary>
    public TimeProvider TimeProvider { get; init; } = TimeProvider.System;

    /// <summary>Reads one process's figures; <see cref="ProcStats.TryRead"/> unless a test replaces it.</summary>
    public Func<int, ProcSample?> Reader { get; init; } = ProcStats.TryRead;
}

/// <summary>
/// Records OS-level CPU and resident memory of every live process viscript runs, every <see cref="ResourceSamplerOptions.Interval"/>,
/// keeping <see cref="ResourceSamplerOptions.Window"/> of history. One sampler per daemon, so every client (GUI page, CLI)
/// sees the same series. Reading /proc is cheap and needs no cooperation from the process (signal clients or not).
/// </summary>
public sealed class ResourceSampler : IDisposable
{
    private readonly Func<IReadOnlyList<ProcessInfo>> _list;
    private readonly ResourceSamplerOptions _options;
    private readonly int _capacity;
    private readonly Lock _gate = new();
    private readonly Dictionary<ulong, Series> _series = [];
    private ITimer? _timer;

    /// <summary>Creates a sampler over a process list (usually <see cref="Supervisor.List"/>).</summary>
    public ResourceSampler(Func<IReadOnlyList<ProcessInfo>> list, ResourceSamplerOptions? options = null)
    {
        _list = list;
        _options = options ?? new ResourceSamplerOptions();
        if (_options.Interval <= TimeSpan.Zero || _options.Window < _options.Interval)
        {
            throw new ArgumentException("Interval must be positive and no longer than Window.", nameof(options));
        }
        _capacity = (int)Math.Ceiling(_options.Window / _options.Interval) + 1;
    }

    /// <summary>Interval between samples.</summary>
    public TimeSpan Interval => _options.Interval;

    /// <summary>Starts sampling (first sample at once).</summary>
    public void Start()
    {
        lock (_gate)
        {
            _timer ??= _options.TimeProvider.CreateTimer(_ => SampleSafely(), null, TimeSpan.Zero, _options.Interval);
        }
    }

    // A timer callback must never throw (it would take the daemon down): a failed round is skipped, the next one retries.
    private void SampleSafely()
    {
        try
        {
            SampleOnce();
        }
        catch (Exception)
        {
        }
    }

    /// <summary>Takes one sample of every live process now. Called by the timer; public for tests.</summary>
    public void SampleOnce()
    {
        IReadOnlyList<ProcessInfo> processes;
        try
        {
            processes = _list();
        }
        catch (ObjectDisposedException)
        {
            return;
        }
        var now = _options.TimeProvider.GetUtcNow();
        var readings = new List<(ProcessInfo Info, ProcSample? Sample)>(processes.Count);
        foreach (var p in processes)
        {
            // Only processes that have a pid of their own and are alive; remote signal clients have no pid here.
            readings.Add((p, p.Pid is { } pid && !p.Remote && IsLive(p.State) ? _options.Reader(pid) : null));
        }
        lock (_gate)
        {
            var seen = new HashSet<ulong>();
            foreach (var (info, sample) in readings)
            {
                seen.Add(info.Id);
                if (!_series.TryGetValue(info.Id, out var s))
                {
                    s = new Series(_capacity);
                    _series[info.Id] = s;
                }
                s.App = info.App;
                s.Add(now, info.Pid, sample);
            }
            // Forget processes the supervisor no longer lists.
            foreach (var id in _series.Keys.Where(id => !seen.Contains(id)).ToList())
            {
                _series.Remove(id);
            }
        }
    }

    /// <summary>The series of one process, or null if it has never been sampled.</summary>
    public SampleSeries? Get(ulong id)
    {
        lock (_gate)
        {
            return _series.TryGetValue(id, out var s) ? s.ToContract(id, _options.Interval) : null;
        }
    }

    /// <summary>Every series, by id.</summary>
    public IReadOnlyList<SampleSeries> All()
    {
        lock (_gate)
        {
            return [.. _series.OrderBy(kv => kv.Key).Select(kv => kv.Value.ToContract(kv.Key, _options.Interval))];
        }
    }

    /// <inheritdoc/>
    public void Dispose()
    {
        lock (_gate)
        {
            _timer?.Dispose();
            _timer = null;
        }
    }

    private static bool IsLive(string state) =>
        state is nameof(ProcessState.Starting) or nameof(ProcessState.Running) or nameof(ProcessState.Stopping);

    private sealed class Series(int capacity)
    {
        private readonly Queue<ResourceSample> _samples = new(capacity);
        private int? _lastPid;
        private TimeSpan? _lastCpu;
        private DateTimeOffset _lastTime;

        public string? App { get; set; }

        public void Add(DateTimeOffset now, int? pid, ProcSample? sample)
        {
            double? cpu = null;
            if (sample is not null && pid == _lastPid && _lastCpu is { } before && now > _lastTime)
            {
                // Percent of one core over the interval; a restart (new pid) starts a fresh baseline.
                cpu = Math.Max(0, (sample.CpuTime - before).TotalSeconds / (now - _lastTime).TotalSeconds * 100);
            }
            _lastPid = sample is null ? null : pid;
            _lastCpu = sample?.CpuTime;
            _lastTime = now;
            if (sample is null && _samples.Count > 0 && _samples.Last().RssBytes is null)
            {
                // Not running: one gap marker is enough; keep the history of the last run visible.
                return;
            }
            if (_samples.Count == capacity)
            {
                _samples.Dequeue();
            }
            _samples.Enqueue(new ResourceSample(now, sample is null ? null : pid, cpu, sample?.RssBytes, sample?.Threads));
        }

        public SampleSeries ToContract(ulong id, TimeSpan interval) =>
            new(id, App, interval.TotalSeconds, [.. _samples]);
    }
}
