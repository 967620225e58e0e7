using System.Net;

namespace Viscript.Signal;

/// <summary>Category of a <see cref="SignalDiagnostic"/> (stable numbers: hosts map them to log event ids).</summary>
public enum SignalDiagnosticKind
{
    /// <summary>A peer broke the framing or message rules; its connection was closed.</summary>
    ProtocolViolation = 10,
    /// <summary>A connection ended abnormally (mid-frame, idle, no registration in time, socket error).</summary>
    ConnectionLost = 20,
    /// <summary>A REG was refused (id held by a live client, or authentication failed); the connection was closed.</summary>
    RegistrationRefused = 30,
    /// <summary>A REG took over the id of a silent connection.</summary>
    IdTakenOver = 40,
    /// <summary>A reply nobody waited for (unsolicited, or late after its call gave up) was dropped.</summary>
    IgnoredReply = 50,
    /// <summary>A listener or configuration problem (accept failure, remote listener without a token).</summary>
    Listener = 60,
    /// <summary>An event handler of the host threw.</summary>
    HandlerFailed = 70,
    /// <summary>A connection was closed at accept because the listener's or its address's cap was reached (rate-limited: one report a second, with a count).</summary>
    ConnectionRefused = 80,
}

/// <summary>Something an operator should see, raised by <see cref="SignalServer.DiagnosticReported"/>. Never contains tokens.</summary>
/// <param name="Kind">Category.</param>
/// <param name="Message">Human-readable text (the same text <see cref="SignalServer.Diagnostic"/> carries).</param>
/// <param name="RemoteEndPoint">Peer concerned, if any.</param>
/// <param name="ClientId">Registered or requested id concerned, if any.</param>
public sealed record SignalDiagnostic(SignalDiagnosticKind Kind, string Message, EndPoint? RemoteEndPoint = null, ulong? ClientId = null);
