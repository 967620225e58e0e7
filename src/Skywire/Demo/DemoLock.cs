using System.Globalization;

namespace Skywire.Demo;

/// <summary>
/// One demo per folder: an exclusive lock on <c>DIR/demo.lock</c>, held for the demo's life (issue 18.8). Two
/// interactive demos sharing <c>~/.skywire/demo</c> would empty each other's logs and run two meshes on the same key
/// files. The lock is the kernel's (<c>flock</c> through <see cref="FileShare.None"/>), so a demo that died leaves no
/// stale lock; <c>demo.pid</c> beside it names the holder for the error message.
/// </summary>
internal sealed class DemoLock : IDisposable
{
    private readonly FileStream _file;
    private readonly string _pidFile;

    private DemoLock(FileStream file, string pidFile)
    {
        _file = file;
        _pidFile = pidFile;
    }

    /// <summary>Takes the lock of <paramref name="dir"/> (creating the folder); null when another process holds it.</summary>
    /// <param name="dir">The demo's folder.</param>
    /// <param name="holder">With null returned: the holder's pid as it wrote it, or "?".</param>
    public static DemoLock? TryAcquire(string dir, out string holder)
    {
        Directory.CreateDirectory(dir);
        var pidFile = Path.Combine(dir, "demo.pid");
        try
        {
            var file = new FileStream(Path.Combine(dir, "demo.lock"), FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None);
            File.WriteAllText(pidFile, Environment.ProcessId.ToString(CultureInfo.InvariantCulture) + "\n");
            holder = "";
            return new DemoLock(file, pidFile);
        }
        catch (IOException)
        {
            try
            {
                holder = File.ReadAllText(pidFile).Trim();
            }
            catch (IOException)
            {
                holder = "?";
            }

            return null;
        }
    }

    /// <inheritdoc />
    public void Dispose()
    {
        try
        {
            File.Delete(_pidFile);
        }
        catch (IOException)
        {
        }

        _file.Dispose();
    }
}
