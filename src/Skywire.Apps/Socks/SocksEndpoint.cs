using System.Buffers;
using System.Buffers.Binary;
using System.Net;
using System.Net.Sockets;
using System.Text;

namespace Skywire.Apps.Socks;

/// <summary>A SOCKS destination or bound address: an IP address or a domain name, plus a port.</summary>
public readonly record struct SocksEndpoint
{
    private SocksEndpoint(SocksAddressType type, IPAddress? address, string? host, ushort port)
    {
        Type = type;
        Address = address;
        Host = host;
        Port = port;
    }

    /// <summary>The unspecified IPv4 endpoint 0.0.0.0:0, for replies that carry no meaningful address.</summary>
    public static SocksEndpoint Unspecified { get; } = new(SocksAddressType.IPv4, IPAddress.Any, null, 0);

    /// <summary>Kind of address.</summary>
    public SocksAddressType Type { get; }

    /// <summary>The IP address (IPv4 or IPv6 types), else null.</summary>
    public IPAddress? Address { get; }

    /// <summary>The domain name (domain type), else null.</summary>
    public string? Host { get; }

    /// <summary>The port.</summary>
    public ushort Port { get; }

    /// <summary>Makes an IP endpoint (IPv4-mapped IPv6 addresses are unmapped).</summary>
    public static SocksEndpoint FromIP(IPAddress address, ushort port)
    {
        ArgumentNullException.ThrowIfNull(address);
        if (address.IsIPv4MappedToIPv6)
        {
            address = address.MapToIPv4();
        }

        return address.AddressFamily switch
        {
            AddressFamily.InterNetwork => new(SocksAddressType.IPv4, address, null, port),
            AddressFamily.InterNetworkV6 => new(SocksAddressType.IPv6, address, null, port),
            _ => throw new ArgumentException("Only IPv4 and IPv6 addresses are supported.", nameof(address)),
        };
    }

    /// <summary>Makes an endpoint from an IP endpoint.</summary>
    public static SocksEndpoint FromIP(IPEndPoint endPoint)
    {
        ArgumentNullException.ThrowIfNull(endPoint);
        return FromIP(endPoint.Address, (ushort)endPoint.Port);
    }

    /// <summary>Makes a domain-name endpoint (1 to 255 ASCII bytes).</summary>
    public static SocksEndpoint FromHost(string host, ushort port)
    {
        ArgumentException.ThrowIfNullOrEmpty(host);
        if (host.Length > 255 || !Ascii.IsValid(host))
        {
            throw new ArgumentException("A SOCKS domain name is 1 to 255 ASCII characters.", nameof(host));
        }

        return new(SocksAddressType.DomainName, null, host, port);
    }

    /// <summary>Number of bytes <see cref="WriteTo"/> writes: ATYP, address, port.</summary>
    public int EncodedLength => Type switch
    {
        SocksAddressType.IPv4 => 1 + 4 + 2,
        SocksAddressType.IPv6 => 1 + 16 + 2,
        _ => 1 + 1 + Host!.Length + 2,
    };

    /// <summary>Writes ATYP, address and port in SOCKS5 encoding; returns the bytes written.</summary>
    public int WriteTo(Span<byte> destination)
    {
        var length = EncodedLength;
        if (destination.Length < length)
        {
            throw new ArgumentException("Destination too small.", nameof(destination));
        }

        destination[0] = (byte)Type;
        int offset;
        switch (Type)
        {
            case SocksAddressType.IPv4:
            case SocksAddressType.IPv6:
                Address!.TryWriteBytes(destination[1..], out var written);
                offset = 1 + written;
                break;
            default:
                destination[1] = (byte)Host!.Length;
                offset = 2 + Encoding.ASCII.GetBytes(Host, destination[2..]);
                break;
        }

        BinaryPrimitives.WriteUInt16BigEndian(destination[offset..], Port);
        return length;
    }

    /// <summary>
    /// Reads ATYP, address and port. Returns <see cref="OperationStatus.NeedMoreData"/> when the
    /// reader ends early (the reader is then left in an unspecified position), and
    /// <see cref="OperationStatus.InvalidData"/> for an unknown address type or an empty domain.
    /// </summary>
    internal static OperationStatus TryRead(ref SequenceReader<byte> reader, out SocksEndpoint endpoint, out SocksReplyCode failure)
    {
        endpoint = default;
        failure = SocksReplyCode.Succeeded;
        if (!reader.TryRead(out var atyp))
        {
            return OperationStatus.NeedMoreData;
        }

        switch ((SocksAddressType)atyp)
        {
            case SocksAddressType.IPv4:
            case SocksAddressType.IPv6:
            {
                Span<byte> raw = stackalloc byte[16];
                var size = atyp == (byte)SocksAddressType.IPv4 ? 4 : 16;
                if (!reader.TryCopyTo(raw[..size]))
                {
                    return OperationStatus.NeedMoreData;
                }

                reader.Advance(size);
                if (!reader.TryReadBigEndian(out short port))
                {
                    return OperationStatus.NeedMoreData;
                }

                endpoint = new((SocksAddressType)atyp, new IPAddress(raw[..size]), null, (ushort)port);
                return OperationStatus.Done;
            }

            case SocksAddressType.DomainName:
            {
                if (!reader.TryRead(out var length))
                {
                    return OperationStatus.NeedMoreData;
                }

                if (reader.Remaining < length + 2)
                {
                    return OperationStatus.NeedMoreData;
                }

                if (length == 0)
                {
                    failure = SocksReplyCode.GeneralFailure;
                    return OperationStatus.InvalidData;
                }

                Span<byte> raw = stackalloc byte[255];
                reader.TryCopyTo(raw[..length]);
                reader.Advance(length);
                reader.TryReadBigEndian(out short port);

                // Names are ASCII on the wire (IDNs arrive punycoded); anything else, including NUL,
                // cannot be a resolvable name and must not reach the resolver.
                foreach (var b in raw[..length])
                {
                    if (b <= 0x20 || b >= 0x7F)
                    {
                        failure = SocksReplyCode.HostUnreachable;
                        return OperationStatus.InvalidData;
                    }
                }

                endpoint = new(SocksAddressType.DomainName, null, Encoding.ASCII.GetString(raw[..length]), (ushort)port);
                return OperationStatus.Done;
            }

            default:
                failure = SocksReplyCode.AddressTypeNotSupported;
                return OperationStatus.InvalidData;
        }
    }

    /// <inheritdoc />
    public override string ToString() => Type switch
    {
        SocksAddressType.IPv6 => $"[{Address}]:{Port}",
        SocksAddressType.IPv4 => $"{Address}:{Port}",
        _ => $"{Host}:{Port}",
    };
}
