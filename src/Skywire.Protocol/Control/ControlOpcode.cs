using Skywire.Protocol.Framing;

namespace Skywire.Protocol.Control;

/// <summary>
/// Opcodes of the control channel (docs/protocol.md §4.3). A response carries the request's opcode
/// with <see cref="FrameCodec.ResponseBit"/> set; <see cref="Error"/> answers any request that failed.
/// Never renumber: these values are on the wire.
/// </summary>
public enum ControlOpcode : byte
{
    /// <summary>First frame of every connection, client to manager: version, role, registration signature.</summary>
    Hello = 0x01,
    /// <summary>Keepalive request, either direction.</summary>
    Ping = 0x02,

    /// <summary>Node to manager: measured state of its links (notification).</summary>
    LinkReport = 0x10,
    /// <summary>Node to manager: register an app in the tracker.</summary>
    AppRegister = 0x11,
    /// <summary>Node to manager: remove an app from the tracker.</summary>
    AppUnregister = 0x12,
    /// <summary>Node to manager: the listed apps are alive (notification).</summary>
    AppHeartbeat = 0x13,
    /// <summary>Node or cli to manager: list apps (all, by name, by type).</summary>
    AppList = 0x14,
    /// <summary>Node to manager: build a route to a node (the node is one end).</summary>
    RouteRequest = 0x15,
    /// <summary>Node to manager: a session route is no longer needed (notification).</summary>
    RouteClose = 0x16,
    /// <summary>Node to manager after registering: the sessions it is an end of (notification; a restarted manager adopts them).</summary>
    SessionReport = 0x17,
    /// <summary>Node to manager: a hop receipt this node signed as the hop's receiver; answered with the sender's countersigned copy (docs/metering.md "Live path").</summary>
    MeterReceipt = 0x18,
    /// <summary>Node to manager: a spend authorization this node signed as a route's source (or none: a status query); answered with the delivered figures.</summary>
    MeterAuth = 0x19,

    /// <summary>Manager to node: open a link to a peer.</summary>
    OpenLink = 0x20,
    /// <summary>Manager to node: close a link.</summary>
    CloseLink = 0x21,
    /// <summary>Manager to node: install forwarding rules.</summary>
    InstallRules = 0x22,
    /// <summary>Manager to node: remove forwarding rules.</summary>
    RemoveRules = 0x23,
    /// <summary>Manager to node: the node is an end of a route; its session sends and receives on these labels.</summary>
    SessionRoute = 0x24,
    /// <summary>Manager to node: route terms the manager signed; the source answers with its acceptance (its signature) or refuses.</summary>
    MeterTerms = 0x25,
    /// <summary>Manager to node: the node is at a position of a metered route: meter its hops, gate at the caps.</summary>
    MeterRoute = 0x26,
    /// <summary>Manager to node: countersign, as the hop's sender, a receipt its receiver signed (or refuse with the reason).</summary>
    MeterCountersign = 0x27,
    /// <summary>Manager to node: the source's latest spend authorization; raise the caps.</summary>
    MeterCaps = 0x28,

    /// <summary>Cli to manager: registered nodes.</summary>
    ListNodes = 0x30,
    /// <summary>Cli to manager: known links with metrics.</summary>
    ListLinks = 0x31,
    /// <summary>Cli to manager: live routes.</summary>
    ListRoutes = 0x32,
    /// <summary>Cli to manager: ask node A to open a link to node B.</summary>
    LinkNodes = 0x34,
    /// <summary>Cli to manager: compute (and install) a route between two nodes.</summary>
    BuildRoute = 0x35,
    /// <summary>Cli to manager: withdraw the standing link intent between nodes A and B and close the link.</summary>
    UnlinkNodes = 0x36,
    /// <summary>Cli to manager: credit a consumer's balance in the manager's ledger (only with the manager's own key; docs/metering.md).</summary>
    LedgerGrant = 0x37,
    /// <summary>Cli to manager: close an epoch, export a payout day, record it paid, or submit signed messages to the manager's ledger (only with its own key).</summary>
    LedgerAct = 0x38,

    /// <summary>Failure answer to any request (always a response: high bit set).</summary>
    Error = 0xFF,
}

/// <summary>Stable error codes in <see cref="ErrorMessage"/>. Never renumber.</summary>
public enum ControlErrorCode
{
    /// <summary>The request was malformed or had invalid arguments.</summary>
    BadRequest = 10,
    /// <summary>The caller may not do this (e.g. a non-admin key on a cli call).</summary>
    Forbidden = 20,
    /// <summary>A named node, app or route does not exist (or a prefix is ambiguous).</summary>
    NotFound = 30,
    /// <summary>The thing already exists (duplicate app name).</summary>
    Conflict = 40,
    /// <summary>No path exists between the nodes.</summary>
    NoRoute = 50,
    /// <summary>A node did not answer in time or is gone.</summary>
    Unavailable = 60,
    /// <summary>Version mismatch.</summary>
    UnsupportedVersion = 70,
    /// <summary>
    /// A per-node limit of the manager is reached (apps, live routes, routes to one peer, route requests in flight,
    /// reported links); the message names the limit. Nothing was changed.
    /// </summary>
    LimitExceeded = 80,
    /// <summary>The answer would not fit in one frame: ask again page by page (<c>limit</c>/<c>after</c>) or narrow the query.</summary>
    ReplyTooLarge = 81,
    /// <summary>A metered route was refused: the source's ledger balance does not cover one credit window (docs/metering.md).</summary>
    PaymentRequired = 85,
    /// <summary>Anything else.</summary>
    Internal = 90,
}
