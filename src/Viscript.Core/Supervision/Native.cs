using System.Runtime.InteropServices;
using System.Runtime.Versioning;

namespace Viscript.Core.Supervision;

/// <summary>
/// POSIX/Linux calls .NET does not expose (signals to a pid or a process group, the child-subreaper flag, reaping orphans,
/// file owners). The imports carry their platforms, so the platform-compatibility analyzer (CA1416, an error) holds every
/// caller to an <c>OperatingSystem</c> guard; the public methods guard and answer false elsewhere (docs/viscript.md "Platforms").
/// </summary>
internal static unsafe partial class Native
{
    public const int SigTerm = 15;

    public const int SigKill = 9;

    private const int PrSetChildSubreaper = 36;
    private const int WNoHang = 1;
    private const int WExited = 4;
    private const int WNoWait = 0x0100_0000;
    private const int PAll = 0;

    [UnsupportedOSPlatform("windows")]
    [LibraryImport("libc", EntryPoint = "kill", SetLastError = true)]
    private static partial int SysKill(int pid, int signal);

    [SupportedOSPlatform("linux")]
    [LibraryImport("libc", EntryPoint = "prctl", SetLastError = true)]
    private static partial int SysPrctl(int option, nuint arg2, nuint arg3, nuint arg4, nuint arg5);

    [SupportedOSPlatform("linux")]
    [LibraryImport("libc", EntryPoint = "waitpid", SetLastError = true)]
    private static partial int SysWaitPid(int pid, int* status, int options);

    [SupportedOSPlatform("linux")]
    [LibraryImport("libc", EntryPoint = "waitid", SetLastError = true)]
    private static partial int SysWaitId(int idType, int id, byte* info, int options);

    [SupportedOSPlatform("linux")]
    [LibraryImport("libc", EntryPoint = "geteuid")]
    private static partial uint SysGetEuid();

    [SupportedOSPlatform("linux")]
    [LibraryImport("libc", EntryPoint = "statx", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial int SysStatx(int dirFd, string path, int flags, uint mask, byte* buffer);

    private const int AtFdCwd = -100;
    private const int AtSymlinkNoFollow = 0x100;
    private const uint StatxModeAndUid = 0x2 | 0x8; // STATX_MODE | STATX_UID

    /// <summary>The effective user id of this process (Linux; 0 elsewhere is never used: see <see cref="TryGetOwnerAndMode"/>).</summary>
    public static uint EffectiveUserId => OperatingSystem.IsLinux() ? SysGetEuid() : 0;

    /// <summary>
    /// Owner uid and permission bits of <paramref name="path"/>, not following a final symlink (statx(2): its struct has
    /// one layout on every architecture: stx_uid at offset 20, stx_mode at 28). False when the file cannot be examined.
    /// </summary>
    public static bool TryGetOwnerAndMode(string path, out uint uid, out UnixFileMode mode, out bool isSymlink)
    {
        uid = 0;
        mode = 0;
        isSymlink = false;
        if (!OperatingSystem.IsLinux())
        {
            return false;
        }

        var buffer = stackalloc byte[256];
        new Span<byte>(buffer, 256).Clear();
        if (SysStatx(AtFdCwd, path, AtSymlinkNoFollow, StatxModeAndUid, buffer) != 0)
        {
            return false;
        }

        uid = *(uint*)(buffer + 20);
        var rawMode = *(ushort*)(buffer + 28);
        isSymlink = (rawMode & 0xF000) == 0xA000; // S_IFLNK
        mode = (UnixFileMode)(rawMode & 0xFFF);
        return true;
    }

    /// <summary>Sends <paramref name="signal"/> to <paramref name="pid"/>; false if the process is gone or not ours.</summary>
    public static bool TrySignal(int pid, int signal) => !OperatingSystem.IsWindows() && pid > 0 && SysKill(pid, signal) == 0;

    /// <summary>Sends <paramref name="signal"/> to every member of process group <paramref name="pgid"/>; false if the group has no member left.</summary>
    public static bool TrySignalGroup(int pgid, int signal) => OperatingSystem.IsLinux() && pgid > 1 && SysKill(-pgid, signal) == 0;

    /// <summary>Makes this process a child subreaper (Linux): orphaned descendants are re-parented to it instead of init.</summary>
    public static bool TrySetChildSubreaper() => OperatingSystem.IsLinux() && SysPrctl(PrSetChildSubreaper, 1, 0, 0, 0) == 0;

    /// <summary>Whether some child of this process is a zombie, without reaping it (waitid with WNOWAIT).</summary>
    public static bool HasZombieChild()
    {
        if (!OperatingSystem.IsLinux())
        {
            return false;
        }
        // siginfo_t is 128 bytes; si_pid sits at offset 16 on Linux (after si_signo, si_errno, si_code and padding).
        var info = stackalloc byte[128];
        new Span<byte>(info, 128).Clear();
        return SysWaitId(PAll, 0, info, WExited | WNoHang | WNoWait) == 0 && *(int*)(info + 16) != 0;
    }

    /// <summary>Reaps <paramref name="pid"/> if it is a zombie child of this process (WNOHANG). True when it was reaped.</summary>
    public static bool TryReap(int pid)
    {
        int status;
        return OperatingSystem.IsLinux() && pid > 0 && SysWaitPid(pid, &status, WNoHang) == pid;
    }
}
