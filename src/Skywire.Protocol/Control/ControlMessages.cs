using System.Text.Json.Serialization;
using Skywire.Protocol.Framing;

namespace Skywire.Protocol.Control;

// Control-channel payloads (docs/protocol.md §4.3). JSON through the source-generated ControlJsonContext.
// Public keys travel as 66 lowercase hex characters; durations as milliseconds.

/// <summary>First frame of a connection (client to manager).</summary>
public sealed record HelloMessage
{
    /// <summary>Control protocol version; see <see cref="ControlProtocol.Version"/>.</summary>
    public int Version { get; init; }
    /// <summary>"node" or "cli".</summary>
    public string Role { get; init; } = "";
    /// <summary>Node only: the UDP address its links listen on ("ip:port").</summary>
    public string? LinkAddress { get; init; }
    /// <summary>Hex signature (64-byte compact ECDSA) by the client's static key over SHA-256(<c>"skywire-control-hello" || handshake hash</c>).</summary>
    public string Signature { get; init; } = "";
    /// <summary>Free-form software identification.</summary>
    public string? Agent { get; init; }
}

/// <summary>Manager's answer to <see cref="HelloMessage"/>.</summary>
public sealed record HelloAckMessage
{
    public int Version { get; init; }
    /// <summary>Rule lifetime the manager uses, so nodes know how often refreshes come.</summary>
    public int RuleLifetimeMs { get; init; }
    /// <summary>How often a node should report link metrics and app heartbeats.</summary>
    public int ReportIntervalMs { get; init; }
}

/// <summary>Failure answer to a request.</summary>
public sealed record ErrorMessage
{
    public ControlErrorCode Code { get; init; }
    public string Message { get; init; } = "";
}

/// <summary>An empty success payload.</summary>
public sealed record OkMessage;

/// <summary>One link as a node measures it.</summary>
public sealed record LinkState
{
    /// <summary>The peer node's key.</summary>
    public string Peer { get; init; } = "";
    /// <summary>Whether the link is established and passing traffic.</summary>
    public bool Up { get; init; }
    /// <summary>Smoothed round-trip time in microseconds (0 = unknown).</summary>
    public long RttMicros { get; init; }
    /// <summary>Loss ratio 0..1 over the last interval.</summary>
    public double Loss { get; init; }
    public long BytesSent { get; init; }
    public long BytesReceived { get; init; }
    /// <summary>
    /// Whether this node opened the link (its handshake initiator). A manager that did not ask for the link (it
    /// restarted) takes an up link as a standing intent opened by this end (docs/protocol.md §4.5). Absent: false.
    /// </summary>
    public bool Initiator { get; init; }
}

/// <summary>Node to manager: the state of all its links.</summary>
public sealed record LinkReportMessage
{
    public List<LinkState> Links { get; init; } = [];
}

/// <summary>One end-to-end session a node is an end of, as the node holds it.</summary>
public sealed record SessionState
{
    public ulong SessionId { get; init; }
    /// <summary>The other end's key.</summary>
    public string Peer { get; init; } = "";
    /// <summary>Whether this node initiated the session (the route's source).</summary>
    public bool Initiator { get; init; }
}

/// <summary>
/// Node to manager after each registration: the manager-routed sessions the node is an end of (docs/protocol.md §4.5,
/// "Manager loss"). A restarted manager adopts a session that both of its ends report.
/// </summary>
public sealed record SessionReportMessage
{
    public List<SessionState> Sessions { get; init; } = [];
}

/// <summary>An app as the tracker knows it.</summary>
public sealed record AppInfo
{
    public string Name { get; init; } = "";
    public string Type { get; init; } = "";
    /// <summary>Key of the node the app runs beside.</summary>
    public string Node { get; init; } = "";
}

/// <summary>Node to manager: register (or refresh) an app.</summary>
public sealed record AppRegisterMessage
{
    public string Name { get; init; } = "";
    public string Type { get; init; } = "";
}

/// <summary>Node to manager: remove an app.</summary>
public sealed record AppUnregisterMessage
{
    public string Name { get; init; } = "";
}

/// <summary>Node to manager: these apps of the node are alive.</summary>
public sealed record AppHeartbeatMessage
{
    public List<string> Names { get; init; } = [];
}

/// <summary>Query of the app tracker (paged like <see cref="ListRequestMessage"/>).</summary>
public sealed record AppListMessage
{
    /// <summary>"all", "name" or "type".</summary>
    public string By { get; init; } = "all";
    public string? Value { get; init; }
    /// <summary>Paging: the <c>next</c> cursor of the previous page; null for the first page.</summary>
    public string? After { get; init; }
    /// <summary>Paging: most items wanted in this page; null asks for the whole list in one reply (docs/protocol.md §4.4).</summary>
    public int? Limit { get; init; }
}

/// <summary>Answer to <see cref="AppListMessage"/>.</summary>
public sealed record AppListResultMessage
{
    public List<AppInfo> Apps { get; init; } = [];
    /// <summary>Cursor of the next page (pass it as <c>after</c>); null on the last page.</summary>
    public string? Next { get; init; }
    /// <summary>How many apps match the query in all pages.</summary>
    public int Total { get; init; }
}

/// <summary>
/// Cli to manager: a list request (<see cref="ControlOpcode.ListNodes"/>, <see cref="ControlOpcode.ListLinks"/>,
/// <see cref="ControlOpcode.ListRoutes"/>). Without <see cref="Limit"/> the whole list comes in one reply, or the
/// <see cref="ControlErrorCode.ReplyTooLarge"/> error when it would not fit in a frame; with it, one page.
/// </summary>
public sealed record ListRequestMessage
{
    /// <summary>The <c>next</c> cursor of the previous page; null for the first page.</summary>
    public string? After { get; init; }
    /// <summary>Most items wanted in this page (the manager may send fewer, never more); null: the whole list.</summary>
    public int? Limit { get; init; }
}

/// <summary>Node to manager: build a route from the calling node to <see cref="To"/>.</summary>
public sealed record RouteRequestMessage
{
    public string To { get; init; } = "";
}

/// <summary>Answer to a route request: the session id both ends use; the labels come in <see cref="SessionRouteMessage"/>.</summary>
public sealed record RouteResultMessage
{
    public ulong SessionId { get; init; }
    /// <summary>Node keys along the forward path, source first.</summary>
    public List<string> Path { get; init; } = [];
}

/// <summary>Node to manager: drop a session's route.</summary>
public sealed record RouteCloseMessage
{
    public ulong SessionId { get; init; }
}

/// <summary>Manager to node: open a link.</summary>
public sealed record OpenLinkMessage
{
    public string Peer { get; init; } = "";
    /// <summary>The peer's link address ("ip:port").</summary>
    public string Address { get; init; } = "";
}

/// <summary>Manager to node: close a link.</summary>
public sealed record CloseLinkMessage
{
    public string Peer { get; init; } = "";
}

/// <summary>
/// One forwarding rule: packets arriving on link <see cref="InLink"/> with label <see cref="InRoute"/> leave on
/// <see cref="OutLink"/> with label <see cref="OutRoute"/>. Links are named by the peer's key.
/// </summary>
public sealed record RuleMessage
{
    public string InLink { get; init; } = "";
    public uint InRoute { get; init; }
    public string OutLink { get; init; } = "";
    public uint OutRoute { get; init; }
    /// <summary>Lifetime from receipt; the node drops the rule after it unless refreshed.</summary>
    public int TtlMs { get; init; }
}

/// <summary>Manager to node: install (or refresh) rules.</summary>
public sealed record InstallRulesMessage
{
    public List<RuleMessage> Rules { get; init; } = [];
}

/// <summary>Manager to node: remove rules by (incoming link, incoming label).</summary>
public sealed record RemoveRulesMessage
{
    public List<RuleMessage> Rules { get; init; } = [];
}

/// <summary>
/// Manager to node: the node is an end of session <see cref="SessionId"/> with <see cref="Peer"/>. It sends on
/// link <see cref="OutLink"/> with label <see cref="OutRoute"/> and receives packets arriving on <see cref="InLink"/>
/// with label <see cref="InRoute"/>. Sent again with new labels when the manager re-routes.
/// </summary>
public sealed record SessionRouteMessage
{
    public ulong SessionId { get; init; }
    public string Peer { get; init; } = "";
    public bool Initiator { get; init; }
    public string OutLink { get; init; } = "";
    public uint OutRoute { get; init; }
    public string InLink { get; init; } = "";
    public uint InRoute { get; init; }
    public int TtlMs { get; init; }
}

/// <summary>A node as the manager's registry shows it.</summary>
public sealed record NodeInfo
{
    public string Key { get; init; } = "";
    public string LinkAddress { get; init; } = "";
    public bool Online { get; init; }
    public DateTimeOffset ConnectedAt { get; init; }
    public List<string> Apps { get; init; } = [];
}

/// <summary>Answer to <see cref="ControlOpcode.ListNodes"/>.</summary>
public sealed record NodeListMessage
{
    public List<NodeInfo> Nodes { get; init; } = [];
    /// <summary>Cursor of the next page (pass it as <c>after</c>); null on the last page.</summary>
    public string? Next { get; init; }
    /// <summary>How many items the whole list has.</summary>
    public int Total { get; init; }
}

/// <summary>A link as the manager knows it (reported by its ends).</summary>
public sealed record LinkInfo
{
    public string From { get; init; } = "";
    public string To { get; init; } = "";
    public bool Up { get; init; }
    public long RttMicros { get; init; }
    public double Loss { get; init; }
    /// <summary>
    /// True when the manager routes over this link: both ends are online and report it up, each within the
    /// freshness bound (docs/protocol.md §4.5). A link only one end claims is listed, never routed over.
    /// </summary>
    public bool Confirmed { get; init; }
}

/// <summary>Answer to <see cref="ControlOpcode.ListLinks"/>.</summary>
public sealed record LinkListMessage
{
    public List<LinkInfo> Links { get; init; } = [];
    /// <summary>Cursor of the next page (pass it as <c>after</c>); null on the last page.</summary>
    public string? Next { get; init; }
    /// <summary>How many items the whole list has.</summary>
    public int Total { get; init; }
}

/// <summary>A live route (session) as the manager knows it.</summary>
public sealed record RouteInfo
{
    public ulong SessionId { get; init; }
    public string From { get; init; } = "";
    public string To { get; init; } = "";
    public List<string> Path { get; init; } = [];
    public int Reroutes { get; init; }
    public DateTimeOffset CreatedAt { get; init; }
}

/// <summary>Answer to <see cref="ControlOpcode.ListRoutes"/>.</summary>
public sealed record RouteListMessage
{
    public List<RouteInfo> Routes { get; init; } = [];
    /// <summary>Cursor of the next page (pass it as <c>after</c>); null on the last page.</summary>
    public string? Next { get; init; }
    /// <summary>How many items the whole list has.</summary>
    public int Total { get; init; }
}

/// <summary>Cli to manager: a pair of nodes (keys or unique key prefixes).</summary>
public sealed record NodePairMessage
{
    public string A { get; init; } = "";
    public string B { get; init; } = "";
}

/// <summary>
/// Every metering call (<see cref="ControlOpcode.MeterTerms"/> … <see cref="ControlOpcode.MeterCaps"/>, docs/metering.md
/// "Live path"): a signed metering message in hex (Skywire.Protocol.Metering), plus what the call needs.
/// </summary>
public sealed record MeterMessage
{
    /// <summary>The signed message (route terms, hop receipt or spend authorization), hex; absent in a status query.</summary>
    public string? Data { get; init; }
    /// <summary>MeterRoute: the node's position on the route (0 source, 1..k relays, k+1 destination).</summary>
    public int? Position { get; init; }
    /// <summary>MeterRoute: the label forward traffic arrives on here (0 at the source).</summary>
    public uint? ForwardIn { get; init; }
    /// <summary>MeterRoute: the label reverse traffic arrives on here (0 at the destination).</summary>
    public uint? ReverseIn { get; init; }
    /// <summary>MeterRoute: the label this node sends forward traffic on (0 at the destination).</summary>
    public uint? ForwardOut { get; init; }
    /// <summary>MeterRoute: the label this node sends reverse traffic on (0 at the source).</summary>
    public uint? ReverseOut { get; init; }
    /// <summary>
    /// MeterAuth answer, or MeterCaps to the source without <see cref="Data"/> (pushed when the destination's receipt is
    /// posted): forward bytes the last hop's receiver confirmed (co-signed) so far.
    /// </summary>
    public ulong? DeliveredForward { get; init; }
    /// <summary>MeterAuth: the terms id (hex) of a status query without an authorization; MeterCaps: of a pushed delivered figure.</summary>
    public string? TermsId { get; init; }
}

/// <summary>Cli to manager (<see cref="ControlOpcode.LedgerGrant"/>): credit a node; the answer carries the ledger's outcome.</summary>
public sealed record LedgerGrantMessage
{
    /// <summary>The consumer node's key (66 hex).</summary>
    public string Node { get; init; } = "";
    /// <summary>Droplets (1 SKY = 10^6), positive.</summary>
    public long Droplets { get; init; }
    /// <summary>Why (kept in the journal).</summary>
    public string? Memo { get; init; }
    /// <summary>Answer: what the ledger did.</summary>
    public string? Outcome { get; init; }
}

/// <summary>
/// Cli to manager (<see cref="ControlOpcode.LedgerAct"/>): one of the operator's write acts on the running manager's
/// ledger; the answer carries the ledger's outcome (and for an export the files written into the ledger directory).
/// </summary>
public sealed record LedgerActMessage
{
    /// <summary>close, export, paid or submit.</summary>
    public string Act { get; init; } = "";
    /// <summary>export, paid: the payout day (yyyy-MM-dd).</summary>
    public string? Day { get; init; }
    /// <summary>export: the smallest payout in droplets.</summary>
    public long? Min { get; init; }
    /// <summary>paid: the wallet's transaction id.</summary>
    public string? TxId { get; init; }
    /// <summary>submit: signed messages, one hex string each (terms, receipts, authorizations, payout bindings).</summary>
    public IReadOnlyList<string>? Lines { get; init; }
    /// <summary>Answer: what the ledger did.</summary>
    public string? Outcome { get; init; }
    /// <summary>Answer: export's files; submit's refusals.</summary>
    public IReadOnlyList<string>? Details { get; init; }
}

/// <summary>Source-generated JSON for every control payload (AOT-safe, no reflection).</summary>
[JsonSourceGenerationOptions(PropertyNamingPolicy = JsonKnownNamingPolicy.CamelCase, DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull)]
[JsonSerializable(typeof(HelloMessage))]
[JsonSerializable(typeof(HelloAckMessage))]
[JsonSerializable(typeof(ErrorMessage))]
[JsonSerializable(typeof(OkMessage))]
[JsonSerializable(typeof(LinkReportMessage))]
[JsonSerializable(typeof(AppRegisterMessage))]
[JsonSerializable(typeof(AppUnregisterMessage))]
[JsonSerializable(typeof(AppHeartbeatMessage))]
[JsonSerializable(typeof(AppListMessage))]
[JsonSerializable(typeof(AppListResultMessage))]
[JsonSerializable(typeof(RouteRequestMessage))]
[JsonSerializable(typeof(RouteResultMessage))]
[JsonSerializable(typeof(RouteCloseMessage))]
[JsonSerializable(typeof(OpenLinkMessage))]
[JsonSerializable(typeof(CloseLinkMessage))]
[JsonSerializable(typeof(InstallRulesMessage))]
[JsonSerializable(typeof(RemoveRulesMessage))]
[JsonSerializable(typeof(SessionRouteMessage))]
[JsonSerializable(typeof(NodeListMessage))]
[JsonSerializable(typeof(LinkListMessage))]
[JsonSerializable(typeof(RouteListMessage))]
[JsonSerializable(typeof(NodePairMessage))]
[JsonSerializable(typeof(ListRequestMessage))]
[JsonSerializable(typeof(SessionReportMessage))]
[JsonSerializable(typeof(MeterMessage))]
[JsonSerializable(typeof(LedgerGrantMessage))]
[JsonSerializable(typeof(LedgerActMessage))]
public sealed partial class ControlJsonContext : JsonSerializerContext;

/// <summary>Constants of the control protocol.</summary>
public static class ControlProtocol
{
    /// <summary>Current control protocol version (first frame of every connection).</summary>
    public const int Version = 1;

    /// <summary>Noise prologue: binds the protocol name and version into the handshake hash.</summary>
    public const string Prologue = "skywire-control/1";

    /// <summary>Domain separation prefix of the hello signature.</summary>
    public const string HelloSignatureContext = "skywire-control-hello";

    /// <summary>Largest control payload (1 MiB).</summary>
    public const int MaxFrameSize = FrameCodec.DefaultMaxFrameSize;

    /// <summary>Most sessions one <see cref="SessionReportMessage"/> names (it fits one frame: about 110 bytes each).</summary>
    public const int MaxReportedSessions = 8192;
}
