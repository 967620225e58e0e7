using System.Buffers.Binary;
using System.Diagnostics.CodeAnalysis;

namespace Skywire.Protocol;

/// <summary>
/// A secp256k1 public key in compressed SEC1 form (33 bytes: 0x02 or 0x03, then the 32-byte X
/// coordinate). This is the identity of every node, manager, messenger and app on the mesh.
/// Text form: 66 lowercase hex characters.
/// </summary>
/// <remarks>
/// This type is BCL-only and checks only the shape (length and prefix byte). Whether the bytes
/// are a point on the curve is checked where the key is used (Skywire.Core.Crypto: ECDH and
/// signature verification fail for an invalid point). <c>default(PubKey)</c> is the empty key
/// (<see cref="IsEmpty"/>) and is never a valid identity.
/// </remarks>
public readonly struct PubKey : IEquatable<PubKey>, IComparable<PubKey>, ISpanFormattable
{
    /// <summary>Length of the binary form in bytes.</summary>
    public const int Length = 33;

    /// <summary>Length of the text form in characters.</summary>
    public const int HexLength = Length * 2;

    // Bytes 0..31 as four big-endian words and byte 32 apart: cheap equality, hashing and
    // ordering (the order equals the byte-wise lexicographic order of the binary form).
    private readonly ulong _w0;
    private readonly ulong _w1;
    private readonly ulong _w2;
    private readonly ulong _w3;
    private readonly byte _last;

    private PubKey(ReadOnlySpan<byte> bytes)
    {
        _w0 = BinaryPrimitives.ReadUInt64BigEndian(bytes);
        _w1 = BinaryPrimitives.ReadUInt64BigEndian(bytes[8..]);
        _w2 = BinaryPrimitives.ReadUInt64BigEndian(bytes[16..]);
        _w3 = BinaryPrimitives.ReadUInt64BigEndian(bytes[24..]);
        _last = bytes[32];
    }

    /// <summary>True for <c>default(PubKey)</c>, which is not a key.</summary>
    public bool IsEmpty => _w0 == 0 && _w1 == 0 && _w2 == 0 && _w3 == 0 && _last == 0;

    /// <summary>Reads a key from the first <see cref="Length"/> bytes of <paramref name="source"/>.</summary>
    /// <exception cref="FormatException">Too short, or the first byte is not 0x02 or 0x03.</exception>
    public static PubKey Read(ReadOnlySpan<byte> source)
    {
        if (!TryRead(source, out var key))
        {
            ThrowFormat("a public key needs 33 bytes starting with 0x02 or 0x03");
        }

        return key;
    }

    /// <summary>Reads a key from the first <see cref="Length"/> bytes; false when too short or the prefix is wrong.</summary>
    public static bool TryRead(ReadOnlySpan<byte> source, out PubKey key)
    {
        if (source.Length < Length || (source[0] != 0x02 && source[0] != 0x03))
        {
            key = default;
            return false;
        }

        key = new PubKey(source[..Length]);
        return true;
    }

    /// <summary>Parses 66 hex characters (either case).</summary>
    /// <exception cref="FormatException">Not 66 hex characters, or not a compressed key.</exception>
    public static PubKey Parse(ReadOnlySpan<char> text)
    {
        if (!TryParse(text, out var key))
        {
            ThrowFormat($"a public key is 66 hex characters starting with 02 or 03 (got {text.Length} characters)");
        }

        return key;
    }

    /// <inheritdoc cref="Parse(ReadOnlySpan{char})"/>
    public static PubKey Parse(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        return Parse(text.AsSpan());
    }

    /// <summary>Parses 66 hex characters; false on any other input.</summary>
    public static bool TryParse(ReadOnlySpan<char> text, out PubKey key)
    {
        key = default;
        text = text.Trim();
        if (text.Length != HexLength)
        {
            return false;
        }

        Span<byte> bytes = stackalloc byte[Length];
        if (Convert.FromHexString(text, bytes, out _, out var written) != System.Buffers.OperationStatus.Done || written != Length)
        {
            return false;
        }

        return TryRead(bytes, out key);
    }

    /// <inheritdoc cref="TryParse(ReadOnlySpan{char}, out PubKey)"/>
    public static bool TryParse([NotNullWhen(true)] string? text, out PubKey key)
    {
        if (text is null)
        {
            key = default;
            return false;
        }

        return TryParse(text.AsSpan(), out key);
    }

    /// <summary>Writes the 33-byte binary form.</summary>
    /// <exception cref="ArgumentException"><paramref name="destination"/> is shorter than 33 bytes.</exception>
    public void WriteTo(Span<byte> destination)
    {
        if (destination.Length < Length)
        {
            throw new ArgumentException("A public key needs 33 bytes.", nameof(destination));
        }

        BinaryPrimitives.WriteUInt64BigEndian(destination, _w0);
        BinaryPrimitives.WriteUInt64BigEndian(destination[8..], _w1);
        BinaryPrimitives.WriteUInt64BigEndian(destination[16..], _w2);
        BinaryPrimitives.WriteUInt64BigEndian(destination[24..], _w3);
        destination[32] = _last;
    }

    /// <summary>The 33-byte binary form in a new array.</summary>
    public byte[] ToArray()
    {
        var bytes = new byte[Length];
        WriteTo(bytes);
        return bytes;
    }

    /// <summary>66 lowercase hex characters (the empty key prints as 66 zeros).</summary>
    public override string ToString()
    {
        Span<byte> bytes = stackalloc byte[Length];
        WriteTo(bytes);
        return Convert.ToHexStringLower(bytes);
    }

    /// <summary>The first <paramref name="chars"/> hex characters, for logs and tables.</summary>
    public string ToShortString(int chars = 8) => ToString()[..Math.Clamp(chars, 1, HexLength)];

    /// <inheritdoc/>
    public string ToString(string? format, IFormatProvider? formatProvider) => ToString();

    /// <inheritdoc/>
    public bool TryFormat(Span<char> destination, out int charsWritten, ReadOnlySpan<char> format, IFormatProvider? provider)
    {
        if (destination.Length < HexLength)
        {
            charsWritten = 0;
            return false;
        }

        Span<byte> bytes = stackalloc byte[Length];
        WriteTo(bytes);
        Convert.TryToHexStringLower(bytes, destination, out charsWritten);
        return true;
    }

    /// <inheritdoc/>
    public bool Equals(PubKey other) =>
        _w0 == other._w0 && _w1 == other._w1 && _w2 == other._w2 && _w3 == other._w3 && _last == other._last;

    /// <inheritdoc/>
    public override bool Equals(object? obj) => obj is PubKey other && Equals(other);

    /// <inheritdoc/>
    public override int GetHashCode() => HashCode.Combine(_w0, _w1, _w2, _w3, _last);

    /// <inheritdoc/>
    public int CompareTo(PubKey other)
    {
        var c = _w0.CompareTo(other._w0);
        if (c == 0) { c = _w1.CompareTo(other._w1); }
        if (c == 0) { c = _w2.CompareTo(other._w2); }
        if (c == 0) { c = _w3.CompareTo(other._w3); }
        return c != 0 ? c : _last.CompareTo(other._last);
    }

    /// <summary>Equality.</summary>
    public static bool operator ==(PubKey left, PubKey right) => left.Equals(right);

    /// <summary>Inequality.</summary>
    public static bool operator !=(PubKey left, PubKey right) => !left.Equals(right);

    /// <summary>Byte-wise order.</summary>
    public static bool operator <(PubKey left, PubKey right) => left.CompareTo(right) < 0;

    /// <summary>Byte-wise order.</summary>
    public static bool operator >(PubKey left, PubKey right) => left.CompareTo(right) > 0;

    /// <summary>Byte-wise order.</summary>
    public static bool operator <=(PubKey left, PubKey right) => left.CompareTo(right) <= 0;

    /// <summary>Byte-wise order.</summary>
    public static bool operator >=(PubKey left, PubKey right) => left.CompareTo(right) >= 0;

    [DoesNotReturn]
    private static void ThrowFormat(string message) => throw new FormatException(message);
}
