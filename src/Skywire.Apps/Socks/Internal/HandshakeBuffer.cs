using System.Buffers;

namespace Skywire.Apps.Socks.Internal;

/// <summary>Parser shape shared by the handshake readers.</summary>
internal delegate OperationStatus MessageParser<T>(ref ReadOnlySequence<byte> buffer, out T value, out SocksReplyCode failure);

/// <summary>Result of <see cref="HandshakeBuffer.ReadAsync{T}"/>.</summary>
/// <param name="Status">Done; InvalidData (violation or oversize); NeedMoreData (the peer closed mid-message).</param>
/// <param name="Value">The parsed message when Done.</param>
/// <param name="Failure">Reply code to answer a violation with.</param>
internal readonly record struct HandshakeResult<T>(OperationStatus Status, T Value, SocksReplyCode Failure);

/// <summary>
/// A small pooled buffer for the handshake phase of one connection: reads until a whole message
/// parses, and keeps whatever arrived after it (early data) so the relay can forward it.
/// </summary>
internal sealed class HandshakeBuffer : IDisposable
{
    private byte[]? _buffer = ArrayPool<byte>.Shared.Rent(SocksLimits.HandshakeBufferSize);
    private int _start;
    private int _end;

    /// <summary>Bytes received after the last parsed message.</summary>
    public ReadOnlyMemory<byte> Leftover => _buffer.AsMemory(_start, _end - _start);

    public async ValueTask<HandshakeResult<T>> ReadAsync<T>(Stream stream, MessageParser<T> parser, CancellationToken cancellationToken)
    {
        var buffer = _buffer ?? throw new ObjectDisposedException(nameof(HandshakeBuffer));
        while (true)
        {
            var sequence = new ReadOnlySequence<byte>(buffer, _start, _end - _start);
            var status = parser(ref sequence, out var value, out var failure);
            if (status == OperationStatus.Done)
            {
                _start = _end - (int)sequence.Length;
                return new(status, value, failure);
            }

            if (status == OperationStatus.InvalidData)
            {
                return new(status, value, failure);
            }

            if (_end == buffer.Length)
            {
                if (_start == 0)
                {
                    // Every message we parse fits in the buffer, so this is a violation.
                    return new(OperationStatus.InvalidData, default!, SocksReplyCode.GeneralFailure);
                }

                Buffer.BlockCopy(buffer, _start, buffer, 0, _end - _start);
                _end -= _start;
                _start = 0;
            }

            var read = await stream.ReadAsync(buffer.AsMemory(_end), cancellationToken);
            if (read == 0)
            {
                return new(OperationStatus.NeedMoreData, default!, SocksReplyCode.GeneralFailure);
            }

            _end += read;
        }
    }

    public void Dispose()
    {
        var buffer = Interlocked.Exchange(ref _buffer, null);
        if (buffer is not null)
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }
}
