using System.Buffers;
using System.IO.Pipelines;
using Skywire.Core.Streams;

namespace Skywire.TestKit.Streams;

/// <summary>
/// An in-memory connected pair of <see cref="DuplexStream"/>s standing in for a mesh stream or a TCP connection:
/// <see cref="End.CompleteWritesAsync"/> is the FIN (the peer reads to the end, then 0), <see cref="End.Abort"/> the
/// reset (the peer's reads and writes throw <see cref="StreamAbortedException"/>), disposing closes gracefully (FIN,
/// then the peer's writes fail). Writes have backpressure (the pipe's default thresholds). The acknowledgement of an
/// end's writes can be held back (<see cref="End.Acknowledgement"/>) to test who waits for it.
/// </summary>
public sealed class DuplexStreamPair
{
    /// <summary>Creates a connected pair.</summary>
    public DuplexStreamPair()
    {
        var aToB = new Pipe();
        var bToA = new Pipe();
        A = new End(bToA.Reader, aToB.Writer);
        B = new End(aToB.Reader, bToA.Writer);
        A.Peer = B;
        B.Peer = A;
    }

    /// <summary>One end.</summary>
    public End A { get; }

    /// <summary>The other end.</summary>
    public End B { get; }

    /// <summary>One end of the pair.</summary>
    public sealed class End : DuplexStream
    {
        private readonly PipeReader _reader;
        private readonly PipeWriter _writer;
        private int _disposed;
        private int _writesCompleted;
        private int _aborted;

        internal End(PipeReader reader, PipeWriter writer)
        {
            _reader = reader;
            _writer = writer;
        }

        internal End Peer { get; set; } = null!;

        /// <summary>True once disposed (gracefully or after an abort).</summary>
        public bool IsDisposed => Volatile.Read(ref _disposed) != 0;

        /// <summary>True once this end aborted.</summary>
        public bool IsAborted => Volatile.Read(ref _aborted) != 0;

        /// <summary>True once this end finished its writes (FIN), by <see cref="CompleteWritesAsync"/> or a graceful dispose.</summary>
        public bool WritesCompleted => Volatile.Read(ref _writesCompleted) != 0;

        /// <summary>
        /// When set, <see cref="WhenWritesAcknowledgedAsync"/> waits for this task (and fails with it) instead of
        /// completing once writes are completed.
        /// </summary>
        public Task? Acknowledgement { get; set; }

        /// <summary>Completes when somebody first waits for this end's writes to be acknowledged.</summary>
        public Task AcknowledgementAwaited => _acknowledgementAwaited.Task;

        private readonly TaskCompletionSource _acknowledgementAwaited = new(TaskCreationOptions.RunContinuationsAsynchronously);

        /// <inheritdoc/>
        public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
        {
            ThrowIfAborted();
            ObjectDisposedException.ThrowIf(IsDisposed, this);
            if (buffer.IsEmpty)
            {
                return 0;
            }

            // A dispose racing this read completes the pipe's reader under it: the pipe then says "not allowed after
            // the reader was completed" (InvalidOperationException), where a socket disposed mid-read throws
            // ObjectDisposedException. Say what a socket says.
            try
            {
                var result = await _reader.ReadAsync(cancellationToken);
                if (result.IsCanceled)
                {
                    ThrowIfAborted();
                    throw new ObjectDisposedException(nameof(End));
                }

                var available = result.Buffer;
                var count = (int)Math.Min(buffer.Length, available.Length);
                var slice = available.Slice(0, count);
                slice.CopyTo(buffer.Span);
                _reader.AdvanceTo(slice.End);
                return count;
            }
            catch (InvalidOperationException) when (IsDisposed)
            {
                throw new ObjectDisposedException(nameof(End));
            }
        }

        /// <inheritdoc/>
        public override async ValueTask WriteAsync(ReadOnlyMemory<byte> buffer, CancellationToken cancellationToken = default)
        {
            ThrowIfAborted();
            ObjectDisposedException.ThrowIf(IsDisposed, this);
            if (WritesCompleted)
            {
                throw new InvalidOperationException("Writes were completed.");
            }

            FlushResult result;
            try
            {
                result = await _writer.WriteAsync(buffer, cancellationToken);
            }
            catch (InvalidOperationException) when (IsDisposed)
            {
                throw new ObjectDisposedException(nameof(End)); // a dispose raced this write (see ReadAsync)
            }

            if (Peer.IsAborted)
            {
                throw new StreamAbortedException("the peer aborted the stream");
            }

            if (result.IsCanceled)
            {
                ThrowIfAborted();
                throw new ObjectDisposedException(nameof(End));
            }

            if (result.IsCompleted)
            {
                throw new IOException("The peer closed the stream.");
            }
        }

        /// <inheritdoc/>
        public override ValueTask CompleteWritesAsync(CancellationToken cancellationToken = default)
        {
            ThrowIfAborted();
            if (Interlocked.Exchange(ref _writesCompleted, 1) == 0)
            {
                _writer.Complete();
            }

            return ValueTask.CompletedTask;
        }

        /// <inheritdoc/>
        public override async ValueTask WhenWritesAcknowledgedAsync(CancellationToken cancellationToken = default)
        {
            _acknowledgementAwaited.TrySetResult();
            if (Acknowledgement is { } acknowledgement)
            {
                await acknowledgement.WaitAsync(cancellationToken);
            }

            ThrowIfAborted();
        }

        /// <inheritdoc/>
        public override void Abort()
        {
            if (Interlocked.Exchange(ref _aborted, 1) != 0)
            {
                return;
            }

            // The peer's reads fail with this (after the bytes already in the pipe: a reset discards them in TCP too,
            // but a test double that keeps them only makes "never a clean end" harder to satisfy).
            if (Interlocked.Exchange(ref _writesCompleted, 1) == 0)
            {
                _writer.Complete(new StreamAbortedException("the peer aborted the stream"));
            }

            _reader.CancelPendingRead();
            _writer.CancelPendingFlush();
            Peer._writer.CancelPendingFlush(); // a peer blocked writing to us learns at once
        }

        /// <inheritdoc/>
        protected override void Dispose(bool disposing)
        {
            if (disposing && Interlocked.Exchange(ref _disposed, 1) == 0)
            {
                if (Interlocked.Exchange(ref _writesCompleted, 1) == 0)
                {
                    _writer.Complete();
                }

                _reader.CancelPendingRead();
                _reader.Complete();
            }

            base.Dispose(disposing);
        }

        private void ThrowIfAborted()
        {
            if (IsAborted)
            {
                throw new StreamAbortedException("this end of the stream was aborted");
            }
        }
    }
}
