using Skywire.Protocol.Links;
using Skywire.Protocol.Sessions;

namespace Skywire.Core.Sessions;

/// <summary>
/// The data path of a session (docs/protocol.md §6.1 "Data"): seals datagrams into Data packets with the current keys
/// (the peer's index and the counter in the header; the counter is the nonce, no associated data) and hands them to the
/// first hop, one by one or as a batch; opens received Data packets in place with the one set of keys their receiver
/// index names (never by trying keys in turn) and the replay window. Counts what it drops.
/// </summary>
/// <remarks>Thread-safe and allocation-free: any thread may send while the receive thread opens.</remarks>
internal sealed class SessionDataPath
{
    private const int BatchSlots = 16;

    // One scratch area per thread: a session's batch is sealed and sent within one call on one thread.
    [ThreadStatic]
    private static byte[]? t_batch;

    private readonly IRoutedSender _sender;
    private readonly SessionKeyRing _keys;
    private readonly SecureSessionStatistics _statistics;

    private readonly ulong _rejectAfterMessages;

    public SessionDataPath(IRoutedSender sender, SessionKeyRing keys, SecureSessionStatistics statistics, ulong rejectAfterMessages)
    {
        _sender = sender;
        _keys = keys;
        _statistics = statistics;
        _rejectAfterMessages = rejectAfterMessages;
        MaxDatagramSize = SessionLimits.MaxDatagram(sender.MaxUdpPayload);
    }

    /// <summary>Largest plaintext datagram.</summary>
    public int MaxDatagramSize { get; }

    /// <summary>Seals and sends one datagram on <paramref name="route"/>; dropped (and counted) without keys, too large, or when the first hop is down.</summary>
    public void Send(SessionRoute route, ReadOnlySpan<byte> datagram)
    {
        var keys = _keys.Current;
        if (keys is null)
        {
            Interlocked.Increment(ref _statistics.DroppedNotEstablished);
            return;
        }

        if (datagram.Length > MaxDatagramSize)
        {
            Interlocked.Increment(ref _statistics.DroppedTooLarge);
            return;
        }

        Span<byte> packet = stackalloc byte[_sender.MaxUdpPayload];
        var payload = packet[LinkLimits.RoutedHeaderLength..];
        var counter = keys.NextCounter();
        if (counter >= _rejectAfterMessages)
        {
            Interlocked.Increment(ref _statistics.DroppedKeysExhausted);
            return;
        }

        SessionLimits.WriteDataHeader(payload, keys.RemoteIndex, counter);
        try
        {
            keys.Transport.Send.Seal(counter, [], datagram, payload[SessionLimits.DataHeaderLength..]);
        }
        catch (ObjectDisposedException)
        {
            Interlocked.Increment(ref _statistics.DroppedNotEstablished);
            return;
        }

        if (_sender.SendRouted(route.OutLink, route.OutRoute, packet, datagram.Length + SessionLimits.DataOverhead))
        {
            Interlocked.Increment(ref _statistics.DatagramsSent);
            Interlocked.Add(ref _statistics.BytesSent, datagram.Length);
        }
        else
        {
            Interlocked.Increment(ref _statistics.DroppedSendFailed);
        }
    }

    /// <summary>
    /// Seals <paramref name="count"/> datagrams into one scratch area and hands them to the data plane in one call, which
    /// sends equal-size runs with UDP GSO when it can. Same semantics per datagram as <see cref="Send"/>.
    /// </summary>
    public void SendBatch(SessionRoute route, byte[][] buffers, int[] lengths, int count)
    {
        var keys = _keys.Current;
        if (keys is null)
        {
            Interlocked.Add(ref _statistics.DroppedNotEstablished, count);
            return;
        }

        var stride = _sender.MaxUdpPayload;
        var scratch = t_batch is { } b && b.Length >= stride * count ? b : (t_batch = new byte[stride * Math.Max(count, BatchSlots)]);
        Span<int> payloadLengths = stackalloc int[count];
        var sealedCount = 0;
        long bytes = 0;
        for (var i = 0; i < count; i++)
        {
            var datagram = buffers[i].AsSpan(0, lengths[i]);
            if (datagram.Length > MaxDatagramSize)
            {
                Interlocked.Increment(ref _statistics.DroppedTooLarge);
                continue;
            }

            var payload = scratch.AsSpan((sealedCount * stride) + LinkLimits.RoutedHeaderLength, stride - LinkLimits.RoutedHeaderLength);
            var counter = keys.NextCounter();
            if (counter >= _rejectAfterMessages)
            {
                Interlocked.Add(ref _statistics.DroppedKeysExhausted, count - i);
                break;
            }

            SessionLimits.WriteDataHeader(payload, keys.RemoteIndex, counter);
            try
            {
                keys.Transport.Send.Seal(counter, [], datagram, payload[SessionLimits.DataHeaderLength..]);
            }
            catch (ObjectDisposedException)
            {
                Interlocked.Add(ref _statistics.DroppedNotEstablished, count - i);
                break;
            }

            payloadLengths[sealedCount++] = datagram.Length + SessionLimits.DataOverhead;
            bytes += datagram.Length;
        }

        if (sealedCount == 0)
        {
            return;
        }

        var sent = _sender.SendRoutedBatch(route.OutLink, route.OutRoute, scratch, stride, payloadLengths[..sealedCount], sealedCount);
        Interlocked.Add(ref _statistics.DatagramsSent, sent);
        Interlocked.Add(ref _statistics.BytesSent, sent == sealedCount ? bytes : bytes * sent / sealedCount);
        Interlocked.Add(ref _statistics.DroppedSendFailed, sealedCount - sent);
    }

    /// <summary>
    /// Opens a Data packet in place with the keys its receiver index names. Returns them and the plaintext (empty for a
    /// key confirmation); null when it is malformed, names no keys held, is replayed or fails its tag (counted).
    /// </summary>
    public SessionKeys? Open(Span<byte> payload, out Span<byte> plaintext)
    {
        plaintext = default;
        if (!SessionLimits.TryReadDataHeader(payload, out var receiver, out var counter))
        {
            Interlocked.Increment(ref _statistics.DroppedMalformed);
            return null;
        }

        var keys = _keys.Find(receiver);
        if (keys is null)
        {
            Interlocked.Increment(ref _statistics.DroppedUnknownIndex);
            return null;
        }

        var ciphertext = payload[SessionLimits.DataHeaderLength..];
        var opened = ciphertext[..^SessionLimits.TagLength];
        if (!keys.TryOpen(counter, ciphertext, opened, out var replay))
        {
            Interlocked.Increment(ref replay ? ref _statistics.DroppedReplay : ref _statistics.DroppedBadTag);
            return null;
        }

        plaintext = opened;
        return keys;
    }
}
