using System.Text;

namespace Skywire.Core.Metering;

/// <summary>
/// A node's metering journal: every message it signed or took (terms, countersigned receipts, authorizations), one hex
/// message per line, appended (the shape <c>skywire ledger submit</c> reads, so a manager that lost an upload can be
/// fed from it). Each line is written through; final receipts are flushed to disk. Without a file, lines stay in memory.
/// </summary>
internal sealed class MeteringJournal : IDisposable
{
    private const int MaxMemoryLines = 10_000;
    private readonly Lock _sync = new();
    private readonly List<string> _lines = [];
    private readonly string? _path;
    private FileStream? _file;

    /// <summary>The file is created on the first line (a node that never meters leaves no file).</summary>
    public MeteringJournal(string? path) => _path = path;

    /// <summary>The lines appended by this process (the last 10 000).</summary>
    public IReadOnlyList<string> Lines
    {
        get
        {
            lock (_sync)
            {
                return [.. _lines];
            }
        }
    }

    public void Append(ReadOnlySpan<byte> message, bool flush = false)
    {
        var line = Convert.ToHexStringLower(message);
        lock (_sync)
        {
            if (_lines.Count == MaxMemoryLines)
            {
                _lines.RemoveAt(0);
            }

            _lines.Add(line);
            if (_path is not null)
            {
                _file ??= OpenFile(_path);
                _file.Write(Encoding.ASCII.GetBytes(line + "\n"));
                _file.Flush(flushToDisk: flush);
            }
        }
    }

    private static FileStream OpenFile(string path)
    {
        var directory = Path.GetDirectoryName(Path.GetFullPath(path));
        if (directory is not null)
        {
            Directory.CreateDirectory(directory);
        }

        return new FileStream(path, FileMode.Append, FileAccess.Write, FileShare.Read);
    }

    public void Dispose()
    {
        lock (_sync)
        {
            _file?.Flush(flushToDisk: true);
            _file?.Dispose();
        }
    }
}
