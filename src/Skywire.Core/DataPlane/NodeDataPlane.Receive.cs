using System.Buffers.Binary;
using System.Net;
using System.Net.Sockets;
using System.Security.Cryptography;
using Skywire.Core.Crypto;
using Skywire.Core.Crypto.Noise;
using Skywire.Core.Forwarding;
using Skywire.Core.Links;
using Skywire.Protocol;
using Skywire.Protocol.Links;

namespace Skywire.Core.DataPlane;

public sealed partial class NodeDataPlane
{
    private const int ReceiveBufferLength = 65536;

    // Forwarding of one GRO batch (receive thread only): packets for the same next hop are rewritten in place
    // and sent together (GSO) when the batch ends or the next hop changes, instead of one send each.
    private bool _fwdBatching;
    private int _fwdIndex;
    private int _fwdStride;
    private Link? _fwdLink;
    private SocketAddress? _fwdRemote;
    private int _fwdFrom;
    private int _fwdTo;
    private int[] _fwdTotals = new int[UdpOffload.MaxSegments];
    private byte[]? _fwdBuffer;

    private void ReceiveLoop()
    {
        var socket = _socket!;
        // One preallocated, pinned buffer for the life of the thread: nothing is allocated per packet.
        var buffer = GC.AllocateArray<byte>(ReceiveBufferLength, pinned: true);
        var from = new SocketAddress(socket.AddressFamily);
        var gro = _gro;
        while (_disposed == 0)
        {
            int length;
            int segment;
            try
            {
                if (gro)
                {
                    // Up to 64 KiB of datagrams from one sender, each `segment` bytes but a shorter last one.
                    length = UdpOffload.Receive(socket, buffer, from, out segment);
                }
                else
                {
                    length = socket.ReceiveFrom(buffer, SocketFlags.None, from);
                    segment = length;
                }
            }
            catch (SocketException ex) when (_disposed == 0 && ex.SocketErrorCode is SocketError.ConnectionReset or SocketError.MessageSize or SocketError.NetworkReset)
            {
                // ICMP errors surfacing on an unconnected socket (Windows) and oversized datagrams: not fatal.
                continue;
            }
            catch (SocketException) when (_disposed != 0)
            {
                return;
            }
            catch (ObjectDisposedException)
            {
                return;
            }
            catch (SocketException ex)
            {
                Log.ReceiveFailed(_logger, ex);
                return;
            }

            if (_disposed != 0)
            {
                return; // woken by the shutdown in DisposeAsync
            }

            Interlocked.Add(ref Statistics.BytesReceivedField, length);
            if (segment < length)
            {
                Interlocked.Increment(ref Statistics.GroBatchesField);
            }

            var offset = 0;
            _fwdBatching = _gso && segment < length;
            if (_fwdBatching)
            {
                _fwdBuffer = buffer;
                _fwdStride = segment;
                var segments = (length + segment - 1) / segment;
                if (_fwdTotals.Length < segments)
                {
                    _fwdTotals = new int[segments];
                }
            }

            do
            {
                var n = Math.Min(segment, length - offset);
                _fwdIndex = offset / Math.Max(segment, 1);
                Interlocked.Increment(ref Statistics.PacketsReceivedField);
                try
                {
                    HandlePacket(buffer.AsSpan(offset, n), from);
                }
                catch (Exception ex)
                {
                    // A bug, not bad input: count it, log it, keep the node running.
                    Interlocked.Increment(ref Statistics.InternalErrorField);
                    Log.PacketHandlerFailed(_logger, ex);
                }

                offset += n;
            }
            while (offset < length && segment > 0);

            if (_fwdBatching)
            {
                FlushForwards();
                _fwdBatching = false;
            }
        }
    }

    /// <summary>
    /// Batch forwarding: rewrites the packet in place (header, label, link tag) and adds it to the run for its
    /// next hop; a run for another next hop is sent first. False when the packet was dropped.
    /// </summary>
    private bool QueueForward(Link outLink, uint routeId, Span<byte> packet, int payloadLength)
    {
        if (!TryFrameRouted(outLink, routeId, packet, payloadLength, out var remote, out var total))
        {
            return false;
        }

        // Packets already queued for another next hop go first (each link's counters stay in order on the wire).
        if (_fwdLink is not null && (!ReferenceEquals(_fwdLink, outLink) || !ReferenceEquals(_fwdRemote, remote)))
        {
            FlushForwards();
        }

        if (_fwdLink is null)
        {
            _fwdLink = outLink;
            _fwdRemote = remote;
            _fwdFrom = _fwdIndex;
        }

        _fwdTotals[_fwdIndex] = total;
        _fwdTo = _fwdIndex + 1;
        return true;
    }

    private void FlushForwards()
    {
        if (_fwdLink is not { } link || _fwdRemote is not { } remote)
        {
            return;
        }

        var totals = _fwdTotals.AsSpan(_fwdFrom, _fwdTo - _fwdFrom);
        var sent = SendBatchRaw(link, remote, _fwdBuffer.AsSpan(_fwdFrom * _fwdStride), _fwdStride, totals);
        Interlocked.Add(ref Statistics.ForwardedField, sent);
        totals.Clear();
        _fwdLink = null;
        _fwdRemote = null;
    }

    /// <summary>Handles one UDP payload from <paramref name="from"/>. Internal for tests (no socket needed to feed it).</summary>
    internal void HandlePacket(Span<byte> packet, SocketAddress from)
    {
        if (packet.Length < 4)
        {
            Drop(ref Statistics.MalformedField);
            return;
        }

        switch ((LinkPacketType)packet[0])
        {
            case LinkPacketType.Routed:
            case LinkPacketType.Control:
                OnTransport(packet, from);
                break;
            case LinkPacketType.HandshakeInit:
                OnLinkInit(packet, from);
                break;
            case LinkPacketType.HandshakeResponse:
                OnLinkResponse(packet, from);
                break;
            case LinkPacketType.CookieReply:
                OnCookieReply(packet);
                break;
            default:
                Drop(ref Statistics.MalformedField);
                break;
        }
    }

    private static void Drop(ref long counter) => Interlocked.Increment(ref counter);

    private void OnTransport(Span<byte> packet, SocketAddress from)
    {
        if (!LinkTransportHeader.TryRead(packet, out var header))
        {
            Drop(ref Statistics.MalformedField);
            return;
        }

        if (!_sessionsByIndex.TryGetValue(header.ReceiverIndex, out var session))
        {
            Drop(ref Statistics.UnknownIndexField);
            return;
        }

        // Cheap replay rejection before any crypto; the window moves only after the tag verifies.
        if (!session.Window.IsAcceptable(header.Counter))
        {
            Drop(ref Statistics.ReplayField);
            return;
        }

        bool authentic;
        int payloadLength = 0;
        if (header.Type == LinkPacketType.Routed)
        {
            if (packet.Length < LinkLimits.RoutedOverhead + LinkLimits.MinRoutedPayload)
            {
                Drop(ref Statistics.MalformedField);
                return;
            }

            payloadLength = packet.Length - LinkLimits.RoutedOverhead;
            authentic = VerifyRoutedTag(session.ReceiveKey, header.Counter, packet, payloadLength);
        }
        else
        {
            if (packet.Length < LinkLimits.TransportHeaderLength + LinkLimits.TagLength + 1)
            {
                Drop(ref Statistics.MalformedField);
                return;
            }

            authentic = OpenControl(session.ReceiveKey, header.Counter, packet);
        }

        if (!authentic)
        {
            Drop(ref Statistics.BadTagField);
            return;
        }

        if (!session.Window.TryMark(header.Counter))
        {
            Drop(ref Statistics.ReplayField);
            return;
        }

        var link = session.Link;
        link.LastReceivedAt = _time.GetTimestamp();
        Interlocked.Increment(ref link.PacketsReceived);
        Interlocked.Add(ref link.BytesReceived, packet.Length);
        if (link.Remote is not { } remote || !remote.Equals(from))
        {
            Roam(link, from);
        }

        if (!session.Confirmed)
        {
            ConfirmSession(session);
        }

        if (header.Type == LinkPacketType.Routed)
        {
            Route(link, packet, BinaryPrimitives.ReadUInt32BigEndian(packet[LinkLimits.TransportHeaderLength..]), payloadLength);
        }
        else
        {
            OnControl(link, session, packet[LinkLimits.TransportHeaderLength..^LinkLimits.TagLength]);
        }
    }

    private void Route(Link inLink, Span<byte> packet, uint routeId, int payloadLength)
    {
        var rule = _rules.Find(inLink.Peer, routeId, out var expired);
        if (rule is null)
        {
            Drop(ref expired ? ref Statistics.RuleExpiredField : ref Statistics.NoRuleField);
            return;
        }

        rule.Count(payloadLength);
        if (rule.Action == RouteAction.Local)
        {
            Interlocked.Increment(ref Statistics.DeliveredField);
            rule.Session!.OnPacket(packet.Slice(LinkLimits.RoutedHeaderLength, payloadLength));
            return;
        }

        if (!_links.TryGetValue(rule.OutLink, out var outLink))
        {
            Drop(ref Statistics.LinkDownField);
            return;
        }

        // Only the header, label and link tag are rewritten; the payload bytes stay where they are.
        if (_fwdBatching)
        {
            QueueForward(outLink, rule.OutRoute, packet, payloadLength);
            return;
        }

        if (SendRoutedOnLink(outLink, rule.OutRoute, packet, payloadLength))
        {
            Interlocked.Increment(ref Statistics.ForwardedField);
        }
    }

    private void Roam(Link link, SocketAddress from)
    {
        // The peer proved its key on this packet: follow it to its new address (NAT rebinding).
        var copy = new SocketAddress(from.Family, from.Size);
        from.Buffer.Span[..from.Size].CopyTo(copy.Buffer.Span);
        lock (link.Gate)
        {
            link.Roams++;
            link.Remote = copy;
            link.RemoteEndPoint = (IPEndPoint)new IPEndPoint(IPAddress.Any, 0).Create(copy);
        }
    }

    private void ConfirmSession(LinkSession session)
    {
        var link = session.Link;
        bool up;
        lock (link.Gate)
        {
            if (session.Confirmed)
            {
                return;
            }

            session.Confirmed = true;
            if (ReferenceEquals(link.Next, session))
            {
                link.Next = null;
                RotateLocked(link, session);
            }

            link.Handshakes++;
            up = SetUpLocked(link);
        }

        if (up)
        {
            RaiseLinkUp(link, "handshake confirmed by initiator");
        }
    }

    private bool SetUpLocked(Link link)
    {
        link.LastReceivedAt = _time.GetTimestamp();
        link.UpSignal?.TrySetResult();
        link.UpSignal = null;
        if (link.State == LinkState.Up)
        {
            return false;
        }

        link.State = LinkState.Up;
        link.UpSinceAt = _time.GetTimestamp();
        link.UpSinceUtc = _time.GetUtcNow();
        link.NextProbeAt = 0;
        return true;
    }

    private void OnControl(Link link, LinkSession session, ReadOnlySpan<byte> body)
    {
        switch ((LinkControlKind)body[0])
        {
            case LinkControlKind.Keepalive:
                break;
            case LinkControlKind.Probe when body.Length == 13:
                Span<byte> reply = stackalloc byte[13];
                body.CopyTo(reply);
                reply[0] = (byte)LinkControlKind.ProbeReply;
                SendControl(link, session, reply);
                break;
            case LinkControlKind.ProbeReply when body.Length == 13:
                OnProbeReply(link, BinaryPrimitives.ReadUInt32BigEndian(body[1..]));
                break;
            case LinkControlKind.Close:
                bool raise;
                lock (link.Gate)
                {
                    raise = MarkDownLocked(link, LinkState.Down, "closed by peer");
                }

                if (raise)
                {
                    RaiseLinkDown(link, "closed by peer");
                }

                break;
            default:
                Drop(ref Statistics.MalformedField);
                break;
        }
    }

    // ---- Link handshake ---------------------------------------------------------------------

    private void OnLinkInit(Span<byte> packet, SocketAddress from)
    {
        if (packet.Length != LinkLimits.HandshakeInitLength || packet[1] != LinkLimits.Version || packet[3] != 0)
        {
            Drop(ref Statistics.MalformedField);
            return;
        }

        // mac1 first: a packet not made for our key costs one HMAC, no DH and no state.
        const int macAt = LinkLimits.HandshakeInitMac1Offset;
        if (!CheckMac1(_mac1Key, packet[..macAt], packet[macAt..LinkLimits.HandshakeInitMac2Offset]))
        {
            Drop(ref Statistics.BadMacField);
            return;
        }

        // Under load, an init must also prove its source address (mac2 with our cookie for it);
        // otherwise it gets a cookie and nothing else: still no DH, no state.
        if (UnderLoad() && !CheckMac2(packet, from))
        {
            SendCookieReply(packet, from);
            Drop(ref Statistics.CookieRepliesField);
            return;
        }

        var aead = (AeadAlgorithmId)packet[2];
        if (!AeadKey.IsSupported(aead))
        {
            Drop(ref Statistics.HandshakeFailedField);
            Log.UnsupportedAead(_logger, from, packet[2]);
            return;
        }

        var state = new HandshakeState(HandshakePattern.IK, false, Secp256k1Dh.Instance, aead, LinkPrologue(aead), _staticKey, []);
        Span<byte> body = stackalloc byte[64];
        PubKey peer;
        uint remoteIndex;
        ulong timestamp;
        try
        {
            var n = state.ReadMessage(packet[4..macAt], body);
            if (n != 12 || !PubKey.TryRead(state.RemoteStaticKey, out peer))
            {
                throw new NoiseException("unexpected init payload");
            }

            remoteIndex = BinaryPrimitives.ReadUInt32BigEndian(body);
            timestamp = BinaryPrimitives.ReadUInt64BigEndian(body[4..]);
        }
        catch (NoiseException ex)
        {
            state.Dispose();
            Drop(ref Statistics.HandshakeFailedField);
            Log.HandshakeRejected(_logger, from, ex.Message);
            return;
        }

        if (peer == LocalKey || (_options.AcceptInboundLink is { } accept && !accept(peer)))
        {
            state.Dispose();
            Drop(ref Statistics.RefusedField);
            Log.PeerRefused(_logger, peer, from);
            return;
        }

        // The peer proved its key: from here on it may have state.
        var link = _links.GetOrAdd(peer, static p => new Link(p));
        Span<byte> response = stackalloc byte[LinkLimits.HandshakeResponseLength];
        lock (link.Gate)
        {
            if (timestamp <= link.LastInitTimestamp)
            {
                state.Dispose();
                Drop(ref Statistics.StaleHandshakeField);
                Log.HandshakeRejected(_logger, from, "stale timestamp (replayed init)");
                return;
            }

            link.LastInitTimestamp = timestamp;
            var localIndex = AllocateIndex();
            response[0] = (byte)LinkPacketType.HandshakeResponse;
            response[1] = LinkLimits.Version;
            response[2] = (byte)aead;
            response[3] = 0;
            BinaryPrimitives.WriteUInt32BigEndian(response[4..], remoteIndex);
            Span<byte> responseBody = stackalloc byte[4];
            BinaryPrimitives.WriteUInt32BigEndian(responseBody, localIndex);
            var written = state.WriteMessage(responseBody, response[8..]);
            const int responseMacAt = LinkLimits.HandshakeResponseLength - LinkLimits.TagLength;
            if (8 + written != responseMacAt)
            {
                throw new InvalidOperationException("unexpected handshake response length");
            }

            WriteMac1(Mac1Key(peer), response[..responseMacAt], response[responseMacAt..]);
            var session = new LinkSession(link, localIndex, remoteIndex, state.Split(), aead, confirmed: false, _time.GetTimestamp());
            state.Dispose();
            _sessionsByIndex[localIndex] = session;
            if (link.State == LinkState.Up && link.Current is { Confirmed: true })
            {
                // Re-handshake of a working link: keep sending on the confirmed keys until the
                // initiator shows it has the new ones (a lost response then costs nothing).
                if (link.Next is { } stale)
                {
                    _sessionsByIndex.TryRemove(new KeyValuePair<uint, LinkSession>(stale.LocalIndex, stale));
                    stale.Dispose();
                }

                link.Next = session;
            }
            else
            {
                RotateLocked(link, session);
            }
            var copy = new SocketAddress(from.Family, from.Size);
            from.Buffer.Span[..from.Size].CopyTo(copy.Buffer.Span);
            link.Remote = copy;
            link.RemoteEndPoint = (IPEndPoint)new IPEndPoint(IPAddress.Any, 0).Create(copy);
            if (link.State != LinkState.Up)
            {
                link.State = LinkState.Connecting;
                link.HandshakeStartedAt = _time.GetTimestamp();
            }

            SendRaw(link, response, copy);
        }

        Log.HandshakeAnswered(_logger, peer, from);
    }

    private void OnLinkResponse(Span<byte> packet, SocketAddress from)
    {
        if (packet.Length != LinkLimits.HandshakeResponseLength || packet[1] != LinkLimits.Version || packet[3] != 0)
        {
            Drop(ref Statistics.MalformedField);
            return;
        }

        var index = BinaryPrimitives.ReadUInt32BigEndian(packet[4..]);
        if (!_pendingByIndex.TryGetValue(index, out var link))
        {
            Drop(ref Statistics.UnknownIndexField);
            return;
        }

        const int macAt = LinkLimits.HandshakeResponseLength - LinkLimits.TagLength;
        if (!CheckMac1(_mac1Key, packet[..macAt], packet[macAt..]))
        {
            Drop(ref Statistics.BadMacField);
            return;
        }

        Span<byte> body = stackalloc byte[16];
        bool up;
        LinkSession session;
        lock (link.Gate)
        {
            var pending = link.Pending;
            if (pending is null || pending.LocalIndex != index)
            {
                Drop(ref Statistics.UnknownIndexField);
                return;
            }

            if (packet[2] != (byte)pending.Aead)
            {
                Drop(ref Statistics.HandshakeFailedField);
                return;
            }

            uint remoteIndex;
            try
            {
                var n = pending.State.ReadMessage(packet[8..macAt], body);
                if (n != 4)
                {
                    throw new NoiseException("unexpected response payload");
                }

                remoteIndex = BinaryPrimitives.ReadUInt32BigEndian(body);
            }
            catch (NoiseException ex)
            {
                // The handshake state is dead; the next attempt starts afresh.
                _pendingByIndex.TryRemove(index, out _);
                link.Pending = null;
                pending.Dispose();
                link.NextAttemptAt = 0;
                Drop(ref Statistics.HandshakeFailedField);
                Log.HandshakeRejected(_logger, from, ex.Message);
                return;
            }

            session = new LinkSession(link, index, remoteIndex, pending.State.Split(), pending.Aead, confirmed: true, _time.GetTimestamp());
            link.Handshakes++;
            _pendingByIndex.TryRemove(index, out _);
            link.Pending = null;
            pending.Dispose();
            _sessionsByIndex[index] = session;
            RotateLocked(link, session);
            up = SetUpLocked(link);
            // Key confirmation for the responder (and a first sign of life).
            Span<byte> keepalive = [(byte)LinkControlKind.Keepalive];
            SendControl(link, session, keepalive);
        }

        if (up)
        {
            RaiseLinkUp(link, "handshake complete");
        }
    }

    // ---- Cookies (WireGuard-style, stateless) ---------------------------------------------------

    /// <summary>Counts inits with a valid mac1 in the current second; true above the configured rate.</summary>
    private bool UnderLoad()
    {
        var now = _time.GetTimestamp();
        if (now - _loadWindowStart >= _time.TimestampFrequency)
        {
            _loadWindowStart = now;
            _loadCount = 0;
        }

        return ++_loadCount > _options.HandshakesPerSecondBeforeCookies;
    }

    private void CookieFor(byte[] secret, SocketAddress from, Span<byte> cookie)
    {
        Span<byte> full = stackalloc byte[32];
        HMACSHA256.HashData(secret, from.Buffer.Span[..from.Size], full);
        full[..LinkLimits.TagLength].CopyTo(cookie);
    }

    private bool CheckMac2(ReadOnlySpan<byte> packet, SocketAddress from)
    {
        // The secret changes every 2 minutes; cookies made with the previous one stay valid meanwhile.
        if (_time.GetElapsedTime(_cookieSecretAt) > TimeSpan.FromMinutes(2))
        {
            _previousCookieSecret = _cookieSecret;
            _cookieSecret = RandomNumberGenerator.GetBytes(32);
            _cookieSecretAt = _time.GetTimestamp();
        }

        Span<byte> cookie = stackalloc byte[LinkLimits.TagLength];
        const int mac2At = LinkLimits.HandshakeInitMac2Offset;
        foreach (var secret in new[] { _cookieSecret, _previousCookieSecret })
        {
            CookieFor(secret, from, cookie);
            if (CheckMac1(cookie, packet[..mac2At], packet[mac2At..LinkLimits.HandshakeInitLength]))
            {
                return true;
            }
        }

        return false;
    }

    private void SendCookieReply(ReadOnlySpan<byte> init, SocketAddress from)
    {
        Span<byte> reply = stackalloc byte[LinkLimits.CookieReplyLength];
        reply[0] = (byte)LinkPacketType.CookieReply;
        reply[1] = LinkLimits.Version;
        reply[2] = 0;
        reply[3] = 0;
        init[LinkLimits.HandshakeInitMac1Offset..LinkLimits.HandshakeInitMac2Offset].CopyTo(reply[4..20]);
        RandomNumberGenerator.Fill(reply[20..32]);
        Span<byte> cookie = stackalloc byte[LinkLimits.TagLength];
        CookieFor(_cookieSecret, from, cookie);
        // Encrypted under a key derived from our public key: only someone who knows it (the initiator) reads it.
        _cookieAead.Seal(reply[20..32], reply[4..20], cookie, reply[32..]);
        SendRawTo(reply, from);
    }

    private void OnCookieReply(ReadOnlySpan<byte> packet)
    {
        if (packet.Length != LinkLimits.CookieReplyLength || packet[1] != LinkLimits.Version || packet[2] != 0 || packet[3] != 0)
        {
            Drop(ref Statistics.MalformedField);
            return;
        }

        var echoed = packet[4..20];
        foreach (var link in _pendingByIndex.Values)
        {
            lock (link.Gate)
            {
                if (link.Pending is not { } pending || !CryptographicOperations.FixedTimeEquals(pending.Mac1, echoed))
                {
                    continue;
                }

                Span<byte> cookie = stackalloc byte[LinkLimits.TagLength];
                using var key = AeadKey.Create(AeadAlgorithmId.ChaCha20Poly1305, CookieKey(link.Peer));
                if (!key.Open(packet[20..32], echoed, packet[32..], cookie))
                {
                    Drop(ref Statistics.BadMacField);
                    return;
                }

                link.Cookie = cookie.ToArray();
                link.CookieAt = _time.GetTimestamp();
                link.NextAttemptAt = 0; // retry at the next tick, now with mac2
                return;
            }
        }

        Drop(ref Statistics.UnknownIndexField);
    }

    /// <summary>Makes <paramref name="session"/> current; the previous one stays for receiving, the one before is dropped.</summary>
    private void RotateLocked(Link link, LinkSession session)
    {
        if (link.Previous is { } old)
        {
            _sessionsByIndex.TryRemove(new KeyValuePair<uint, LinkSession>(old.LocalIndex, old));
            old.Dispose();
        }

        link.Previous = link.Current;
        link.Current = session;
    }
}
