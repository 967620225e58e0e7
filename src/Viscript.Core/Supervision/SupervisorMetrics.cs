using System.Diagnostics.Metrics;
using Viscript.Core.Control;

namespace Viscript.Core.Supervision;

/// <summary>
/// The supervisor's instruments on the meter <c>Viscript.Supervisor</c> (issue 18.2; docs/operations.md "Metrics" lists
/// them as Prometheus names): processes by state and registered signal clients (read at each scrape), starts,
/// restarts and exits by app, and signal PING round trips. System.Diagnostics.Metrics, so <c>dotnet-counters</c> reads
/// them too; the daemon's <c>/metrics</c> serves them through OpenTelemetry's Prometheus exporter.
/// </summary>
internal sealed class SupervisorMetrics : IDisposable
{
    /// <summary>The meter's name.</summary>
    public const string MeterName = "Viscript.Supervisor";

    private static readonly string[] s_states = ["Starting", "Running", "Backoff", "Stopping", "Exited", "Fatal", "Remote"];
    private readonly Meter _meter;
    private readonly Counter<long> _starts;
    private readonly Counter<long> _restarts;
    private readonly Counter<long> _exits;
    private readonly Histogram<double> _ping;

    public SupervisorMetrics(Func<IReadOnlyList<ProcessInfo>> list, string meterName = MeterName)
    {
        _meter = new Meter(meterName);
        _meter.CreateObservableGauge("viscript.processes", () => CountByState(list()), "{process}", "Processes by state (Remote: signal clients viscript did not launch).");
        _meter.CreateObservableGauge("viscript.signal.clients", () => list().Count(p => p.SignalRegistered), "{client}", "Registered signal clients.");
        _starts = _meter.CreateCounter<long>("viscript.process.starts", "{start}", "Runs started (first starts and restarts).");
        _restarts = _meter.CreateCounter<long>("viscript.process.restarts", "{restart}", "Runs started again by the restart policy or 'restart'.");
        _exits = _meter.CreateCounter<long>("viscript.process.exits", "{exit}", "Runs that ended, by app and the state they ended in (exited, backoff, fatal).");
        _ping = _meter.CreateHistogram<double>("viscript.signal.ping.duration", "s", "Signal PING round trips ('ping').");
    }

    private static IEnumerable<Measurement<int>> CountByState(IReadOnlyList<ProcessInfo> processes)
    {
        foreach (var state in s_states)
        {
            yield return new Measurement<int>(processes.Count(p => p.State == state), new KeyValuePair<string, object?>("state", state.ToLowerInvariant()));
        }
    }

    public void Started(string app) => _starts.Add(1, new KeyValuePair<string, object?>("app", app));

    public void Restarted(string app) => _restarts.Add(1, new KeyValuePair<string, object?>("app", app));

    public void Ended(string app, string outcome) =>
        _exits.Add(1, new KeyValuePair<string, object?>("app", app), new KeyValuePair<string, object?>("outcome", outcome));

    public void Pinged(TimeSpan rtt) => _ping.Record(rtt.TotalSeconds);

    public void Dispose() => _meter.Dispose();
}
