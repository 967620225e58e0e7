using System.Security.Cryptography;
using Skywire.Protocol;

namespace Skywire.Core.Crypto;

/// <summary>
/// Skycoin address of a public key, as Skycoin's <c>cipher.AddressFromPubKey</c> computes it:
/// key hash = RIPEMD-160(SHA-256(SHA-256(33-byte compressed key))); binary address =
/// key hash (20) || version (1, = 0) || checksum (first 4 bytes of SHA-256(key hash || version));
/// text = Base58 (Bitcoin alphabet) of those 25 bytes.
/// </summary>
public static class SkycoinAddress
{
    /// <summary>The only address version Skycoin uses.</summary>
    public const byte Version = 0;

    /// <summary>The Base58 address of <paramref name="key"/>.</summary>
    public static string FromPubKey(PubKey key)
    {
        Span<byte> buffer = stackalloc byte[PubKey.Length];
        key.WriteTo(buffer);
        Span<byte> h1 = stackalloc byte[32];
        SHA256.HashData(buffer, h1);
        SHA256.HashData(h1, h1);
        Span<byte> address = stackalloc byte[25];
        Ripemd160.HashData(h1, address[..20]);
        address[20] = Version;
        Span<byte> check = stackalloc byte[32];
        SHA256.HashData(address[..21], check);
        check[..4].CopyTo(address[21..]);
        return Base58.Encode(address);
    }

    /// <summary>True when <paramref name="address"/> is a well-formed address (version 0, checksum right) of <paramref name="key"/>.</summary>
    public static bool Matches(string address, PubKey key) => string.Equals(address, FromPubKey(key), StringComparison.Ordinal);

    /// <summary>True when <paramref name="address"/> decodes to 25 bytes with version 0 and a correct checksum.</summary>
    public static bool IsWellFormed(string address) => TryDecode(address, out _);

    /// <summary>The 25 bytes of a well-formed address (version 0, checksum right); false otherwise.</summary>
    public static bool TryDecode(string? address, out byte[] bytes)
    {
        if (address is null || !Base58.TryDecode(address, out bytes) || bytes.Length != 25 || bytes[20] != Version)
        {
            bytes = [];
            return false;
        }

        Span<byte> check = stackalloc byte[32];
        SHA256.HashData(bytes.AsSpan(0, 21), check);
        if (!check[..4].SequenceEqual(bytes.AsSpan(21, 4)))
        {
            bytes = [];
            return false;
        }

        return true;
    }

    /// <summary>The Base58 text of a 25-byte binary address.</summary>
    public static string Encode(ReadOnlySpan<byte> address) => Base58.Encode(address);
}
