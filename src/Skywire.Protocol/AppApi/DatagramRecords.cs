using System.Buffers.Binary;

namespace Skywire.Protocol.AppApi;

/// <summary>
/// The framing of an app API datagram connection (docs/protocol.md §7.1): after the <c>Datagrams</c> answer, both
/// directions carry records <c>length u16 (big-endian) | datagram</c> back to back, many per write. The byte stream
/// has no other structure, so a writer batches by putting as many records as it has into one write, and a reader takes
/// whatever a read returns and splits it (a record may straddle two reads).
/// </summary>
public static class DatagramRecords
{
    /// <summary>Bytes of the length prefix.</summary>
    public const int PrefixLength = 2;

    /// <summary>Largest datagram a record can hold (the node accepts at most the flow's <c>maxDatagram</c>).</summary>
    public const int MaxPayload = ushort.MaxValue;

    /// <summary>A buffer size that always holds a whole record.</summary>
    public const int MaxRecord = PrefixLength + MaxPayload;

    /// <summary>Writes one record at the start of <paramref name="destination"/>; false (nothing written) when it does not fit.</summary>
    public static bool TryWrite(Span<byte> destination, ReadOnlySpan<byte> datagram, out int written)
    {
        written = 0;
        if (datagram.Length > MaxPayload || destination.Length < PrefixLength + datagram.Length)
        {
            return false;
        }

        BinaryPrimitives.WriteUInt16BigEndian(destination, (ushort)datagram.Length);
        datagram.CopyTo(destination[PrefixLength..]);
        written = PrefixLength + datagram.Length;
        return true;
    }
}

/// <summary>
/// Splits the bytes of a datagram connection into records (<see cref="DatagramRecords"/>). Receive into
/// <see cref="FreeSpace"/>, call <see cref="Advance"/> with the count, then <see cref="TryRead"/> until it returns
/// false; a partial record at the end waits for the next read. Allocation-free after construction. Not thread-safe.
/// </summary>
public sealed class DatagramRecordReader
{
    private readonly byte[] _buffer;
    private int _start;
    private int _end;

    /// <param name="capacity">Buffer size; at least <see cref="DatagramRecords.MaxRecord"/> so any record fits.</param>
    public DatagramRecordReader(int capacity = 4 * DatagramRecords.MaxRecord)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(capacity, DatagramRecords.MaxRecord);
        _buffer = GC.AllocateArray<byte>(capacity, pinned: true);
    }

    /// <summary>Bytes of a partial record held for the next read.</summary>
    public int Pending => _end - _start;

    /// <summary>Where the next read goes (moves a held partial record to the front first).</summary>
    public Memory<byte> FreeSpace
    {
        get
        {
            if (_start > 0 && (_end == _start || _buffer.Length - _end < DatagramRecords.MaxRecord))
            {
                _buffer.AsSpan(_start, _end - _start).CopyTo(_buffer);
                _end -= _start;
                _start = 0;
            }

            return _buffer.AsMemory(_end);
        }
    }

    /// <summary>Takes <paramref name="count"/> bytes received into <see cref="FreeSpace"/>.</summary>
    public void Advance(int count)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(count);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(count, _buffer.Length - _end);
        _end += count;
    }

    /// <summary>The next whole record's datagram (valid until the next call on this reader); false when none is complete.</summary>
    public bool TryRead(out ReadOnlySpan<byte> datagram)
    {
        datagram = default;
        var available = _end - _start;
        if (available < DatagramRecords.PrefixLength)
        {
            return false;
        }

        var length = BinaryPrimitives.ReadUInt16BigEndian(_buffer.AsSpan(_start));
        if (available < DatagramRecords.PrefixLength + length)
        {
            return false;
        }

        datagram = _buffer.AsSpan(_start + DatagramRecords.PrefixLength, length);
        _start += DatagramRecords.PrefixLength + length;
        if (_start == _end)
        {
            _start = _end = 0;
        }

        return true;
    }
}

/// <summary>
/// Gathers datagrams as records (<see cref="DatagramRecords"/>) for one write: add as many as fit, write
/// <see cref="Written"/> in one call, <see cref="Clear"/>. Allocation-free after construction. Not thread-safe.
/// </summary>
public sealed class DatagramRecordWriter
{
    private readonly byte[] _buffer;

    /// <param name="capacity">Buffer size (a batch of 64 KiB makes one large write).</param>
    public DatagramRecordWriter(int capacity = 64 * 1024)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(capacity, DatagramRecords.PrefixLength);
        _buffer = GC.AllocateArray<byte>(capacity, pinned: true);
    }

    /// <summary>Bytes gathered.</summary>
    public int Length { get; private set; }

    /// <summary>Records gathered.</summary>
    public int Count { get; private set; }

    /// <summary>Bytes still free.</summary>
    public int Free => _buffer.Length - Length;

    /// <summary>The gathered records.</summary>
    public ReadOnlySpan<byte> Written => _buffer.AsSpan(0, Length);

    /// <summary>The gathered records (for asynchronous writes).</summary>
    public ReadOnlyMemory<byte> WrittenMemory => _buffer.AsMemory(0, Length);

    /// <summary>Adds one datagram; false when it does not fit (write and <see cref="Clear"/> first).</summary>
    public bool TryAdd(ReadOnlySpan<byte> datagram)
    {
        if (!DatagramRecords.TryWrite(_buffer.AsSpan(Length), datagram, out var written))
        {
            return false;
        }

        Length += written;
        Count++;
        return true;
    }

    /// <summary>
    /// Room for a datagram of up to <paramref name="maxLength"/> bytes written in place (no copy): fill the span, then
    /// <see cref="Commit"/> its real length. Empty when it does not fit.
    /// </summary>
    public Span<byte> Reserve(int maxLength)
    {
        if (maxLength > DatagramRecords.MaxPayload || Free < DatagramRecords.PrefixLength + maxLength)
        {
            return [];
        }

        return _buffer.AsSpan(Length + DatagramRecords.PrefixLength, maxLength);
    }

    /// <summary>Adds the datagram written into <see cref="Reserve"/>'s span.</summary>
    public void Commit(int length)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(length);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(length, Math.Min(DatagramRecords.MaxPayload, Free - DatagramRecords.PrefixLength));
        System.Buffers.Binary.BinaryPrimitives.WriteUInt16BigEndian(_buffer.AsSpan(Length), (ushort)length);
        Length += DatagramRecords.PrefixLength + length;
        Count++;
    }

    /// <summary>Empties the buffer.</summary>
    public void Clear()
    {
        Length = 0;
        Count = 0;
    }
}
