namespace Viscript.Core.Supervision;

/// <summary>Per-process log file, rotated to <c>.1</c> at a size limit.</summary>
internal sealed class LogFile : IDisposable
{
    private readonly string _path;
    private readonly long _maxBytes;
    private readonly Lock _gate = new();
    private FileStream? _stream;
    private bool _failed;
    private bool _disposed;

    public LogFile(string path, long maxBytes)
    {
        _path = path;
        _maxBytes = maxBytes;
    }

    public string Path => _path;

    public void Write(string line)
    {
        lock (_gate)
        {
            if (_failed || _disposed)
            {
                return;
            }
            try
            {
                _stream ??= Open();
                if (_maxBytes > 0 && _stream.Length >= _maxBytes)
                {
                    _stream.Dispose();
                    File.Move(_path, _path + ".1", overwrite: true);
                    _stream = Open();
                }
                var bytes = System.Text.Encoding.UTF8.GetBytes(line + "\n");
                _stream.Write(bytes);
            }
            catch (IOException)
            {
                // A full disk or a removed folder must not stop the capture into memory.
                _failed = true;
            }
            catch (UnauthorizedAccessException)
            {
                _failed = true;
            }
        }
    }

    public void Flush()
    {
        lock (_gate)
        {
            try
            {
                _stream?.Flush();
            }
            catch (IOException)
            {
                _failed = true;
            }
        }
    }

    // Owner-only (issue 12.4): an app's output can hold secrets (skywire chat web prints its sign-in link with the
    // token), and other local users must not read them here. Modes apply when the folder or file is created.
    private FileStream Open()
    {
        var folder = System.IO.Path.GetDirectoryName(_path)!;
        var options = new FileStreamOptions { Mode = FileMode.Append, Access = FileAccess.Write, Share = FileShare.ReadWrite, BufferSize = 64 * 1024 };
        if (OperatingSystem.IsWindows())
        {
            Directory.CreateDirectory(folder);
        }
        else
        {
            if (!Directory.Exists(folder))
            {
                Directory.CreateDirectory(folder, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
            }

            options.UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite;
        }

        return new FileStream(_path, options);
    }

    public void Dispose()
    {
        lock (_gate)
        {
            _disposed = true;
            _stream?.Dispose();
            _stream = null;
        }
    }
}
