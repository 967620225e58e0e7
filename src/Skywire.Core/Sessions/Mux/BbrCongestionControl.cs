namespace Skywire.Core.Sessions.Mux;

/// <summary>
/// BBR congestion control (v1 model, as Linux net/ipv4/tcp_bbr.c and msquic bbr.c; draft-cardwell-iccrg-bbr), in
/// packets and microseconds, for the stream multiplexer (docs/protocol.md §6.2 "Congestion control"). It estimates
/// the bottleneck bandwidth (windowed max of delivery-rate samples over 10 round trips,
/// draft-cheng-iccrg-delivery-rate-estimation) and the path's round-trip propagation time (windowed min over 10 s),
/// paces at a gain times that bandwidth and caps what is in flight at a gain times their product (plus an allowance
/// for acknowledgements that arrive in bursts). Random loss is not read as congestion, so a path that drops 1 or 5 %
/// of packets at random still runs at its bandwidth (a loss-based controller's window shrinks with 1/sqrt(loss)).
/// </summary>
/// <remarks>
/// <para>States: Startup (gain 2/ln 2, the rate doubles every round trip) → Drain (inverse gain, until what is in
/// flight fits one bandwidth-delay product) → ProbeBandwidth (gains 1.25, 0.75, then 1 for six round trips) ⇄
/// ProbeRtt (at most 4 packets in flight for 200 ms and a round trip, when the minimum RTT is 10 s old).</para>
/// <para>Not thread-safe: the multiplexer calls it under its lock.</para>
/// </remarks>
internal sealed class BbrCongestionControl
{
    private const double HighGain = 2.885;        // 2/ln(2): doubles the delivery rate per round trip
    private const double DrainGain = 1 / HighGain;
    private const double CwndGain = 2;
    private const double PacingMargin = 0.99;     // pace 1 % below the estimate (Linux bbr_pacing_margin_percent)
    private const int BandwidthFilterRounds = 10;
    private const long MinRttWindow = 10_000_000; // µs
    private const long ProbeRttDuration = 200_000; // µs
    private const double MinCwnd = 4;
    private const int FullBandwidthRounds = 3;
    private const double FullBandwidthGrowth = 1.25;
    private const int ExtraAckedRounds = 5;
    private const long MaxExtraAckedTime = 100_000; // µs: the aggregation allowance is at most 100 ms of bandwidth
    private static readonly double[] PacingGainCycle = [1.25, 0.75, 1, 1, 1, 1, 1, 1];

    private readonly double _maxCwnd;
    private readonly double[] _bandwidthByRound = new double[BandwidthFilterRounds];
    private readonly long[] _bandwidthRound = new long[BandwidthFilterRounds];
    private readonly double[] _extraAcked = new double[2];

    // Delivery-rate estimation (connection state).
    private long _delivered;
    private long _deliveredTime;
    private long _firstSentTime;
    private long _appLimitedUntil;

    // The rate sample of the acknowledgement being processed: from its most recently sent newly acknowledged packet.
    private long _newlyAcked;
    private int _newlyLost;
    private bool _sampleValid;
    private long _samplePriorDelivered;
    private long _samplePriorTime;
    private long _sampleSendElapsed;
    private bool _sampleAppLimited;

    private long _roundCount;
    private long _nextRoundDelivered;
    private bool _roundStart;
    private long _minRtt = long.MaxValue;
    private long _minRttStamp;
    private double _fullBandwidth;
    private int _fullBandwidthCount;
    private int _cycleIndex;
    private long _cycleStamp;
    private long _probeRttDoneStamp;
    private bool _probeRttRoundDone;
    private double _priorCwnd;
    private long _ackEpochStart;
    private double _ackEpochAcked;
    private int _extraAckedSlot;
    private int _extraAckedRounds;
    private double _pacingGain = HighGain;
    private double _cwndGain = HighGain;

    public BbrCongestionControl(double initialCwnd, double maxCwnd)
    {
        _maxCwnd = maxCwnd;
        Cwnd = initialCwnd;
    }

    /// <summary>States, for statistics and tests. Values are stable.</summary>
    public enum Mode
    {
        /// <summary>Doubling the rate each round trip until the bandwidth stops growing.</summary>
        Startup = 10,

        /// <summary>Emptying the queue Startup built.</summary>
        Drain = 20,

        /// <summary>Steady state, probing for more bandwidth once every 8 round trips.</summary>
        ProbeBandwidth = 30,

        /// <summary>Few packets in flight, to measure the round trip without a queue.</summary>
        ProbeRtt = 40,
    }

    public Mode State { get; private set; } = Mode.Startup;

    /// <summary>The congestion window in packets.</summary>
    public double Cwnd { get; private set; }

    /// <summary>The pacing rate in packets per microsecond, or 0 while nothing is known (unpaced).</summary>
    public double PacingRate { get; private set; }

    /// <summary>The bottleneck bandwidth estimate in packets per microsecond (0 before the first sample).</summary>
    public double Bandwidth { get; private set; }

    /// <summary>The round-trip propagation time estimate in microseconds (long.MaxValue before the first sample).</summary>
    public long MinRtt => _minRtt;

    /// <summary>A packet that elicits an acknowledgement left: snapshot what is needed to sample the delivery rate when it is acknowledged.</summary>
    public void OnPacketSent(ref PacketRateState state, long now, int inFlightBefore)
    {
        if (inFlightBefore == 0)
        {
            _firstSentTime = now;
            _deliveredTime = now;
        }

        state = new PacketRateState(_delivered, _deliveredTime, _firstSentTime, _appLimitedUntil != 0);
    }

    /// <summary>The sender has nothing more to send although the window allows it: samples until what is in flight now is delivered are app-limited.</summary>
    public void OnAppLimited(int inFlight) => _appLimitedUntil = Math.Max(_delivered + inFlight, 1);

    /// <summary>One packet was acknowledged (call for each, then <see cref="OnAckProcessed"/> once).</summary>
    public void OnPacketAcked(in PacketRateState state, long sentAt, long now)
    {
        _delivered++;
        _deliveredTime = now;
        _newlyAcked++;
        if (!_sampleValid || state.Delivered > _samplePriorDelivered)
        {
            _sampleValid = true;
            _samplePriorDelivered = state.Delivered;
            _samplePriorTime = state.DeliveredTime;
            _sampleSendElapsed = sentAt - state.FirstSentTime;
            _sampleAppLimited = state.AppLimited;
            _firstSentTime = sentAt;
        }

        if (_appLimitedUntil != 0 && _delivered > _appLimitedUntil)
        {
            _appLimitedUntil = 0;
        }
    }

    /// <summary>A packet acknowledged after it was declared lost (reordering): it was delivered all the same.</summary>
    public void OnLatePacketAcked() => _delivered++;

    /// <summary>A packet was declared lost. BBR v1 does not slow down for it; it ends a bandwidth probe early.</summary>
    public void OnPacketLost() => _newlyLost++;

    /// <summary>
    /// Every packet in flight was lost for several timeouts in a row (persistent congestion, RFC 9002 §7.6): restart
    /// from the minimum window; the model (bandwidth, RTT) is kept and the window grows back to it as acknowledgements return.
    /// </summary>
    public void OnPersistentCongestion()
    {
        _priorCwnd = Math.Max(_priorCwnd, Cwnd);
        Cwnd = MinCwnd;
    }

    /// <summary>
    /// After an acknowledgement was processed: takes the rate sample, advances the model and sets
    /// <see cref="Cwnd"/> and <see cref="PacingRate"/>. <paramref name="rttSample"/> is the RTT measured by it (µs,
    /// negative when none); <paramref name="smoothedRtt"/> the sender's SRTT (µs, 0 when none).
    /// </summary>
    public void OnAckProcessed(long now, long rttSample, long smoothedRtt, int inFlight)
    {
        if (_newlyAcked == 0)
        {
            _newlyLost = 0;
            return;
        }

        var acked = _newlyAcked;
        var lost = _newlyLost;
        _newlyAcked = 0;
        _newlyLost = 0;

        // Round trips are counted in delivered packets: a round ends when a packet sent after it began is acknowledged.
        _roundStart = false;
        if (_sampleValid && _samplePriorDelivered >= _nextRoundDelivered)
        {
            _nextRoundDelivered = _delivered;
            _roundCount++;
            _roundStart = true;
        }

        UpdateMinRtt(now, rttSample);
        var rate = TakeRateSample();
        if (rate > 0 && (!_sampleAppLimited || rate >= Bandwidth))
        {
            UpdateBandwidth(rate);
        }

        UpdateAckAggregation(now, acked);
        if (State == Mode.ProbeBandwidth && IsNextCyclePhase(now, lost > 0, inFlight))
        {
            _cycleIndex = (_cycleIndex + 1) % PacingGainCycle.Length;
            _cycleStamp = now;
            _pacingGain = PacingGainCycle[_cycleIndex];
        }

        CheckFullBandwidth();
        CheckDrain(now, inFlight);
        UpdateProbeRtt(now, inFlight);
        SetPacingRate(smoothedRtt);
        SetCwnd(acked);
    }

    private double TakeRateSample()
    {
        if (!_sampleValid)
        {
            return 0;
        }

        _sampleValid = false;
        var ackElapsed = _deliveredTime - _samplePriorTime;
        var interval = Math.Max(_sampleSendElapsed, ackElapsed);
        var delivered = _delivered - _samplePriorDelivered;
        // An interval shorter than the path's minimum RTT cannot measure its rate (the draft discards it).
        if (interval <= 0 || delivered <= 0 || (_minRtt != long.MaxValue && interval < _minRtt))
        {
            return 0;
        }

        return (double)delivered / interval;
    }

    private void UpdateBandwidth(double rate)
    {
        var slot = (int)(_roundCount % BandwidthFilterRounds);
        if (_bandwidthRound[slot] != _roundCount)
        {
            _bandwidthRound[slot] = _roundCount;
            _bandwidthByRound[slot] = 0;
        }

        _bandwidthByRound[slot] = Math.Max(_bandwidthByRound[slot], rate);
        var max = 0.0;
        for (var i = 0; i < BandwidthFilterRounds; i++)
        {
            if (_roundCount - _bandwidthRound[i] < BandwidthFilterRounds)
            {
                max = Math.Max(max, _bandwidthByRound[i]);
            }
        }

        Bandwidth = max;
    }

    private void UpdateMinRtt(long now, long rttSample)
    {
        var expired = _minRtt != long.MaxValue && now - _minRttStamp > MinRttWindow;
        if (rttSample > 0 && (rttSample < _minRtt || expired))
        {
            _minRtt = rttSample;
            _minRttStamp = now;
        }

        if (expired && State != Mode.ProbeRtt)
        {
            State = Mode.ProbeRtt;
            _pacingGain = 1;
            _cwndGain = 1;
            _priorCwnd = Math.Max(_priorCwnd, Cwnd);
            _probeRttDoneStamp = 0;
        }
    }

    private void UpdateProbeRtt(long now, int inFlight)
    {
        if (State != Mode.ProbeRtt)
        {
            return;
        }

        if (_probeRttDoneStamp == 0 && inFlight <= MinCwnd)
        {
            _probeRttDoneStamp = now + ProbeRttDuration;
            _probeRttRoundDone = false;
            _nextRoundDelivered = _delivered;
        }
        else if (_probeRttDoneStamp != 0)
        {
            if (_roundStart)
            {
                _probeRttRoundDone = true;
            }

            if (_probeRttRoundDone && now >= _probeRttDoneStamp)
            {
                _minRttStamp = now;
                Cwnd = Math.Max(Cwnd, _priorCwnd);
                _priorCwnd = 0;
                if (_fullBandwidthCount >= FullBandwidthRounds)
                {
                    EnterProbeBandwidth(now);
                }
                else
                {
                    State = Mode.Startup;
                    _pacingGain = HighGain;
                    _cwndGain = HighGain;
                }
            }
        }
    }

    private void UpdateAckAggregation(long now, long acked)
    {
        // How many more packets were acknowledged than the bandwidth explains (receivers and schedulers that batch
        // acknowledgements): the window keeps that much extra so the sender does not stall between bursts.
        if (_roundStart && ++_extraAckedRounds >= ExtraAckedRounds)
        {
            _extraAckedRounds = 0;
            _extraAckedSlot ^= 1;
            _extraAcked[_extraAckedSlot] = 0;
        }

        var expected = Bandwidth * (now - _ackEpochStart);
        if (_ackEpochAcked <= expected || _ackEpochStart == 0)
        {
            _ackEpochAcked = 0;
            _ackEpochStart = now;
            expected = 0;
        }

        _ackEpochAcked += acked;
        var extra = Math.Min(_ackEpochAcked - expected, Cwnd);
        if (extra > _extraAcked[_extraAckedSlot])
        {
            _extraAcked[_extraAckedSlot] = extra;
        }
    }

    private bool IsNextCyclePhase(long now, bool lost, int inFlight)
    {
        var fullLength = _minRtt != long.MaxValue && now - _cycleStamp > _minRtt;
        if (_pacingGain == 1)
        {
            return fullLength;
        }

        if (_pacingGain > 1)
        {
            return fullLength && (lost || inFlight >= Inflight(_pacingGain));
        }

        return fullLength || inFlight <= Inflight(1);
    }

    private void CheckFullBandwidth()
    {
        if (_fullBandwidthCount >= FullBandwidthRounds || !_roundStart || _sampleAppLimited)
        {
            return;
        }

        if (Bandwidth >= _fullBandwidth * FullBandwidthGrowth)
        {
            _fullBandwidth = Bandwidth;
            _fullBandwidthCount = 0;
            return;
        }

        _fullBandwidthCount++;
    }

    private void CheckDrain(long now, int inFlight)
    {
        if (State == Mode.Startup && _fullBandwidthCount >= FullBandwidthRounds)
        {
            State = Mode.Drain;
            _pacingGain = DrainGain;
            _cwndGain = HighGain;
        }

        if (State == Mode.Drain && inFlight <= Inflight(1))
        {
            EnterProbeBandwidth(now);
        }
    }

    private void EnterProbeBandwidth(long now)
    {
        State = Mode.ProbeBandwidth;
        _cwndGain = CwndGain;
        // Start in a random phase other than the 0.75 one (Linux), so flows that start together do not probe together.
        _cycleIndex = Random.Shared.Next(2, PacingGainCycle.Length);
        _cycleStamp = now;
        _pacingGain = PacingGainCycle[_cycleIndex];
    }

    // Packets in flight for a gain: gain x bandwidth x min RTT, plus room for three send bursts.
    private double Inflight(double gain)
    {
        if (_minRtt == long.MaxValue || Bandwidth <= 0)
        {
            return Cwnd;
        }

        var quantum = Math.Clamp(Bandwidth * 1000, 2, 44);
        return (gain * Bandwidth * _minRtt) + (3 * quantum);
    }

    private void SetPacingRate(long smoothedRtt)
    {
        if (Bandwidth <= 0)
        {
            // No sample yet: pace the initial window over the RTT known so far (or 1 ms), at the startup gain.
            PacingRate = HighGain * Cwnd / Math.Max(smoothedRtt > 0 ? smoothedRtt : 1000, 1);
            return;
        }

        var rate = _pacingGain * Bandwidth * PacingMargin;
        if (_fullBandwidthCount >= FullBandwidthRounds || rate > PacingRate)
        {
            PacingRate = rate;
        }
    }

    private void SetCwnd(long acked)
    {
        var target = Inflight(_cwndGain);
        if (_fullBandwidthCount >= FullBandwidthRounds)
        {
            target += Math.Min(Math.Max(_extraAcked[0], _extraAcked[1]), Bandwidth * MaxExtraAckedTime);
            Cwnd = Math.Min(Cwnd + acked, target);
        }
        else if (Cwnd < target || _delivered < 10)
        {
            Cwnd += acked;
        }

        Cwnd = Math.Clamp(Cwnd, MinCwnd, _maxCwnd);
        if (State == Mode.ProbeRtt)
        {
            Cwnd = Math.Min(Cwnd, MinCwnd);
        }
    }
}

/// <summary>What a sent packet remembers for the delivery-rate sample taken when it is acknowledged.</summary>
/// <param name="Delivered">Packets delivered when it was sent.</param>
/// <param name="DeliveredTime">When the last of those was acknowledged (µs).</param>
/// <param name="FirstSentTime">When the packet that started the current sampling interval was sent (µs).</param>
/// <param name="AppLimited">Whether the sender was short of data then (such samples may only raise the estimate).</param>
internal readonly record struct PacketRateState(long Delivered, long DeliveredTime, long FirstSentTime, bool AppLimited);
