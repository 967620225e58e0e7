namespace Viscript.Core;

/// <summary>
/// Stable error codes of viscript commands. The same number is the <c>code</c> of a control API
/// problem+json body and the exit code of <c>viscript cli</c>. Never renumber a shipped value.
/// </summary>
public enum ErrorCode
{
    /// <summary>Success.</summary>
    Ok = 0,
    /// <summary>Unexpected failure inside the daemon.</summary>
    Internal = 1,
    /// <summary>Missing or malformed arguments.</summary>
    Usage = 2,
    /// <summary>The command name is not known.</summary>
    UnknownCommand = 3,
    /// <summary>The command exists but is only available in an interactive terminal.</summary>
    NotInteractive = 4,
    /// <summary>No app of that name in config.yaml.</summary>
    UnknownApp = 10,
    /// <summary>The id is not a positive integer.</summary>
    BadId = 11,
    /// <summary>No process or signal client has that id.</summary>
    NoSuchProcess = 12,
    /// <summary>The process exists but is not running.</summary>
    NotRunning = 13,
    /// <summary>The process runs but never registered as a signal client.</summary>
    NotSignalClient = 14,
    /// <summary>The process is already running (e.g. a second start of the same id).</summary>
    AlreadyRunning = 15,
    /// <summary>The signal client did not answer in time.</summary>
    SignalTimeout = 20,
    /// <summary>The signal client disconnected or answered garbage.</summary>
    SignalFailed = 21,
    /// <summary>The operating system refused to start the process.</summary>
    StartFailed = 30,
    /// <summary>Missing or wrong bearer token.</summary>
    Unauthorized = 40,
    /// <summary>The CLI could not reach the daemon (CLI only, never sent by the daemon).</summary>
    DaemonUnreachable = 50,
    /// <summary>The daemon answered something the CLI could not understand (CLI only).</summary>
    BadResponse = 51,
    /// <summary>The configuration file is invalid (daemon start only).</summary>
    BadConfig = 60,
    /// <summary>No host of that name in the cluster (the name before <c>:</c> in <c>HOST:ID</c>).</summary>
    UnknownHost = 70,
    /// <summary>The host is an agent that is not connected now (its apps keep running there); try again when <c>hosts</c> shows it connected.</summary>
    HostUnreachable = 71,
}

/// <summary>Helpers for <see cref="ErrorCode"/>.</summary>
public static class ErrorCodes
{
    /// <summary>HTTP status used for a code in the control API.</summary>
    public static int HttpStatus(this ErrorCode code) => code switch
    {
        ErrorCode.Ok => 200,
        ErrorCode.Usage or ErrorCode.UnknownCommand or ErrorCode.BadId or ErrorCode.NotInteractive => 400,
        ErrorCode.Unauthorized => 401,
        ErrorCode.UnknownApp or ErrorCode.NoSuchProcess or ErrorCode.UnknownHost => 404,
        ErrorCode.HostUnreachable => 503,
        ErrorCode.NotRunning or ErrorCode.NotSignalClient or ErrorCode.AlreadyRunning => 409,
        ErrorCode.SignalFailed => 502,
        ErrorCode.SignalTimeout => 504,
        _ => 500,
    };

    /// <summary>Short kebab-case name, used as the problem type suffix.</summary>
    public static string Slug(this ErrorCode code) => code switch
    {
        ErrorCode.Ok => "ok",
        ErrorCode.Internal => "internal",
        ErrorCode.Usage => "usage",
        ErrorCode.UnknownCommand => "unknown-command",
        ErrorCode.NotInteractive => "not-interactive",
        ErrorCode.UnknownApp => "unknown-app",
        ErrorCode.BadId => "bad-id",
        ErrorCode.NoSuchProcess => "no-such-process",
        ErrorCode.NotRunning => "not-running",
        ErrorCode.NotSignalClient => "not-signal-client",
        ErrorCode.AlreadyRunning => "already-running",
        ErrorCode.SignalTimeout => "signal-timeout",
        ErrorCode.SignalFailed => "signal-failed",
        ErrorCode.StartFailed => "start-failed",
        ErrorCode.Unauthorized => "unauthorized",
        ErrorCode.DaemonUnreachable => "daemon-unreachable",
        ErrorCode.BadResponse => "bad-response",
        ErrorCode.BadConfig => "bad-config",
        ErrorCode.UnknownHost => "unknown-host",
        ErrorCode.HostUnreachable => "host-unreachable",
        _ => "error",
    };
}

/// <summary>A command failed with a stable <see cref="ErrorCode"/> and an operator-facing message.</summary>
public sealed class ViscriptException : Exception
{
    /// <summary>Creates the exception.</summary>
    public ViscriptException(ErrorCode code, string message, Exception? inner = null) : base(message, inner) => Code = code;

    /// <summary>Creates an internal error.</summary>
    public ViscriptException() : this(ErrorCode.Internal, "internal error") { }

    /// <summary>Creates an internal error with a message.</summary>
    public ViscriptException(string message) : this(ErrorCode.Internal, message) { }

    /// <summary>Creates an internal error with a message and cause.</summary>
    public ViscriptException(string message, Exception inner) : this(ErrorCode.Internal, message, inner) { }

    /// <summary>The stable error code.</summary>
    public ErrorCode Code { get; }
}
