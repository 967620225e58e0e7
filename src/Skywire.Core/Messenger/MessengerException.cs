using Skywire.Protocol.Messenger;

namespace Skywire.Core.Messenger;

/// <summary>A messenger request failed (an Error answer, a closed connection, a timeout, or a refused handshake).</summary>
public sealed class MessengerException : Exception
{
    public MessengerException(MessengerErrorCode code, string message) : base(message) => Code = code;
    public MessengerException(MessengerErrorCode code, string message, Exception inner) : base(message, inner) => Code = code;
    public MessengerException() : this(MessengerErrorCode.Internal, "messenger request failed") { }
    public MessengerException(string message) : this(MessengerErrorCode.Internal, message) { }
    public MessengerException(string message, Exception inner) : this(MessengerErrorCode.Internal, message, inner) { }

    /// <summary>The stable error code.</summary>
    public MessengerErrorCode Code { get; }
}
