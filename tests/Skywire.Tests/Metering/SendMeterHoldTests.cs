using Skywire.Core.Crypto;
using Skywire.Core.Forwarding;
using Skywire.Protocol;
using Skywire.Protocol.Links;

namespace Skywire.Tests.Metering;

/// <summary>
/// The source's send gate holds packets at its cap instead of dropping them (docs/metering.md "Caps"): in order,
/// bounded, released as the cap rises, dropped only beyond the bound or after the route is gone.
/// </summary>
public sealed class SendMeterHoldTests
{
    private const int Payload = 1000;

    private sealed class Recorder : IHeldPacketSender
    {
        public List<byte> Sent { get; } = [];

        public bool SendHeld(PubKey outLink, uint routeId, Span<byte> packet, int payloadLength)
        {
            Assert.Equal(payloadLength + LinkLimits.RoutedOverhead, packet.Length);
            Sent.Add(packet[LinkLimits.RoutedHeaderLength]); // the packet's number, first payload byte
            return true;
        }
    }

    private static byte[] Packet(byte number)
    {
        var packet = new byte[Payload + LinkLimits.RoutedOverhead];
        packet.AsSpan(LinkLimits.RoutedHeaderLength, Payload).Fill(number);
        return packet;
    }

    private static SendMeter Meter(long cap)
    {
        using var key = KeyPair.Generate();
        return new SendMeter(key.Public, 7) { Cap = cap };
    }

    [Fact]
    public void AtTheCap_PacketsWait_InOrder_AndLeaveAsTheCapRises()
    {
        var meter = Meter(cap: 2 * Payload);
        var sender = new Recorder();
        meter.Count(2, 2 * Payload); // what was sent directly, up to the cap

        for (byte i = 1; i <= 5; i++)
        {
            Assert.True(meter.MustHold(Payload));
            Assert.True(meter.Hold(sender, Packet(i), Payload));
        }

        Assert.Empty(sender.Sent);
        Assert.Equal(5, meter.Waiting);
        Assert.Equal(5, meter.Held);

        Volatile.Write(ref meter.Cap, 4 * Payload); // room for two
        Assert.Equal(2, meter.Release());
        Assert.Equal([1, 2], sender.Sent);
        Assert.True(meter.MustHold(1), "a new packet must queue behind the ones still waiting");

        Volatile.Write(ref meter.Cap, 100 * Payload);
        Assert.Equal(3, meter.Release());
        Assert.Equal([1, 2, 3, 4, 5], sender.Sent);
        Assert.Equal(7 * Payload, meter.Bytes);
        Assert.Equal(7, meter.Packets);
        Assert.False(meter.MustHold(Payload));
        Assert.Equal(0, meter.Capped);
    }

    [Fact]
    public void TheHoldIsBounded_BeyondItPacketsAreDroppedAndCounted()
    {
        var meter = Meter(cap: 0);
        var sender = new Recorder();
        for (var i = 0; i < SendMeter.HoldLimit; i++)
        {
            Assert.True(meter.Hold(sender, Packet(1), Payload));
        }

        Assert.False(meter.Hold(sender, Packet(2), Payload));
        Assert.Equal(SendMeter.HoldLimit, meter.Waiting);
        Assert.Equal(1, meter.Capped);
    }

    [Fact]
    public void ACapRaisedBeforeTheHold_ReleasesAtOnce()
    {
        // The forwarder saw the old cap, the agent raised it (and found nothing to release) before the packet was queued.
        var meter = Meter(cap: 10 * Payload);
        var sender = new Recorder();
        Assert.True(meter.Hold(sender, Packet(9), Payload));
        Assert.Equal([9], sender.Sent);
        Assert.Equal(0, meter.Waiting);
    }

    [Fact]
    public void ADiscardedMeter_DropsWhatWaits_AndHoldsNoMore()
    {
        var meter = Meter(cap: 0);
        var sender = new Recorder();
        Assert.True(meter.Hold(sender, Packet(1), Payload));
        meter.Discard();
        Assert.Equal(0, meter.Waiting);
        Assert.False(meter.Hold(sender, Packet(2), Payload));
        Volatile.Write(ref meter.Cap, long.MaxValue);
        Assert.Equal(0, meter.Release());
        Assert.Empty(sender.Sent);
    }
}
