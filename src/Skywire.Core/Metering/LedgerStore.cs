using System.Text;
using System.Text.Json;

namespace Skywire.Core.Metering;

/// <summary>
/// Where the ledger journal lives: an append-only sequence of lines. Small on purpose, so the distributed-state
/// work can put the journal in a replicated log instead of a file (docs/metering.md "Store").
/// </summary>
public interface ILedgerStore
{
    /// <summary>Every committed line, in order (each is one JSON <see cref="LedgerRecord"/>).</summary>
    IReadOnlyList<string> ReadAll();

    /// <summary>Appends one line durably; returns only when it is committed.</summary>
    void Append(string line);
}

/// <summary>An in-memory journal (tests).</summary>
public sealed class MemoryLedgerStore : ILedgerStore
{
    private readonly List<string> _lines = [];

    /// <inheritdoc/>
    public IReadOnlyList<string> ReadAll() => [.. _lines];

    /// <inheritdoc/>
    public void Append(string line) => _lines.Add(line);
}

/// <summary>
/// The embedded default: <c>journal.jsonl</c> in a directory, one record per line, fsynced per append. A writer holds
/// <c>journal.lock</c> exclusively while this object lives, so two writers cannot interleave (readers can read); a line cut short by a
/// crash (no newline) was never acknowledged and is cut off at open (<see cref="TornTailBytes"/>).
/// </summary>
public sealed class FileLedgerStore : ILedgerStore, IDisposable
{
    /// <summary>File name of the journal inside the ledger directory.</summary>
    public const string JournalName = "journal.jsonl";

    private readonly FileStream? _lock;
    private readonly FileStream? _writer;
    private readonly List<string> _lines;

    private FileLedgerStore(string path, bool writable)
    {
        Path = path;
        // One writer at a time: it holds journal.lock exclusively; the journal itself stays readable, so
        // `skywire ledger balances` works while a manager writes (a reader ignores a line still being written).
        _lock = writable ? new FileStream(System.IO.Path.ChangeExtension(path, ".lock"), FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None) : null;
        var bytes = File.Exists(path) ? File.ReadAllBytes(path) : [];
        var committed = Array.LastIndexOf(bytes, (byte)'\n') + 1;
        TornTailBytes = bytes.Length - committed;
        _lines = [.. Encoding.UTF8.GetString(bytes, 0, committed).Split('\n', StringSplitOptions.RemoveEmptyEntries)];
        if (writable)
        {
            _writer = new FileStream(path, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.Read);
            _writer.SetLength(committed);
            _writer.Seek(0, SeekOrigin.End);
        }
    }

    /// <summary>The journal file.</summary>
    public string Path { get; }

    /// <summary>Bytes of an unterminated last line found at open (dropped when opened for writing).</summary>
    public int TornTailBytes { get; }

    /// <summary>Opens (creating the directory when <paramref name="writable"/>) the journal in <paramref name="directory"/>.</summary>
    /// <exception cref="IOException">Another writer holds the journal.</exception>
    public static FileLedgerStore Open(string directory, bool writable)
    {
        if (writable)
        {
            Directory.CreateDirectory(directory);
        }
        else if (!Directory.Exists(directory))
        {
            throw new DirectoryNotFoundException($"no ledger directory at {directory}");
        }

        return new FileLedgerStore(System.IO.Path.Combine(directory, JournalName), writable);
    }

    /// <inheritdoc/>
    public IReadOnlyList<string> ReadAll() => [.. _lines];

    /// <inheritdoc/>
    public void Append(string line)
    {
        if (_writer is null)
        {
            throw new InvalidOperationException("The ledger was opened read-only.");
        }

        if (line.Contains('\n', StringComparison.Ordinal))
        {
            throw new ArgumentException("A journal line cannot contain a newline.", nameof(line));
        }

        _writer.Write(Encoding.UTF8.GetBytes(line + "\n"));
        _writer.Flush(flushToDisk: true);
        _lines.Add(line);
    }

    /// <summary>Closes the journal.</summary>
    public void Dispose()
    {
        _writer?.Dispose();
        _lock?.Dispose();
    }

    internal static string Serialize(LedgerRecord record) => JsonSerializer.Serialize(record, LedgerJsonContext.Default.LedgerRecord);

    internal static LedgerRecord Deserialize(string line) =>
        JsonSerializer.Deserialize(line, LedgerJsonContext.Default.LedgerRecord) ?? throw new InvalidDataException("empty journal line");
}
