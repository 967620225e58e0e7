using System.Buffers;
using System.Buffers.Binary;

namespace Skywire.Apps.Socks;

/// <summary>Why a datagram was dropped (counted, never answered: UDP has no error channel).</summary>
public enum SocksUdpDrop
{
    /// <summary>Not dropped.</summary>
    None,
    /// <summary>Shorter than its header says.</summary>
    Truncated,
    /// <summary>RSV not zero.</summary>
    Reserved,
    /// <summary>FRAG not zero: fragmentation is not supported, so fragments are dropped (RFC 1928 §7 allows it).</summary>
    Fragment,
    /// <summary>Unknown address type, empty or non-ASCII name.</summary>
    BadAddress,
    /// <summary>From another source than the one that asked for the association.</summary>
    WrongSource,
    /// <summary>The destination is not allowed at the exit (loopback without --allow-loopback).</summary>
    NotAllowed,
    /// <summary>The name did not resolve at the exit.</summary>
    Unresolved,
    /// <summary>From an address this association never sent to (the exit forwards answers only).</summary>
    Unsolicited,
}

/// <summary>
/// The SOCKS5 UDP request header (RFC 1928 §7): <c>RSV(2) FRAG(1) ATYP DST.ADDR DST.PORT DATA</c>, and the mesh
/// form of a datagram inside a UDP association's stream (docs/socks.md): <c>LEN(2) ATYP ADDR PORT DATA</c>, where
/// LEN counts everything after it.
/// </summary>
public static class SocksUdpCodec
{
    /// <summary>Largest UDP payload (IPv4: 65535 - 20 - 8).</summary>
    public const int MaxUdpPayload = 65507;

    /// <summary>Largest body of a tunnel frame (the length field is 16 bits).</summary>
    public const int MaxFrameBody = ushort.MaxValue;

    /// <summary>Largest header: RSV FRAG, ATYP, 1+255 name, port.</summary>
    public const int MaxHeaderSize = 3 + 1 + 1 + 255 + 2;

    /// <summary>
    /// Reads the header of a datagram a local application sent to the relay. On success
    /// <paramref name="headerLength"/> is where DATA starts.
    /// </summary>
    public static SocksUdpDrop TryReadRequest(ReadOnlyMemory<byte> datagram, out SocksEndpoint destination, out int headerLength)
    {
        destination = default;
        headerLength = 0;
        var span = datagram.Span;
        if (span.Length < 4)
        {
            return SocksUdpDrop.Truncated;
        }

        if (span[0] != 0 || span[1] != 0)
        {
            return SocksUdpDrop.Reserved;
        }

        if (span[2] != 0)
        {
            return SocksUdpDrop.Fragment;
        }

        var drop = TryReadAddress(datagram[3..], out destination, out var addressLength);
        headerLength = 3 + addressLength;
        return drop;
    }

    /// <summary>Reads ATYP ADDR PORT at the start of <paramref name="data"/> (a tunnel frame body).</summary>
    public static SocksUdpDrop TryReadAddress(ReadOnlyMemory<byte> data, out SocksEndpoint endpoint, out int length)
    {
        length = 0;
        var reader = new SequenceReader<byte>(new ReadOnlySequence<byte>(data));
        var status = SocksEndpoint.TryRead(ref reader, out endpoint, out _);
        switch (status)
        {
            case OperationStatus.Done:
                length = (int)reader.Consumed;
                return SocksUdpDrop.None;
            case OperationStatus.NeedMoreData:
                return SocksUdpDrop.Truncated;
            default:
                return SocksUdpDrop.BadAddress;
        }
    }

    /// <summary>Writes RSV FRAG ATYP ADDR PORT for a datagram to the local application; returns the bytes written.</summary>
    public static int WriteReplyHeader(Span<byte> destination, SocksEndpoint source)
    {
        destination[0] = 0;
        destination[1] = 0;
        destination[2] = 0;
        return 3 + source.WriteTo(destination[3..]);
    }

    /// <summary>
    /// Writes a tunnel frame <c>LEN ATYP ADDR PORT DATA</c>; returns its length, or 0 when it would not fit the
    /// 16-bit length (then the datagram is dropped).
    /// </summary>
    public static int WriteFrame(Span<byte> destination, SocksEndpoint endpoint, ReadOnlySpan<byte> data)
    {
        var body = endpoint.EncodedLength + data.Length;
        if (body > MaxFrameBody || destination.Length < 2 + body)
        {
            return 0;
        }

        BinaryPrimitives.WriteUInt16BigEndian(destination, (ushort)body);
        var offset = 2 + endpoint.WriteTo(destination[2..]);
        data.CopyTo(destination[offset..]);
        return 2 + body;
    }
}

/// <summary>
/// Reads length-prefixed datagram frames from a UDP association's stream, buffered, without allocating per frame.
/// A clean end of stream between frames ends the association; an end inside a frame is an error.
/// </summary>
public sealed class SocksUdpFrameReader
{
    private readonly Stream _stream;
    private readonly byte[] _buffer = new byte[2 * (2 + SocksUdpCodec.MaxFrameBody)];
    private int _start;
    private int _end;

    /// <summary>Reads from <paramref name="stream"/>, after the bytes in <paramref name="prefix"/> (already read by the caller).</summary>
    public SocksUdpFrameReader(Stream stream, ReadOnlySpan<byte> prefix = default)
    {
        ArgumentNullException.ThrowIfNull(stream);
        if (prefix.Length > _buffer.Length)
        {
            throw new ArgumentException("prefix too long", nameof(prefix));
        }

        _stream = stream;
        prefix.CopyTo(_buffer);
        _end = prefix.Length;
    }

    /// <summary>Returns the next frame's body (valid until the next call), or null at a clean end of stream.</summary>
    /// <exception cref="EndOfStreamException">The stream ended inside a frame.</exception>
    public async ValueTask<ReadOnlyMemory<byte>?> ReadAsync(CancellationToken cancellationToken)
    {
        if (!await FillAsync(2, cancellationToken))
        {
            return null;
        }

        var length = BinaryPrimitives.ReadUInt16BigEndian(_buffer.AsSpan(_start));
        if (!await FillAsync(2 + length, cancellationToken))
        {
            throw new EndOfStreamException("the stream ended inside a datagram frame");
        }

        var body = _buffer.AsMemory(_start + 2, length);
        _start += 2 + length;
        return body;
    }

    private async ValueTask<bool> FillAsync(int needed, CancellationToken cancellationToken)
    {
        if (_end - _start >= needed)
        {
            return true;
        }

        if (_start > 0)
        {
            // Keep the unread bytes at the front: the buffer then always has room for one whole frame.
            _buffer.AsSpan(_start, _end - _start).CopyTo(_buffer);
            _end -= _start;
            _start = 0;
        }

        while (_end < needed)
        {
            var n = await _stream.ReadAsync(_buffer.AsMemory(_end), cancellationToken);
            if (n == 0)
            {
                if (_end == 0)
                {
                    return false;
                }

                throw new EndOfStreamException("the stream ended inside a datagram frame");
            }

            _end += n;
        }

        return true;
    }
}
