using Microsoft.Extensions.Time.Testing;
using Viscript.Core.Control;
using Viscript.Core.Sampling;
using Viscript.Core.Supervision;

namespace Viscript.GuiTests;

/// <summary>The server-side sampler behind the charts: CPU from /proc deltas, window, gaps, restarts.</summary>
public sealed class ResourceSamplerTests
{
    private static ProcessInfo Proc(ulong id, int pid, string state = "Running", bool remote = false) =>
        new(id, remote ? null : "app" + id, remote ? null : pid, state, 20, state, null, false, remote, null, null, null, "cmd", 0, false, false);

    private sealed class Fake
    {
        public List<ProcessInfo> Processes { get; } = [];

        public Dictionary<int, ProcSample> Stats { get; } = [];

        public List<int> Reads { get; } = [];

        public ProcSample? Read(int pid)
        {
            Reads.Add(pid);
            return Stats.TryGetValue(pid, out var s) ? s : null;
        }
    }

    private static (ResourceSampler Sampler, Fake Fake, FakeTimeProvider Time) Create(TimeSpan? window = null)
    {
        var fake = new Fake();
        var time = new FakeTimeProvider(DateTimeOffset.Parse("2026-01-01T00:00:00Z", System.Globalization.CultureInfo.InvariantCulture));
        var sampler = new ResourceSampler(() => fake.Processes, new ResourceSamplerOptions
        {
            Interval = TimeSpan.FromSeconds(2),
            Window = window ?? TimeSpan.FromMinutes(10),
            TimeProvider = time,
            Reader = fake.Read,
        });
        return (sampler, fake, time);
    }

    [Fact]
    public void Cpu_percent_is_the_cpu_time_delta_over_the_interval()
    {
        var (sampler, fake, time) = Create();
        fake.Processes.Add(Proc(1, 100));
        fake.Stats[100] = new ProcSample(TimeSpan.FromSeconds(10), 4096, 3, 5);
        sampler.Start(); // first sample at once
        fake.Stats[100] = new ProcSample(TimeSpan.FromSeconds(11), 8192, 3, 5);
        time.Advance(TimeSpan.FromSeconds(2));
        var s = sampler.Get(1)!;
        Assert.Equal(2, s.Samples.Count);
        Assert.Null(s.Samples[0].CpuPercent);
        Assert.Equal(50, s.Samples[1].CpuPercent!.Value, 3);
        Assert.Equal(8192, s.Samples[1].RssBytes);
        Assert.Equal("app1", s.App);
        Assert.Equal(2, s.IntervalSeconds);
        sampler.Dispose();
        time.Advance(TimeSpan.FromSeconds(10));
        Assert.Equal(2, sampler.Get(1)!.Samples.Count); // stopped
    }

    [Fact]
    public void Window_bounds_the_history_and_forgotten_processes_are_dropped()
    {
        var (sampler, fake, time) = Create(TimeSpan.FromSeconds(10));
        fake.Processes.Add(Proc(1, 100));
        fake.Processes.Add(Proc(2, 200));
        fake.Stats[100] = new ProcSample(TimeSpan.Zero, 1, 1, null);
        fake.Stats[200] = new ProcSample(TimeSpan.Zero, 1, 1, null);
        for (var i = 0; i < 20; i++)
        {
            sampler.SampleOnce();
            time.Advance(TimeSpan.FromSeconds(2));
        }
        Assert.Equal(6, sampler.Get(1)!.Samples.Count); // 10 s / 2 s + 1
        fake.Processes.RemoveAt(1);
        sampler.SampleOnce();
        Assert.Null(sampler.Get(2));
        Assert.Single(sampler.All());
    }

    [Fact]
    public void Stopped_processes_leave_one_gap_and_a_new_pid_restarts_the_cpu_baseline()
    {
        var (sampler, fake, time) = Create();
        fake.Processes.Add(Proc(1, 100));
        fake.Stats[100] = new ProcSample(TimeSpan.FromSeconds(5), 1000, 1, null);
        sampler.SampleOnce();
        fake.Processes[0] = Proc(1, 100, "Exited");
        for (var i = 0; i < 3; i++)
        {
            time.Advance(TimeSpan.FromSeconds(2));
            sampler.SampleOnce();
        }
        var s = sampler.Get(1)!;
        Assert.Equal(2, s.Samples.Count);
        Assert.Null(s.Samples[1].RssBytes);
        Assert.Null(s.Samples[1].Pid);
        Assert.Single(fake.Reads); // a stopped process is not read

        // Restarted under a new pid with a lower CPU time: no negative or bogus percentage.
        fake.Processes[0] = Proc(1, 101);
        fake.Stats[101] = new ProcSample(TimeSpan.FromSeconds(1), 2000, 1, null);
        time.Advance(TimeSpan.FromSeconds(2));
        sampler.SampleOnce();
        Assert.Null(sampler.Get(1)!.Samples[^1].CpuPercent);
        fake.Stats[101] = new ProcSample(TimeSpan.FromSeconds(1.2), 2000, 1, null);
        time.Advance(TimeSpan.FromSeconds(2));
        sampler.SampleOnce();
        Assert.Equal(10, sampler.Get(1)!.Samples[^1].CpuPercent!.Value, 3);
    }

    [Fact]
    public void Remote_clients_and_vanished_pids_are_not_charted()
    {
        var (sampler, fake, _) = Create();
        fake.Processes.Add(Proc(7, 0, "Unknown", remote: true));
        fake.Processes.Add(Proc(8, 4242)); // pid gone: reader returns null
        sampler.SampleOnce();
        sampler.SampleOnce();
        Assert.Equal([4242, 4242], fake.Reads);
        Assert.All(sampler.All(), s => Assert.All(s.Samples, x => Assert.Null(x.RssBytes)));
        Assert.Single(sampler.Get(8)!.Samples);
    }

    [Fact]
    public void Bad_options_are_refused()
    {
        Assert.Throws<ArgumentException>(() => new ResourceSampler(() => [], new ResourceSamplerOptions { Interval = TimeSpan.Zero }));
        Assert.Throws<ArgumentException>(() => new ResourceSampler(() => [], new ResourceSamplerOptions { Interval = TimeSpan.FromSeconds(5), Window = TimeSpan.FromSeconds(1) }));
    }
}
