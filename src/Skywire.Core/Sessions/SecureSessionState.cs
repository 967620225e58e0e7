namespace Skywire.Core.Sessions;

/// <summary>
/// States of a <see cref="SecureSession"/>; the allowed changes (drawn at the top of <see cref="SecureSession"/>) are
/// <see cref="SecureSessionStates.IsAllowed"/>. Values are stable: never renumber.
/// </summary>
public enum SecureSessionState
{
    /// <summary>Handshake not finished (or, on the responder, keys not yet confirmed by the initiator's first packet).</summary>
    Handshaking = 10,

    /// <summary>Keys confirmed; datagrams flow.</summary>
    Established = 20,

    /// <summary>Closed locally or failed (handshake timeout); terminal.</summary>
    Closed = 30,
}

/// <summary>Transition rules of <see cref="SecureSessionState"/>.</summary>
public static class SecureSessionStates
{
    /// <summary>Whether a session may go from <paramref name="from"/> to <paramref name="to"/>.</summary>
    public static bool IsAllowed(SecureSessionState from, SecureSessionState to) => (from, to) switch
    {
        (SecureSessionState.Handshaking, SecureSessionState.Established or SecureSessionState.Closed) => true,
        (SecureSessionState.Established, SecureSessionState.Closed) => true,
        _ => false,
    };
}
