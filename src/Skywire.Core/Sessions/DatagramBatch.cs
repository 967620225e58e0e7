using Skywire.Protocol.Sessions;

namespace Skywire.Core.Sessions;

/// <summary>
/// Preallocated slots for a batch of flow datagrams (<see cref="DatagramFlow.SendBatch"/>): each slot keeps room for
/// the flow header in front of the payload, so a datagram is written once, where it is sealed from. Reused batch after
/// batch: nothing is allocated per datagram. One thread at a time.
/// </summary>
public sealed class DatagramBatch
{
    /// <summary>Datagrams one batch holds by default: one UDP GSO send's worth (64 segments at most).</summary>
    public const int DefaultCapacity = 44;

    private readonly byte[][] _buffers;
    private readonly int[] _lengths;
    private readonly int _maxPayload;

    /// <param name="maxPayload">Largest datagram (the flow's <see cref="DatagramFlow.MaxDatagramSize"/>).</param>
    /// <param name="capacity">Slots (at most 64, one GSO send).</param>
    public DatagramBatch(int maxPayload, int capacity = DefaultCapacity)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(maxPayload);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(capacity);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(capacity, 64);
        _maxPayload = maxPayload;
        _buffers = new byte[capacity][];
        _lengths = new int[capacity];
        for (var i = 0; i < capacity; i++)
        {
            _buffers[i] = new byte[FlowDatagram.HeaderLength + maxPayload];
        }
    }

    /// <summary>Datagrams in the batch.</summary>
    public int Count { get; private set; }

    /// <summary>Slots in the batch.</summary>
    public int Capacity => _buffers.Length;

    /// <summary>True when no slot is left.</summary>
    public bool IsFull => Count == _buffers.Length;

    /// <summary>Largest datagram a slot holds.</summary>
    public int MaxPayload => _maxPayload;

    internal byte[][] Buffers => _buffers;

    internal int[] Lengths => _lengths;

    /// <summary>The payload area of the next free slot (<see cref="MaxPayload"/> bytes): write a datagram there, then <see cref="Commit"/>.</summary>
    public Span<byte> NextSlot => IsFull ? throw new InvalidOperationException("the batch is full") : _buffers[Count].AsSpan(FlowDatagram.HeaderLength, _maxPayload);

    /// <summary>Adds the datagram written into <see cref="NextSlot"/>.</summary>
    public void Commit(int length)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(length);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(length, _maxPayload);
        if (IsFull)
        {
            throw new InvalidOperationException("the batch is full");
        }

        _lengths[Count++] = FlowDatagram.HeaderLength + length;
    }

    /// <summary>Copies a datagram into the next slot; false when the batch is full or the datagram is too large.</summary>
    public bool TryAdd(ReadOnlySpan<byte> datagram)
    {
        if (IsFull || datagram.Length > _maxPayload)
        {
            return false;
        }

        datagram.CopyTo(_buffers[Count].AsSpan(FlowDatagram.HeaderLength));
        _lengths[Count++] = FlowDatagram.HeaderLength + datagram.Length;
        return true;
    }

    /// <summary>Empties the batch (the slots are kept).</summary>
    public void Clear() => Count = 0;
}
