using Microsoft.Extensions.Time.Testing;
using Skywire.Core.Sessions;
using Skywire.Protocol;
using Skywire.Protocol.Links;

namespace Skywire.Tests.Sessions;

/// <summary>
/// Two <see cref="SecureSession"/>s joined by a simulated wide-area path on a fake clock: a one-way delay, jitter,
/// loss and duplication per packet (seeded), and a hook that sees (and may drop, delay or inject) every packet.
/// Nothing sleeps: <see cref="Run"/> jumps the clock from event to event and ticks both sessions as the data plane
/// would, so a 400 ms path or a 3-minute rekey schedule takes milliseconds of real time, the same every run.
/// </summary>
internal sealed class SimulatedPath
{
    private readonly PriorityQueue<(int To, byte[] Payload), (long Due, long Seq)> _queue = new();
    private readonly SecureSession?[] _ends = new SecureSession?[2];
    private readonly Random _random;
    private long _seq;

    public SimulatedPath(TimeSpan oneWay, int seed = 1)
    {
        OneWay = oneWay;
        _random = new Random(seed);
    }

    /// <summary>The clock both sessions use.</summary>
    public FakeTimeProvider Time { get; } = new();

    public TimeSpan OneWay { get; set; }

    /// <summary>Extra delay, uniform in [0, Jitter) per packet (reorders when larger than the packet spacing).</summary>
    public TimeSpan Jitter { get; set; }

    /// <summary>Probability that a packet is lost.</summary>
    public double Loss { get; set; }

    /// <summary>Probability that a packet arrives twice (the copy one extra one-way delay later).</summary>
    public double Duplicate { get; set; }

    /// <summary>Drops every packet while true.</summary>
    public bool Blackhole { get; set; }

    /// <summary>How often both sessions are ticked (the data plane's TickInterval).</summary>
    public TimeSpan TickInterval { get; set; } = TimeSpan.FromMilliseconds(10);

    /// <summary>
    /// Sees every packet sent by end <c>from</c> (0 = initiator) before the path's faults; returns the extra delay to
    /// add, or null to drop it.
    /// </summary>
    public Func<int, byte[], TimeSpan?>? OnSend { get; set; }

    /// <summary>Every payload sent, with the time and the sending end.</summary>
    public List<(TimeSpan At, int From, byte[] Payload)> Wire { get; } = [];

    public DateTimeOffset Start { get; } = new(2030, 1, 1, 0, 0, 0, TimeSpan.Zero);

    public TimeSpan Now => Time.GetUtcNow() - Start;

    public SimulatedPath Init()
    {
        Time.SetUtcNow(Start);
        return this;
    }

    public Sender Side(int index) => new(this, index);

    public void Bind(SecureSession initiator, SecureSession responder)
    {
        _ends[0] = initiator;
        _ends[1] = responder;
    }

    /// <summary>Puts a payload on the path toward <paramref name="to"/>, arriving after <paramref name="delay"/>.</summary>
    public void Inject(int to, byte[] payload, TimeSpan delay) =>
        _queue.Enqueue((to, payload), (Time.GetUtcNow().Add(delay).UtcTicks, _seq++));

    /// <summary>Handshake inits the initiator sent so far.</summary>
    public int InitsSent => Wire.Count(w => w.From == 0 && w.Payload[0] == 0x10);

    /// <summary>Runs the clock for up to <paramref name="duration"/>, stopping early once <paramref name="until"/> holds.</summary>
    public void Run(TimeSpan duration, Func<bool>? until = null, Action? everyTick = null)
    {
        var end = Time.GetUtcNow() + duration;
        var nextTick = Time.GetUtcNow();
        while (until?.Invoke() != true)
        {
            var next = nextTick.UtcTicks;
            if (_queue.TryPeek(out _, out var head) && head.Due < next)
            {
                next = head.Due;
            }

            if (next > end.UtcTicks)
            {
                Time.SetUtcNow(end);
                return;
            }

            if (next > Time.GetUtcNow().UtcTicks)
            {
                Time.SetUtcNow(new DateTimeOffset(next, TimeSpan.Zero));
            }

            while (_queue.TryPeek(out var item, out var due) && due.Due <= Time.GetUtcNow().UtcTicks)
            {
                _queue.Dequeue();
                _ends[item.To]!.OnPacket(item.Payload);
            }

            if (Time.GetUtcNow() >= nextTick)
            {
                var now = Time.GetTimestamp();
                _ends[0]!.Tick(now);
                _ends[1]!.Tick(now);
                everyTick?.Invoke();
                nextTick = Time.GetUtcNow() + TickInterval;
            }
        }
    }

    private void Send(int from, byte[] payload)
    {
        Wire.Add((Now, from, payload.ToArray()));
        var extra = TimeSpan.Zero;
        if (OnSend is not null)
        {
            if (OnSend(from, payload) is not { } added)
            {
                return;
            }

            extra = added;
        }

        if (Blackhole || (Loss > 0 && _random.NextDouble() < Loss))
        {
            return;
        }

        var delay = OneWay + extra + (Jitter > TimeSpan.Zero ? TimeSpan.FromTicks((long)(_random.NextDouble() * Jitter.Ticks)) : TimeSpan.Zero);
        Inject(1 - from, payload, delay);
        if (Duplicate > 0 && _random.NextDouble() < Duplicate)
        {
            Inject(1 - from, payload.ToArray(), delay + OneWay);
        }
    }

    public sealed class Sender(SimulatedPath path, int index) : IRoutedSender
    {
        public int MaxUdpPayload => LinkLimits.DefaultMaxUdpPayload;

        public bool SendRouted(PubKey outLink, uint routeId, Span<byte> packet, int payloadLength)
        {
            path.Send(index, packet.Slice(LinkLimits.RoutedHeaderLength, payloadLength).ToArray());
            return true;
        }
    }
}
