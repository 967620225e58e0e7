
namespace Skywire.Core.Sessions.Mux;

public sealed partial class StreamMultiplexer
{
    /// <summary>
    /// Feeds one datagram received from the peer. Malformed datagrams are dropped and counted
    /// (<see cref="MuxStatistics.BadDatagrams"/>); this method never throws because of the input.
    /// </summary>
    public void Receive(ReadOnlySpan<byte> datagram)
    {
        if (_closed is not null)
        {
            return;
        }
        // Pass 1: validate the whole packet before touching any state, so a bad datagram has no effect at all.
        if (!MuxCodec.TryReadPacketHeader(datagram, out var pn, out var framesStart))
        {
            BadDatagram(datagram.Length);
            return;
        }
        var frames = datagram[framesStart..];
        var ackEliciting = false;
        var validator = new MuxFrameReader(frames);
        bool invalid;
        while (validator.TryRead(out var f, out invalid))
        {
            if (f.Type is not (MuxFrameType.Ack or MuxFrameType.Datagram or MuxFrameType.Close))
            {
                ackEliciting = true;
            }
        }
        if (invalid || frames.IsEmpty)
        {
            BadDatagram(datagram.Length);
            return;
        }

        lock (_sync)
        {
            if (_closed is not null)
            {
                return;
            }
            var now = NowMicros();
            if (pn < _recvFloor || _recvPackets.Contains(pn))
            {
                _statDuplicates++;
                if (ackEliciting)
                {
                    // Our acknowledgement may have been lost: repeat it.
                    _ackNeeded = true;
                    _ackNow = true;
                    Signal();
                }
                return;
            }
            _recvPackets.Add(pn, pn + 1);
            if (_recvPackets.Count > MaxAckRangesKept)
            {
                _recvPackets.TrimToHighest(MaxAckRangesKept);
                _recvFloor = Math.Max(_recvFloor, _recvPackets[0].Start);
            }
            _lastRecvAt = now;
            _statPacketsReceived++;
            _statBytesReceived += datagram.Length;
            var inOrder = pn == _largestRecv + 1;
            if (pn > _largestRecv)
            {
                _largestRecv = pn;
                _largestRecvAt = now;
            }

            var reader = new MuxFrameReader(frames);
            while (reader.TryRead(out var f, out _))
            {
                ApplyFrame(ref f, now);
                if (_closed is not null)
                {
                    return;
                }
            }

            _ackNeeded = true;
            if (ackEliciting)
            {
                _unackedEliciting++;
                // Acknowledge every second packet at once (RFC 5681 §4.2), and any gap at once (helps fast retransmit).
                if (_unackedEliciting >= AckEveryPackets || !inOrder)
                {
                    _ackNow = true;
                    Signal();
                }
                else if (_ackDeadline == long.MaxValue)
                {
                    _ackDeadline = now + ToMicros(_options.MaxAckDelay);
                    Signal(); // the loop arms the timer
                }
            }
        }
    }

    private void BadDatagram(int length)
    {
        Interlocked.Increment(ref _statBadDatagrams);
        LogBadDatagram(length);
    }

    private void ApplyFrame(ref MuxFrame f, long now)
    {
        switch (f.Type)
        {
            case MuxFrameType.Ping:
                break;
            case MuxFrameType.Ack:
                OnAck(f.A, f.B, f.Data, now);
                break;
            case MuxFrameType.MaxData:
                if (f.A > _peerMaxData)
                {
                    var wasBlocked = _peerMaxData <= _sentData;
                    _peerMaxData = f.A;
                    if (wasBlocked)
                    {
                        foreach (var s in _streams.Values)
                        {
                            Enqueue(s);
                        }
                    }
                }
                break;
            case MuxFrameType.Datagram:
                if (_datagrams.Writer.TryWrite(f.Data.ToArray()))
                {
                    _statDatagramsReceived++;
                }
                else
                {
                    _statDatagramsDropped++;
                }
                break;
            case MuxFrameType.Close:
                CloseLocked(MuxError.ClosedByPeer, f.A, "The peer closed the multiplexer.", sendCloseFrame: false);
                break;
            case MuxFrameType.Stream:
            case MuxFrameType.StreamFin:
                OnStreamFrame(f.StreamRef, f.A, f.Data, f.Type == MuxFrameType.StreamFin);
                break;
            case MuxFrameType.Open:
                OnOpen(f.StreamRef, f.A, f.Data);
                break;
            case MuxFrameType.Accept:
                {
                    var s = LookupLocal(f.StreamRef);
                    if (s is { State: MuxStreamState.Opening })
                    {
                        s.TransitionTo(MuxStreamState.Open);
                        if (s.FinOffset >= 0)
                        {
                            s.TransitionTo(MuxStreamState.HalfClosedRemote); // the acceptor's data and FIN overtook its ACCEPT
                        }
                        s.PeerMaxStreamData = Math.Max(s.PeerMaxStreamData, f.A);
                        s.OpenCompletion!.TrySetResult(s);
                        Enqueue(s);
                    }
                    break;
                }
            case MuxFrameType.Refuse:
                {
                    var s = LookupLocal(f.StreamRef);
                    if (s is { State: MuxStreamState.Opening })
                    {
                        s.TransitionTo(MuxStreamState.Refused);
                        FailStream(s, new MuxException(MuxError.Refused, f.A, $"The peer refused the stream (code {f.A})."));
                        RemoveStream(s);
                    }
                    break;
                }
            case MuxFrameType.Reset:
                {
                    var s = Lookup(f.StreamRef);
                    if (s is null)
                    {
                        if ((f.StreamRef & 1) == 1 && !_peerStreamsSeen.Contains(f.StreamRef >> 1))
                        {
                            // Reset of a stream whose Open we have not seen (lost or late): never accept that Open.
                            _peerStreamsSeen.Add(f.StreamRef >> 1, (f.StreamRef >> 1) + 1);
                        }
                        else if (_awaitingFinalSize.Remove(f.StreamRef, out var received) && f.B > received)
                        {
                            // The peer's answer to our reset: bytes it sent that we never saw.
                            _recvData += f.B - received;
                            ReturnConnectionCredit(f.B - received);
                        }
                        break;
                    }
                    if (f.B > s.RecvHighest)
                    {
                        _recvData += f.B - s.RecvHighest;
                        s.RecvHighest = f.B;
                    }
                    // Answer with our final size so the peer can return its connection credit too.
                    EnqueueControl(new Control(MuxFrameType.Reset, s.WireRef, f.A, null, s.SendNext));
                    FailStream(s, new MuxException(MuxError.ResetByPeer, f.A, $"The peer reset the stream (code {f.A})."));
                    RemoveStream(s);
                    break;
                }
            case MuxFrameType.MaxStreamData:
                {
                    var s = Lookup(f.StreamRef);
                    if (s is not null && f.A > s.PeerMaxStreamData)
                    {
                        s.PeerMaxStreamData = f.A;
                        Enqueue(s);
                    }
                    break;
                }
        }
    }

    // A frame about a stream this side opened carries bit 0 clear.
    private MuxStream? LookupLocal(long wireRef) => (wireRef & 1) == 0 ? _streams.GetValueOrDefault(wireRef) : null;

    private void OnOpen(long wireRef, long window, ReadOnlySpan<byte> openData)
    {
        if ((wireRef & 1) == 0)
        {
            _statBadFrames++; // an Open always names a stream of its sender
            return;
        }
        var id = wireRef >> 1;
        if (_peerStreamsSeen.Contains(id))
        {
            return; // duplicate, or reset before its Open arrived
        }
        var highestSeen = _peerStreamsSeen.IsEmpty ? 0 : _peerStreamsSeen[_peerStreamsSeen.Count - 1].End;
        if (id > highestSeen + (4L * _options.MaxIncomingStreams))
        {
            _statBadFrames++; // ids are allocated in order; a far jump would only fragment the seen-set
            return;
        }
        _peerStreamsSeen.Add(id, id + 1);
        if (_acceptPending >= _options.AcceptBacklog || _incomingStreams >= _options.MaxIncomingStreams)
        {
            Log.RefusedBusy(_logger, id);
            EnqueueControl(new Control(MuxFrameType.Refuse, id << 1, RefusedBusyCode, null));
            return;
        }
        var s = new MuxStream(this, id, isLocal: false, openData.ToArray(), _options)
        {
            PeerMaxStreamData = window,
        };
        _streams.Add(s.Key, s);
        _incomingStreams++;
        _acceptPending++;
        _acceptQueue.Writer.TryWrite(s);
    }

    private void OnStreamFrame(long wireRef, long offset, ReadOnlySpan<byte> data, bool fin)
    {
        var s = Lookup(wireRef);
        if (s is null)
        {
            if ((wireRef & 1) == 1 ? !_peerStreamsSeen.Contains(wireRef >> 1) : (wireRef >> 1) >= _nextLocalId)
            {
                _statBadFrames++; // data for a stream that never existed
            }
            return; // otherwise a late copy for a finished stream
        }
        if (s.Error is not null || s.State == MuxStreamState.PendingAccept)
        {
            // The opener sends data only after our Accept.
            _statBadFrames += s.State == MuxStreamState.PendingAccept ? 1 : 0;
            return;
        }
        var end = offset + data.Length;
        if (end > s.RecvMaxAdvertised || (s.FinOffset >= 0 && end > s.FinOffset)
            || (fin && ((s.FinOffset >= 0 && s.FinOffset != end) || end < s.RecvHighest)))
        {
            _statBadFrames++; // beyond the window we granted, or past the end of the stream
            return;
        }
        if (end > s.RecvHighest)
        {
            var delta = end - s.RecvHighest;
            if (_recvData + delta > _localMaxData)
            {
                _statBadFrames++;
                return;
            }
            _recvData += delta;
            s.RecvHighest = end;
        }
        if (fin && s.FinOffset < 0)
        {
            s.FinOffset = end;
            if (s.State == MuxStreamState.Open)
            {
                s.TransitionTo(MuxStreamState.HalfClosedRemote);
            }
            else if (s.State == MuxStreamState.HalfClosedLocal)
            {
                s.TransitionTo(MuxStreamState.Closed);
            }
            // (Opening: the ACCEPT that overtaken data precedes moves the stream on.)
        }
        var start = Math.Max(offset, s.ReadOffset);
        if (start < end)
        {
            s.ReceiveBuffer.Write(start, data[(int)(start - offset)..]);
            s.Received.Add(start, end);
        }
        if (s.Discarding)
        {
            Consume(s, s.Received.ContiguousEnd(s.ReadOffset) - s.ReadOffset);
        }
        if (s.ReadWaiter is not null && (s.Received.ContiguousEnd(s.ReadOffset) > s.ReadOffset || s.ReadOffset == s.FinOffset))
        {
            s.WakeReader();
        }
        CheckStreamDone(s);
    }
}
