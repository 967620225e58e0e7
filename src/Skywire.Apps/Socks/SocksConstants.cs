namespace Skywire.Apps.Socks;

// Specification constants (RFC 1928, RFC 1929). Implementation limits live in SocksLimits.

/// <summary>SOCKS5 authentication methods (RFC 1928 §3).</summary>
public enum SocksAuthMethod : byte
{
    /// <summary>No authentication required.</summary>
    NoAuthentication = 0x00,
    /// <summary>GSSAPI (not supported here).</summary>
    Gssapi = 0x01,
    /// <summary>Username/password (RFC 1929).</summary>
    UsernamePassword = 0x02,
    /// <summary>No acceptable methods: the server closes after sending it.</summary>
    NoAcceptableMethods = 0xFF,
}

/// <summary>SOCKS5 request commands (RFC 1928 §4).</summary>
public enum SocksCommand : byte
{
    /// <summary>Open a TCP connection to the destination.</summary>
    Connect = 0x01,
    /// <summary>Accept one inbound connection (not supported: answered with <see cref="SocksReplyCode.CommandNotSupported"/>).</summary>
    Bind = 0x02,
    /// <summary>UDP relay (RFC 1928 §7): datagrams travel over one mesh stream per association (docs/socks.md).</summary>
    UdpAssociate = 0x03,
}

/// <summary>SOCKS5 address types (RFC 1928 §5).</summary>
public enum SocksAddressType : byte
{
    /// <summary>4-byte IPv4 address.</summary>
    IPv4 = 0x01,
    /// <summary>Length-prefixed domain name, resolved at the exit.</summary>
    DomainName = 0x03,
    /// <summary>16-byte IPv6 address.</summary>
    IPv6 = 0x04,
}

/// <summary>SOCKS5 reply codes (RFC 1928 §6). Also the result code of the mesh tunnel header (docs/socks.md).</summary>
public enum SocksReplyCode : byte
{
    /// <summary>Succeeded.</summary>
    Succeeded = 0x00,
    /// <summary>General SOCKS server failure.</summary>
    GeneralFailure = 0x01,
    /// <summary>Connection not allowed by ruleset (allow-list, passcode, blocked destination).</summary>
    NotAllowedByRuleset = 0x02,
    /// <summary>Network unreachable.</summary>
    NetworkUnreachable = 0x03,
    /// <summary>Host unreachable (also: name did not resolve).</summary>
    HostUnreachable = 0x04,
    /// <summary>Connection refused by the destination.</summary>
    ConnectionRefused = 0x05,
    /// <summary>TTL expired (used for connect timeouts, as common clients read it).</summary>
    TtlExpired = 0x06,
    /// <summary>Command not supported.</summary>
    CommandNotSupported = 0x07,
    /// <summary>Address type not supported.</summary>
    AddressTypeNotSupported = 0x08,
}

/// <summary>Protocol version bytes.</summary>
public static class SocksVersion
{
    /// <summary>SOCKS protocol version 5 (RFC 1928).</summary>
    public const byte Socks5 = 0x05;

    /// <summary>Username/password sub-negotiation version (RFC 1929).</summary>
    public const byte UserPassword = 0x01;

    /// <summary>Version of our mesh tunnel header (docs/socks.md).</summary>
    public const byte Tunnel = 0x01;
}

/// <summary>Implementation limits of the SOCKS apps.</summary>
public static class SocksLimits
{
    /// <summary>Largest greeting: VER, NMETHODS, 255 methods.</summary>
    public const int MaxGreetingSize = 2 + 255;

    /// <summary>Largest RFC 1929 request: VER, ULEN, 255, PLEN, 255.</summary>
    public const int MaxUserPasswordSize = 3 + 255 + 255;

    /// <summary>Largest SOCKS5 request: VER CMD RSV ATYP, 1+255 domain, port.</summary>
    public const int MaxRequestSize = 4 + 1 + 255 + 2;

    /// <summary>Largest tunnel request header: VER CMD ATYP, 1+255 domain, port, PLEN, 255 passcode.</summary>
    public const int MaxTunnelRequestSize = 3 + 1 + 255 + 2 + 1 + 255;

    /// <summary>Largest tunnel reply header: VER CODE ATYP, 16-byte IPv6 (a domain is never sent back), port.</summary>
    public const int MaxTunnelReplySize = 3 + 1 + 255 + 2;

    /// <summary>Relay copy buffer per direction.</summary>
    public const int RelayBufferSize = 64 * 1024;

    /// <summary>Handshake buffer: holds any single handshake message plus early data that came with it.</summary>
    public const int HandshakeBufferSize = 1024;
}
