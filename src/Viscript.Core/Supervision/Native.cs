using System.Runtime.InteropServices;

namespace Viscript.Core.Supervision;

/// <summary>POSIX/Linux calls .NET does not expose (signals to a pid or a process group, the child-subreaper flag, reaping orphans).</summary>
internal static unsafe partial class Native
{
    public const int SigTerm = 15;

    public const int SigKill = 9;

    private const int PrSetChildSubreaper = 36;
    private const int WNoHang = 1;
    private const int WExited = 4;
    private const int WNoWait = 0x0100_0000;
    private const int PAll = 0;

    [LibraryImport("libc", EntryPoint = "kill", SetLastError = true)]
    private static partial int SysKill(int pid, int signal);

    [LibraryImport("libc", EntryPoint = "prctl", SetLastError = true)]
    private static partial int SysPrctl(int option, nuint arg2, nuint arg3, nuint arg4, nuint arg5);

    [LibraryImport("libc", EntryPoint = "waitpid", SetLastError = true)]
    private static partial int SysWaitPid(int pid, int* status, int options);

    [LibraryImport("libc", EntryPoint = "waitid", SetLastError = true)]
    private static partial int SysWaitId(int idType, int id, byte* info, int options);

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
