using System.IO.Pipelines;
using Skywire.Apps.Socks;

namespace Skywire.Tests.Socks;

/// <summary>
/// An in-memory connected stream pair standing in for a mesh stream: half-close completes the
/// writer (peer reads end of stream), dispose completes both ends, and writing to a peer that
/// is gone fails, as a closed mux stream does.
/// </summary>
internal sealed class DuplexStreamPair
{
    public DuplexStreamPair()
    {
        var aToB = new Pipe();
        var bToA = new Pipe();
        A = new End(bToA.Reader, aToB.Writer);
        B = new End(aToB.Reader, bToA.Writer);
    }

    public End A { get; }

    public End B { get; }

    public sealed class End(PipeReader reader, PipeWriter writer) : Stream, IHalfCloseStream
    {
        private int _disposed;
        private int _writesCompleted;

        public bool IsDisposed => Volatile.Read(ref _disposed) != 0;

        public override bool CanRead => true;

        public override bool CanWrite => true;

        public override bool CanSeek => false;

        public override long Length => throw new NotSupportedException();

        public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }

        public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
        {
            ObjectDisposedException.ThrowIf(IsDisposed, this);
            var result = await reader.ReadAsync(cancellationToken);
            if (result.IsCanceled)
            {
                throw new OperationCanceledException();
            }

            var available = result.Buffer;
            var count = (int)Math.Min(buffer.Length, available.Length);
            var slice = available.Slice(0, count);
            foreach (var segment in slice)
            {
                segment.Span.CopyTo(buffer.Span);
                buffer = buffer[segment.Length..];
            }

            reader.AdvanceTo(slice.End);
            return count;
        }

        public override async ValueTask WriteAsync(ReadOnlyMemory<byte> buffer, CancellationToken cancellationToken = default)
        {
            ObjectDisposedException.ThrowIf(IsDisposed, this);
            if (Volatile.Read(ref _writesCompleted) != 0)
            {
                throw new InvalidOperationException("Writes were completed.");
            }

            var result = await writer.WriteAsync(buffer, cancellationToken);
            if (result.IsCompleted)
            {
                throw new IOException("The peer closed the stream.");
            }
        }

        public ValueTask CompleteWritesAsync(CancellationToken cancellationToken = default)
        {
            if (Interlocked.Exchange(ref _writesCompleted, 1) == 0)
            {
                writer.Complete();
            }

            return ValueTask.CompletedTask;
        }

        public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
            ReadAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();

        public override Task WriteAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
            WriteAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();

        public override int Read(byte[] buffer, int offset, int count) => ReadAsync(buffer, offset, count).GetAwaiter().GetResult();

        public override void Write(byte[] buffer, int offset, int count) => WriteAsync(buffer, offset, count).GetAwaiter().GetResult();

        public override void Flush()
        {
        }

        public override Task FlushAsync(CancellationToken cancellationToken) => Task.CompletedTask;

        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

        public override void SetLength(long value) => throw new NotSupportedException();

        protected override void Dispose(bool disposing)
        {
            if (Interlocked.Exchange(ref _disposed, 1) == 0)
            {
                reader.CancelPendingRead();
                reader.Complete();
                if (Interlocked.Exchange(ref _writesCompleted, 1) == 0)
                {
                    writer.Complete();
                }
            }

            base.Dispose(disposing);
        }
    }
}
