using System.Security.Cryptography;

namespace Viscript.Core.Hosting;

/// <summary>
/// The one atomic writer of secret files in viscript (control tokens, cluster keys): a new temporary file with a random
/// name, created 0600 (never wider, whatever the umask), flushed to disk, then renamed over the target, so no reader
/// ever sees a partial file and no other user can read it. The folder is created 0700 when missing, and a folder that
/// other users can write to (without the sticky bit) is refused: they could swap the file between rename and read.
/// </summary>
public static class SecretFile
{
    /// <summary>Writes <paramref name="content"/> to <paramref name="path"/> atomically (see the type).</summary>
    /// <param name="path">Target file.</param>
    /// <param name="content">Bytes to write.</param>
    /// <param name="what">What the file is, for error messages ("the control token", "the cluster key").</param>
    /// <exception cref="ViscriptException">Usage: the folder is writable by others, or the file cannot be written.</exception>
    public static void WriteAtomic(string path, ReadOnlySpan<byte> content, string what)
    {
        var full = Path.GetFullPath(path);
        var dir = Path.GetDirectoryName(full)!;
        try
        {
            if (!Directory.Exists(dir))
            {
                if (OperatingSystem.IsWindows())
                {
                    Directory.CreateDirectory(dir);
                }
                else
                {
                    Directory.CreateDirectory(dir, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
                }
            }
            else if (!OperatingSystem.IsWindows() && (File.GetUnixFileMode(dir) & (UnixFileMode.GroupWrite | UnixFileMode.OtherWrite)) != 0
                && (File.GetUnixFileMode(dir) & UnixFileMode.StickyBit) == 0)
            {
                throw new ViscriptException(ErrorCode.Usage, $"refusing to write {what} into {dir}: other users can write to that folder.");
            }
            var temp = Path.Combine(dir, "." + Path.GetFileName(full) + "." + Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(6)) + ".tmp");
            try
            {
                var options = new FileStreamOptions { Mode = FileMode.CreateNew, Access = FileAccess.Write, Share = FileShare.None };
                if (!OperatingSystem.IsWindows())
                {
                    options.UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite;
                }
                using (var stream = new FileStream(temp, options))
                {
                    stream.Write(content);
                    stream.Flush(flushToDisk: true);
                }
                File.Move(temp, full, overwrite: true);
            }
            finally
            {
                File.Delete(temp);
            }
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            throw new ViscriptException(ErrorCode.Usage, $"cannot write {what} file {full}: {ex.Message}", ex);
        }
    }
}
