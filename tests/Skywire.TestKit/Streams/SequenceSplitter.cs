using System.Buffers;

namespace Skywire.TestKit.Streams;

/// <summary>Builds multi-segment sequences, to check parsers at every split point (SE.Redis's FragmentedSegment).</summary>
public static class SequenceSplitter
{
    private sealed class Segment : ReadOnlySequenceSegment<byte>
    {
        public Segment(ReadOnlyMemory<byte> memory, long runningIndex)
        {
            Memory = memory;
            RunningIndex = runningIndex;
        }

        public Segment Append(ReadOnlyMemory<byte> memory)
        {
            var next = new Segment(memory, RunningIndex + Memory.Length);
            Next = next;
            return next;
        }
    }

    /// <summary>A sequence of the given pieces (empty pieces included, as real pipes can yield them).</summary>
    public static ReadOnlySequence<byte> FromPieces(params ReadOnlyMemory<byte>[] pieces)
    {
        ArgumentNullException.ThrowIfNull(pieces);
        if (pieces.Length == 0)
        {
            return ReadOnlySequence<byte>.Empty;
        }

        var first = new Segment(pieces[0], 0);
        var last = first;
        for (var i = 1; i < pieces.Length; i++)
        {
            last = last.Append(pieces[i]);
        }

        return new ReadOnlySequence<byte>(first, 0, last, last.Memory.Length);
    }

    /// <summary>The data split in two at <paramref name="offset"/>, with an empty segment between.</summary>
    public static ReadOnlySequence<byte> SplitAt(byte[] data, int offset)
    {
        ArgumentNullException.ThrowIfNull(data);
        return FromPieces(data.AsMemory(0, offset), ReadOnlyMemory<byte>.Empty, data.AsMemory(offset));
    }

    /// <summary>The data split at the given offsets (offsets outside the data, and repeats, are ignored).</summary>
    public static ReadOnlySequence<byte> Split(byte[] data, params int[] cuts)
    {
        ArgumentNullException.ThrowIfNull(data);
        ArgumentNullException.ThrowIfNull(cuts);
        var points = cuts.Where(c => c > 0 && c < data.Length).Distinct().Order().Append(data.Length).ToList();
        var pieces = new List<ReadOnlyMemory<byte>>();
        var start = 0;
        foreach (var point in points)
        {
            pieces.Add(data.AsMemory(start, point - start));
            start = point;
        }

        return FromPieces([.. pieces]);
    }

    /// <summary>The data as one segment per byte.</summary>
    public static ReadOnlySequence<byte> OneBytePerSegment(byte[] data)
    {
        ArgumentNullException.ThrowIfNull(data);
        return FromPieces([.. Enumerable.Range(0, data.Length).Select(i => data.AsMemory(i, 1))]);
    }
}
