using System.Net.Sockets;
using Skywire.Core.Streams;
using Skywire.Protocol.AppApi;

namespace Skywire.Core.Sdk;

/// <summary>
/// An app's end of a datagram flow (docs/protocol.md §7.1): one loopback connection to the node carrying records
/// (<see cref="DatagramRecords"/>) both ways. Write many datagrams per call (<see cref="DatagramRecordWriter"/> +
/// <see cref="SendRecords"/>) and read whatever has arrived into a <see cref="DatagramRecordReader"/>: never one
/// system call per datagram under load. Datagrams may be lost (never retransmitted); a datagram longer than
/// <see cref="MaxDatagram"/> is dropped by the node and counted.
/// </summary>
/// <remarks>
/// The synchronous calls are meant for dedicated I/O threads (one reader, one writer may work at once); the
/// asynchronous ones for everything else. The connection ends when the flow's stream ends (reads return false).
/// </remarks>
public sealed class SkywireDatagrams : IDisposable, IAsyncDisposable
{
    private readonly SocketStream _connection;

    internal SkywireDatagrams(SocketStream connection, int maxDatagram)
    {
        _connection = connection;
        MaxDatagram = maxDatagram;
        try
        {
            connection.Socket.NoDelay = true;
            connection.Socket.SendBufferSize = 4 << 20;
            connection.Socket.ReceiveBufferSize = 4 << 20;
        }
        catch (SocketException)
        {
            // Buffer sizes are a hint.
        }
    }

    /// <summary>Largest datagram the flow carries.</summary>
    public int MaxDatagram { get; }

    /// <summary>Writes gathered records in one call (blocking).</summary>
    /// <exception cref="IOException">The connection failed or closed.</exception>
    public void SendRecords(ReadOnlySpan<byte> records)
    {
        try
        {
            while (!records.IsEmpty)
            {
                var n = _connection.Socket.Send(records, SocketFlags.None);
                records = records[n..];
            }
        }
        catch (Exception ex) when (ex is SocketException or ObjectDisposedException)
        {
            throw new IOException("the datagram connection to the node failed: " + ex.Message, ex);
        }
    }

    /// <summary>Writes gathered records (asynchronous).</summary>
    public async ValueTask SendRecordsAsync(ReadOnlyMemory<byte> records, CancellationToken cancellationToken = default) =>
        await _connection.WriteAsync(records, cancellationToken);

    /// <summary>Sends one datagram (one write: for occasional datagrams; batch with <see cref="SendRecords"/>).</summary>
    public void Send(ReadOnlySpan<byte> datagram)
    {
        Span<byte> record = stackalloc byte[DatagramRecords.PrefixLength + datagram.Length];
        DatagramRecords.TryWrite(record, datagram, out _);
        SendRecords(record);
    }

    /// <summary>Reads what has arrived into <paramref name="reader"/> (blocking); false at the end of the flow.</summary>
    /// <exception cref="IOException">The connection failed.</exception>
    public bool Receive(DatagramRecordReader reader)
    {
        ArgumentNullException.ThrowIfNull(reader);
        try
        {
            var n = _connection.Socket.Receive(reader.FreeSpace.Span, SocketFlags.None);
            reader.Advance(n);
            return n > 0;
        }
        catch (Exception ex) when (ex is SocketException or ObjectDisposedException)
        {
            throw new IOException("the datagram connection to the node failed: " + ex.Message, ex);
        }
    }

    /// <summary>Reads what has arrived into <paramref name="reader"/>; false at the end of the flow.</summary>
    public async ValueTask<bool> ReceiveAsync(DatagramRecordReader reader, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(reader);
        var n = await _connection.ReadAsync(reader.FreeSpace, cancellationToken);
        reader.Advance(n);
        return n > 0;
    }

    /// <summary>Closes the connection; a blocked <see cref="Receive"/> returns or throws.</summary>
    public void Dispose()
    {
        try
        {
            _connection.Socket.Shutdown(SocketShutdown.Both);
        }
        catch (Exception ex) when (ex is SocketException or ObjectDisposedException)
        {
        }

        _connection.Dispose();
    }

    /// <inheritdoc/>
    public ValueTask DisposeAsync()
    {
        Dispose();
        return ValueTask.CompletedTask;
    }
}
