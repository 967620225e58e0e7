using System.Buffers;
using System.IO.Pipelines;
using System.Text.Json;
using System.Text.Json.Serialization.Metadata;

namespace Viscript.Core.Cluster;

/// <summary>Timings and limits of one agent connection (both ends use the same).</summary>
public sealed record AgentChannelOptions
{
    /// <summary>A side that sent nothing for this long sends a keepalive.</summary>
    public TimeSpan KeepaliveInterval { get; init; } = TimeSpan.FromSeconds(5);

    /// <summary>A side that received nothing for this long closes the connection (the peer or the path is gone).</summary>
    public TimeSpan SilenceTimeout { get; init; } = TimeSpan.FromSeconds(15);

    /// <summary>A frame that cannot be written within this time closes the connection (the peer stopped reading).</summary>
    public TimeSpan WriteTimeout { get; init; } = TimeSpan.FromSeconds(30);

    /// <summary>Largest frame accepted after the hello.</summary>
    public int MaxFrameSize { get; init; } = AgentFrameCodec.DefaultMaxFrameSize;

    /// <summary>Clock of the keepalive and silence timers.</summary>
    public TimeProvider TimeProvider { get; init; } = TimeProvider.System;

    /// <summary>Defaults.</summary>
    public static AgentChannelOptions Default { get; } = new();
}

/// <summary>
/// A framed, authenticated agent connection (the TLS stream below is already authenticated both ways): frames in
/// through one read loop, frames out through one lock, a keepalive when idle and a close when the peer is silent.
/// A protocol violation, a silent peer or a stalled write closes the whole connection with a reason; the owners
/// (<see cref="RemoteHost"/>, <see cref="AgentLink"/>) decide what follows (unreachable, reconnect).
/// </summary>
public sealed class AgentChannel : IAsyncDisposable
{
    private readonly Stream _stream;
    private readonly PipeReader _reader;
    private readonly AgentChannelOptions _options;
    private readonly SemaphoreSlim _writeGate = new(1, 1);
    private readonly CancellationTokenSource _closed = new();
    private readonly TimeProvider _time;
    private long _lastReceived;
    private long _lastSent;
    private string? _closeReason;
    private int _disposed;

    /// <summary>Wraps <paramref name="stream"/> (disposed with the channel).</summary>
    public AgentChannel(Stream stream, AgentChannelOptions? options = null)
    {
        _stream = stream;
        _options = options ?? AgentChannelOptions.Default;
        _time = _options.TimeProvider;
        _reader = PipeReader.Create(stream, new StreamPipeReaderOptions(bufferSize: 64 * 1024, leaveOpen: true));
        _lastReceived = _lastSent = _time.GetTimestamp();
    }

    /// <summary>Why the channel closed (null while open).</summary>
    public string? CloseReason => Volatile.Read(ref _closeReason);

    /// <summary>Cancelled when the channel closes.</summary>
    public CancellationToken Closed => _closed.Token;

    /// <summary>When the peer last sent a frame.</summary>
    public DateTimeOffset LastReceived => _time.GetUtcNow() - _time.GetElapsedTime(Interlocked.Read(ref _lastReceived));

    /// <summary>Reads exactly one frame (the handshake phase) and decodes its body with <paramref name="decode"/>.</summary>
    /// <exception cref="AgentProtocolException">Bad frame, or the stream ended first.</exception>
    public async Task<T> ReadOneAsync<T>(int maxFrameSize, Func<AgentFrame, T> decode, CancellationToken cancellationToken)
    {
        while (true)
        {
            var result = await _reader.ReadAsync(cancellationToken);
            var buffer = result.Buffer;
            if (AgentFrameCodec.TryReadFrame(ref buffer, maxFrameSize, out var frame))
            {
                Interlocked.Exchange(ref _lastReceived, _time.GetTimestamp());
                var value = decode(frame);
                _reader.AdvanceTo(buffer.Start);
                return value;
            }
            _reader.AdvanceTo(buffer.Start, buffer.End);
            if (result.IsCompleted)
            {
                throw new AgentProtocolException(buffer.IsEmpty ? "the peer closed the connection" : "the peer closed the connection in the middle of a frame");
            }
        }
    }

    /// <summary>
    /// Reads frames until the connection ends, handing each to <paramref name="onFrame"/> (synchronously: the body is
    /// valid only during the call), and runs the keepalive. Returns the reason it closed; never throws for the peer's faults.
    /// </summary>
    public async Task<string> RunAsync(Action<AgentFrame> onFrame, CancellationToken cancellationToken)
    {
        using var link = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, _closed.Token);
        var keepalive = KeepaliveAsync(link.Token);
        try
        {
            while (true)
            {
                var result = await _reader.ReadAsync(link.Token);
                var buffer = result.Buffer;
                if (!buffer.IsEmpty)
                {
                    Interlocked.Exchange(ref _lastReceived, _time.GetTimestamp());
                }
                while (AgentFrameCodec.TryReadFrame(ref buffer, _options.MaxFrameSize, out var frame))
                {
                    onFrame(frame);
                }
                _reader.AdvanceTo(buffer.Start, buffer.End);
                if (result.IsCompleted)
                {
                    Close(buffer.IsEmpty ? "closed by the peer" : "closed by the peer in the middle of a frame");
                    break;
                }
            }
        }
        catch (AgentProtocolException ex)
        {
            Close("protocol violation: " + ex.Message);
        }
        catch (JsonException ex)
        {
            Close("protocol violation: unreadable JSON: " + ex.Message);
        }
        catch (OperationCanceledException)
        {
            Close(cancellationToken.IsCancellationRequested ? "closed by this side" : CloseReason ?? "closed");
        }
        catch (Exception ex) when (ex is IOException or ObjectDisposedException or System.Security.Authentication.AuthenticationException)
        {
            Close("connection lost: " + ex.Message);
        }
        await link.CancelAsync();
        await keepalive;
        return CloseReason ?? "closed";
    }

    private async Task KeepaliveAsync(CancellationToken cancellationToken)
    {
        try
        {
            var tick = _options.KeepaliveInterval < _options.SilenceTimeout / 3 ? _options.KeepaliveInterval : _options.SilenceTimeout / 3;
            while (!cancellationToken.IsCancellationRequested)
            {
                await Task.Delay(tick, _time, cancellationToken);
                var silent = _time.GetElapsedTime(Interlocked.Read(ref _lastReceived));
                if (silent >= _options.SilenceTimeout)
                {
                    Close($"the peer was silent for {silent.TotalSeconds:0} s");
                    return;
                }
                if (_time.GetElapsedTime(Interlocked.Read(ref _lastSent)) >= _options.KeepaliveInterval)
                {
                    await SendRawAsync(AgentOp.Keepalive, ReadOnlyMemory<byte>.Empty, cancellationToken);
                }
            }
        }
        catch (OperationCanceledException)
        {
        }
    }

    /// <summary>Sends one frame with a JSON body. Returns false when the channel is (or got) closed.</summary>
    public ValueTask<bool> SendAsync<T>(AgentOp op, T body, JsonTypeInfo<T> type, CancellationToken cancellationToken = default) =>
        SendRawAsync(op, JsonSerializer.SerializeToUtf8Bytes(body, type), cancellationToken);

    /// <summary>Sends one frame. Returns false when the channel is (or got) closed; a write that stalls closes it.</summary>
    public async ValueTask<bool> SendRawAsync(AgentOp op, ReadOnlyMemory<byte> body, CancellationToken cancellationToken = default)
    {
        if (_closed.IsCancellationRequested)
        {
            return false;
        }
        var frame = new ArrayBufferWriter<byte>(AgentFrameCodec.HeaderSize + body.Length);
        AgentFrameCodec.Write(frame, op, body.Span);
        using var deadline = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, _closed.Token);
        deadline.CancelAfter(_options.WriteTimeout);
        try
        {
            await _writeGate.WaitAsync(deadline.Token);
        }
        catch (OperationCanceledException)
        {
            return StalledOrClosed(cancellationToken);
        }
        try
        {
            await _stream.WriteAsync(frame.WrittenMemory, deadline.Token);
            await _stream.FlushAsync(deadline.Token);
            Interlocked.Exchange(ref _lastSent, _time.GetTimestamp());
            return true;
        }
        catch (OperationCanceledException)
        {
            return StalledOrClosed(cancellationToken);
        }
        catch (Exception ex) when (ex is IOException or ObjectDisposedException or NotSupportedException or InvalidOperationException)
        {
            Close("connection lost while writing: " + ex.Message);
            return false;
        }
        finally
        {
            _writeGate.Release();
        }
    }

    private bool StalledOrClosed(CancellationToken cancellationToken)
    {
        if (!cancellationToken.IsCancellationRequested && !_closed.IsCancellationRequested)
        {
            Close($"the peer did not read a frame for {_options.WriteTimeout.TotalSeconds:0} s");
        }
        cancellationToken.ThrowIfCancellationRequested();
        return false;
    }

    /// <summary>Closes the connection (idempotent; the first reason stays).</summary>
    public void Close(string reason)
    {
        if (Interlocked.CompareExchange(ref _closeReason, reason, null) is not null)
        {
            return;
        }
        _closed.Cancel();
        // Aborts pending reads and writes: the read loop and any waiting sender see the close at once.
        _stream.Dispose();
    }

    /// <inheritdoc/>
    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            return;
        }
        Close("closed by this side");
        await _reader.CompleteAsync();
        await _stream.DisposeAsync();
        _closed.Dispose();
    }
}
