
namespace Skywire.Core.Sessions.Mux;

public sealed partial class StreamMultiplexer
{
    internal async ValueTask<int> ReadAsync(MuxStream s, Memory<byte> buffer, CancellationToken cancellationToken)
    {
        while (true)
        {
            cancellationToken.ThrowIfCancellationRequested();
            TaskCompletionSource waiter;
            lock (_sync)
            {
                AcceptLocked(s);
                // Bytes already received in order are handed out even after a connection failure: they are correct.
                var available = s.Received.ContiguousEnd(s.ReadOffset) - s.ReadOffset;
                if (available > 0 && !s.Discarding)
                {
                    if (buffer.IsEmpty)
                    {
                        return 0;
                    }
                    var n = (int)Math.Min(buffer.Length, available);
                    s.ReceiveBuffer.Read(s.ReadOffset, buffer.Span[..n]);
                    Consume(s, n);
                    CheckStreamDone(s);
                    return n;
                }
                if (s.FinOffset >= 0 && s.ReadOffset == s.FinOffset && !s.ReceiveTruncated)
                {
                    return 0;
                }
                ObjectDisposedException.ThrowIf(s.Disposed, s);
                if (s.Error is MuxException error)
                {
                    throw Clone(error);
                }
                if (buffer.IsEmpty)
                {
                    return 0;
                }
                waiter = s.ReadWaiter = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            }
            await waiter.Task.WaitAsync(cancellationToken);
        }
    }

    internal async ValueTask WriteAsync(MuxStream s, ReadOnlyMemory<byte> data, CancellationToken cancellationToken)
    {
        var entered = false;
        try
        {
            while (true)
            {
                cancellationToken.ThrowIfCancellationRequested();
                TaskCompletionSource waiter;
                lock (_sync)
                {
                    AcceptLocked(s);
                    ObjectDisposedException.ThrowIf(s.Disposed, s);
                    if (s.Error is MuxException error)
                    {
                        throw Clone(error);
                    }
                    if (s.FinRequested)
                    {
                        throw new InvalidOperationException("Writes were completed on this stream.");
                    }
                    if (s.WriteCut)
                    {
                        throw new MuxException(MuxError.Aborted, 0, "An earlier write on this stream did not finish (cancelled): the stream is incomplete and can only be aborted.");
                    }
                    s.Writing = entered = true;
                    GrowSendCapacity(s);
                    while (!data.IsEmpty)
                    {
                        var space = s.SendCapacity - (s.WriteOffset - s.SendAcked);
                        if (space <= 0)
                        {
                            break;
                        }
                        var n = (int)Math.Min(space, data.Length);
                        s.SendBuffer.Write(s.WriteOffset, data.Span[..n]);
                        s.WriteOffset += n;
                        data = data[n..];
                        Enqueue(s);
                    }
                    if (data.IsEmpty)
                    {
                        s.Writing = false;
                        return;
                    }
                    waiter = s.WriteWaiter = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
                }
                await waiter.Task.WaitAsync(cancellationToken);
            }
        }
        catch (Exception ex) when (entered || ex is OperationCanceledException)
        {
            // A write that did not finish: the stream is incomplete (part of the data may be buffered or sent), so it
            // can no longer end cleanly (DisposeStream and CompleteWrites reset it instead).
            lock (_sync)
            {
                s.Writing = false;
                s.WriteCut = true;
            }
            throw;
        }
    }

    internal async ValueTask WhenWritesAcknowledgedAsync(MuxStream s, CancellationToken cancellationToken)
    {
        Task acknowledged;
        lock (_sync)
        {
            if (WritesAcknowledged(s))
            {
                return;
            }
            if (s.Error is MuxException error)
            {
                throw Clone(error);
            }
            s.AckWaiter ??= new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            acknowledged = s.AckWaiter.Task;
        }
        await acknowledged.WaitAsync(cancellationToken);
    }

    internal void CompleteWrites(MuxStream s)
    {
        lock (_sync)
        {
            AcceptLocked(s);
            if (s.Error is MuxException error)
            {
                throw Clone(error);
            }
            if (s.FinRequested)
            {
                return;
            }
            if (s.WriteCut || s.Writing)
            {
                // Finishing would pass a cut stream on as a complete one.
                AbortLocked(s, 0, MuxError.Aborted, "A write on this stream did not finish; the stream was aborted.");
                throw s.Error is MuxException failed ? Clone(failed) : new MuxException(MuxError.Aborted, 0, "A write on this stream did not finish; the stream was aborted.");
            }
            FinishWritesLocked(s);
            CheckStreamDone(s);
        }
    }

    internal void AcceptStream(MuxStream s)
    {
        lock (_sync)
        {
            AcceptLocked(s);
        }
    }

    /// <summary>This side's FIN: Open becomes HalfClosedLocal, HalfClosedRemote becomes Closed; the FIN goes out after the data.</summary>
    private void FinishWritesLocked(MuxStream s)
    {
        s.TransitionTo(s.State == MuxStreamState.HalfClosedRemote ? MuxStreamState.Closed : MuxStreamState.HalfClosedLocal);
        Enqueue(s);
    }

    private void AcceptLocked(MuxStream s)
    {
        if (s.State == MuxStreamState.PendingAccept && !s.Removed)
        {
            s.TransitionTo(MuxStreamState.Open);
            EnqueueControl(new Control(MuxFrameType.Accept, s.WireRef, s.RecvMaxAdvertised, null));
            Enqueue(s);
        }
    }

    internal bool RefuseStream(MuxStream s, long code)
    {
        lock (_sync)
        {
            if (s.State != MuxStreamState.PendingAccept || s.Removed)
            {
                return false;
            }
            s.TransitionTo(MuxStreamState.Refused);
            EnqueueControl(new Control(MuxFrameType.Refuse, s.WireRef, code, null));
            FailStream(s, new MuxException(MuxError.Refused, code, "The stream was refused."));
            RemoveStream(s);
            return true;
        }
    }

    internal void AbortStream(MuxStream s, long code, MuxError reason)
    {
        lock (_sync)
        {
            AbortLocked(s, code, reason, $"The stream was aborted (code {code}).");
        }
    }

    private void AbortLocked(MuxStream s, long code, MuxError reason, string message)
    {
        if (s.Removed)
        {
            // Already forgotten (finished, refused or failed): later operations fail, nothing goes on the wire.
            if (!s.State.IsTerminal())
            {
                s.TransitionTo(MuxStreamState.Reset);
            }
            s.Error ??= new MuxException(reason, code, message);
            return;
        }
        if (s.State == MuxStreamState.PendingAccept)
        {
            s.TransitionTo(MuxStreamState.Refused);
            EnqueueControl(new Control(MuxFrameType.Refuse, s.WireRef, code, null));
        }
        else
        {
            EnqueueControl(new Control(MuxFrameType.Reset, s.WireRef, code, null, s.SendNext));
            // The peer answers with its final size, so credit for bytes still in flight towards us comes back.
            _awaitingFinalSize[s.Key] = s.RecvHighest;
        }
        FailStream(s, new MuxException(reason, code, message));
        RemoveStream(s);
    }

    internal void DisposeStream(MuxStream s)
    {
        lock (_sync)
        {
            if (s.Disposed)
            {
                return;
            }
            s.Disposed = true;
            if (s.Removed)
            {
                s.WakeReader();
                s.WakeWriter();
                return;
            }
            if (s.State is MuxStreamState.PendingAccept or MuxStreamState.Opening)
            {
                AbortLocked(s, 0, MuxError.Aborted, "The stream was disposed before it opened.");
                return;
            }
            if (!s.FinRequested && s.Error is null)
            {
                if (s.WriteCut || s.Writing)
                {
                    // A write did not finish (cancelled, or still pending): the peer must not read a clean end after
                    // part of the data.
                    AbortLocked(s, 0, MuxError.Aborted, "The stream was disposed with a write that did not finish.");
                    return;
                }
                FinishWritesLocked(s);
            }
            // Nobody reads any more: drop what is buffered and whatever still comes, but keep granting credit
            // so the peer can reach its FIN.
            s.Discarding = true;
            Consume(s, s.Received.ContiguousEnd(s.ReadOffset) - s.ReadOffset);
            s.WakeReader();
            s.WakeWriter();
            CheckStreamDone(s);
            if (!s.Removed)
            {
                s.LingerDeadline = NowMicros() + ToMicros(_options.LingerTimeout);
                _lingering.Add(s);
                Signal();
            }
        }
    }
}
