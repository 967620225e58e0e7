using System.Buffers;
using System.Text;

namespace Skywire.Apps.Socks;

/// <summary>What the socks-client asks the socks-server over a fresh mesh stream (docs/socks.md "Tunnel header").</summary>
/// <param name="Command">Command (only <see cref="SocksCommand.Connect"/> is served).</param>
/// <param name="Destination">Destination, names unresolved.</param>
/// <param name="Passcode">Optional passcode (empty when none). Never logged.</param>
public readonly record struct SocksTunnelRequest(SocksCommand Command, SocksEndpoint Destination, string Passcode)
{
    /// <inheritdoc />
    public override string ToString() => $"{Command} {Destination}";
}

/// <summary>The socks-server's answer: a SOCKS5 reply code and the exit's bound address.</summary>
/// <param name="Code">Result, with SOCKS5 reply-code meaning.</param>
/// <param name="Bound">The exit's local endpoint of the outgoing connection (0.0.0.0:0 on failure).</param>
public readonly record struct SocksTunnelReply(SocksReplyCode Code, SocksEndpoint Bound);

/// <summary>
/// Codec of the header that opens each socks mesh stream. Request:
/// <c>VER(0x01) CMD ATYP ADDR PORT PLEN PASSCODE</c>; reply: <c>VER(0x01) CODE ATYP ADDR PORT</c>.
/// ATYP/ADDR/PORT use SOCKS5 encoding. Readers follow <see cref="SocksCodec"/>'s contract.
/// </summary>
public static class SocksTunnelCodec
{
    /// <summary>Bytes <see cref="WriteRequest"/> needs.</summary>
    public static int GetRequestLength(in SocksTunnelRequest request) =>
        2 + request.Destination.EncodedLength + 1 + Encoding.UTF8.GetByteCount(request.Passcode);

    /// <summary>Writes a request header. Throws for a passcode longer than 255 UTF-8 bytes.</summary>
    public static int WriteRequest(Span<byte> destination, in SocksTunnelRequest request)
    {
        var passLength = Encoding.UTF8.GetByteCount(request.Passcode);
        if (passLength > 255)
        {
            throw new ArgumentException("The passcode is longer than 255 UTF-8 bytes.", nameof(request));
        }

        destination[0] = SocksVersion.Tunnel;
        destination[1] = (byte)request.Command;
        var offset = 2 + request.Destination.WriteTo(destination[2..]);
        destination[offset++] = (byte)passLength;
        offset += Encoding.UTF8.GetBytes(request.Passcode, destination[offset..]);
        return offset;
    }

    /// <summary>Reads a request header. InvalidData carries the reply code to answer with.</summary>
    public static OperationStatus TryReadRequest(ref ReadOnlySequence<byte> buffer, out SocksTunnelRequest request, out SocksReplyCode failure)
    {
        request = default;
        failure = SocksReplyCode.GeneralFailure;
        var reader = new SequenceReader<byte>(buffer);
        if (!reader.TryRead(out var version))
        {
            return OperationStatus.NeedMoreData;
        }

        if (version != SocksVersion.Tunnel)
        {
            return OperationStatus.InvalidData;
        }

        if (!reader.TryRead(out var command))
        {
            return OperationStatus.NeedMoreData;
        }

        var status = SocksEndpoint.TryRead(ref reader, out var destination, out failure);
        if (status != OperationStatus.Done)
        {
            return status;
        }

        if (!reader.TryRead(out var passLength))
        {
            return OperationStatus.NeedMoreData;
        }

        if (reader.Remaining < passLength)
        {
            return OperationStatus.NeedMoreData;
        }

        var passcode = string.Empty;
        if (passLength > 0)
        {
            Span<byte> raw = stackalloc byte[255];
            reader.TryCopyTo(raw[..passLength]);
            reader.Advance(passLength);
            passcode = Encoding.UTF8.GetString(raw[..passLength]);
        }

        failure = SocksReplyCode.Succeeded;
        request = new SocksTunnelRequest((SocksCommand)command, destination, passcode);
        buffer = buffer.Slice(reader.Position);
        return OperationStatus.Done;
    }

    /// <summary>Writes a reply header. Returns the bytes written.</summary>
    public static int WriteReply(Span<byte> destination, in SocksTunnelReply reply)
    {
        destination[0] = SocksVersion.Tunnel;
        destination[1] = (byte)reply.Code;
        return 2 + reply.Bound.WriteTo(destination[2..]);
    }

    /// <summary>Reads a reply header.</summary>
    public static OperationStatus TryReadReply(ref ReadOnlySequence<byte> buffer, out SocksTunnelReply reply)
    {
        reply = default;
        var reader = new SequenceReader<byte>(buffer);
        if (!reader.TryRead(out var version))
        {
            return OperationStatus.NeedMoreData;
        }

        if (version != SocksVersion.Tunnel)
        {
            return OperationStatus.InvalidData;
        }

        if (!reader.TryRead(out var code))
        {
            return OperationStatus.NeedMoreData;
        }

        // Codes above 0x08 are not SOCKS5 replies and would confuse the local application.
        if (code > (byte)SocksReplyCode.AddressTypeNotSupported)
        {
            return OperationStatus.InvalidData;
        }

        var status = SocksEndpoint.TryRead(ref reader, out var bound, out _);
        if (status != OperationStatus.Done)
        {
            return status;
        }

        reply = new SocksTunnelReply((SocksReplyCode)code, bound);
        buffer = buffer.Slice(reader.Position);
        return OperationStatus.Done;
    }
}
