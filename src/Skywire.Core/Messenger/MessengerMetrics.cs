using System.Diagnostics.Metrics;
using Skywire.Protocol.Messenger;

namespace Skywire.Core.Messenger;

/// <summary>
/// The messenger's instruments (meter <see cref="MeterName"/>, docs/operations.md "Metrics"): connections, messages
/// delivered, queued and dropped by reason, the offline store's depth, relayed streams and their bytes. Counts are
/// Interlocked fields the server bumps on its existing paths; the rest is observed at collection time.
/// </summary>
internal sealed class MessengerMetrics : IDisposable
{
    /// <summary>The meter's name.</summary>
    public const string MeterName = Diagnostics.SkywireMeters.Messenger;

    private static readonly DropReason[] s_reasons = Enum.GetValues<DropReason>();

    private readonly Meter _meter = new(MeterName);
    private readonly long[] _drops = new long[s_reasons.Length];
    private long _delivered;
    private long _queued;

    public MessengerMetrics(MessengerServer server, OfflineStore store, Func<int> tcpConnections)
    {
        var tag = new KeyValuePair<string, object?>("messenger", server.Key.ToShortString(16));
        _meter.CreateObservableGauge("skywire.messenger.connections", () => new Measurement<int>[]
        {
            new(server.RegisteredCount, tag, new("state", "registered")),
            new(tcpConnections(), tag, new("state", "tcp")),
        }, "{connection}", "Client connections: registered (key proven) and all TCP connections");
        _meter.CreateObservableCounter("skywire.messenger.messages", () => new Measurement<long>[]
        {
            new(Interlocked.Read(ref _delivered), tag, new("outcome", "delivered")),
            new(Interlocked.Read(ref _queued), tag, new("outcome", "queued")),
        }, "{message}", "Messages accepted: delivered to a connected key at once, or queued for an offline key");
        _meter.CreateObservableCounter("skywire.messenger.messages.dropped", () => Drops(tag), "{message}", "Messages dropped, by reason (the sender gets a notice)");
        _meter.CreateObservableGauge("skywire.messenger.queued.messages", () => new Measurement<int>(store.TotalMessages, tag), "{message}", "Messages waiting for offline keys");
        _meter.CreateObservableGauge("skywire.messenger.queued.bytes", () => new Measurement<long>(store.TotalBytes, tag), "By", "Envelope bytes waiting for offline keys");
        _meter.CreateObservableCounter("skywire.messenger.streams.relayed", () => new Measurement<long>(server.StreamsRelayed, tag), "{stream}", "Relayed streams accepted by their target");
        _meter.CreateObservableCounter("skywire.messenger.stream.bytes", () => new Measurement<long>(server.StreamBytesRelayed, tag), "By", "Stream record bytes relayed, both directions");
    }

    /// <summary>A message went to a connected key.</summary>
    public void Delivered() => Interlocked.Increment(ref _delivered);

    /// <summary>A message was stored for an offline key.</summary>
    public void Queued() => Interlocked.Increment(ref _queued);

    /// <summary>A message was dropped.</summary>
    public void Dropped(DropReason reason)
    {
        var i = Array.IndexOf(s_reasons, reason);
        if (i >= 0)
        {
            Interlocked.Increment(ref _drops[i]);
        }
    }

    /// <inheritdoc />
    public void Dispose() => _meter.Dispose();

    private IEnumerable<Measurement<long>> Drops(KeyValuePair<string, object?> tag)
    {
        for (var i = 0; i < s_reasons.Length; i++)
        {
            yield return new(Interlocked.Read(ref _drops[i]), tag, new("reason", s_reasons[i].ToString()));
        }
    }
}
