namespace Skywire.Core.Sessions.Mux;

// Acknowledgements, loss detection, the retransmission timeout and the RTT estimator (docs/protocol.md §6.2, RFC 9002
// in spirit): what happens to sent packets after they left.
public sealed partial class StreamMultiplexer
{
    private void OnAck(long largest, long ackDelayMicros, ReadOnlySpan<byte> ranges, long now)
    {
        if (largest >= _nextPn)
        {
            _statBadFrames++; // acknowledges a packet never sent
            return;
        }
        var newlyAcked = false;
        SentPacket? largestPacket = null;
        var reader = new AckRangeReader(largest, ranges);
        while (reader.TryNext(out var low, out var high))
        {
            for (var i = FindSent(low); i < _sent.Count; i++)
            {
                var p = _sent[i]!;
                if (p.Number > high)
                {
                    break;
                }
                if (p.Acked)
                {
                    continue;
                }
                p.Acked = true;
                if (p.Lost)
                {
                    _bbr?.OnLatePacketAcked();
                    OnSpuriousLoss(p, largest);
                    AckChunks(p);
                    continue;
                }
                newlyAcked = true;
                if (p.Number == largest)
                {
                    largestPacket = p;
                }
                _bbr?.OnPacketAcked(p.Rate, p.SentAt, now);
                OnPacketAcked(p);
            }
        }
        if (largest > _largestAcked)
        {
            _largestAcked = largest;
        }
        if (largestPacket is not null)
        {
            UpdateRtt(now - largestPacket.SentAt, ackDelayMicros);
        }
        if (newlyAcked)
        {
            // RFC 6298 §5.3: restart the timer when an ACK acknowledges new data; §5.7 backoff ends.
            _rtoBackoff = 0;
            _rtoStart = _inFlight > 0 ? now : long.MaxValue;
        }
        DetectLosses(now);
        if (_bbr is not null)
        {
            _bbr.OnAckProcessed(now, largestPacket is null ? -1 : now - largestPacket.SentAt, _hasRtt ? _srtt : 0, _inFlight);
            _cwnd = _bbr.Cwnd;
            if (_ready.Count > 0 && _inFlight < (int)_cwnd)
            {
                Signal();
            }
        }
        CompactSent(now);
    }

    private int FindSent(long number)
    {
        int lo = _sentHead, hi = _sent.Count;
        while (lo < hi)
        {
            var mid = (lo + hi) >>> 1;
            if (_sent[mid]!.Number < number)
            {
                lo = mid + 1;
            }
            else
            {
                hi = mid;
            }
        }
        return lo;
    }

    private void OnPacketAcked(SentPacket p)
    {
        _inFlight--;
        if (_bbr is null && p.Number > _recoveryPn)
        {
            // NewReno in packets: +1 per ack in slow start, +1/cwnd per ack in congestion avoidance.
            _cwnd += _cwnd < _ssthresh ? 1 : 1 / _cwnd;
            if (_cwnd > _options.MaxCongestionWindow)
            {
                _cwnd = _options.MaxCongestionWindow;
            }
        }
        AckChunks(p);
        if (_ready.Count > 0 && _inFlight < (int)_cwnd)
        {
            Signal();
        }
    }

    private void AckChunks(SentPacket p)
    {
        foreach (var c in p.Chunks)
        {
            var s = c.Stream;
            if (s.Removed)
            {
                continue;
            }
            if (c.Length > 0)
            {
                s.SendAckedAbove.Add(c.Offset, c.Offset + c.Length);
                var acked = s.SendAckedAbove.ContiguousEnd(s.SendAcked);
                if (acked > s.SendAcked)
                {
                    s.SendAcked = acked;
                    s.SendAckedAbove.RemoveBelow(acked);
                    s.Retransmit.RemoveBelow(acked);
                    s.SendBuffer.Release(acked);
                    s.WakeWriter();
                }
            }
            if (c.Fin)
            {
                s.FinAcked = true;
            }
            WakeAckWaiter(s);
            CheckStreamDone(s);
        }
    }

    // A packet declared lost was acknowledged after all: the path reorders. Tolerate more reordering
    // (as Linux does with its reordering metric) and undo the window reduction it caused (RFC 4015 spirit).
    private void OnSpuriousLoss(SentPacket p, long largest)
    {
        _statSpurious++;
        var distance = (int)Math.Min(largest - p.Number + 1, MaxPacketThreshold);
        if (distance > _packetThreshold)
        {
            _packetThreshold = distance;
        }
        if (_bbr is null && p.Number == _recoveryTriggerPn)
        {
            _cwnd = Math.Max(_cwnd, _cwndBeforeRecovery);
            _ssthresh = _ssthreshBeforeRecovery;
            _recoveryTriggerPn = -1;
        }
    }

    private void DetectLosses(long now)
    {
        if (_largestAcked < 0)
        {
            return;
        }
        var lossDelay = Math.Max(Math.Max(_srtt, _latestRtt) * 9 / 8, 1000);
        _lossTime = long.MaxValue;
        for (var i = _sentHead; i < _sent.Count; i++)
        {
            var p = _sent[i]!;
            if (p.Acked || p.Lost)
            {
                continue;
            }
            if (p.Number >= _largestAcked)
            {
                break;
            }
            if (p.Number <= _largestAcked - _packetThreshold || now - p.SentAt >= lossDelay)
            {
                MarkLost(p, congestion: true);
            }
            else
            {
                // Later packets are newer: none of them meets either threshold yet.
                _lossTime = p.SentAt + lossDelay;
                break;
            }
        }
    }

    private void MarkLost(SentPacket p, bool congestion)
    {
        p.Lost = true;
        _inFlight--;
        _statLost++;
        if (congestion && _bbr is not null)
        {
            _bbr.OnPacketLost();
        }
        else if (congestion && p.Number > _recoveryPn)
        {
            // One reduction per loss event (RFC 6582): packets sent before this point belong to the same event.
            _cwndBeforeRecovery = _cwnd;
            _ssthreshBeforeRecovery = _ssthresh;
            _recoveryTriggerPn = p.Number;
            _ssthresh = Math.Max(_cwnd * LossBeta, 2);
            _cwnd = _ssthresh;
            _recoveryPn = _nextPn - 1;
        }
        foreach (var c in p.Chunks)
        {
            var s = c.Stream;
            if (s.Removed || s.Error is not null)
            {
                continue;
            }
            var start = Math.Max(c.Offset, s.SendAcked);
            if (start < c.Offset + c.Length)
            {
                s.Retransmit.Add(start, c.Offset + c.Length);
            }
            if (c.Fin && !s.FinAcked)
            {
                s.FinResend = true;
            }
            Enqueue(s);
        }
        foreach (var c in p.Controls)
        {
            if (IsControlCurrent(c))
            {
                EnqueueControl(c);
            }
        }
        if (p.HasMaxData)
        {
            _maxDataPending = true;
            Signal();
        }
    }

    // RFC 6298 §5.4-5.6 retransmits the earliest segment, doubles the timer and (RFC 5681) collapses the window.
    // A single timeout is more often a lost tail than congestion, so the first two timeouts in a row send the
    // oldest packet again as a probe that may exceed the window (RFC 9002 PTO); from the third on, every packet
    // in flight is resent and the window falls to 2 (persistent congestion).
    private void OnRetransmissionTimeout(long now)
    {
        _statRto++;
        Log.RetransmissionTimeout(_logger, _rtoBackoff, _inFlight);
        var persistent = _rtoBackoff >= 2;
        var any = false;
        for (var i = _sentHead; i < _sent.Count; i++)
        {
            var p = _sent[i]!;
            if (!p.Acked && !p.Lost)
            {
                MarkLost(p, congestion: false);
                any = true;
                if (!persistent)
                {
                    break;
                }
            }
        }
        CompactSent(now);
        if (persistent && any && _bbr is not null)
        {
            _bbr.OnPersistentCongestion();
            _cwnd = _bbr.Cwnd;
        }
        else if (persistent && any)
        {
            _ssthresh = Math.Max(_cwnd / 2, 2);
            _cwnd = 2;
            _recoveryPn = _nextPn - 1;
        }
        _probeCredit = 2;
        _rtoBackoff++;
        _rtoStart = long.MaxValue; // restarted by the next ack-eliciting packet
        _lossTime = long.MaxValue;
        if (!any)
        {
            _pingPending = true;
        }
    }

    private void UpdateRtt(long sample, long ackDelay)
    {
        if (sample <= 0)
        {
            sample = 1;
        }
        _latestRtt = sample;
        _minRtt = Math.Min(_minRtt, sample);
        var adjusted = sample;
        var delay = Math.Min(ackDelay, ToMicros(_options.MaxAckDelay));
        if (sample - delay >= _minRtt)
        {
            adjusted = sample - delay;
        }
        if (!_hasRtt)
        {
            // RFC 6298 §2.2
            _srtt = adjusted;
            _rttvar = adjusted / 2;
            _hasRtt = true;
        }
        else
        {
            // RFC 6298 §2.3 with alpha = 1/8, beta = 1/4
            _rttvar = ((3 * _rttvar) + Math.Abs(_srtt - adjusted)) / 4;
            _srtt = ((7 * _srtt) + adjusted) / 8;
        }
        // RTO = SRTT + max(G, 4 * RTTVAR) (§2.3), plus the peer's ack delay allowance, within [min, max].
        var rto = _srtt + Math.Max(1000, 4 * _rttvar) + ToMicros(_options.MaxAckDelay);
        _rto = Math.Clamp(rto, ToMicros(_options.MinRetransmissionTimeout), ToMicros(_options.MaxRetransmissionTimeout));
    }

    private void CompactSent(long now)
    {
        // Lost packets stay a little while, so a late acknowledgement can reveal a spurious loss.
        var keepLost = Math.Max(2 * _srtt, 10_000);
        while (_sentHead < _sent.Count)
        {
            var p = _sent[_sentHead]!;
            if (!p.Acked && !(p.Lost && now - p.SentAt > keepLost))
            {
                break;
            }
            p.Reset();
            _sentPool.Push(p);
            _sent[_sentHead] = null;
            _sentHead++;
        }
        if (_sentHead == _sent.Count)
        {
            _sent.Clear();
            _sentHead = 0;
        }
        else if (_sentHead > 1024 && _sentHead > _sent.Count / 2)
        {
            _sent.RemoveRange(0, _sentHead);
            _sentHead = 0;
        }
    }
}
