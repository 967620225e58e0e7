using System.Runtime.InteropServices;
using System.Security.Cryptography;

namespace Skywire.Core.Crypto;

/// <summary>
/// The one writer of files that hold a secret (key files, app token files): the content goes to a new file with a
/// random name in the target's folder (CreateNew, mode 0600 from creation, never a moment world-readable), is flushed
/// to disk, and is then renamed over the target, so a reader sees the old file or the new one, never half of one, and
/// a crash leaves at most a stray temporary file. The rename never writes through the target: a symlink at the
/// target path is replaced, not followed.
/// </summary>
public static partial class SecretFile
{
    private const UnixFileMode OwnerOnly = UnixFileMode.UserRead | UnixFileMode.UserWrite;

    /// <summary>
    /// Writes <paramref name="content"/> to <paramref name="path"/> atomically (see the type). A missing folder is
    /// created with mode 0700.
    /// </summary>
    /// <param name="path">The file to write.</param>
    /// <param name="content">The bytes (the caller clears its copy).</param>
    /// <param name="replace">
    /// What to do when <paramref name="path"/> exists: null refuses (and a file created meanwhile by someone else is
    /// never replaced); otherwise the function is asked about the existing file and returns null to allow the
    /// replacement or the reason to refuse it.
    /// </param>
    /// <exception cref="SecretFileException">The file exists and may not be replaced, or the write failed.</exception>
    public static void Write(string path, ReadOnlySpan<byte> content, Func<ExistingFile, string?>? replace)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(path);
        var full = Path.GetFullPath(path);
        var folder = Path.GetDirectoryName(full) ?? throw new SecretFileException(path, "has no folder");
        var temp = Path.Combine(folder, $".{Path.GetFileName(full)}.{Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(8))}.tmp");
        var created = false;
        try
        {
            if (!Directory.Exists(folder))
            {
                if (OperatingSystem.IsWindows())
                {
                    Directory.CreateDirectory(folder);
                }
                else
                {
                    Directory.CreateDirectory(folder, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
                }
            }

            var existing = Inspect(full);
            if (existing.Exists)
            {
                var refusal = replace is null ? "file already exists" : replace(existing);
                if (refusal is not null)
                {
                    throw new SecretFileException(path, refusal);
                }
            }

            var options = new FileStreamOptions { Mode = FileMode.CreateNew, Access = FileAccess.Write, Share = FileShare.None };
            if (!OperatingSystem.IsWindows())
            {
                options.UnixCreateMode = OwnerOnly;
            }

            using (var stream = new FileStream(temp, options))
            {
                created = true;
                stream.Write(content);
                stream.Flush(flushToDisk: true);
            }

            // Without a replace policy the move must not clobber a file someone created since the check
            // (File.Move without overwrite links then unlinks on Unix: it fails if the target appeared).
            File.Move(temp, full, overwrite: replace is not null);
            created = false;
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            throw new SecretFileException(path, File.Exists(full) && replace is null ? "file already exists" : $"cannot write: {ex.Message}");
        }
        finally
        {
            if (created)
            {
                try
                {
                    File.Delete(temp);
                }
                catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
                {
                    // Best effort: the temporary file is mode 0600 anyway.
                }
            }
        }
    }

    /// <summary>What is at <paramref name="path"/>, without following a symlink there.</summary>
    public static ExistingFile Inspect(string path)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(path);
        var full = Path.GetFullPath(path);
        var info = new FileInfo(full);
        if (!info.Exists && info.LinkTarget is null && !Directory.Exists(full))
        {
            return new ExistingFile(full, Exists: false, IsRegular: false, Mode: null, OwnedByUs: null, Length: 0);
        }

        var isLink = info.LinkTarget is not null;
        var isRegular = !isLink && info.Exists && (info.Attributes & (FileAttributes.Directory | FileAttributes.Device | FileAttributes.ReparsePoint)) == 0;
        UnixFileMode? mode = OperatingSystem.IsWindows() || isLink ? null : info.UnixFileMode;
        bool? owned = null;
        if (OperatingSystem.IsLinux() && Native.TryGetOwner(full, out var uid))
        {
            owned = uid == Native.EffectiveUserId();
        }

        // A FIFO, socket or character device shows as an existing non-directory file: only S_IFREG counts as regular.
        if (isRegular && OperatingSystem.IsLinux() && Native.TryGetType(full, out var type))
        {
            isRegular = type == Native.RegularFileType;
        }

        return new ExistingFile(full, Exists: true, isRegular, mode, owned, isRegular ? info.Length : 0);
    }

    /// <summary>The file found at a path (a symlink counts as existing and not regular).</summary>
    /// <param name="Path">Full path.</param>
    /// <param name="Exists">Something is there.</param>
    /// <param name="IsRegular">A regular file (not a symlink, folder, device, FIFO or socket).</param>
    /// <param name="Mode">Its permission bits (null on Windows or for a symlink).</param>
    /// <param name="OwnedByUs">Whether this process's effective user owns it (null where that cannot be told).</param>
    /// <param name="Length">Its size in bytes (0 unless regular).</param>
    public readonly record struct ExistingFile(string Path, bool Exists, bool IsRegular, UnixFileMode? Mode, bool? OwnedByUs, long Length)
    {
        /// <summary>True when the file is regular, owned by us (where that can be told) and readable and writable by its owner only.</summary>
        public bool IsPrivateRegularFile => IsRegular && OwnedByUs != false && (Mode is null || Mode == OwnerOnly);
    }

    /// <summary>statx(2) (one layout on every Linux architecture, unlike stat(2)) and geteuid(2).</summary>
    private static partial class Native
    {
        private const int AtFdCwd = -100;
        private const int AtSymlinkNoFollow = 0x100;
        private const uint StatxType = 0x1;
        private const uint StatxMode = 0x2;
        private const uint StatxUid = 0x8;
        private const int StatxSize = 256;
        private const int UidOffset = 20;
        private const int ModeOffset = 28;
        private const int TypeMask = 0xF000;
        public const int RegularFileType = 0x8000;

        public static uint EffectiveUserId() => GetEffectiveUserId();

        public static bool TryGetOwner(string path, out uint uid)
        {
            uid = 0;
            var buffer = new byte[StatxSize];
            if (!TryStatx(path, StatxUid, buffer))
            {
                return false;
            }

            uid = BitConverter.ToUInt32(buffer, UidOffset);
            return true;
        }

        public static bool TryGetType(string path, out int type)
        {
            type = 0;
            var buffer = new byte[StatxSize];
            if (!TryStatx(path, StatxType | StatxMode, buffer))
            {
                return false;
            }

            type = BitConverter.ToUInt16(buffer, ModeOffset) & TypeMask;
            return true;
        }

        private static bool TryStatx(string path, uint mask, byte[] buffer)
        {
            try
            {
                return Statx(AtFdCwd, path, AtSymlinkNoFollow, mask, buffer) == 0;
            }
            catch (Exception ex) when (ex is DllNotFoundException or EntryPointNotFoundException)
            {
                return false;
            }
        }

        [LibraryImport("libc", EntryPoint = "statx", StringMarshalling = StringMarshalling.Utf8)]
        private static partial int Statx(int dirfd, string path, int flags, uint mask, [Out] byte[] buffer);

        [LibraryImport("libc", EntryPoint = "geteuid")]
        private static partial uint GetEffectiveUserId();
    }
}

/// <summary>A secret file could not be written. The message names the file and the reason, never the secret.</summary>
public sealed class SecretFileException : Exception
{
    /// <summary>Creates the exception.</summary>
    public SecretFileException(string path, string reason)
        : base($"{path}: {reason}")
    {
        FilePath = path;
        Reason = reason;
    }

    /// <summary>The file.</summary>
    public string FilePath { get; }

    /// <summary>What is wrong.</summary>
    public string Reason { get; }
}
