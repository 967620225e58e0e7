using System.Runtime.CompilerServices;
using System.Threading.Channels;
using Viscript.Core.Control;
using Viscript.Core.Sampling;
using Viscript.Core.Supervision;

namespace Viscript.Core.Cluster;

/// <summary>This daemon's supervisor as an <see cref="IProcessHost"/>: what the interpreter and the control API use, and what an agent serves to its primary.</summary>
public sealed class LocalProcessHost : IProcessHost
{
    /// <summary>How long a follow waits after the process stopped running, so the pumps hand over its last lines.</summary>
    public static readonly TimeSpan EndGrace = TimeSpan.FromMilliseconds(200);

    private readonly ResourceSampler? _sampler;

    /// <summary>Creates the host over <paramref name="supervisor"/>.</summary>
    public LocalProcessHost(Supervisor supervisor, string name, ResourceSampler? sampler = null)
    {
        Supervisor = supervisor;
        Name = name;
        _sampler = sampler;
        Apps = [.. supervisor.Config.Apps.Values.OrderBy(a => a.Name, StringComparer.OrdinalIgnoreCase)
            .Select(a => new AppInfo(a.Name, a.Path, a.DefaultArgs, a.Description, a.Help, a.Daemon, a.Restart.ToString(), a.Autostart) { Groups = a.Groups })];
    }

    /// <summary>The supervisor.</summary>
    public Supervisor Supervisor { get; }

    /// <inheritdoc/>
    public string Name { get; }

    /// <inheritdoc/>
    public bool IsLocal => true;

    /// <inheritdoc/>
    public IReadOnlyList<AppInfo> Apps { get; }

    /// <inheritdoc/>
    public IReadOnlyList<ProcessInfo> List() => Supervisor.List();

    /// <inheritdoc/>
    public Task<ProcessInfo> StartAsync(string app, IReadOnlyList<string>? args, CancellationToken cancellationToken = default) =>
        Task.FromResult(Supervisor.Start(app, args));

    /// <inheritdoc/>
    public Task<ProcessInfo> GetAsync(ulong id, CancellationToken cancellationToken = default) => Task.FromResult(Supervisor.Get(id));

    /// <inheritdoc/>
    public Task<TimeSpan> PingAsync(ulong id, CancellationToken cancellationToken = default) => Supervisor.PingAsync(id, cancellationToken);

    /// <inheritdoc/>
    public Task<ResourceReport> ResourceUsageAsync(ulong id, CancellationToken cancellationToken = default) => Supervisor.ResourceUsageAsync(id, cancellationToken);

    /// <inheritdoc/>
    public Task<StopReport> StopAsync(ulong id, CancellationToken cancellationToken = default) => Supervisor.StopAsync(id, cancellationToken);

    /// <inheritdoc/>
    public Task<StopReport> KillAsync(ulong id, CancellationToken cancellationToken = default) => Supervisor.KillAsync(id, cancellationToken);

    /// <inheritdoc/>
    public Task<StopReport> RestartAsync(ulong id, CancellationToken cancellationToken = default) => Supervisor.RestartAsync(id, cancellationToken);

    /// <inheritdoc/>
    public Task<IReadOnlyList<LogLineInfo>> LogsAsync(ulong id, int count, CancellationToken cancellationToken = default)
    {
        var logs = Supervisor.GetLogs(id);
        IReadOnlyList<LogLineInfo> lines = [.. logs.Tail(Math.Clamp(count, 0, logs.Capacity)).Select(ToInfo)];
        return Task.FromResult(lines);
    }

    /// <inheritdoc/>
    public Task WriteInputAsync(ulong id, string line, CancellationToken cancellationToken = default) => Supervisor.WriteInputAsync(id, line, cancellationToken);

    /// <inheritdoc/>
    public Task<ProcessInfo> GetAttachableAsync(ulong id, CancellationToken cancellationToken = default) => Task.FromResult(Supervisor.GetAttachable(id));

    /// <inheritdoc/>
    public Task<IReadOnlyList<SampleSeries>> SamplesAsync(CancellationToken cancellationToken = default) =>
        Task.FromResult(_sampler?.All() ?? []);

    /// <summary>The sampler's series of one process (a known id without samples gets an empty series).</summary>
    public SampleSeries Samples(ulong id)
    {
        Supervisor.Get(id);
        return _sampler?.Get(id) ?? new SampleSeries(id, null, _sampler?.Interval.TotalSeconds ?? 2, []);
    }

    /// <summary>A captured line on the control API.</summary>
    public static LogLineInfo ToInfo(LogLine l) => new(l.Seq, l.Time, l.Stream.ToString().ToLowerInvariant(), l.Text, l.Partial);

    /// <inheritdoc/>
    public async IAsyncEnumerable<LogStreamItem> FollowAsync(ulong id, int tail, [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        var logs = Supervisor.GetLogs(id);
        var count = Math.Clamp(tail, 0, logs.Capacity);
        // Subscribed before the first look at the state: a stop between the two is seen.
        var changes = Channel.CreateBounded<ProcessEvent>(new BoundedChannelOptions(64) { FullMode = BoundedChannelFullMode.DropOldest, SingleReader = true });
        void OnChanged(object? sender, ProcessEvent e)
        {
            if (e.Id == id && e.Kind == "state")
            {
                changes.Writer.TryWrite(e);
            }
        }
        Supervisor.Changed += OnChanged;
        using var cts = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        string? endState = null;
        var watcher = Task.Run(async () =>
        {
            try
            {
                if (!IsActive(id))
                {
                    endState = Supervisor.Get(id).Display;
                    await cts.CancelAsync();
                    return;
                }
                await foreach (var e in changes.Reader.ReadAllAsync(cts.Token))
                {
                    if (!IsActive(id))
                    {
                        endState = e.To;
                        // Let the pumps hand over the last lines before closing the stream.
                        await Task.Delay(EndGrace, cts.Token);
                        await cts.CancelAsync();
                        return;
                    }
                }
            }
            catch (OperationCanceledException)
            {
                // The caller left or the stream ended.
            }
        }, CancellationToken.None);
        var lines = logs.FollowAsync(count, partials: true, cts.Token).GetAsyncEnumerator(cts.Token);
        try
        {
            while (await MoveNextAsync(lines))
            {
                var line = lines.Current;
                // "partial": an unfinished line (a prompt) shown early.
                yield return new LogStreamItem(line.Partial ? "partial" : "line", ToInfo(line), null);
            }
        }
        finally
        {
            Supervisor.Changed -= OnChanged;
            await lines.DisposeAsync();
            await cts.CancelAsync();
            await watcher;
        }
        if (!cancellationToken.IsCancellationRequested)
        {
            yield return new LogStreamItem("end", null, new LogEndInfo(id, endState));
        }
    }

    private bool IsActive(ulong id)
    {
        var info = Supervisor.Get(id);
        return info.State is nameof(ProcessState.Starting) or nameof(ProcessState.Running) or nameof(ProcessState.Stopping) or nameof(ProcessState.Backoff);
    }

    private static async ValueTask<bool> MoveNextAsync<T>(IAsyncEnumerator<T> items)
    {
        try
        {
            return await items.MoveNextAsync();
        }
        catch (OperationCanceledException)
        {
            return false;
        }
    }
}
