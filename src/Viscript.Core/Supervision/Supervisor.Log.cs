using Microsoft.Extensions.Logging;

namespace Viscript.Core.Supervision;

public sealed partial class Supervisor
{
    // Event ids 4000-4099: supervisor.
    internal static partial class Log
    {
        [LoggerMessage(EventId = 4000, Level = LogLevel.Information, Message = "Process {Id} ({App}) started as pid {Pid}")]
        public static partial void Spawned(ILogger logger, ulong id, string app, int pid);

        [LoggerMessage(EventId = 4001, Level = LogLevel.Warning, Message = "Process {Id} ({App}) could not be started: {Reason}")]
        public static partial void SpawnFailed(ILogger logger, ulong id, string app, string reason);

        [LoggerMessage(EventId = 4002, Level = LogLevel.Information, Message = "Process {Id} ({App}) pid {Pid} exited with code {ExitCode}")]
        public static partial void Exited(ILogger logger, ulong id, string app, int pid, int exitCode);

        [LoggerMessage(EventId = 4003, Level = LogLevel.Debug, Message = "Process {Id} ({App}): {From} -> {To} ({Reason})")]
        public static partial void StateChanged(ILogger logger, ulong id, string app, ProcessState from, ProcessState to, string reason);

        [LoggerMessage(EventId = 4004, Level = LogLevel.Information, Message = "Stopping process {Id} pid {Pid}: {Step}")]
        public static partial void StopStep(ILogger logger, ulong id, int pid, string step);

        [LoggerMessage(EventId = 4010, Level = LogLevel.Information, Message = "Stopping process {Id} pid {Pid}: signal SHUTDOWN failed: {Reason}")]
        public static partial void StopStepFailed(ILogger logger, ulong id, int pid, string reason);

        [LoggerMessage(EventId = 4011, Level = LogLevel.Information, Message = "Process {Id}: killed {Count} leftover child processes")]
        public static partial void OrphansKilled(ILogger logger, ulong id, int count);

        [LoggerMessage(EventId = 4012, Level = LogLevel.Information, Message = "Process {Id} pid {Pid} ended; stopping {Count} leftover processes of its session")]
        public static partial void LeftoversStopping(ILogger logger, ulong id, int pid, int count);

        [LoggerMessage(EventId = 4013, Level = LogLevel.Warning, Message = "Process {Id} pid {Pid}: {Count} leftover processes survived SIGKILL")]
        public static partial void LeftoversSurvived(ILogger logger, ulong id, int pid, int count);

        [LoggerMessage(EventId = 4014, Level = LogLevel.Information, Message = "Child subreaper: {Enabled}; apps in their own session: {NewSession}")]
        public static partial void ReaperMode(ILogger logger, bool enabled, bool newSession);

        [LoggerMessage(EventId = 4015, Level = LogLevel.Debug, Message = "Reaped orphaned process {Pid}")]
        public static partial void OrphanReaped(ILogger logger, int pid);

        [LoggerMessage(EventId = 4016, Level = LogLevel.Information, Message = "Daemon exit: killed {Count} processes left below viscript")]
        public static partial void StragglersKilled(ILogger logger, int count);

        [LoggerMessage(EventId = 4017, Level = LogLevel.Warning, Message = "viscript pid {OwnerPid} ended without stopping process {Id} ({App}) pid {Pid}: stopping it and {Count} processes of its session")]
        public static partial void AbandonedAppStopping(ILogger logger, int ownerPid, ulong id, string app, int pid, int count);

        [LoggerMessage(EventId = 4018, Level = LogLevel.Warning, Message = "Run-state file {Path} could not be written ({Reason}): a daemon started after a SIGKILL of this one will not find its apps")]
        public static partial void RunStateWriteFailed(ILogger logger, string path, string reason);

        [LoggerMessage(EventId = 4019, Level = LogLevel.Warning, Message = "Run-state file {Path} is not readable; left alone")]
        public static partial void RunStateUnreadable(ILogger logger, string path);

        [LoggerMessage(EventId = 4021, Level = LogLevel.Warning, Message = "Process {Id} ({App}) is Fatal: {Reason} ('restart' of its id starts it again with a new count)")]
        public static partial void GaveUp(ILogger logger, ulong id, string app, string reason);

        [LoggerMessage(EventId = 4020, Level = LogLevel.Warning, Message = "Run-state {Path} ignored: {Why}")]
        public static partial void RunStateUntrusted(ILogger logger, string path, string why);

        [LoggerMessage(EventId = 4005, Level = LogLevel.Information, Message = "Stopping {Count} processes")]
        public static partial void StoppingAll(ILogger logger, int count);

        [LoggerMessage(EventId = 4006, Level = LogLevel.Warning, Message = "Graceful shutdown took longer than {Timeout}; killing what remains")]
        public static partial void ShutdownTimedOut(ILogger logger, TimeSpan timeout);

        [LoggerMessage(EventId = 4007, Level = LogLevel.Error, Message = "Process {Id} pid {Pid} did not end after SIGKILL")]
        public static partial void KillTimedOut(ILogger logger, ulong id, int pid);

        [LoggerMessage(EventId = 4008, Level = LogLevel.Information, Message = "Signal client {Id} registered from {RemoteEndPoint}")]
        public static partial void Registered(ILogger logger, ulong id, System.Net.EndPoint remoteEndPoint);

        [LoggerMessage(EventId = 4009, Level = LogLevel.Error, Message = "A process event handler failed")]
        public static partial void EventHandlerFailed(ILogger logger, Exception exception);
    }
}
