using System.Runtime.CompilerServices;
using System.Threading.Channels;

namespace Viscript.Core.Supervision;

/// <summary>Which pipe a line came from.</summary>
public enum LogStream
{
    /// <summary>Standard output.</summary>
    Stdout = 1,
    /// <summary>Standard error.</summary>
    Stderr = 2,
    /// <summary>A line viscript wrote itself (start and exit markers).</summary>
    System = 3,
}

/// <summary>One captured line.</summary>
/// <param name="Seq">Position in the process's output since it was created (1-based, never reused).</param>
/// <param name="Time">When the line was read.</param>
/// <param name="Stream">Source pipe.</param>
/// <param name="Text">The line without its end-of-line.</param>
/// <param name="Partial">
/// A line still being written: the app wrote <paramref name="Text"/> (everything since the last newline) and then nothing for a
/// moment, e.g. a prompt. Sent to live followers only (Seq 0, never stored); the complete line follows as a normal entry.
/// </param>
public sealed record LogLine(long Seq, DateTimeOffset Time, LogStream Stream, string Text, bool Partial = false);

/// <summary>Bounded ring buffer of a process's output lines, with live followers.</summary>
public sealed class LogBuffer
{
    private readonly LogLine?[] _ring;
    private readonly Lock _gate = new();
    private readonly TimeProvider _time;
    private readonly List<(Channel<LogLine> Channel, bool Partials)> _followers = [];
    private readonly LogLine?[] _partials = new LogLine?[4];
    private long _next = 1;
    private long _droppedForFollowers;

    /// <summary>Creates a buffer holding <paramref name="capacity"/> lines.</summary>
    public LogBuffer(int capacity, TimeProvider? timeProvider = null)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(capacity, 1);
        _ring = new LogLine?[capacity];
        _time = timeProvider ?? TimeProvider.System;
    }

    /// <summary>Lines the buffer can hold.</summary>
    public int Capacity => _ring.Length;

    /// <summary>Lines appended since creation.</summary>
    public long TotalLines
    {
        get
        {
            lock (_gate)
            {
                return _next - 1;
            }
        }
    }

    /// <summary>Lines followers could not take because they were too slow (each follower queue is bounded).</summary>
    public long DroppedForFollowers => Interlocked.Read(ref _droppedForFollowers);

    /// <summary>Appends a line; the oldest falls out when full.</summary>
    public LogLine Append(LogStream stream, string text)
    {
        lock (_gate)
        {
            var line = new LogLine(_next, _time.GetUtcNow(), stream, text);
            _ring[(_next - 1) % _ring.Length] = line;
            _partials[(int)stream & 3] = null;
            _next++;
            foreach (var (f, _) in _followers)
            {
                if (!f.Writer.TryWrite(line))
                {
                    Interlocked.Increment(ref _droppedForFollowers);
                }
            }
            return line;
        }
    }

    /// <summary>
    /// Shows the unfinished line <paramref name="text"/> (all of it so far) to followers that asked for partial lines, and to
    /// those that start following before the line is complete. Not part of the ring: the complete line is appended later.
    /// </summary>
    public void PublishPartial(LogStream stream, string text)
    {
        lock (_gate)
        {
            var line = new LogLine(0, _time.GetUtcNow(), stream, text, Partial: true);
            _partials[(int)stream & 3] = line;
            foreach (var (f, partials) in _followers)
            {
                if (partials)
                {
                    f.Writer.TryWrite(line);
                }
            }
        }
    }

    /// <summary>The last <paramref name="count"/> lines, oldest first.</summary>
    public IReadOnlyList<LogLine> Tail(int count)
    {
        lock (_gate)
        {
            return TailLocked(count);
        }
    }

    private List<LogLine> TailLocked(int count)
    {
        var have = (int)Math.Min(_next - 1, _ring.Length);
        count = Math.Clamp(count, 0, have);
        var list = new List<LogLine>(count);
        for (var seq = _next - count; seq < _next; seq++)
        {
            list.Add(_ring[(seq - 1) % _ring.Length]!);
        }
        return list;
    }

    /// <summary>Yields the last <paramref name="tail"/> lines, then every new line until cancelled. A follower that falls more than 10000 lines behind loses the oldest.</summary>
    public IAsyncEnumerable<LogLine> FollowAsync(int tail, CancellationToken cancellationToken = default) => FollowAsync(tail, partials: false, cancellationToken);

    /// <summary>
    /// Like <see cref="FollowAsync(int, CancellationToken)"/>; with <paramref name="partials"/> also the unfinished lines
    /// (<see cref="LogLine.Partial"/>), for a live view that shows a prompt before its newline.
    /// </summary>
    public async IAsyncEnumerable<LogLine> FollowAsync(int tail, bool partials, [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        var channel = Channel.CreateBounded<LogLine>(new BoundedChannelOptions(10_000) { FullMode = BoundedChannelFullMode.DropOldest, SingleReader = true });
        List<LogLine> first;
        lock (_gate)
        {
            // Taking the tail and subscribing under one lock: no line is lost or repeated between them.
            first = TailLocked(tail);
            if (partials)
            {
                // A prompt written before this follower came: shown at once.
                first.AddRange(_partials.OfType<LogLine>());
            }
            _followers.Add((channel, partials));
        }
        try
        {
            foreach (var line in first)
            {
                yield return line;
            }
            await foreach (var line in channel.Reader.ReadAllAsync(cancellationToken))
            {
                yield return line;
            }
        }
        finally
        {
            lock (_gate)
            {
                _followers.RemoveAll(f => f.Channel == channel);
            }
        }
    }
}
