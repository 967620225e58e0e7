namespace Viscript.Signal.Protocol;

/// <summary>The peer broke the framing or the message rules; only its connection is closed.</summary>
public sealed class SignalProtocolException : Exception
{
    public SignalProtocolException() : base("signal protocol violation") { }

    public SignalProtocolException(string message) : base(message) { }

    public SignalProtocolException(string message, Exception inner) : base(message, inner) { }
}
