using Microsoft.Extensions.Logging;

namespace Skywire.Commands;

/// <summary>
/// Opt-in to viscript supervision (the signal protocol). The signal client lands on main separately; until then this
/// only notes whether viscript asked for it, so the one-line start call has a single home.
/// </summary>
internal static class SignalHook
{
    public static void Start(ILogger logger)
    {
        if (Environment.GetEnvironmentVariable("SIGNAL_CLIENT") is { Length: > 0 })
        {
            logger.LogInformation("viscript signal requested (SIGNAL_SERVER_ADDRESS={Address}); signal client not built in yet", Environment.GetEnvironmentVariable("SIGNAL_SERVER_ADDRESS"));
        }
    }
}
