using System.Buffers;
using System.Text;

namespace Skywire.Apps.Socks;

/// <summary>The methods a SOCKS5 client offered in its greeting (only the ones we can use are kept).</summary>
/// <param name="OffersNoAuthentication">Method 0x00 was offered.</param>
/// <param name="OffersUsernamePassword">Method 0x02 was offered.</param>
public readonly record struct SocksGreeting(bool OffersNoAuthentication, bool OffersUsernamePassword);

/// <summary>An RFC 1929 username/password request.</summary>
/// <param name="Username">Username (1-255 bytes, UTF-8 decoded).</param>
/// <param name="Password">Password (1-255 bytes, UTF-8 decoded). Never logged.</param>
public readonly record struct SocksCredentials(string Username, string Password)
{
    /// <inheritdoc />
    public override string ToString() => $"SocksCredentials {{ Username = {Username} }}";
}

/// <summary>A SOCKS5 request: command and destination.</summary>
/// <param name="Command">Command byte as sent (may be a value outside <see cref="SocksCommand"/>).</param>
/// <param name="Destination">Destination endpoint.</param>
public readonly record struct SocksRequest(SocksCommand Command, SocksEndpoint Destination);

/// <summary>
/// Pure SOCKS5 server-side codec (RFC 1928, RFC 1929). Readers return
/// <see cref="OperationStatus.Done"/> (and slice <c>buffer</c> past the message),
/// <see cref="OperationStatus.NeedMoreData"/> (buffer untouched), or
/// <see cref="OperationStatus.InvalidData"/> (protocol violation; the connection must close,
/// after the reply named by <c>failure</c> where the protocol has one).
/// </summary>
public static class SocksCodec
{
    /// <summary>Reads the client greeting: VER NMETHODS METHODS.</summary>
    public static OperationStatus TryReadGreeting(ref ReadOnlySequence<byte> buffer, out SocksGreeting greeting)
    {
        greeting = default;
        var reader = new SequenceReader<byte>(buffer);
        if (!reader.TryRead(out var version))
        {
            return OperationStatus.NeedMoreData;
        }

        if (version != SocksVersion.Socks5)
        {
            return OperationStatus.InvalidData;
        }

        if (!reader.TryRead(out var count))
        {
            return OperationStatus.NeedMoreData;
        }

        if (count == 0)
        {
            return OperationStatus.InvalidData;
        }

        if (reader.Remaining < count)
        {
            return OperationStatus.NeedMoreData;
        }

        bool noAuth = false, userPass = false;
        for (var i = 0; i < count; i++)
        {
            reader.TryRead(out var method);
            noAuth |= method == (byte)SocksAuthMethod.NoAuthentication;
            userPass |= method == (byte)SocksAuthMethod.UsernamePassword;
        }

        greeting = new SocksGreeting(noAuth, userPass);
        buffer = buffer.Slice(reader.Position);
        return OperationStatus.Done;
    }

    /// <summary>Reads an RFC 1929 request: VER ULEN UNAME PLEN PASSWD.</summary>
    public static OperationStatus TryReadCredentials(ref ReadOnlySequence<byte> buffer, out SocksCredentials credentials)
    {
        credentials = default;
        var reader = new SequenceReader<byte>(buffer);
        if (!reader.TryRead(out var version))
        {
            return OperationStatus.NeedMoreData;
        }

        if (version != SocksVersion.UserPassword)
        {
            return OperationStatus.InvalidData;
        }

        if (!TryReadShortString(ref reader, out var user, out var status) ||
            !TryReadShortString(ref reader, out var password, out status))
        {
            return status;
        }

        credentials = new SocksCredentials(user, password);
        buffer = buffer.Slice(reader.Position);
        return OperationStatus.Done;
    }

    /// <summary>
    /// Reads a request: VER CMD RSV ATYP DST.ADDR DST.PORT. An unknown command is returned as Done
    /// (the caller answers <see cref="SocksReplyCode.CommandNotSupported"/>); an unknown address type is
    /// InvalidData with <paramref name="failure"/> = <see cref="SocksReplyCode.AddressTypeNotSupported"/>.
    /// </summary>
    public static OperationStatus TryReadRequest(ref ReadOnlySequence<byte> buffer, out SocksRequest request, out SocksReplyCode failure)
    {
        request = default;
        failure = SocksReplyCode.GeneralFailure;
        var reader = new SequenceReader<byte>(buffer);
        if (!reader.TryRead(out var version))
        {
            return OperationStatus.NeedMoreData;
        }

        if (version != SocksVersion.Socks5)
        {
            return OperationStatus.InvalidData;
        }

        // RSV is "must be 0x00"; we accept any value, as other servers do.
        if (!reader.TryRead(out var command) || !reader.TryRead(out _))
        {
            return OperationStatus.NeedMoreData;
        }

        var status = SocksEndpoint.TryRead(ref reader, out var destination, out failure);
        if (status != OperationStatus.Done)
        {
            return status;
        }

        failure = SocksReplyCode.Succeeded;
        request = new SocksRequest((SocksCommand)command, destination);
        buffer = buffer.Slice(reader.Position);
        return OperationStatus.Done;
    }

    /// <summary>Writes the method selection: VER METHOD. Returns 2.</summary>
    public static int WriteMethodSelection(Span<byte> destination, SocksAuthMethod method)
    {
        destination[0] = SocksVersion.Socks5;
        destination[1] = (byte)method;
        return 2;
    }

    /// <summary>Writes the RFC 1929 status: VER STATUS (0 = success). Returns 2.</summary>
    public static int WriteCredentialsStatus(Span<byte> destination, bool success)
    {
        destination[0] = SocksVersion.UserPassword;
        destination[1] = success ? (byte)0 : (byte)1;
        return 2;
    }

    /// <summary>Writes a reply: VER REP RSV ATYP BND.ADDR BND.PORT. Returns the bytes written.</summary>
    public static int WriteReply(Span<byte> destination, SocksReplyCode reply, SocksEndpoint bound)
    {
        destination[0] = SocksVersion.Socks5;
        destination[1] = (byte)reply;
        destination[2] = 0;
        return 3 + bound.WriteTo(destination[3..]);
    }

    /// <summary>Writes a client greeting (for tests and tools). Returns the bytes written.</summary>
    public static int WriteGreeting(Span<byte> destination, params ReadOnlySpan<SocksAuthMethod> methods)
    {
        destination[0] = SocksVersion.Socks5;
        destination[1] = (byte)methods.Length;
        for (var i = 0; i < methods.Length; i++)
        {
            destination[2 + i] = (byte)methods[i];
        }

        return 2 + methods.Length;
    }

    /// <summary>Writes a client request (for tests and tools). Returns the bytes written.</summary>
    public static int WriteRequest(Span<byte> destination, SocksCommand command, SocksEndpoint endpoint)
    {
        destination[0] = SocksVersion.Socks5;
        destination[1] = (byte)command;
        destination[2] = 0;
        return 3 + endpoint.WriteTo(destination[3..]);
    }

    private static bool TryReadShortString(ref SequenceReader<byte> reader, out string value, out OperationStatus status)
    {
        value = string.Empty;
        if (!reader.TryRead(out var length))
        {
            status = OperationStatus.NeedMoreData;
            return false;
        }

        if (length == 0)
        {
            status = OperationStatus.InvalidData;
            return false;
        }

        if (reader.Remaining < length)
        {
            status = OperationStatus.NeedMoreData;
            return false;
        }

        Span<byte> raw = stackalloc byte[255];
        reader.TryCopyTo(raw[..length]);
        reader.Advance(length);
        value = Encoding.UTF8.GetString(raw[..length]);
        status = OperationStatus.Done;
        return true;
    }
}
