using System.Buffers;
using System.Buffers.Binary;
using System.Threading.Channels;
using Skywire.Core.Crypto;
using Skywire.Core.Crypto.Noise;
using Skywire.Core.Streams;
using Skywire.Protocol;
using Skywire.Protocol.Messenger;

namespace Skywire.Core.Messenger;

/// <summary>
/// A byte stream to another key relayed by the messenger (docs/messenger.md "Relayed streams"). Records are sealed
/// end to end with the keys of a Noise_KK handshake between the two clients (counter nonces: the relay keeps order),
/// an empty record is the authenticated end of stream (so the relay cannot truncate a stream unnoticed), and a
/// credit window per direction gives back-pressure: a writer waits until the reader's side has consumed enough.
/// Same shape as the mux's stream: <see cref="OpenData"/>, <see cref="CompleteWritesAsync"/>, <see cref="Abort"/>.
/// </summary>
public sealed class MessengerStream : DuplexStream
{
    private readonly MessengerClient _client;
    private readonly uint _circuit;
    private readonly NoiseTransport _transport;
    private readonly int _window;
    private readonly Channel<byte[]> _records = Channel.CreateUnbounded<byte[]>(new UnboundedChannelOptions { SingleReader = true, SingleWriter = true });
    private readonly SemaphoreSlim _writeLock = new(1, 1);
    private readonly Lock _creditLock = new();
    private readonly byte[] _plain = new byte[MessengerProtocol.MaxStreamRecordPlaintext];
    private TaskCompletionSource _creditChanged = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private long _credit;
    private int _plainStart;
    private int _plainEnd;
    private int _unacknowledged;
    private bool _eof;
    private bool _finSent;
    private volatile bool _writeCut; // a write did not finish (cancelled or failed): the stream can only be aborted
    private volatile bool _closed;
    private StreamCloseReason? _remoteClose;
    private int _disposed;

    internal MessengerStream(MessengerClient client, uint circuit, PubKey remoteKey, byte[] openData, NoiseTransport transport, int window)
    {
        _client = client;
        _circuit = circuit;
        RemoteKey = remoteKey;
        OpenData = openData;
        _transport = transport;
        _window = window;
        _credit = window;
    }

    /// <summary>The key at the other end (proven by the end-to-end handshake).</summary>
    public PubKey RemoteKey { get; }

    /// <summary>What the opener asked for (e.g. an app name), delivered encrypted.</summary>
    public ReadOnlyMemory<byte> OpenData { get; }

    internal void OnRecord(ReadOnlySpan<byte> record) => _records.Writer.TryWrite(record.ToArray());

    internal void OnCredit(uint bytes)
    {
        lock (_creditLock)
        {
            _credit += bytes;
        }

        SignalCredit();
    }

    internal void OnRemoteClose(StreamCloseReason reason)
    {
        _remoteClose ??= reason;
        _closed = true;
        _records.Writer.TryComplete();
        SignalCredit();
    }

    private void SignalCredit()
    {
        TaskCompletionSource changed;
        lock (_creditLock)
        {
            changed = _creditChanged;
            _creditChanged = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        }

        changed.TrySetResult();
    }

    /// <inheritdoc />
    public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
    {
        while (_plainStart == _plainEnd)
        {
            if (_eof || buffer.IsEmpty)
            {
                return 0;
            }

            if (!_records.Reader.TryRead(out var record))
            {
                if (!await _records.Reader.WaitToReadAsync(cancellationToken))
                {
                    throw new IOException(_remoteClose == StreamCloseReason.Aborted
                        ? $"the stream with {RemoteKey.ToShortString(12)} was aborted"
                        : $"the stream with {RemoteKey.ToShortString(12)} ended without its end-of-stream record ({_remoteClose?.ToString() ?? "closed"})");
                }

                continue;
            }

            if (record.Length < AeadKey.TagLength || record.Length - AeadKey.TagLength > MessengerProtocol.MaxStreamRecordPlaintext)
            {
                Abort();
                throw new IOException("malformed stream record");
            }

            int n;
            try
            {
                n = _transport.Receive.DecryptWithAd([], record, _plain);
            }
            catch (NoiseException)
            {
                Abort();
                throw new IOException("a stream record failed authentication (forged or corrupted by the relay)");
            }

            _unacknowledged += record.Length;
            if (_unacknowledged >= _window / 4)
            {
                _client.SendFrame((byte)MessengerOpcode.StreamCredit, MessengerFrames.StreamCredit(_circuit, (uint)_unacknowledged), []);
                _unacknowledged = 0;
            }

            if (n == 0)
            {
                _eof = true;
                return 0;
            }

            _plainStart = 0;
            _plainEnd = n;
        }

        var count = Math.Min(buffer.Length, _plainEnd - _plainStart);
        _plain.AsSpan(_plainStart, count).CopyTo(buffer.Span);
        _plainStart += count;
        return count;
    }

    /// <inheritdoc />
    public override async ValueTask WriteAsync(ReadOnlyMemory<byte> buffer, CancellationToken cancellationToken = default)
    {
        try
        {
            await _writeLock.WaitAsync(cancellationToken);
        }
        catch (OperationCanceledException)
        {
            _writeCut = true;
            throw;
        }

        try
        {
            if (_finSent)
            {
                throw new InvalidOperationException("writes were completed");
            }

            if (_writeCut)
            {
                throw new IOException("an earlier write on this stream did not finish (cancelled or failed): the stream is incomplete and can only be aborted");
            }

            while (!buffer.IsEmpty)
            {
                var chunk = buffer[..Math.Min(buffer.Length, MessengerProtocol.MaxStreamRecordPlaintext)];

                // The last tag's worth of credit stays reserved, so the end-of-stream record can always be sent.
                await WaitForCreditAsync(chunk.Length + (2 * AeadKey.TagLength), cancellationToken);
                SendRecord(chunk.Span);
                buffer = buffer[chunk.Length..];
            }
        }
        catch (Exception ex) when (ex is OperationCanceledException or IOException)
        {
            // Part of the data may have gone out: the stream can no longer end cleanly (CompleteWrites and the dispose
            // abort it instead).
            _writeCut = true;
            throw;
        }
        finally
        {
            _writeLock.Release();
        }
    }

    /// <summary>
    /// Sends the authenticated end of stream: the peer reads to the end, then gets 0. Reading goes on. After a write that
    /// did not finish it aborts the stream instead and throws: the peer must not read a clean end after part of the data.
    /// </summary>
    public override async ValueTask CompleteWritesAsync(CancellationToken cancellationToken = default)
    {
        await _writeLock.WaitAsync(cancellationToken);
        try
        {
            if (_writeCut && !_finSent)
            {
                Abort();
                throw new IOException("a write on this stream did not finish: its writes cannot be finished; the stream was aborted");
            }

            SendFin();
        }
        finally
        {
            _writeLock.Release();
        }
    }

    private void SendFin()
    {
        if (_finSent || _closed)
        {
            return;
        }

        _finSent = true;
        lock (_creditLock)
        {
            _credit -= AeadKey.TagLength;
        }

        SendRecord([]);
    }

    private async ValueTask WaitForCreditAsync(int need, CancellationToken cancellationToken)
    {
        while (true)
        {
            Task changed;
            lock (_creditLock)
            {
                if (_closed)
                {
                    throw new IOException($"the stream with {RemoteKey.ToShortString(12)} is closed");
                }

                if (_credit >= need)
                {
                    _credit -= need - AeadKey.TagLength;
                    return;
                }

                changed = _creditChanged.Task;
            }

            await changed.WaitAsync(cancellationToken);
        }
    }

    private void SendRecord(ReadOnlySpan<byte> plaintext)
    {
        var record = ArrayPool<byte>.Shared.Rent(plaintext.Length + AeadKey.TagLength);
        try
        {
            var n = _transport.Send.EncryptWithAd([], plaintext, record);
            Span<byte> prefix = stackalloc byte[MessengerProtocol.CircuitSize];
            BinaryPrimitives.WriteUInt32BigEndian(prefix, _circuit);
            _client.SendFrame((byte)MessengerOpcode.StreamData, prefix, record.AsSpan(0, n));
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(record);
        }
    }

    /// <summary>Ends the stream at once in both directions; the peer's reads fail.</summary>
    public override void Abort()
    {
        if (_closed)
        {
            return;
        }

        _closed = true;
        _remoteClose ??= StreamCloseReason.Aborted;
        _client.SendFrame((byte)MessengerOpcode.StreamClose, MessengerFrames.StreamClose(_circuit, StreamCloseReason.Aborted), []);
        _client.ForgetStream(_circuit);
        _records.Writer.TryComplete();
        SignalCredit();
    }

    /// <inheritdoc />
    public override async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            return;
        }

        await _writeLock.WaitAsync();
        try
        {
            if (!_closed && _writeCut && !_finSent)
            {
                // A write did not finish: end the stream as a failure, not with the end-of-stream record.
                Abort();
            }

            if (!_closed)
            {
                SendFin();
                _closed = true;
                _client.SendFrame((byte)MessengerOpcode.StreamClose, MessengerFrames.StreamClose(_circuit, StreamCloseReason.Closed), []);
                _client.ForgetStream(_circuit);
                _records.Writer.TryComplete();
                SignalCredit();
            }
        }
        finally
        {
            _writeLock.Release();
        }

        _transport.Dispose();
        await base.DisposeAsync();
    }

    protected override void Dispose(bool disposing)
    {
        if (disposing)
        {
            DisposeAsync().AsTask().GetAwaiter().GetResult();
        }

        base.Dispose(disposing);
    }

    public override bool CanRead => true;
    public override bool CanSeek => false;
    public override bool CanWrite => true;
    public override long Length => throw new NotSupportedException();
    public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }
    public override void Flush() { }
    public override Task FlushAsync(CancellationToken cancellationToken) => Task.CompletedTask;
    public override int Read(byte[] buffer, int offset, int count) => ReadAsync(buffer.AsMemory(offset, count)).AsTask().GetAwaiter().GetResult();
    public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) => ReadAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();
    public override void Write(byte[] buffer, int offset, int count) => WriteAsync(buffer.AsMemory(offset, count)).AsTask().GetAwaiter().GetResult();
    public override Task WriteAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) => WriteAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();
    public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
    public override void SetLength(long value) => throw new NotSupportedException();
}
