using Microsoft.Extensions.Logging;

namespace Viscript.Core.Cluster;

/// <summary>
/// Re-reads the allow-list file when it changes (polled: its size and modification time are
/// compared every <c>interval</c>, which also sees an editor's replace-by-rename). A file that no longer parses
/// keeps the last good list in force (logged); a deleted file allows nobody (the operator revoked every key).
/// </summary>
public sealed partial class AllowListWatcher : IDisposable
{
    private readonly string _path;
    private readonly Action<AllowList> _apply;
    private readonly ILogger _logger;
    private readonly ITimer _timer;
    private readonly Lock _gate = new();
    private (long Length, DateTime Modified, bool Exists) _seen;

    /// <summary>Loads the file now (throws <see cref="Config.ConfigException"/> when it is invalid: the daemon does not start), then watches it.</summary>
    public AllowListWatcher(string path, Action<AllowList> apply, TimeSpan interval, TimeProvider time, ILogger logger)
    {
        _path = System.IO.Path.GetFullPath(path);
        _apply = apply;
        _logger = logger;
        _seen = Stamp();
        Current = AllowList.Load(_path);
        apply(Current);
        _timer = time.CreateTimer(_ => Poll(), null, interval, interval);
    }

    /// <summary>The list in force.</summary>
    public AllowList Current { get; private set; }

    /// <summary>The file.</summary>
    public string Path => _path;

    private (long Length, DateTime Modified, bool Exists) Stamp()
    {
        var info = new FileInfo(_path);
        return info.Exists ? (info.Length, info.LastWriteTimeUtc, true) : (0, default, false);
    }

    /// <summary>Checks the file now (the timer calls this; public for tests).</summary>
    public void Poll()
    {
        lock (_gate)
        {
            try
            {
                var stamp = Stamp();
                if (stamp == _seen)
                {
                    return;
                }
                _seen = stamp;
                if (!stamp.Exists)
                {
                    Current = AllowList.Empty;
                    Log.Deleted(_logger, _path);
                }
                else
                {
                    Current = AllowList.Load(_path);
                    Log.Reloaded(_logger, _path, Current.Agents.Count);
                }
                _apply(Current);
            }
            catch (Config.ConfigException ex)
            {
                Log.Invalid(_logger, _path, string.Join("; ", ex.Errors));
            }
            catch (IOException ex)
            {
                Log.Invalid(_logger, _path, ex.Message);
            }
        }
    }

    /// <inheritdoc/>
    public void Dispose() => _timer.Dispose();

    // Event ids 4320-4329: the allow-list.
    private static partial class Log
    {
        [LoggerMessage(EventId = 4320, Level = LogLevel.Information, Message = "agent allow-list {Path} re-read: {Count} agents")]
        public static partial void Reloaded(ILogger logger, string path, int count);

        [LoggerMessage(EventId = 4321, Level = LogLevel.Error, Message = "agent allow-list {Path} is invalid, the previous list stays in force: {Errors}")]
        public static partial void Invalid(ILogger logger, string path, string errors);

        [LoggerMessage(EventId = 4322, Level = LogLevel.Warning, Message = "agent allow-list {Path} was deleted: no agent is allowed now")]
        public static partial void Deleted(ILogger logger, string path);
    }
}
