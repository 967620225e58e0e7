using System.Diagnostics.Metrics;

namespace Viscript.Signal.Internal;

/// <summary>Counters of the signal protocol (meter <c>Viscript.Signal</c>); tags stay low-cardinality (no ids, no addresses).</summary>
internal static class SignalMetrics
{
    public const string MeterName = "Viscript.Signal";

    private static readonly Meter Meter = new(MeterName);

    public static readonly Counter<long> FramesReceived = Meter.CreateCounter<long>("signal.frames.received", "{frame}", "Frames read, by side and type");

    public static readonly Counter<long> FramesSent = Meter.CreateCounter<long>("signal.frames.sent", "{frame}", "Frames written, by side and type");

    public static readonly Counter<long> ConnectionsClosed = Meter.CreateCounter<long>("signal.connections.closed", "{connection}", "Closed connections, by side and reason");

    public static readonly Counter<long> ConnectionsRefused = Meter.CreateCounter<long>("signal.connections.refused", "{connection}", "Connections closed at accept because a cap was reached, by reason");

    public static readonly Counter<long> Calls = Meter.CreateCounter<long>("signal.calls", "{call}", "Server calls, by op and outcome");

    public static readonly Counter<long> RepliesIgnored = Meter.CreateCounter<long>("signal.replies.ignored", "{reply}", "Unsolicited or late replies dropped");

    public static readonly Counter<long> Reconnects = Meter.CreateCounter<long>("signal.client.reconnects", "{attempt}", "Client connection attempts after the first");

    public static readonly UpDownCounter<long> Registered = Meter.CreateUpDownCounter<long>("signal.clients.registered", "{client}", "Clients currently registered");

    public static string TypeName(Protocol.SignalFrameType type) => type switch
    {
        Protocol.SignalFrameType.Normal => "normal",
        Protocol.SignalFrameType.Ack => "ack",
        Protocol.SignalFrameType.Ping => "ping",
        _ => "pong",
    };
}
