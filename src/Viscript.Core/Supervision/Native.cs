using System.Runtime.InteropServices;

namespace Viscript.Core.Supervision;

/// <summary>POSIX calls .NET does not expose (sending SIGTERM to a child).</summary>
internal static partial class Native
{
    public const int SigTerm = 15;

    public const int SigKill = 9;

    [LibraryImport("libc", EntryPoint = "kill", SetLastError = true)]
    private static partial int SysKill(int pid, int signal);

    /// <summary>Sends <paramref name="signal"/> to <paramref name="pid"/>; false if the process is gone or not ours.</summary>
    public static bool TrySignal(int pid, int signal) => !OperatingSystem.IsWindows() && pid > 0 && SysKill(pid, signal) == 0;
}
