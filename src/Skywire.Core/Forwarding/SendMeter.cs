using System.Buffers;
using Skywire.Core.Metering;
using Skywire.Protocol;
using Skywire.Protocol.Links;

namespace Skywire.Core.Forwarding;

/// <summary>Sends a packet that a <see cref="SendMeter"/> held at its cap, once the cap allows it (the forwarder).</summary>
internal interface IHeldPacketSender
{
    /// <summary>Frames and sends the routed payload at <c>packet[20..20+payloadLength]</c>; false when dropped (link down, ...).</summary>
    bool SendHeld(PubKey outLink, uint routeId, Span<byte> packet, int payloadLength);
}

/// <summary>
/// What a metered route's end sends on (outgoing link, label): counted after each send, and gated by the cap like a
/// rule (<see cref="RuleEntry.Cap"/>). Exists only while a metered route uses the label.
/// </summary>
/// <remarks>
/// At the cap a packet is <b>held</b>, not dropped (docs/metering.md "Caps"): copied into a FIFO of at most
/// <see cref="HoldLimit"/> packets, and sent in order when the source's next authorization raises the cap
/// (<see cref="Release"/>). While packets wait, later ones queue behind them, so the session sees delay
/// (back-pressure), not loss. The hold is bounded: beyond it a packet is dropped and counted in <see cref="Capped"/>,
/// as before; the session retransmits it. Below the cap with nothing held, a send is one volatile read more.
/// </remarks>
internal sealed class SendMeter : IHopCounter
{
    /// <summary>Most packets held at the cap (about 1.5 MB at the largest UDP payload), well within a session's replay window.</summary>
    public const int HoldLimit = 1024;

    private readonly Lock _holdLock = new();
    private readonly Queue<(byte[] Packet, int PayloadLength)> _held = new();
    private int _heldCount;
    private bool _discarded;
    private IHeldPacketSender? _sender;

    public SendMeter(PubKey outLink, uint outRoute)
    {
        OutLink = outLink;
        OutRoute = outRoute;
    }

    public PubKey OutLink { get; }

    public uint OutRoute { get; }

    public long Packets;

    public long Bytes;

    public long Cap = long.MaxValue;

    /// <summary>Packets dropped at the cap (the hold was full).</summary>
    public long Capped;

    /// <summary>Packets held at the cap so far (cumulative).</summary>
    public long Held;

    /// <summary>Packets waiting now.</summary>
    public int Waiting => Volatile.Read(ref _heldCount);

    ulong IHopCounter.Bytes => (ulong)Interlocked.Read(ref Bytes);

    ulong IHopCounter.Frames => (ulong)Interlocked.Read(ref Packets);

    public bool OverCap(long bytes) => Volatile.Read(ref Bytes) + bytes > Volatile.Read(ref Cap);

    /// <summary>True when a packet of <paramref name="bytes"/> must wait: over the cap, or others wait before it.</summary>
    public bool MustHold(long bytes) => Volatile.Read(ref _heldCount) != 0 || OverCap(bytes);

    public void Count(int packets, long bytes)
    {
        Interlocked.Add(ref Packets, packets);
        Interlocked.Add(ref Bytes, bytes);
    }

    /// <summary>
    /// Holds a copy of the routed packet (<c>packet[..20+payloadLength]</c>) behind the ones already waiting; it leaves
    /// through <paramref name="sender"/> when the cap allows (at once, if it rose meanwhile). False when the hold is full
    /// or the meter was discarded: dropped, counted in <see cref="Capped"/>.
    /// </summary>
    public bool Hold(IHeldPacketSender sender, ReadOnlySpan<byte> packet, int payloadLength)
    {
        lock (_holdLock)
        {
            if (_discarded || _held.Count >= HoldLimit)
            {
                Interlocked.Increment(ref Capped);
                return false;
            }

            var copy = ArrayPool<byte>.Shared.Rent(payloadLength + LinkLimits.RoutedOverhead);
            packet[..(LinkLimits.RoutedHeaderLength + payloadLength)].CopyTo(copy);
            _held.Enqueue((copy, payloadLength));
            Volatile.Write(ref _heldCount, _held.Count);
            Interlocked.Increment(ref Held);
            _sender = sender;
            ReleaseLocked(); // the cap may have risen between the caller's check and now
            return true;
        }
    }

    /// <summary>Sends the held packets, in order, as far as the cap now allows (the cap was raised). Returns how many left the hold.</summary>
    public int Release()
    {
        if (Volatile.Read(ref _heldCount) == 0)
        {
            return 0;
        }

        lock (_holdLock)
        {
            return ReleaseLocked();
        }
    }

    /// <summary>The meter is gone (its route ended): held packets are dropped, and nothing is held any more.</summary>
    public void Discard()
    {
        lock (_holdLock)
        {
            _discarded = true;
            while (_held.TryDequeue(out var item))
            {
                ArrayPool<byte>.Shared.Return(item.Packet);
            }

            Volatile.Write(ref _heldCount, 0);
        }
    }

    private int ReleaseLocked()
    {
        var released = 0;
        while (_held.TryPeek(out var head) && !OverCap(head.PayloadLength))
        {
            _held.Dequeue();
            Volatile.Write(ref _heldCount, _held.Count);
            if (_sender!.SendHeld(OutLink, OutRoute, head.Packet.AsSpan(0, head.PayloadLength + LinkLimits.RoutedOverhead), head.PayloadLength))
            {
                Count(1, head.PayloadLength);
            }

            ArrayPool<byte>.Shared.Return(head.Packet);
            released++;
        }

        return released;
    }
}
