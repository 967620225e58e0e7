using System.Text.Json.Serialization;
using Skywire.Protocol.Control;
using Skywire.Protocol.Framing;

namespace Skywire.Protocol.AppApi;

/// <summary>
/// Opcodes of the app API (app to its node, loopback TCP; docs/protocol.md §7). Frames have the shape of
/// <see cref="FrameCodec"/>. After a successful <see cref="Dial"/> or <see cref="Accept"/> the connection stops
/// carrying frames and becomes the raw byte stream of one mesh stream. Never renumber.
/// </summary>
public enum AppApiOpcode : byte
{
    /// <summary>First frame: version and the node's app token.</summary>
    Hello = 0x01,
    /// <summary>Keepalive.</summary>
    Ping = 0x02,
    /// <summary>Register a name and type; the registration lives as long as this connection.</summary>
    Register = 0x10,
    /// <summary>List apps from the tracker.</summary>
    ListApps = 0x11,
    /// <summary>Open a stream to (node, app); on success the connection becomes that stream.</summary>
    Dial = 0x12,
    /// <summary>Wait for the next stream to a registered app; on success the connection becomes that stream.</summary>
    Accept = 0x13,
    /// <summary>Attach to a stream's datagram flow; on success the connection carries datagram records (§7.1).</summary>
    Datagrams = 0x14,
    /// <summary>What the node is and which underlay addresses it talks to (for apps that change routes, like the VPN).</summary>
    NodeInfo = 0x15,
    /// <summary>Failure answer (always a response).</summary>
    Error = 0xFF,
}

/// <summary>First frame of an app connection.</summary>
public sealed record AppHelloMessage
{
    public int Version { get; init; }
    /// <summary>The token the node wrote to its app token file.</summary>
    public string Token { get; init; } = "";
}

/// <summary>Node's answer to the hello.</summary>
public sealed record AppHelloAckMessage
{
    public int Version { get; init; }
    /// <summary>The node's public key.</summary>
    public string Node { get; init; } = "";
}

/// <summary>Register an app.</summary>
public sealed record AppApiRegisterMessage
{
    public string Name { get; init; } = "";
    public string Type { get; init; } = "";
}

/// <summary>Open a stream to an app on a node.</summary>
public sealed record DialMessage
{
    /// <summary>Target node key (66 hex).</summary>
    public string Node { get; init; } = "";
    /// <summary>Target app name.</summary>
    public string App { get; init; } = "";
    /// <summary>Name of the dialing app (shown to the acceptor); optional.</summary>
    public string? From { get; init; }
}

/// <summary>Wait for an incoming stream for a registered app name.</summary>
public sealed record AcceptMessage
{
    public string Name { get; init; } = "";
}

/// <summary>Answer to dial and accept: who is at the other end. After it, raw stream bytes follow.</summary>
public sealed record StreamReadyMessage
{
    public string RemoteNode { get; init; } = "";
    public string? RemoteApp { get; init; }
    public string LocalApp { get; init; } = "";
    /// <summary>
    /// When the stream can carry datagrams (a mesh stream, not one relayed by a messenger): the handle a
    /// <see cref="AppApiOpcode.Datagrams"/> request names to attach to its flow (32 hex; valid on this node while the
    /// stream lives). Absent otherwise.
    /// </summary>
    public string? Datagrams { get; init; }
}

/// <summary>Attach this connection to the datagram flow of a stream (its <see cref="StreamReadyMessage.Datagrams"/> handle).</summary>
public sealed record DatagramsMessage
{
    public string Stream { get; init; } = "";
}

/// <summary>Answer to <see cref="AppApiOpcode.Datagrams"/>; datagram records follow in both directions.</summary>
public sealed record DatagramsReadyMessage
{
    /// <summary>Largest datagram the flow carries; a longer record is dropped and counted.</summary>
    public int MaxDatagram { get; init; }
}

/// <summary>Answer to <see cref="AppApiOpcode.NodeInfo"/>.</summary>
public sealed record NodeInfoMessage
{
    /// <summary>The node's key.</summary>
    public string Node { get; init; } = "";
    /// <summary>The link address the node advertises (ip:port).</summary>
    public string LinkAddress { get; init; } = "";
    /// <summary>
    /// IP addresses the node talks to over the underlay: its link peers, its manager and its messenger. An app that
    /// sends all traffic into a tunnel keeps routes to these outside it, so the mesh does not route into itself.
    /// </summary>
    public List<string> Underlay { get; init; } = [];
    /// <summary>Largest datagram a flow on this node carries (before the path is known).</summary>
    public int MaxDatagram { get; init; }
}

/// <summary>Open data of a mesh stream (what the dialing node asks for), carried in the mux's open frame.</summary>
public sealed record StreamOpenMessage
{
    public string App { get; init; } = "";
    public string? From { get; init; }

    /// <summary>
    /// On a relayed messenger stream: the dialler's handover token (it may move the stream to a direct link later).
    /// On a direct mux stream with an empty <see cref="App"/>: the relayed stream this one continues (docs/protocol.md §8.6).
    /// </summary>
    public string? Handover { get; init; }

    /// <summary>With <see cref="Handover"/> on a direct stream: bytes the dialler wrote to the relay before it moved.</summary>
    public long? Sent { get; init; }
}

/// <summary>Failure answer.</summary>
public sealed record AppErrorMessage
{
    public AppApiErrorCode Code { get; init; }
    public string Message { get; init; } = "";
}

/// <summary>Stable app API error codes. Never renumber.</summary>
public enum AppApiErrorCode
{
    BadRequest = 10,
    /// <summary>Missing or wrong token.</summary>
    Unauthorized = 20,
    /// <summary>App or node unknown.</summary>
    NotFound = 30,
    /// <summary>Name taken.</summary>
    Conflict = 40,
    /// <summary>No route or the remote did not answer.</summary>
    Unreachable = 50,
    /// <summary>The remote app refused or has no pending accept.</summary>
    Refused = 60,
    UnsupportedVersion = 70,
    Internal = 90,
}

/// <summary>Constants of the app API.</summary>
public static class AppApiProtocol
{
    /// <summary>Current app API version.</summary>
    public const int Version = 1;
    /// <summary>Largest frame payload before a connection turns into a stream (64 KiB).</summary>
    public const int MaxFrameSize = 64 * 1024;
    /// <summary>Longest app name or type.</summary>
    public const int MaxNameLength = 64;
}

/// <summary>Source-generated JSON for app API payloads.</summary>
[JsonSourceGenerationOptions(PropertyNamingPolicy = JsonKnownNamingPolicy.CamelCase, DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull)]
[JsonSerializable(typeof(AppHelloMessage))]
[JsonSerializable(typeof(AppHelloAckMessage))]
[JsonSerializable(typeof(AppApiRegisterMessage))]
[JsonSerializable(typeof(AppListMessage))]
[JsonSerializable(typeof(AppListResultMessage))]
[JsonSerializable(typeof(DialMessage))]
[JsonSerializable(typeof(AcceptMessage))]
[JsonSerializable(typeof(StreamReadyMessage))]
[JsonSerializable(typeof(StreamOpenMessage))]
[JsonSerializable(typeof(AppErrorMessage))]
[JsonSerializable(typeof(DatagramsMessage))]
[JsonSerializable(typeof(DatagramsReadyMessage))]
[JsonSerializable(typeof(NodeInfoMessage))]
[JsonSerializable(typeof(OkMessage))]
public sealed partial class AppApiJsonContext : JsonSerializerContext;
