using System.Net;
using Skywire.Protocol;

namespace Skywire.Core.Links;

/// <summary>
/// Everything about the link to one peer. Mutations happen under <see cref="Gate"/>; the hot
/// path reads <see cref="Current"/>, <see cref="Remote"/> and <see cref="State"/> without locking.
/// </summary>
/// <remarks>
/// The state (<see cref="LinkState"/>) changes only through <see cref="TransitionLocked"/>, which enforces
/// this table (<see cref="LinkStates.IsAllowed"/>):
/// <code>
///                          ┌─────────── keys confirmed ────────────┐
///                          │                                        ▼
///   open / valid init ─► Connecting                                Up ──┐ rekey, or a fresh init
///                          │   ▲                                    │ ◄─┘ from the peer: stays Up
///        timed out,        │   │ reopen (OpenLinkAsync,             │
///        never confirmed,  │   │ a valid init)                      │ dead (no packet for DeadAfter),
///        evicted           ▼   │                                    │ Close from the peer,
///                         Down ◄────────────────────────────────────┘ rekey timed out, evicted
///
///   CloseLink: Connecting | Up | Down ─► Closed;   reopen: Closed ─► Connecting
/// </code>
/// A link this node opened (<see cref="Wanted"/>: the manager asked for it) stays in the table in every
/// state. A link a stranger opened is removed from the table when it goes Down before it was ever up (its state
/// is freed; a new handshake starts afresh); one that was up and is lost (the peer died or went silent) is
/// remembered, keys dropped, for <c>DataPlaneOptions.RememberLostLinks</c> so that the node goes on reporting it
/// and a manager that restarted meanwhile learns the link and has it reopened. Either may be evicted to make
/// room (<see cref="LinkTable"/>).
/// </remarks>
internal sealed class Link
{
    private volatile LinkState _state = LinkState.Connecting;

    public Link(PubKey peer)
    {
        Peer = peer;
        Mac1Key = LinkHandshake.Mac1Key(peer);
    }

    public PubKey Peer { get; }

    /// <summary>The key of the peer's mac1 (handshake messages to it carry a mac1 under this key).</summary>
    public byte[] Mac1Key { get; }

    public object Gate { get; } = new();

    /// <summary>The state; changed only by <see cref="TransitionLocked"/>.</summary>
    public LinkState State => _state;

    /// <summary>
    /// True after this node asked for the link (<c>OpenLinkAsync</c>) and until it closes it: such a link is
    /// never evicted and stays in the table when it goes down (the manager reopens it).
    /// </summary>
    public bool Wanted;

    /// <summary>When a link this node did not ask for was lost (a TimeProvider timestamp; 0: not a remembered lost link).</summary>
    public long LostAt;

    /// <summary>True once the link was removed from its table (evicted, or a stranger's link that went down): start over with a new one.</summary>
    public bool Removed;

    public volatile LinkSession? Current;

    public LinkSession? Previous;

    /// <summary>
    /// Responder side of a re-handshake on an up link: the new keys receive at once but are used
    /// for sending only after the initiator proves it has them (its first packet under them).
    /// </summary>
    public LinkSession? Next;

    /// <summary>Completed handshakes (tests, diagnostics).</summary>
    public long Handshakes;

    public volatile SocketAddress? Remote;

    public IPEndPoint? RemoteEndPoint;

    /// <summary>True when this node opened the link (shown in <see cref="LinkInfo"/>; only the initiator rekeys).</summary>
    public bool Initiator;

    // Initiator handshake.
    public PendingLinkHandshake? Pending;
    public int Attempts;
    public long HandshakeStartedAt;
    public long NextAttemptAt;
    public TaskCompletionSource? UpSignal;

    /// <summary>Cookie from the peer's last cookie reply (for mac2), and when it arrived.</summary>
    public byte[]? Cookie;
    public long CookieAt;

    /// <summary>Highest handshake timestamp accepted from the peer (replayed inits are refused).</summary>
    public ulong LastInitTimestamp;

    public long LastReceivedAt;
    public long UpSinceAt;
    public DateTimeOffset? UpSinceUtc;

    /// <summary>Times the peer's address changed under an authenticated packet.</summary>
    public long Roams;

    // Metrics (Interlocked).
    public long PacketsSent;
    public long PacketsReceived;
    public long BytesSent;
    public long BytesReceived;

    /// <summary>RTT and loss probes (under <see cref="Gate"/>).</summary>
    public LinkProbes Probes { get; } = new();

    /// <summary>The one way the state changes (under <see cref="Gate"/>).</summary>
    /// <exception cref="InvalidOperationException">The table in the remarks does not allow the change (a bug).</exception>
    public void TransitionLocked(LinkState to)
    {
        var from = _state;
        if (!LinkStates.IsAllowed(from, to))
        {
            throw new InvalidOperationException($"link to {Peer.ToShortString(16)}: illegal transition {from} -> {to}");
        }

        _state = to;
    }

    /// <summary>Follows the peer to <paramref name="address"/> (a copy is kept).</summary>
    public void SetRemoteLocked(SocketAddress address)
    {
        var copy = new SocketAddress(address.Family, address.Size);
        address.Buffer.Span[..address.Size].CopyTo(copy.Buffer.Span);
        Remote = copy;
        RemoteEndPoint = (IPEndPoint)new IPEndPoint(IPAddress.Any, 0).Create(copy);
    }
}
