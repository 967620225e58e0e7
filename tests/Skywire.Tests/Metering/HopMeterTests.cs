using Microsoft.Extensions.Time.Testing;
using Skywire.Core.Metering;
using Skywire.Protocol.Metering;

namespace Skywire.Tests.Metering;

public sealed class HopMeterTests
{
    [Fact]
    public void LossyRoute_MetersProduceReceiptsTheLedgerSettlesExactly()
    {
        // Frames cross a 3-hop route with 1 % loss per hop; every hop's meters exchange receipts on cadence and at
        // close; the ledger pays exactly what the receivers counted.
        using var route = new MeteringTestData(relays: 2, window: 1UL << 30);
        var time = new FakeTimeProvider(DateTimeOffset.FromUnixTimeMilliseconds(2_000_000));
        var options = HopMeterOptions.Default with { BytesPerReceipt = 64 * 1024 };
        var hops = route.Terms.HopCount;
        var random = new Random(42);
        var ledger = Ledger.Open(new MemoryLedgerStore(), route.Manager.Public);
        ledger.Grant(route.Nodes[0].Public, 10_000_000_000, 1_000);
        ledger.OpenRoute(route.Terms.Encode(), 1_000_000);
        var counted = new ulong[hops];
        foreach (var direction in new[] { MeteringDirection.Forward, MeteringDirection.Reverse })
        {
            var receivers = Enumerable.Range(0, hops).Select(h => new HopReceiver(route.Terms, h, direction, route.Receiver(h, direction), options, time)).ToArray();
            var senders = Enumerable.Range(0, hops).Select(h => new HopSender(route.Terms, h, direction, route.Sender(h, direction), options)).ToArray();
            void Exchange(bool closing)
            {
                for (var h = 0; h < hops; h++)
                {
                    if (receivers[h].Propose(closing) is { } proposal)
                    {
                        var signed = senders[h].Countersign(proposal, out var reason);
                        Assert.True(signed is not null, reason);
                        Assert.True(receivers[h].Accept(signed));
                        Assert.Equal(LedgerStatus.Accepted, ledger.SubmitReceipt(signed.Encode(), time.GetUtcNow().ToUnixTimeMilliseconds()).Status);
                    }
                }
            }

            for (var f = 0; f < 3000; f++)
            {
                var size = random.Next(100, 1400);
                for (var step = 0; step < hops; step++)
                {
                    var h = direction == MeteringDirection.Forward ? step : hops - 1 - step;
                    senders[h].Count(size);
                    if (random.NextDouble() < 0.01)
                    {
                        break;
                    }

                    receivers[h].Count(size);
                }

                if (f % 100 == 0)
                {
                    time.Advance(TimeSpan.FromSeconds(1));
                    Exchange(closing: false);
                }
            }

            Exchange(closing: true);
            Assert.All(receivers, r => Assert.True(r.Latest!.Final));
            Assert.Null(receivers[0].Propose(closing: true));
            if (direction == MeteringDirection.Forward)
            {
                for (var h = 0; h < hops; h++)
                {
                    counted[h] = receivers[h].Latest!.Bytes;
                }
            }
        }

        ledger.CloseEpoch(route.Manager, route.Terms.ExpiresMs + Ledger.ReleaseGraceMs);
        Assert.DoesNotContain(ledger.Disputes, d => d.IsFraud);
        var r = ledger.Routes.Single();
        Assert.Equal(Settlement.Charge(counted[2], route.Terms.Relays[1].PriceForward) + Settlement.Charge(r.Bytes(1, MeteringDirection.Reverse), route.Terms.Relays[1].PriceReverse), r.Paid[2]);
    }

    [Fact]
    public void Sender_RefusesInflatedReplayedFallingAndLossyFigures()
    {
        using var route = new MeteringTestData(relays: 1);
        var time = new FakeTimeProvider();
        var receiver = new HopReceiver(route.Terms, 0, MeteringDirection.Forward, route.Nodes[1], time: time);
        var sender = new HopSender(route.Terms, 0, MeteringDirection.Forward, route.Nodes[0]);
        for (var i = 0; i < 1000; i++)
        {
            sender.Count(1000);
            receiver.Count(1000);
        }

        var first = receiver.Propose(closing: false);
        Assert.Null(first); // nothing due yet: under 4 MiB and no time passed
        time.Advance(TimeSpan.FromSeconds(11));
        var proposal = receiver.Propose()!;
        Assert.Equal(1_000_000UL, proposal.Bytes);

        var inflated = MeteringSigner.SignAsReceiver(proposal with { Bytes = 2_000_000 }, route.Terms, route.Nodes[1]);
        Assert.Null(sender.Countersign(inflated, out var why));
        Assert.Contains("only 1000000 B sent", why, StringComparison.Ordinal);
        var lossy = MeteringSigner.SignAsReceiver(proposal with { Bytes = 500_000, Frames = 500 }, route.Terms, route.Nodes[1]);
        Assert.Null(sender.Countersign(lossy, out why));
        Assert.StartsWith("loss", why, StringComparison.Ordinal);
        var forged = proposal with { ReceiverSignature = route.Nodes[0].Sign(proposal.ReceiverSigningBytes()) };
        Assert.Null(sender.Countersign(forged, out _));

        var signed = sender.Countersign(proposal, out why);
        Assert.True(signed is not null, why);
        Assert.Null(sender.Countersign(proposal, out why));
        Assert.Contains("not above", why, StringComparison.Ordinal);
        var falling = MeteringSigner.SignAsReceiver(proposal with { Seq = 5, Bytes = 10, Frames = 1 }, route.Terms, route.Nodes[1]);
        Assert.Null(sender.Countersign(falling, out why));
        Assert.Equal("counters went down", why);
        Assert.True(receiver.Accept(signed));
        Assert.False(receiver.Accept(signed with { SenderSignature = signed.ReceiverSignature }));
        Assert.Throws<ArgumentException>(() => new HopSender(route.Terms, 0, MeteringDirection.Forward, route.Nodes[1]));
    }
}
