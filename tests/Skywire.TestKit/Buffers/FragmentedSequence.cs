using System.Buffers;

namespace Skywire.TestKit.Buffers;

/// <summary>
/// Builds deliberately multi-segment <see cref="ReadOnlySequence{T}"/>s, so that parsers are checked at every segment
/// boundary as a pipe can deliver them (StackExchange.Redis's FragmentedSegment idea). One copy for every test project.
/// </summary>
public static class FragmentedSequence
{
    /// <summary>The pieces as consecutive segments, empty pieces included (real pipes can yield them).</summary>
    public static ReadOnlySequence<byte> FromPieces(params ReadOnlyMemory<byte>[] pieces)
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

    /// <summary><paramref name="data"/> cut at each of <paramref name="cuts"/> (out-of-range and repeated cuts are ignored).</summary>
    public static ReadOnlySequence<byte> Split(byte[] data, params int[] cuts)
    {
        var bounds = cuts.Where(c => c > 0 && c < data.Length).Distinct().Order().Append(data.Length).ToArray();
        var pieces = new List<ReadOnlyMemory<byte>>();
        var from = 0;
        foreach (var to in bounds)
        {
            pieces.Add(data.AsMemory(from, to - from));
            from = to;
        }

        return FromPieces([.. pieces]);
    }

    /// <summary><paramref name="data"/> in two at <paramref name="offset"/>, with an empty segment between.</summary>
    public static ReadOnlySequence<byte> SplitAt(byte[] data, int offset) => FromPieces(data.AsMemory(0, offset), ReadOnlyMemory<byte>.Empty, data.AsMemory(offset));

    /// <summary>One segment per byte.</summary>
    public static ReadOnlySequence<byte> Bytewise(byte[] data) => FromPieces([.. Enumerable.Range(0, data.Length).Select(i => data.AsMemory(i, 1))]);

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
}
