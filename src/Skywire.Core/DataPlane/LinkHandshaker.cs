using System.Buffers.Binary;
using System.Net;
using Microsoft.Extensions.Logging;
using Skywire.Core.Crypto;
using Skywire.Core.Links;
using Skywire.Protocol.Links;

namespace Skywire.Core.DataPlane;

/// <summary>Where the parts of a data plane report links going up and down (raised on the thread pool by the data plane).</summary>
internal interface ILinkEvents
{
    void LinkUp(Link link, string reason);

    void LinkDown(Link link, string reason);
}

/// <summary>
/// Runs the link handshakes of a data plane (docs/protocol.md §3.1; wireguard-go's handshake half of
/// receive.go and send.go): starts and retries inits for the links this node opens, answers valid inits
/// (after the <see cref="CookieChecker"/>'s stateless checks and, under load, the <see cref="HandshakeRateLimiter"/>,
/// and only for peers the <see cref="LinkTable"/> admits), takes responses and cookie replies, and confirms the responder's keys at the first packet under
/// them. The messages themselves are <see cref="LinkHandshake"/>'s. Packets arrive on the receive thread;
/// <see cref="StartLocked"/> also runs on callers' threads and the maintenance loop, under the link's gate.
/// </summary>
internal sealed class LinkHandshaker
{
    private readonly LinkTable _table;
    private readonly LinkHandshake _messages;
    private readonly CookieChecker _cookies;
    private readonly HandshakeRateLimiter _limiter;
    private readonly LinkSender _sender;
    private readonly DataPlaneOptions _options;
    private readonly DataPlaneStatistics _statistics;
    private readonly ILinkEvents _events;
    private readonly TimeProvider _time;
    private readonly ILogger _logger;
    private readonly AeadAlgorithmId _preferred;

    public LinkHandshaker(
        LinkTable table, LinkHandshake messages, CookieChecker cookies, LinkSender sender, DataPlaneOptions options,
        DataPlaneStatistics statistics, ILinkEvents events, AeadAlgorithmId preferred, TimeProvider time, ILogger logger)
    {
        _table = table;
        _messages = messages;
        _cookies = cookies;
        _limiter = new HandshakeRateLimiter(time);
        _sender = sender;
        _options = options;
        _statistics = statistics;
        _events = events;
        _preferred = preferred;
        _time = time;
        _logger = logger;
    }

    // ---- Initiator ------------------------------------------------------------------------------

    /// <summary>Sends a fresh init to the link's peer (new index, ephemeral key and timestamp); the previous attempt is dropped.</summary>
    public void StartLocked(Link link)
    {
        var aead = AeadForAttempt(link.Attempts);
        var cookie = link.Cookie is { } c && _time.GetElapsedTime(link.CookieAt) < CookieChecker.CookieLifetime ? c : [];
        Span<byte> packet = stackalloc byte[LinkLimits.HandshakeInitLength];
        _table.ClearPendingLocked(link);
        var pending = _messages.CreateInit(link.Peer, link.Mac1Key, aead, _table.AllocateIndex(), cookie, packet);
        _table.SetPendingLocked(link, pending);
        link.Attempts++;
        link.NextAttemptAt = _time.GetTimestamp() + (long)(_options.HandshakeRetryInterval.TotalSeconds * _time.TimestampFrequency);
        if (link.Remote is { } remote)
        {
            _sender.Send(link, packet, remote);
        }
    }

    /// <summary>A HandshakeResponse: completes the handshake it answers (found by our index only).</summary>
    public void OnResponse(Span<byte> packet, SocketAddress from)
    {
        if (packet.Length != LinkLimits.HandshakeResponseLength || packet[1] != LinkLimits.Version || packet[3] != 0)
        {
            Drop(ref _statistics.MalformedField);
            return;
        }

        var index = BinaryPrimitives.ReadUInt32BigEndian(packet[4..]);
        if (!_table.TryGetPending(index, out var link))
        {
            Drop(ref _statistics.UnknownIndexField);
            return;
        }

        const int macAt = LinkLimits.HandshakeResponseLength - LinkLimits.TagLength;
        if (!_cookies.CheckMac1(packet[..macAt], packet[macAt..]))
        {
            Drop(ref _statistics.BadMacField);
            return;
        }

        bool up;
        lock (link.Gate)
        {
            var pending = link.Pending;
            if (pending is null || pending.LocalIndex != index)
            {
                Drop(ref _statistics.UnknownIndexField);
                return;
            }

            if (packet[2] != (byte)pending.Aead)
            {
                Drop(ref _statistics.HandshakeFailedField);
                return;
            }

            if (!LinkHandshake.TryConsumeResponse(pending, packet, out var remoteIndex, out var error))
            {
                // The handshake state is dead; the next attempt starts afresh.
                _table.ClearPendingLocked(link);
                link.NextAttemptAt = 0;
                Drop(ref _statistics.HandshakeFailedField);
                DataPlaneLog.HandshakeRejected(_logger, from, error!);
                return;
            }

            var session = new LinkSession(link, index, remoteIndex, pending.State.Split(), pending.Aead, confirmed: true, _time.GetTimestamp());
            link.Handshakes++;
            _table.ClearPendingLocked(link);
            _table.RotateLocked(link, session);
            up = _table.SetUpLocked(link);
            // Key confirmation for the responder (and a first sign of life).
            Span<byte> keepalive = [(byte)LinkControlKind.Keepalive];
            _sender.SendControl(link, session, keepalive);
        }

        if (up)
        {
            _events.LinkUp(link, "handshake complete");
        }
    }

    /// <summary>A CookieReply: keeps the cookie for mac2 and retries at once (the reply names its init by the mac1 it echoes).</summary>
    public void OnCookieReply(ReadOnlySpan<byte> packet)
    {
        if (packet.Length != LinkLimits.CookieReplyLength || packet[1] != LinkLimits.Version || packet[2] != 0 || packet[3] != 0)
        {
            Drop(ref _statistics.MalformedField);
            return;
        }

        var echoed = CookieChecker.EchoedMac1(packet);
        foreach (var link in _table.PendingLinks)
        {
            lock (link.Gate)
            {
                if (link.Pending is not { } pending || !pending.Mac1.AsSpan().SequenceEqual(echoed))
                {
                    continue;
                }

                Span<byte> cookie = stackalloc byte[LinkLimits.TagLength];
                if (!CookieChecker.TryOpenReply(LinkHandshake.CookieKey(link.Peer), pending.Mac1, packet, cookie))
                {
                    Drop(ref _statistics.BadMacField);
                    return;
                }

                link.Cookie = cookie.ToArray();
                link.CookieAt = _time.GetTimestamp();
                link.NextAttemptAt = 0; // retry at the next tick, now with mac2
                return;
            }
        }

        Drop(ref _statistics.UnknownIndexField);
    }

    // ---- Responder ------------------------------------------------------------------------------

    /// <summary>A HandshakeInit: checks (cheapest first), then answers and keeps the new keys unconfirmed.</summary>
    public void OnInit(Span<byte> packet, SocketAddress from)
    {
        if (packet.Length != LinkLimits.HandshakeInitLength || packet[1] != LinkLimits.Version || packet[3] != 0)
        {
            Drop(ref _statistics.MalformedField);
            return;
        }

        // mac1 first: a packet not made for our key costs one HMAC, no DH and no state.
        const int macAt = LinkLimits.HandshakeInitMac1Offset;
        if (!_cookies.CheckMac1(packet[..macAt], packet[macAt..LinkLimits.HandshakeInitMac2Offset]))
        {
            Drop(ref _statistics.BadMacField);
            return;
        }

        // Under load, an init must also prove its source address (mac2 with our cookie for it);
        // otherwise it gets a cookie and nothing else: still no DH, no state. A proven address then
        // gets a few handshakes a second, however many inits it sends.
        if (_cookies.UnderLoad())
        {
            if (!_cookies.CheckMac2(packet, from))
            {
                Span<byte> reply = stackalloc byte[LinkLimits.CookieReplyLength];
                _cookies.WriteReply(packet, from, reply);
                _sender.SendTo(reply, from);
                Drop(ref _statistics.CookieRepliesField);
                return;
            }

            if (!_limiter.Allow(from))
            {
                Drop(ref _statistics.RateLimitedField);
                return;
            }
        }

        var aead = (AeadAlgorithmId)packet[2];
        if (!AeadKey.IsSupported(aead))
        {
            Drop(ref _statistics.HandshakeFailedField);
            DataPlaneLog.UnsupportedAead(_logger, from, packet[2]);
            return;
        }

        if (!_messages.TryConsumeInit(packet, out var init, out var error))
        {
            Drop(ref _statistics.HandshakeFailedField);
            DataPlaneLog.HandshakeRejected(_logger, from, error!);
            return;
        }

        var peer = init.Peer;
        if (_messages.IsSelf(peer) || (_options.AcceptInboundLink is { } accept && !accept(peer)))
        {
            init.State.Dispose();
            Drop(ref _statistics.RefusedField);
            DataPlaneLog.PeerRefused(_logger, peer, from);
            return;
        }

        // The peer proved its key. That costs a key pair only, so its link has to find room in the table.
        var link = Admit(init, from);
        if (link is null)
        {
            return;
        }

        Span<byte> response = stackalloc byte[LinkLimits.HandshakeResponseLength];
        lock (link.Gate)
        {
            if (link.Removed)
            {
                // Evicted or gone down between admission and now (a race with the maintenance loop): drop; the peer retries.
                init.State.Dispose();
                Drop(ref _statistics.TableFullField);
                return;
            }

            if (init.Timestamp <= link.LastInitTimestamp)
            {
                init.State.Dispose();
                Drop(ref _statistics.StaleHandshakeField);
                DataPlaneLog.HandshakeRejected(_logger, from, "stale timestamp (replayed init)");
                return;
            }

            link.LastInitTimestamp = init.Timestamp;
            var localIndex = _table.AllocateIndex();
            var transport = _messages.CreateResponse(init, localIndex, link.Mac1Key, response);
            var session = new LinkSession(link, localIndex, init.RemoteIndex, transport, init.Aead, confirmed: false, _time.GetTimestamp());
            if (link.State == LinkState.Up && link.Current is { Confirmed: true })
            {
                // Re-handshake of a working link: keep sending on the confirmed keys until the
                // initiator shows it has the new ones (a lost response then costs nothing).
                _table.SetNextLocked(link, session);
            }
            else
            {
                _table.RotateLocked(link, session);
            }

            link.SetRemoteLocked(from);
            if (link.State != LinkState.Up)
            {
                if (link.State != LinkState.Connecting)
                {
                    link.TransitionLocked(LinkState.Connecting);
                }

                link.HandshakeStartedAt = _time.GetTimestamp();
            }

            _sender.Send(link, response, link.Remote!);
        }

        DataPlaneLog.HandshakeAnswered(_logger, peer, from);
    }

    /// <summary>The responder's first authenticated packet under new keys: they are confirmed, and the link is up.</summary>
    public void Confirm(LinkSession session)
    {
        var link = session.Link;
        bool up;
        lock (link.Gate)
        {
            if (session.Confirmed)
            {
                return;
            }

            if (!ReferenceEquals(link.Current, session) && !ReferenceEquals(link.Next, session))
            {
                return; // dropped meanwhile (the link went down, or newer keys replaced these)
            }

            session.Confirmed = true;
            if (ReferenceEquals(link.Next, session))
            {
                link.Next = null;
                _table.RotateLocked(link, session);
            }

            link.Handshakes++;
            up = _table.SetUpLocked(link);
        }

        if (up)
        {
            _events.LinkUp(link, "handshake confirmed by initiator");
        }
    }

    private Link? Admit(in InboundInit init, SocketAddress from)
    {
        var link = _table.TryAdmitInbound(init.Peer, out var eviction);
        if (eviction is { } evicted)
        {
            Interlocked.Increment(ref _statistics.LinksEvictedField);
            DataPlaneLog.LinkEvicted(_logger, evicted.Link.Peer);
            if (evicted.DownEventDue)
            {
                _events.LinkDown(evicted.Link, LinkTable.EvictedReason);
            }
        }

        if (link is null)
        {
            init.State.Dispose();
            Drop(ref _statistics.TableFullField);
            DataPlaneLog.TableFull(_logger, init.Peer, from);
        }

        return link;
    }

    private AeadAlgorithmId AeadForAttempt(int attempt) =>
        _preferred == AeadAlgorithmId.ChaCha20Poly1305 || attempt < 2 || attempt % 2 == 0
            ? _preferred
            : AeadAlgorithmId.ChaCha20Poly1305;

    private static void Drop(ref long counter) => Interlocked.Increment(ref counter);
}
