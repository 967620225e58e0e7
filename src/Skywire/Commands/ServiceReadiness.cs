using Microsoft.Extensions.Hosting.Systemd;

namespace Skywire.Commands;

/// <summary>
/// systemd's readiness protocol (<c>sd_notify</c>) for the long-running commands (issue 18.9, docs/operations.md
/// "Installing"): with <c>Type=notify</c> units, <c>READY=1</c> is sent once the component is serving (listeners
/// bound; a node registered with its manager), <c>STOPPING=1</c> when it begins to stop. Microsoft.Extensions.Hosting.Systemd's
/// <see cref="SystemdNotifier"/> does the sending; without <c>NOTIFY_SOCKET</c> (not under systemd) nothing is sent.
/// </summary>
internal static class ServiceReadiness
{
    private static readonly SystemdNotifier s_notifier = new();

    /// <summary>Whether systemd asked for notifications (NOTIFY_SOCKET is set).</summary>
    public static bool IsEnabled => s_notifier.IsEnabled;

    /// <summary>READY=1 with a one-line status (<c>systemctl status</c> shows it).</summary>
    public static void Ready(string status) => Notify($"READY=1\nSTATUS={OneLine(status)}");

    /// <summary>STOPPING=1.</summary>
    public static void Stopping() => Notify("STOPPING=1");

    private static void Notify(string state)
    {
        if (s_notifier.IsEnabled)
        {
            s_notifier.Notify(new ServiceState(state));
        }
    }

    private static string OneLine(string text) => text.ReplaceLineEndings(" ");
}
