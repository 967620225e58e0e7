using Skywire.Core.Sessions.Mux;

namespace Skywire.Tests.Mux;

/// <summary>
/// BBR alone on a simulated bottleneck (deterministic event loop in microseconds, seeded loss: no threads, no clock):
/// random loss does not make it collapse, and once past Startup it does not overfill the bottleneck queue.
/// </summary>
public sealed class BbrCongestionControlTests
{
    [Theory]
    [InlineData(20, 0.0)]
    [InlineData(100, 0.0)]
    [InlineData(100, 0.01)]
    [InlineData(100, 0.05)]
    [InlineData(300, 0.01)]
    [InlineData(300, 0.05)]
    public void RandomLoss_KeepsMostOfTheBottleneck(int rttMs, double loss)
    {
        // 5 MB/s of 1400-byte packets (3571 packets a second), a one-BDP drop-tail queue.
        var rate = 5_000_000.0 / 1400 / 1e6; // packets per µs
        var result = Simulate(rate, rttMs * 1000L, loss, seconds: 30);

        // Delivered over the last 20 s: at least 85 % of the bottleneck whatever the random loss (a loss-based window
        // would fall to a few per cent at 5 % and 300 ms: Mathis' 1.22 / sqrt(p) packets per RTT).
        Assert.True(result.Goodput >= 0.85 * rate * (1 - loss), $"goodput {result.Goodput / rate:P0} of the bottleneck, {result.QueueDrops} queue drops");
        Assert.True(result.QueueDrops <= result.Sent / 100, $"{result.QueueDrops} of {result.Sent} packets overflowed the queue after Startup");
    }

    private static (double Goodput, long Sent, long QueueDrops) Simulate(double rate, long rtt, double loss, int seconds)
    {
        var bbr = new BbrCongestionControl(10, 100_000);
        var random = new Random(7);
        var acks = new PriorityQueue<long, long>(); // packet number by arrival time of its acknowledgement
        var sent = new List<(long At, PacketRateState Rate, bool Acked, bool Lost)>();
        var queueLimit = Math.Max(16, rate * rtt); // one BDP
        double busyUntil = 0, budget = 10;
        long now = 0, lastRefill = 0, inFlight = 0, largestAcked = -1, queueDrops = 0, srtt = 0;
        var end = seconds * 1_000_000L;
        while (now < end)
        {
            // Acknowledgements due now.
            var any = false;
            long rttSample = -1;
            while (acks.TryPeek(out var pn, out var at) && at <= now)
            {
                acks.Dequeue();
                var p = sent[(int)pn];
                if (p.Lost)
                {
                    bbr.OnLatePacketAcked();
                    continue;
                }

                sent[(int)pn] = p with { Acked = true };
                inFlight--;
                bbr.OnPacketAcked(p.Rate, p.At, now);
                any = true;
                if (pn > largestAcked)
                {
                    largestAcked = pn;
                    rttSample = now - p.At;
                    srtt = srtt == 0 ? rttSample : ((7 * srtt) + rttSample) / 8;
                }
            }

            if (any)
            {
                // Packet threshold 3 (RFC 9002): older unacknowledged packets are lost.
                for (var i = (int)Math.Max(0, largestAcked - 64); i <= largestAcked - 3; i++)
                {
                    if (!sent[i].Acked && !sent[i].Lost)
                    {
                        sent[i] = sent[i] with { Lost = true };
                        inFlight--;
                        bbr.OnPacketLost();
                    }
                }

                bbr.OnAckProcessed(now, rttSample, srtt, (int)inFlight);
            }

            // Send what the window and the pacer allow.
            var pacing = bbr.PacingRate;
            var cap = Math.Max(10, pacing * 4000);
            budget = pacing <= 0 ? double.MaxValue : Math.Min(Math.Min(budget, cap) + (pacing * (now - lastRefill)), cap);
            lastRefill = now;
            while (inFlight < (int)bbr.Cwnd && budget >= 1)
            {
                budget--;
                var state = default(PacketRateState);
                bbr.OnPacketSent(ref state, now, (int)inFlight);
                var pn = sent.Count;
                sent.Add((now, state, false, false));
                inFlight++;
                if (random.NextDouble() < loss)
                {
                    continue; // lost on the wire
                }

                var start = Math.Max(now, busyUntil);
                if ((start - now) * rate > queueLimit)
                {
                    queueDrops += now >= (seconds - 20) * 1_000_000L ? 1 : 0; // steady state only: Startup overshoots by design
                    continue;
                }

                busyUntil = start + (1 / rate);
                acks.Enqueue(pn, (long)busyUntil + rtt);
            }

            now += 100;
        }

        var from = (seconds - 20) * 1_000_000L;
        var delivered = sent.Count(p => p.Acked && p.At >= from && p.At < end - rtt);
        return (delivered / (double)(end - rtt - from), sent.Count, queueDrops);
    }
}
