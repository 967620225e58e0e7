using Microsoft.Extensions.Logging;

namespace Skywire.Core.Sessions.Mux;

public sealed partial class StreamMultiplexer
{
    // Caller holds _sync. Runs the timers, then builds up to buffers.Length packets.
    private int BuildBatch(byte[][] buffers, int[] lengths)
    {
        var now = NowMicros();
        OnTimers(now);
        RefillPacing(now);
        var count = 0;
        while (count < buffers.Length)
        {
            var length = BuildPacket(buffers[count], now);
            if (length == 0)
            {
                break;
            }
            lengths[count++] = length;
        }
        if (_bbr is not null && _closed is null && _inFlight < (int)_cwnd && _pacingBudget >= 1 && count < buffers.Length)
        {
            // Neither the window nor the pacer held us back: the application (or the peer's flow control) did.
            _bbr.OnAppLimited(_inFlight);
        }
        ArmTimer(now);
        return count;
    }

    private void OnTimers(long now)
    {
        if (_closed is not null)
        {
            return;
        }
        if (now - _lastRecvAt >= ToMicros(_options.IdleTimeout))
        {
            CloseLocked(MuxError.Timeout, 0, $"Nothing received from the peer for {_options.IdleTimeout.TotalSeconds:0.###} s.", sendCloseFrame: true);
            return;
        }
        if (now >= RetransmissionDeadline)
        {
            OnRetransmissionTimeout(now);
        }
        if (now >= _lossTime)
        {
            _lossTime = long.MaxValue;
            DetectLosses(now);
            CompactSent(now);
        }
        if (_ackNeeded && now >= _ackDeadline)
        {
            _ackNow = true;
        }
        if (_inFlight == 0 && now - _lastSendAt >= ToMicros(_options.KeepAliveInterval))
        {
            _pingPending = true;
        }
        for (var i = _lingering.Count - 1; i >= 0; i--)
        {
            var s = _lingering[i];
            if (now >= s.LingerDeadline)
            {
                AbortLocked(s, LingerTimeoutCode, MuxError.Aborted, "Stream reset: the peer did not finish within the linger timeout.");
            }
        }
    }

    private void ArmTimer(long now)
    {
        if (_closed is not null)
        {
            return;
        }
        var deadline = _lastRecvAt + ToMicros(_options.IdleTimeout);
        deadline = Math.Min(deadline, RetransmissionDeadline);
        deadline = Math.Min(deadline, _lossTime);
        if (_ackNeeded)
        {
            deadline = Math.Min(deadline, _ackDeadline);
        }
        if (_inFlight == 0)
        {
            deadline = Math.Min(deadline, _lastSendAt + ToMicros(_options.KeepAliveInterval));
        }
        if (_bbr is not null && _pacingBudget < 1 && _ready.Count > 0 && _inFlight < (int)_cwnd && _bbr.PacingRate > 0)
        {
            deadline = Math.Min(deadline, now + 1 + (long)((1 - _pacingBudget) / _bbr.PacingRate));
        }
        foreach (var s in _lingering)
        {
            deadline = Math.Min(deadline, s.LingerDeadline);
        }
        if (deadline <= now)
        {
            Signal();
        }
        else if (deadline < Interlocked.Read(ref _timerDue))
        {
            Interlocked.Exchange(ref _timerDue, deadline);
            // Whole milliseconds, rounded up: timer queues work in milliseconds.
            _timer.Change(TimeSpan.FromMilliseconds(Math.Ceiling((deadline - now) / 1000.0)), Timeout.InfiniteTimeSpan);
        }
    }

    // Builds one packet into buffer; 0 when there is nothing to send.
    private int BuildPacket(byte[] buffer, long now)
    {
        if (_closed is not null)
        {
            if (!_closeFrameToSend)
            {
                return 0;
            }
            _closeFrameToSend = false;
            var len = MuxCodec.WritePacketHeader(buffer, _nextPn++);
            MuxCodec.WriteValue(buffer, ref len, MuxFrameType.Close, (_closed as MuxException)?.ApplicationCode ?? 0);
            return len;
        }
        var sendAck = _ackNeeded && (_ackNow || now >= _ackDeadline);
        var canData = (_inFlight < (int)_cwnd || _probeCredit > 0) && _ready.Count > 0 && (_pacingBudget >= 1 || _probeCredit > 0);
        var hasControl = _controls.Count > 0 || _maxDataPending || _pingPending;
        if (!sendAck && !canData && !hasControl)
        {
            return 0;
        }
        var span = buffer.AsSpan();
        var limit = _maxPacket;
        var pos = MuxCodec.WritePacketHeader(span, _nextPn);
        var headerEnd = pos;
        SentPacket? packet = null;

        if (_ackNeeded && MuxCodec.TryWriteAck(span, ref pos, limit - pos, _recvPackets, now - _largestRecvAt))
        {
            _ackNeeded = false;
            _ackNow = false;
            _unackedEliciting = 0;
            _ackDeadline = long.MaxValue;
        }

        while (_controls.Count > 0)
        {
            var c = _controls.Peek();
            if (!IsControlCurrent(c))
            {
                _controls.Dequeue();
                continue;
            }
            var size = ControlSize(c);
            if (size > limit - pos)
            {
                break;
            }
            _controls.Dequeue();
            WriteControl(span, ref pos, c);
            packet ??= RentSentPacket();
            packet.Controls.Add(c);
        }
        if (_maxDataPending && MuxCodec.ValueSize(_localMaxData) <= limit - pos)
        {
            MuxCodec.WriteValue(span, ref pos, MuxFrameType.MaxData, _localMaxData);
            _maxDataPending = false;
            packet ??= RentSentPacket();
            packet.HasMaxData = true;
        }
        if (canData)
        {
            // Round robin: one chunk per ready stream per turn until the packet is full.
            var stalls = 0;
            while (_ready.Count > 0 && limit - pos > MuxCodec.MaxStreamFrameHeader && stalls <= _ready.Count)
            {
                var s = _ready.Peek();
                var wrote = WriteChunk(s, span, ref pos, limit - pos, ref packet);
                _ready.Dequeue();
                if (HasSendWork(s))
                {
                    _ready.Enqueue(s);
                }
                else
                {
                    s.InReadyQueue = false;
                }
                stalls = wrote ? 0 : stalls + 1;
            }
        }
        if (_pingPending)
        {
            // Any ack-eliciting frame already does what a PING would.
            if (packet is null && limit - pos >= 1)
            {
                MuxCodec.WriteSimple(span, ref pos, MuxFrameType.Ping);
                packet = RentSentPacket();
            }
            _pingPending = false;
        }
        if (pos == headerEnd)
        {
            return 0; // nothing fitted or everything was blocked: keep the packet number
        }
        var pn = _nextPn++;
        if (packet is not null)
        {
            if (_inFlight >= (int)_cwnd && _probeCredit > 0)
            {
                _probeCredit--;
            }
            packet.Number = pn;
            packet.SentAt = now;
            if (_bbr is not null)
            {
                _bbr.OnPacketSent(ref packet.Rate, now, _inFlight);
                if (packet.Chunks.Count > 0)
                {
                    _pacingBudget--;
                }
            }
            _sent.Add(packet);
            _inFlight++;
            if (_rtoStart == long.MaxValue)
            {
                _rtoStart = now;
            }
            _lastSendAt = now;
        }
        _statPacketsSent++;
        _statBytesSent += pos;
        return pos;
    }

    // BBR pacing: a budget of packets that grows at the pacing rate, capped at a few milliseconds' worth (timers here
    // have millisecond resolution and fire late under load; a larger cap would release bursts into shallow queues).
    private void RefillPacing(long now)
    {
        if (_bbr is null)
        {
            return;
        }
        var rate = _bbr.PacingRate;
        if (rate <= 0)
        {
            _pacingBudget = double.MaxValue;
            _pacingAt = now;
            return;
        }
        var cap = Math.Max(MinPacingBurst, rate * PacingHorizonMicros);
        _pacingBudget = Math.Min(Math.Min(_pacingBudget, cap) + (rate * (now - _pacingAt)), cap);
        _pacingAt = now;
    }

    private SentPacket RentSentPacket() => _sentPool.TryPop(out var p) ? p : new SentPacket();

    private static bool IsControlCurrent(Control c) => c.Type switch
    {
        MuxFrameType.Open => c.Stream is { Removed: false, State: MuxStreamState.Opening },
        MuxFrameType.MaxStreamData => c.Stream is { Removed: false, FinOffset: < 0, Error: null },
        _ => true,
    };

    private int ControlSize(Control c) => c.Type switch
    {
        MuxFrameType.Open => MuxCodec.OpenSize(c.StreamRef, c.Stream!.RecvMaxAdvertised, c.Stream.OpenData.Length),
        MuxFrameType.MaxStreamData => MuxCodec.StreamValueSize(c.StreamRef, c.Stream!.RecvMaxAdvertised),
        MuxFrameType.Reset => MuxCodec.ResetSize(c.StreamRef, c.Value, c.FinalSize),
        _ => MuxCodec.StreamValueSize(c.StreamRef, c.Value),
    };

    private static void WriteControl(Span<byte> span, ref int pos, Control c)
    {
        switch (c.Type)
        {
            case MuxFrameType.Open:
                MuxCodec.WriteOpen(span, ref pos, c.StreamRef, c.Stream!.RecvMaxAdvertised, c.Stream.OpenData.Span);
                break;
            case MuxFrameType.MaxStreamData:
                MuxCodec.WriteStreamValue(span, ref pos, c.Type, c.StreamRef, c.Stream!.RecvMaxAdvertised);
                break;
            case MuxFrameType.Reset:
                MuxCodec.WriteReset(span, ref pos, c.StreamRef, c.Value, c.FinalSize);
                break;
            default:
                MuxCodec.WriteStreamValue(span, ref pos, c.Type, c.StreamRef, c.Value);
                break;
        }
    }

    // Writes one Stream frame for s (retransmission first, then new data). False when s could send nothing.
    private bool WriteChunk(MuxStream s, Span<byte> span, ref int pos, int space, ref SentPacket? packet)
    {
        if (s.Removed || s.Error is not null || !s.State.IsAccepted())
        {
            return false;
        }
        long start;
        int len;
        bool retransmission;
        while (true)
        {
            if (s.Retransmit.IsEmpty)
            {
                retransmission = false;
                var available = Math.Min(Math.Min(s.WriteOffset, s.PeerMaxStreamData) - s.SendNext, _peerMaxData - _sentData);
                start = s.SendNext;
                var header = MuxCodec.StreamHeaderSize(s.WireRef, start, space);
                len = (int)Math.Max(0, Math.Min(available, space - header));
                break;
            }
            var (rs, re) = s.Retransmit[0];
            start = s.SendAckedAbove.ContiguousEnd(Math.Max(rs, s.SendAcked));
            if (start >= re)
            {
                s.Retransmit.Remove(rs, re);
                continue;
            }
            var end = Math.Min(re, s.SendAckedAbove.NextStartAfter(start));
            var hdr = MuxCodec.StreamHeaderSize(s.WireRef, start, space);
            len = (int)Math.Min(end - start, space - hdr);
            if (len <= 0)
            {
                return false;
            }
            s.Retransmit.Remove(rs, start + len);
            retransmission = true;
            break;
        }
        var fin = s.FinRequested && !s.FinAcked && start + len == s.WriteOffset && (retransmission || !s.FinSent || s.FinResend);
        if (len == 0 && !fin)
        {
            return false;
        }
        MuxCodec.WriteStreamHeader(span, ref pos, s.WireRef, start, len, fin);
        s.SendBuffer.Read(start, span.Slice(pos, len));
        pos += len;
        if (retransmission)
        {
            _statRetransmittedBytes += len;
        }
        else
        {
            s.SendNext += len;
            _sentData += len;
        }
        if (fin)
        {
            s.FinSent = true;
            s.FinResend = false;
        }
        packet ??= RentSentPacket();
        packet.Chunks.Add(new Chunk(s, start, len, fin));
        return true;
    }

    // ---- Acknowledgements, loss detection, RTT and congestion control ----

    private void LogBadDatagram(int length)
    {
        if (!_logger.IsEnabled(LogLevel.Debug))
        {
            return;
        }
        // At most one line per second: a flood of garbage must not flood the log.
        var now = NowMicros();
        if (now - Interlocked.Read(ref _lastBadLog) >= 1_000_000)
        {
            Interlocked.Exchange(ref _lastBadLog, now);
            var total = Interlocked.Read(ref _statBadDatagrams);
            Log.BadDatagram(_logger, length, total);
        }
    }
}
