using System.Buffers;

namespace Skywire.Tests.Socks;

/// <summary>Builds multi-segment sequences, to check parsers at every split point.</summary>
internal static class SequenceSplitter
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
    public static ReadOnlySequence<byte> FromPieces(params byte[][] pieces)
    {
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
    public static ReadOnlySequence<byte> SplitAt(byte[] data, int offset) =>
        FromPieces(data[..offset], [], data[offset..]);

    /// <summary>The data as one segment per byte.</summary>
    public static ReadOnlySequence<byte> OneBytePerSegment(byte[] data) =>
        FromPieces([.. data.Select(b => new[] { b })]);
}
