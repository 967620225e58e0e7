namespace Skywire.Core.Streams;

/// <summary>
/// A bidirectional byte stream whose two directions end separately, and which ends in one of two ways: cleanly
/// (each side finishes its writes, the other reads to the end: <see cref="CompleteWritesAsync"/>, TCP FIN, mux
/// STREAM+FIN) or as a failure (<see cref="Abort"/>, TCP RST, mux RESET). A reader sees a clean end of stream
/// (<c>ReadAsync</c> returns 0) only after the writer finished and every byte before it arrived; any other end makes
/// reads throw an <see cref="IOException"/> (docs/protocol.md §7, "end of stream means complete"). Disposing finishes
/// the stream cleanly, except after a write that did not finish (it was cancelled or failed, so part of the caller's
/// data may be missing): then every implementation ends the stream as a failure, and <see cref="CompleteWritesAsync"/>
/// aborts it and throws.
/// </summary>
/// <remarks>
/// The one abstraction <see cref="StreamRelay"/> works on: mesh streams (<c>MuxStream</c>), messenger-relayed streams,
/// TCP connections (<see cref="SocketStream"/>) and the app SDK's streams. One reader and one writer may work
/// concurrently.
/// </remarks>
public abstract class DuplexStream : Stream
{
    /// <summary>
    /// Finishes the sending direction after the bytes already written (the peer reads them, then end of stream).
    /// Reading goes on. Idempotent; further writes throw.
    /// </summary>
    public abstract ValueTask CompleteWritesAsync(CancellationToken cancellationToken = default);

    /// <summary>
    /// Ends both directions as a failure, at once: unsent and unread data are discarded and the peer's pending and
    /// later operations throw; it never sees a clean end of stream. Idempotent; never throws.
    /// </summary>
    public abstract void Abort();

    /// <summary>
    /// Completes once writes were completed (<see cref="CompleteWritesAsync"/>) and the far end acknowledged every byte
    /// and the end of writes; throws (<see cref="IOException"/> or a subclass) when the stream fails first. A stream
    /// that cannot observe acknowledgements (a plain TCP connection) completes at once: that is the default.
    /// </summary>
    public virtual ValueTask WhenWritesAcknowledgedAsync(CancellationToken cancellationToken = default) => ValueTask.CompletedTask;

    /// <inheritdoc/>
    public override bool CanRead => true;

    /// <inheritdoc/>
    public override bool CanWrite => true;

    /// <inheritdoc/>
    public override bool CanSeek => false;

    /// <inheritdoc/>
    public override long Length => throw new NotSupportedException();

    /// <inheritdoc/>
    public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }

    /// <inheritdoc/>
    public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

    /// <inheritdoc/>
    public override void SetLength(long value) => throw new NotSupportedException();

    /// <inheritdoc/>
    public override int Read(byte[] buffer, int offset, int count) => ReadAsync(buffer.AsMemory(offset, count)).AsTask().GetAwaiter().GetResult();

    /// <inheritdoc/>
    public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
        ReadAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();

    /// <inheritdoc/>
    public override void Write(byte[] buffer, int offset, int count) => WriteAsync(buffer.AsMemory(offset, count)).AsTask().GetAwaiter().GetResult();

    /// <inheritdoc/>
    public override Task WriteAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
        WriteAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();

    /// <summary>No-op unless overridden: written data goes out as soon as it can.</summary>
    public override void Flush()
    {
    }

    /// <inheritdoc/>
    public override Task FlushAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    /// <inheritdoc/>
    public abstract override ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default);

    /// <inheritdoc/>
    public abstract override ValueTask WriteAsync(ReadOnlyMemory<byte> buffer, CancellationToken cancellationToken = default);
}

/// <summary>
/// A stream ended as a failure (its session died, its route vanished, or the peer aborted): the bytes read before were
/// correct, but the stream is incomplete.
/// </summary>
public class StreamAbortedException : IOException
{
    /// <summary>Creates the exception.</summary>
    public StreamAbortedException()
        : this("the stream was aborted: its session died, its route vanished or the peer aborted; it is incomplete")
    {
    }

    /// <summary>Creates the exception.</summary>
    public StreamAbortedException(string message)
        : base(message)
    {
    }

    /// <summary>Creates the exception.</summary>
    public StreamAbortedException(string message, Exception? innerException)
        : base(message, innerException)
    {
    }
}
