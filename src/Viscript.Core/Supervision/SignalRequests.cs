using Viscript.Core.Control;
using Viscript.Signal;

namespace Viscript.Core.Supervision;

/// <summary>
/// The supervisor's side of the signal protocol: PING, TOP and SHUTDOWN through the <see cref="ISignalGateway"/>, with
/// every <see cref="SignalException"/> mapped to the <see cref="ViscriptException"/> (and error code) an operator sees.
/// </summary>
internal sealed class SignalRequests(ISignalGateway signal)
{
    /// <summary>Whether <paramref name="id"/> is a registered signal client.</summary>
    public bool IsRegistered(ulong id) => signal.TryGetClient(id, out _);

    /// <summary>Signal PING round trip.</summary>
    public async Task<TimeSpan> PingAsync(ulong id, CancellationToken cancellationToken)
    {
        try
        {
            return await signal.PingAsync(id, cancellationToken);
        }
        catch (SignalException ex)
        {
            throw Map(id, ex);
        }
    }

    /// <summary>Signal SHUTDOWN; returns the pid the client reports.</summary>
    public async Task<int> ShutdownAsync(ulong id, CancellationToken cancellationToken)
    {
        try
        {
            return await signal.ShutdownAsync(id, cancellationToken);
        }
        catch (SignalException ex)
        {
            throw Map(id, ex);
        }
    }

    /// <summary>
    /// TOP, as a heap report. For a process viscript launched a failure is only noted (its /proc figures still make a
    /// report): the result's Error carries it. For a remote client it throws, mapped.
    /// </summary>
    public async Task<(HeapReport? Heap, ResourceUsage? Usage, string? Error)> TopAsync(ulong id, bool launched, CancellationToken cancellationToken)
    {
        try
        {
            var top = await signal.TopAsync(id, cancellationToken);
            return (new HeapReport(top.HeapAlloc, top.HeapSys, top.HeapIdle, top.HeapInuse, top.StackSys, top.StackInuse, top.Rss,
                top.CpuTime?.TotalSeconds, top.Threads), top, null);
        }
        catch (SignalException ex) when (launched)
        {
            return (null, null, ex.Message);
        }
        catch (SignalException ex)
        {
            throw Map(id, ex);
        }
    }

    /// <summary>The operator-facing error for a failed signal call.</summary>
    public static ViscriptException Map(ulong id, SignalException ex) => ex.Kind switch
    {
        SignalErrorKind.NotRegistered => new ViscriptException(ErrorCode.NotSignalClient, $"Process {id} is not a signal client: {ex.Message}", ex),
        SignalErrorKind.Timeout => new ViscriptException(ErrorCode.SignalTimeout, $"Signal client {id} did not answer in time: {ex.Message}", ex),
        _ => new ViscriptException(ErrorCode.SignalFailed, $"Signal call to {id} failed: {ex.Message}", ex),
    };

    /// <summary>
    /// CPU use in percent of one core between two readings of a run: since the previous reading of the same run, or since
    /// the run started when there is none.
    /// </summary>
    public static double CpuPercent(ProcSample sample, ProcSample? last, DateTimeOffset lastAt, DateTimeOffset runStartedAt, DateTimeOffset now)
    {
        var (baseCpu, baseTime) = last is not null && lastAt >= runStartedAt ? (last.CpuTime, lastAt) : (TimeSpan.Zero, runStartedAt);
        var wall = (now - baseTime).TotalSeconds;
        return wall > 0 ? Math.Round(100 * (sample.CpuTime - baseCpu).TotalSeconds / wall, 1) : 0;
    }
}
