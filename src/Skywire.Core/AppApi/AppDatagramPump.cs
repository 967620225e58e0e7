using System.Net.Sockets;
using Microsoft.Extensions.Logging;
using Skywire.Core.Sessions;
using Skywire.Core.Streams;
using Skywire.Protocol.AppApi;

namespace Skywire.Core.AppApi;

/// <summary>
/// Moves datagrams between an app's datagram connection (docs/protocol.md §7.1) and a <see cref="DatagramFlow"/>.
/// Up: a dedicated thread reads the connection in large chunks, splits the records and hands them to the flow in
/// batches (one session seal each, one UDP GSO send per batch). Down: the node's receive thread appends each datagram
/// as a record to a bounded buffer (dropped and counted when it is full: the app reads too slowly) and a dedicated writer
/// thread writes whatever has gathered in one call, so a burst leaves in a few large writes, never one per datagram.
/// Nothing is allocated per datagram.
/// </summary>
/// <remarks>
/// Ends when the app closes the connection, the flow closes (its stream ended) or the node stops; then the connection
/// is closed and the flow's receiver detached. Malformed input is dropped and counted, never fatal: a record longer
/// than the flow carries (<see cref="DatagramFlowStatistics.TooLarge"/>), a connection ending inside a record
/// (<see cref="DatagramFlowStatistics.Malformed"/>).
/// </remarks>
internal sealed partial class AppDatagramPump : IDisposable
{
    /// <summary>Bytes the app may have queued towards it (two buffers of this size alternate).</summary>
    public const int QueueBytes = 1 << 20;

    private const int SocketBuffer = 4 << 20;

    private readonly SocketStream _connection;
    private readonly Socket _socket;
    private readonly DatagramFlow _flow;
    private readonly ILogger _logger;
    private readonly Lock _gate = new();
    private readonly SemaphoreSlim _wake = new(0, 1);
    private readonly TaskCompletionSource _completion = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private byte[] _fill = GC.AllocateArray<byte>(QueueBytes, pinned: true);
    private byte[] _drain = GC.AllocateArray<byte>(QueueBytes, pinned: true);
    private int _fillLength;
    private bool _signaled;
    private int _running = 2;
    private int _stopped;

    /// <param name="connection">The app's datagram connection; the pump reads and writes its socket directly and closes it when done.</param>
    /// <param name="flow">The stream's datagram flow.</param>
    /// <param name="logger">Logger.</param>
    public AppDatagramPump(SocketStream connection, DatagramFlow flow, ILogger logger)
    {
        _connection = connection;
        _socket = connection.Socket;
        _flow = flow;
        _logger = logger;
    }

    /// <summary>Completes when both directions have stopped.</summary>
    public Task Completion => _completion.Task;

    /// <summary>Starts the two threads and attaches to the flow.</summary>
    public void Start()
    {
        try
        {
            _socket.NoDelay = true;
            _socket.SendBufferSize = SocketBuffer;
            _socket.ReceiveBufferSize = SocketBuffer;
        }
        catch (SocketException)
        {
            // Buffer sizes are a hint.
        }

        _flow.Receiver = OnDatagram;
        _ = _flow.Completion.ContinueWith(_ => Stop(), TaskScheduler.Default);
        new Thread(Uplink) { IsBackground = true, Name = "skywire app datagrams up" }.Start();
        new Thread(Downlink) { IsBackground = true, Name = "skywire app datagrams down" }.Start();
    }

    /// <summary>Same as <see cref="Stop"/>; the connection and the rest go once both threads have ended.</summary>
    public void Dispose() => Stop();

    /// <summary>Stops both directions and closes the connection (idempotent).</summary>
    public void Stop()
    {
        if (Interlocked.Exchange(ref _stopped, 1) != 0)
        {
            return;
        }

        _flow.Receiver = null;
        try
        {
            _socket.Shutdown(SocketShutdown.Both);
        }
        catch (Exception ex) when (ex is SocketException or ObjectDisposedException)
        {
        }

        lock (_gate)
        {
            if (!_signaled)
            {
                _signaled = true;
                _wake.Release();
            }
        }
    }

    /// <summary>The receive thread: append one record, wake the writer.</summary>
    private void OnDatagram(ReadOnlySpan<byte> datagram)
    {
        var wake = false;
        lock (_gate)
        {
            if (Volatile.Read(ref _stopped) != 0)
            {
                return;
            }

            if (!DatagramRecords.TryWrite(_fill.AsSpan(_fillLength), datagram, out var written))
            {
                _flow.CountQueueFull();
                return;
            }

            _fillLength += written;
            if (!_signaled)
            {
                _signaled = true;
                wake = true;
            }
        }

        if (wake)
        {
            _wake.Release();
        }
    }

    private void Downlink()
    {
        try
        {
            while (true)
            {
                _wake.Wait();
                int length;
                lock (_gate)
                {
                    (_fill, _drain) = (_drain, _fill);
                    length = _fillLength;
                    _fillLength = 0;
                    _signaled = false;
                }

                if (Volatile.Read(ref _stopped) != 0)
                {
                    return;
                }

                var sent = 0;
                while (sent < length)
                {
                    sent += _socket.Send(_drain.AsSpan(sent, length - sent), SocketFlags.None);
                }
            }
        }
        catch (Exception ex) when (ex is SocketException or ObjectDisposedException)
        {
        }
        finally
        {
            Finished();
        }
    }

    private void Uplink()
    {
        var reader = new DatagramRecordReader();
        var batch = new DatagramBatch(_flow.MaxDatagramSize);
        try
        {
            while (true)
            {
                var n = _socket.Receive(reader.FreeSpace.Span, SocketFlags.None);
                if (n == 0)
                {
                    if (reader.Pending > 0)
                    {
                        _flow.CountMalformed();
                        Log.TruncatedRecord(_logger, reader.Pending);
                    }

                    return;
                }

                reader.Advance(n);
                while (reader.TryRead(out var datagram))
                {
                    if (datagram.Length > batch.MaxPayload)
                    {
                        _flow.CountTooLarge(1);
                        continue;
                    }

                    if (batch.IsFull)
                    {
                        _flow.SendBatch(batch);
                    }

                    batch.TryAdd(datagram);
                }

                _flow.SendBatch(batch);
            }
        }
        catch (Exception ex) when (ex is SocketException or ObjectDisposedException)
        {
        }
        finally
        {
            Stop();
            Finished();
        }
    }

    private void Finished()
    {
        if (Interlocked.Decrement(ref _running) == 0)
        {
            // A deliberate end (the app closed, the flow ended or the node stops): the stream's graceful close, never
            // the reset a SocketStream arms for any other close. A reset after the FIN would turn the app's clean end
            // of the flow into an error, depending on which it read first.
            _connection.Dispose();
            _wake.Dispose();
            _completion.TrySetResult();
        }
    }

    private static partial class Log
    {
        [LoggerMessage(EventId = 7110, Level = LogLevel.Debug, Message = "App datagram connection ended inside a record ({Pending} bytes dropped)")]
        public static partial void TruncatedRecord(ILogger logger, int pending);
    }
}
