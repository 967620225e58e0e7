using Skywire.Core.Crypto;
using Skywire.Protocol.Metering;

namespace Skywire.Core.Metering;

/// <summary>When receipts are made and how much loss a sender tolerates (docs/metering.md "Hop meters").</summary>
public sealed record HopMeterOptions
{
    /// <summary>The defaults: a receipt every 4 MiB or every 10 s while counters move; 2 % + 64 frames in flight.</summary>
    public static HopMeterOptions Default { get; } = new();

    /// <summary>Make a receipt once this many bytes arrived since the last one.</summary>
    public ulong BytesPerReceipt { get; init; } = 4 * 1024 * 1024;

    /// <summary>Make a receipt this long after the last one if anything arrived since.</summary>
    public TimeSpan Interval { get; init; } = TimeSpan.FromSeconds(10);

    /// <summary>The sender countersigns only if the receiver's figure is at least sent − sent × this / 100 − <see cref="InFlightFrames"/> frames' worth.</summary>
    public int LossPercent { get; init; } = 2;

    /// <summary>Frames that may still be in flight when the receiver reads its counters.</summary>
    public ulong InFlightFrames { get; init; } = 64;

    /// <summary>
    /// How far the two ends' clocks may differ. A sender that samples its counters (<see cref="HopSender.Sample"/>) checks
    /// the loss bound against what it had sent this long before the receiver read its counters, not against what it has
    /// sent by the time the proposal arrives (on a busy route that would look like loss).
    /// </summary>
    public TimeSpan ClockSkew { get; init; } = TimeSpan.FromSeconds(2);
}

/// <summary>
/// The receiving end of one hop and direction of a metered route: counts what arrives (called from the data path,
/// lock-free) and proposes cumulative receipts signed with the node's key when they are due; keeps the latest one
/// its sender countersigned (the one to persist and upload).
/// </summary>
public sealed class HopReceiver
{
    private readonly RouteTerms _terms;
    private readonly byte[] _termsId;
    private readonly KeyPair _key;
    private readonly HopMeterOptions _options;
    private readonly TimeProvider _time;
    private readonly IHopCounter? _counter;
    private long _bytes;
    private long _frames;
    private ulong _seq;
    private ulong _proposedBytes;
    private long _proposedAt;
    private bool _final;

    /// <summary>
    /// Creates the meter; <paramref name="key"/> must be the hop's receiver in the terms. With <paramref name="counter"/>
    /// it reads the data path's counters (a rule's) instead of counting through <see cref="Count"/>.
    /// </summary>
    public HopReceiver(RouteTerms terms, int hop, MeteringDirection direction, KeyPair key, HopMeterOptions? options = null, TimeProvider? time = null, IHopCounter? counter = null)
    {
        ArgumentNullException.ThrowIfNull(terms);
        ArgumentNullException.ThrowIfNull(key);
        if (hop < 0 || hop >= terms.HopCount || terms.ReceiverOf(hop, direction) != key.Public)
        {
            throw new ArgumentException("This key is not the receiver of that hop.", nameof(key));
        }

        (_terms, _termsId, Hop, Direction, _key) = (terms, terms.TermsId, hop, direction, key);
        _options = options ?? HopMeterOptions.Default;
        _time = time ?? TimeProvider.System;
        _counter = counter;
        _proposedAt = _time.GetTimestamp();
    }

    /// <summary>The hop.</summary>
    public int Hop { get; }

    /// <summary>The direction.</summary>
    public MeteringDirection Direction { get; }

    /// <summary>The latest receipt the sender countersigned, or null.</summary>
    public HopReceipt? Latest { get; private set; }

    /// <summary>True after the final receipt was proposed.</summary>
    public bool Closed => _final;

    /// <summary>Bytes counted so far.</summary>
    public ulong Bytes => _counter?.Bytes ?? (ulong)Volatile.Read(ref _bytes);

    /// <summary>Counts one received route frame of <paramref name="bytes"/> bytes (data path; thread-safe).</summary>
    public void Count(int bytes)
    {
        Interlocked.Add(ref _bytes, bytes);
        Interlocked.Increment(ref _frames);
    }

    /// <summary>A new receipt signed by this receiver when one is due (or at close), else null. One caller at a time.</summary>
    public HopReceipt? Propose(bool closing = false)
    {
        if (_final)
        {
            return null;
        }

        var bytes = _counter?.Bytes ?? (ulong)Volatile.Read(ref _bytes);
        var frames = _counter?.Frames ?? (ulong)Volatile.Read(ref _frames);
        var moved = bytes - _proposedBytes;
        var due = closing || moved >= _options.BytesPerReceipt || (moved > 0 && _time.GetElapsedTime(_proposedAt) >= _options.Interval);
        if (!due)
        {
            return null;
        }

        _seq++;
        _proposedBytes = bytes;
        _proposedAt = _time.GetTimestamp();
        _final = closing;
        var receipt = new HopReceipt
        {
            TermsId = _termsId, Hop = Hop, Direction = Direction, Seq = _seq, Final = closing,
            EndMs = _time.GetUtcNow().ToUnixTimeMilliseconds(), Bytes = bytes, Frames = Math.Min(frames, bytes),
        };
        return MeteringSigner.SignAsReceiver(receipt, _terms, _key);
    }

    /// <summary>Takes the sender's countersigned copy; false when it is not a valid countersignature of a receipt this receiver proposed.</summary>
    public bool Accept(HopReceipt countersigned)
    {
        ArgumentNullException.ThrowIfNull(countersigned);
        if (countersigned.Hop != Hop || countersigned.Direction != Direction || countersigned.Seq > _seq
            || MeteringSigner.VerifyReceipt(countersigned, _terms, _termsId) is not null)
        {
            return false;
        }

        if (Latest is null || countersigned.Seq > Latest.Seq)
        {
            Latest = countersigned;
        }

        return true;
    }
}

/// <summary>
/// The sending end of one hop and direction: counts what it sends and countersigns the receiver's proposals only
/// when they are plausible — not more than it sent, not less than the loss bound allows, seq rising, counters never
/// falling. A figure below the bound is not signed: it becomes a loss status, never a payment.
/// </summary>
public sealed class HopSender
{
    private readonly RouteTerms _terms;
    private readonly byte[] _termsId;
    private readonly KeyPair _key;
    private readonly HopMeterOptions _options;
    private readonly IHopCounter? _counter;
    private readonly Queue<(long AtMs, ulong Frames)> _samples = new();
    private long _bytes;
    private long _frames;
    private HopReceipt? _last;
    private bool _sampled;

    /// <summary>
    /// Creates the meter; <paramref name="key"/> must be the hop's sender in the terms. With <paramref name="counter"/>
    /// it reads the data path's counters (a rule's or a send meter's) instead of counting through <see cref="Count"/>.
    /// </summary>
    public HopSender(RouteTerms terms, int hop, MeteringDirection direction, KeyPair key, HopMeterOptions? options = null, IHopCounter? counter = null)
    {
        ArgumentNullException.ThrowIfNull(terms);
        ArgumentNullException.ThrowIfNull(key);
        if (hop < 0 || hop >= terms.HopCount || terms.SenderOf(hop, direction) != key.Public)
        {
            throw new ArgumentException("This key is not the sender of that hop.", nameof(key));
        }

        (_terms, _termsId, Hop, Direction, _key) = (terms, terms.TermsId, hop, direction, key);
        _options = options ?? HopMeterOptions.Default;
        _counter = counter;
    }

    /// <summary>The hop.</summary>
    public int Hop { get; }

    /// <summary>The direction.</summary>
    public MeteringDirection Direction { get; }

    /// <summary>The latest receipt this sender countersigned, or null.</summary>
    public HopReceipt? Latest => _last;

    /// <summary>Bytes sent so far on this hop and direction.</summary>
    public ulong SentBytes => _counter?.Bytes ?? (ulong)Volatile.Read(ref _bytes);

    /// <summary>Counts one sent route frame (data path; thread-safe).</summary>
    public void Count(int bytes)
    {
        Interlocked.Add(ref _bytes, bytes);
        Interlocked.Increment(ref _frames);
    }

    /// <summary>
    /// Remembers the frames sent by <paramref name="atMs"/> (Unix ms; the live agent calls it every tick). Once sampled,
    /// the loss bound is checked against the last sample at least <see cref="HopMeterOptions.ClockSkew"/> older than the
    /// receipt, so traffic sent after the receiver read its counters is not mistaken for loss. One caller at a time.
    /// </summary>
    public void Sample(long atMs)
    {
        _sampled = true;
        _samples.Enqueue((atMs, _counter?.Frames ?? (ulong)Volatile.Read(ref _frames)));
        var horizon = atMs - (long)(_options.ClockSkew.TotalMilliseconds * 4) - 60_000;
        while (_samples.Count > 2 && _samples.Peek().AtMs < horizon)
        {
            _samples.Dequeue();
        }
    }

    private ulong FramesForLossBound(HopReceipt proposal, ulong now)
    {
        if (!_sampled)
        {
            return now;
        }

        var before = proposal.EndMs - (long)_options.ClockSkew.TotalMilliseconds;
        var frames = 0UL;
        foreach (var (atMs, sampled) in _samples)
        {
            if (atMs <= before)
            {
                frames = sampled;
            }
        }

        return Math.Min(frames, now);
    }

    /// <summary>The countersigned receipt, or null with <paramref name="reason"/>. One caller at a time.</summary>
    public HopReceipt? Countersign(HopReceipt proposal, out string? reason)
    {
        ArgumentNullException.ThrowIfNull(proposal);
        var sent = _counter?.Bytes ?? (ulong)Volatile.Read(ref _bytes);
        var sentFrames = _counter?.Frames ?? (ulong)Volatile.Read(ref _frames);
        reason = proposal.Hop != Hop || proposal.Direction != Direction || !proposal.TermsId.AsSpan().SequenceEqual(_termsId) ? "another hop's receipt"
            : _last is not null && proposal.Seq <= _last.Seq ? $"seq {proposal.Seq} not above {_last.Seq}"
            : _last is { Final: true } ? "the hop already closed"
            : _last is not null && (proposal.Bytes < _last.Bytes || proposal.Frames < _last.Frames) ? "counters went down"
            : proposal.Bytes > sent || proposal.Frames > sentFrames ? $"claims {proposal.Bytes} B, only {sent} B sent"
            : LossBeyondBound(proposal, FramesForLossBound(proposal, sentFrames)) is { } lost ? $"loss: {proposal.Frames} of {lost} frames arrived"
            : null;
        if (reason is not null)
        {
            return null;
        }

        try
        {
            var signed = MeteringSigner.CountersignAsSender(proposal, _terms, _key);
            _last = signed;
            return signed;
        }
        catch (ArgumentException e)
        {
            reason = e.Message;
            return null;
        }
    }

    private ulong? LossBeyondBound(HopReceipt proposal, ulong sentFrames) =>
        proposal.Frames + sentFrames * (ulong)_options.LossPercent / 100 + _options.InFlightFrames < sentFrames ? sentFrames : null;
}
