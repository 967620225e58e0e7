namespace Skywire.Core.Sessions;

/// <summary>The session closed or its handshake failed before it was established.</summary>
public sealed class SessionClosedException : Exception
{
    /// <summary>Creates the exception.</summary>
    public SessionClosedException(ulong sessionId, string reason)
        : base($"session {sessionId}: {reason}")
    {
        SessionId = sessionId;
        Reason = reason;
    }

    /// <summary>The session.</summary>
    public ulong SessionId { get; }

    /// <summary>Why.</summary>
    public string Reason { get; }
}
