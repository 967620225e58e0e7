using Viscript.Signal;

namespace Skywire.Commands;

/// <summary>Opt-in to viscript supervision: the one-line signal client start (inert unless SIGNAL_CLIENT is set).</summary>
internal static class SignalHook
{
    /// <summary>Starts the client; the returned token is cancelled when viscript asks this process to shut down.</summary>
    public static SignalClient Start() => SignalClient.StartFromEnvironment();
}
