using System.Buffers.Binary;
using System.Diagnostics.CodeAnalysis;
using System.Net;
using System.Net.Sockets;
using Skywire.Core.Crypto;
using Skywire.Core.Crypto.Noise;
using Skywire.Core.Links;
using Skywire.Protocol.Links;

namespace Skywire.Core.DataPlane;

public sealed partial class NodeDataPlane
{
    /// <summary>Associated data of a routed packet's link tag: header and label (20), payload length (2), end-to-end tag (16).</summary>
    private const int RoutedAdLength = LinkLimits.RoutedHeaderLength + 2 + LinkLimits.TagLength;

    private static void BuildRoutedAd(ReadOnlySpan<byte> packet, int payloadLength, Span<byte> ad)
    {
        packet[..LinkLimits.RoutedHeaderLength].CopyTo(ad);
        BinaryPrimitives.WriteUInt16BigEndian(ad[LinkLimits.RoutedHeaderLength..], (ushort)payloadLength);
        var payloadEnd = LinkLimits.RoutedHeaderLength + payloadLength;
        packet[(payloadEnd - LinkLimits.TagLength)..payloadEnd].CopyTo(ad[(LinkLimits.RoutedHeaderLength + 2)..]);
    }

    /// <summary>
    /// Verifies a routed packet's link tag: AEAD with an empty plaintext over the header, label,
    /// payload length and the payload's last 16 bytes (its end-to-end tag). The payload body is
    /// not processed here: the end-to-end AEAD covers it.
    /// </summary>
    internal static bool VerifyRoutedTag(AeadKey key, ulong counter, ReadOnlySpan<byte> packet, int payloadLength)
    {
        Span<byte> ad = stackalloc byte[RoutedAdLength];
        BuildRoutedAd(packet, payloadLength, ad);
        try
        {
            return key.Open(counter, ad, packet.Slice(LinkLimits.RoutedHeaderLength + payloadLength, LinkLimits.TagLength), []);
        }
        catch (ObjectDisposedException)
        {
            return false;
        }
    }

    internal static void SealRoutedTag(AeadKey key, ulong counter, Span<byte> packet, int payloadLength)
    {
        Span<byte> ad = stackalloc byte[RoutedAdLength];
        BuildRoutedAd(packet, payloadLength, ad);
        key.Seal(counter, ad, [], packet.Slice(LinkLimits.RoutedHeaderLength + payloadLength, LinkLimits.TagLength));
    }

    private static bool OpenControl(AeadKey key, ulong counter, Span<byte> packet)
    {
        try
        {
            // In place: the body is decrypted over its ciphertext.
            return key.Open(counter, packet[..LinkLimits.TransportHeaderLength], packet[LinkLimits.TransportHeaderLength..], packet[LinkLimits.TransportHeaderLength..^LinkLimits.TagLength]);
        }
        catch (ObjectDisposedException)
        {
            return false;
        }
    }

    /// <summary>Writes header, label and link tag around the payload at <c>packet[20..]</c> and sends it.</summary>
    private bool SendRoutedOnLink(Link link, uint routeId, Span<byte> packet, int payloadLength) =>
        TryFrameRouted(link, routeId, packet, payloadLength, out var remote, out var total) && SendRaw(link, packet[..total], remote);

    /// <summary>
    /// Checks that <paramref name="link"/> can carry the packet, then writes its transport header, label and link
    /// tag around the payload at <c>packet[20..]</c> (the one framing of a routed packet, sent or forwarded).
    /// False, counted as a drop, when the link is not up or the packet does not fit.
    /// </summary>
    private bool TryFrameRouted(Link link, uint routeId, Span<byte> packet, int payloadLength, [NotNullWhen(true)] out SocketAddress? remote, out int total)
    {
        var session = link.Current;
        remote = link.Remote;
        total = payloadLength + LinkLimits.RoutedOverhead;
        if (session is null || link.State != LinkState.Up || remote is null)
        {
            Drop(ref Statistics.LinkDownField);
            return false;
        }

        if (total > _options.MaxUdpPayload || total > packet.Length || payloadLength < LinkLimits.MinRoutedPayload)
        {
            Drop(ref Statistics.TooLargeField);
            return false;
        }

        var counter = session.NextCounter();
        new LinkTransportHeader(LinkPacketType.Routed, session.RemoteIndex, counter).WriteTo(packet);
        BinaryPrimitives.WriteUInt32BigEndian(packet[LinkLimits.TransportHeaderLength..], routeId);
        try
        {
            SealRoutedTag(session.SendKey, counter, packet, payloadLength);
        }
        catch (ObjectDisposedException)
        {
            Drop(ref Statistics.LinkDownField);
            return false;
        }

        return true;
    }

    /// <summary>
    /// <see cref="SendRoutedOnLink"/> for <paramref name="count"/> packets at <paramref name="stride"/>-byte
    /// intervals in <paramref name="slots"/>: each gets its header, label and link tag, then runs of equal
    /// size go out in one GSO send each. Returns how many were sent.
    /// </summary>
    private int SendRoutedBatchOnLink(Link link, uint routeId, Span<byte> slots, int stride, ReadOnlySpan<int> payloadLengths, int count)
    {
        var session = link.Current;
        if (session is null || link.State != LinkState.Up || link.Remote is not { } remote)
        {
            Interlocked.Add(ref Statistics.LinkDownField, count);
            return 0;
        }

        Span<int> totals = stackalloc int[count];
        for (var i = 0; i < count; i++)
        {
            var payloadLength = payloadLengths[i];
            var total = payloadLength + LinkLimits.RoutedOverhead;
            if (total > _options.MaxUdpPayload || total > stride || payloadLength < LinkLimits.MinRoutedPayload)
            {
                Drop(ref Statistics.TooLargeField);
                continue; // totals[i] stays 0: skipped
            }

            var packet = slots.Slice(i * stride, total);
            var counter = session.NextCounter();
            new LinkTransportHeader(LinkPacketType.Routed, session.RemoteIndex, counter).WriteTo(packet);
            BinaryPrimitives.WriteUInt32BigEndian(packet[LinkLimits.TransportHeaderLength..], routeId);
            try
            {
                SealRoutedTag(session.SendKey, counter, packet, payloadLength);
            }
            catch (ObjectDisposedException)
            {
                Interlocked.Add(ref Statistics.LinkDownField, count - i);
                count = i;
                break;
            }

            totals[i] = total;
        }

        return SendBatchRaw(link, remote, slots, stride, totals[..count]);
    }

    /// <summary>
    /// Sends the packets <c>slots[(i * stride)..][..totals[i]]</c> (0: skip) to <paramref name="remote"/> in order:
    /// a run of equal sizes (plus one shorter last) in one GSO send when GSO is on, else one send each.
    /// </summary>
    private int SendBatchRaw(Link link, SocketAddress remote, ReadOnlySpan<byte> slots, int stride, ReadOnlySpan<int> totals)
    {
        var socket = _socket;
        if (socket is null)
        {
            return 0;
        }

        var sent = 0;
        var i = 0;
        while (i < totals.Length)
        {
            var size = totals[i];
            if (size == 0)
            {
                i++;
                continue;
            }

            var j = i + 1;
            var bytes = size;
            if (_gso)
            {
                while (j < totals.Length && j - i < UdpOffload.MaxSegments && totals[j] == size && bytes + size <= UdpOffload.MaxGsoBytes)
                {
                    bytes += size;
                    j++;
                }

                if (j < totals.Length && j - i < UdpOffload.MaxSegments && totals[j] > 0 && totals[j] < size && bytes + totals[j] <= UdpOffload.MaxGsoBytes)
                {
                    bytes += totals[j];
                    j++;
                }
            }

            if (j - i > 1)
            {
                var result = UdpOffload.SendSegments(socket, remote, slots, stride, totals, i, j - i, size);
                if (result == UdpOffload.SendResult.Sent)
                {
                    var n = j - i;
                    Interlocked.Increment(ref Statistics.GsoSendsField);
                    Interlocked.Add(ref Statistics.PacketsSentField, n);
                    Interlocked.Add(ref Statistics.BytesSentField, bytes);
                    Interlocked.Add(ref link.PacketsSent, n);
                    Interlocked.Add(ref link.BytesSent, bytes);
                    sent += n;
                    i = j;
                    continue;
                }

                if (result == UdpOffload.SendResult.Unsupported && _gso)
                {
                    _gso = false;
                    Log.GsoDisabled(_logger);
                }
            }

            // One by one: a single packet, no GSO, or a GSO send that failed (nothing of it was sent).
            for (; i < j; i++)
            {
                if (totals[i] > 0 && SendRaw(link, slots.Slice(i * stride, totals[i]), remote))
                {
                    sent++;
                }
            }
        }

        return sent;
    }

    private void SendControl(Link link, LinkSession session, ReadOnlySpan<byte> body)
    {
        if (link.Remote is not { } remote)
        {
            return;
        }

        Span<byte> packet = stackalloc byte[LinkLimits.TransportHeaderLength + body.Length + LinkLimits.TagLength];
        var counter = session.NextCounter();
        new LinkTransportHeader(LinkPacketType.Control, session.RemoteIndex, counter).WriteTo(packet);
        try
        {
            session.SendKey.Seal(counter, packet[..LinkLimits.TransportHeaderLength], body, packet[LinkLimits.TransportHeaderLength..]);
        }
        catch (ObjectDisposedException)
        {
            return;
        }

        SendRaw(link, packet, remote);
    }

    private bool SendRaw(Link link, ReadOnlySpan<byte> packet, SocketAddress remote)
    {
        if (!SendRawTo(packet, remote))
        {
            return false;
        }

        Interlocked.Increment(ref link.PacketsSent);
        Interlocked.Add(ref link.BytesSent, packet.Length);
        return true;
    }

    private bool SendRawTo(ReadOnlySpan<byte> packet, SocketAddress remote)
    {
        var socket = _socket;
        if (socket is null)
        {
            return false;
        }

        try
        {
            socket.SendTo(packet, SocketFlags.None, remote);
        }
        catch (Exception ex) when (ex is SocketException or ObjectDisposedException)
        {
            Drop(ref Statistics.SendFailedField);
            return false;
        }

        Interlocked.Increment(ref Statistics.PacketsSentField);
        Interlocked.Add(ref Statistics.BytesSentField, packet.Length);
        return true;
    }

    // ---- Initiator handshake ----------------------------------------------------------------

    private void SendInitLocked(Link link)
    {
        if (link.Pending is { } old)
        {
            _pendingByIndex.TryRemove(old.LocalIndex, out _);
            old.Dispose();
            link.Pending = null;
        }

        var aead = AeadForAttempt(link.Attempts);
        var index = AllocateIndex();
        var state = new HandshakeState(HandshakePattern.IK, true, Secp256k1Dh.Instance, aead, LinkPrologue(aead), _staticKey, link.Peer.ToArray());
        Span<byte> packet = stackalloc byte[LinkLimits.HandshakeInitLength];
        packet[0] = (byte)LinkPacketType.HandshakeInit;
        packet[1] = LinkLimits.Version;
        packet[2] = (byte)aead;
        packet[3] = 0;
        Span<byte> body = stackalloc byte[12];
        BinaryPrimitives.WriteUInt32BigEndian(body, index);
        BinaryPrimitives.WriteUInt64BigEndian(body[4..], NextHandshakeTimestamp());
        const int macAt = LinkLimits.HandshakeInitMac1Offset;
        const int mac2At = LinkLimits.HandshakeInitMac2Offset;
        var written = state.WriteMessage(body, packet[4..macAt]);
        if (4 + written != macAt)
        {
            state.Dispose();
            throw new InvalidOperationException("unexpected handshake init length");
        }

        WriteMac1(Mac1Key(link.Peer), packet[..macAt], packet[macAt..mac2At]);
        // mac2 proves our address to a responder under load, with the cookie it sent us (valid 2 minutes).
        if (link.Cookie is { } cookie && _time.GetElapsedTime(link.CookieAt) < TimeSpan.FromSeconds(110))
        {
            WriteMac1(cookie, packet[..mac2At], packet[mac2At..]);
        }
        else
        {
            packet[mac2At..].Clear();
        }

        link.Pending = new PendingLinkHandshake(index, state, aead, packet[macAt..mac2At].ToArray());
        _pendingByIndex[index] = link;
        link.Attempts++;
        link.NextAttemptAt = _time.GetTimestamp() + ToTicks(_options.HandshakeRetryInterval);
        if (link.Remote is { } remote)
        {
            SendRaw(link, packet, remote);
        }
    }

    private long ToTicks(TimeSpan span) => (long)(span.TotalSeconds * _time.TimestampFrequency);

    /// <summary>Drops keys and pending handshake; returns true when a LinkDown event is due (it was up, or someone waited).</summary>
    private bool MarkDownLocked(Link link, LinkState state, string reason)
    {
        var wasUp = link.State == LinkState.Up;
        var waited = link.UpSignal is not null;
        link.State = state;
        if (link.Pending is { } pending)
        {
            _pendingByIndex.TryRemove(pending.LocalIndex, out _);
            pending.Dispose();
            link.Pending = null;
        }

        foreach (var session in new[] { link.Current, link.Previous, link.Next })
        {
            if (session is not null)
            {
                _sessionsByIndex.TryRemove(new KeyValuePair<uint, LinkSession>(session.LocalIndex, session));
                session.Dispose();
            }
        }

        link.Current = null;
        link.Previous = null;
        link.Next = null;
        link.SrttSeconds = null;
        link.LastRttSeconds = null;
        Array.Clear(link.ProbeSentAt);
        if (link.UpSignal is { } signal)
        {
            signal.TrySetException(reason.Contains("timed out", StringComparison.Ordinal)
                ? new TimeoutException($"link to {link.Peer}: {reason}")
                : new IOException($"link to {link.Peer}: {reason}"));
            link.UpSignal = null;
        }

        return wasUp || waited;
    }

    // ---- Maintenance ------------------------------------------------------------------------

    private async Task MaintenanceLoopAsync(CancellationToken cancellationToken)
    {
        using var timer = new PeriodicTimer(_options.TickInterval, _time);
        var nextSweep = 0L;
        while (await timer.WaitForNextTickAsync(cancellationToken))
        {
            try
            {
                var now = _time.GetTimestamp();
                foreach (var link in _links.Values)
                {
                    TickLink(link, now);
                }

                foreach (var session in _sessions.Values)
                {
                    session.Tick(now);
                }

                if (now >= nextSweep)
                {
                    _rules.Sweep();
                    nextSweep = now + _time.TimestampFrequency;
                }
            }
            catch (Exception ex)
            {
                Log.MaintenanceFailed(_logger, ex);
            }
        }
    }

    private void TickLink(Link link, long now)
    {
        string? downReason = null;
        lock (link.Gate)
        {
            if (link.Pending is not null)
            {
                if (_time.GetElapsedTime(link.HandshakeStartedAt, now) > _options.HandshakeTimeout)
                {
                    downReason = $"handshake timed out after {link.Attempts} attempts";
                    if (!MarkDownLocked(link, LinkState.Down, downReason))
                    {
                        downReason = null;
                    }
                }
                else if (now >= link.NextAttemptAt)
                {
                    SendInitLocked(link);
                }
            }
            else if (link.State == LinkState.Connecting && _time.GetElapsedTime(link.HandshakeStartedAt, now) > _options.HandshakeTimeout)
            {
                // Responder side whose keys the initiator never confirmed.
                downReason = MarkDownLocked(link, LinkState.Down, "handshake not confirmed") ? "handshake not confirmed" : null;
            }

            if (link.State == LinkState.Up && link.Current is { } session)
            {
                if (_time.GetElapsedTime(link.LastReceivedAt, now) > _options.DeadAfter)
                {
                    downReason = $"no packet for {_options.DeadAfter.TotalSeconds:0.#} s";
                    MarkDownLocked(link, LinkState.Down, downReason);
                }
                else
                {
                    if (now >= link.NextProbeAt)
                    {
                        SendProbeLocked(link, session, now);
                    }

                    if (link.Initiator && link.Pending is null && _time.GetElapsedTime(session.CreatedAt, now) > _options.RekeyAfter)
                    {
                        // Fresh ephemeral keys; the current ones keep working until the response arrives.
                        link.Attempts = 0;
                        link.HandshakeStartedAt = now;
                        SendInitLocked(link);
                    }
                }
            }
        }

        if (downReason is not null)
        {
            RaiseLinkDown(link, downReason);
        }
    }

    private void SendProbeLocked(Link link, LinkSession session, long now)
    {
        var id = ++link.NextProbeId;
        var slot = (int)(id % (uint)_options.ProbeWindow);
        link.ProbeIds[slot] = id;
        link.ProbeSentAt[slot] = now;
        link.ProbeAnswered[slot] = false;
        link.NextProbeAt = now + ToTicks(_options.ProbeInterval);
        Span<byte> body = stackalloc byte[13];
        body[0] = (byte)LinkControlKind.Probe;
        BinaryPrimitives.WriteUInt32BigEndian(body[1..], id);
        BinaryPrimitives.WriteInt64BigEndian(body[5..], now);
        SendControl(link, session, body);
    }

    private void OnProbeReply(Link link, uint id)
    {
        lock (link.Gate)
        {
            var slot = (int)(id % (uint)_options.ProbeWindow);
            if (link.ProbeIds[slot] != id || link.ProbeAnswered[slot] || link.ProbeSentAt[slot] == 0)
            {
                return;
            }

            link.ProbeAnswered[slot] = true;
            var rtt = _time.GetElapsedTime(link.ProbeSentAt[slot]).TotalSeconds;
            link.LastRttSeconds = rtt;
            link.SrttSeconds = link.SrttSeconds is { } s ? (s * 7 + rtt) / 8 : rtt;
        }
    }

    /// <summary>Fraction of probes in the window, old enough to judge, that got no reply.</summary>
    private double LossLocked(Link link, long now)
    {
        int judged = 0, lost = 0;
        for (var i = 0; i < _options.ProbeWindow; i++)
        {
            if (link.ProbeSentAt[i] == 0)
            {
                continue;
            }

            if (link.ProbeAnswered[i])
            {
                judged++;
            }
            else if (_time.GetElapsedTime(link.ProbeSentAt[i], now) > _options.ProbeTimeout)
            {
                judged++;
                lost++;
            }
        }

        return judged == 0 ? 0 : (double)lost / judged;
    }
}
