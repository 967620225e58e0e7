using System.Buffers.Binary;
using System.Diagnostics.CodeAnalysis;
using System.Security.Cryptography;
using Skywire.Protocol.Framing;

namespace Skywire.Protocol.Metering;

/// <summary>Direction of traffic on a route: forward is source to destination, reverse is destination to source.</summary>
public enum MeteringDirection : byte
{
    /// <summary>Source → destination.</summary>
    Forward = 1,

    /// <summary>Destination → source.</summary>
    Reverse = 2,
}

/// <summary>Constants shared by the metering messages (docs/metering.md "Wire formats").</summary>
public static class MeteringWire
{
    /// <summary>The only version of every metering message.</summary>
    public const byte Version = 1;

    /// <summary>Type tag of <see cref="RouteTerms"/> (first byte).</summary>
    public const byte TermsTag = 0x51;

    /// <summary>Type tag of <see cref="HopReceipt"/> (first byte).</summary>
    public const byte ReceiptTag = 0x52;

    /// <summary>Type tag of <see cref="SpendAuthorization"/> (first byte).</summary>
    public const byte AuthTag = 0x53;

    /// <summary>Type tag of <see cref="PayoutBinding"/> (first byte).</summary>
    public const byte BindingTag = 0x54;

    /// <summary>Length of a compact secp256k1 signature (r || s).</summary>
    public const int SignatureLength = 64;

    /// <summary>Length of a terms id (first 16 bytes of SHA-256 of the unsigned terms).</summary>
    public const int TermsIdLength = 16;

    /// <summary>Length of a route id.</summary>
    public const int RouteIdLength = 16;

    /// <summary>Most relays a route may have (routes of 1 to 9 hops).</summary>
    public const int MaxRelays = 8;

    /// <summary>Highest price in droplets per GiB (one million SKY per GiB): keeps every charge far inside 128-bit math.</summary>
    public const ulong MaxPricePerGiB = 1_000_000_000_000;

    /// <summary>Highest byte or frame counter (2^62): counters never wrap and products stay exact.</summary>
    public const ulong MaxCounter = 1UL << 62;

    /// <summary>Highest fee in basis points (50 %).</summary>
    public const ushort MaxFeeBps = 5000;

    /// <summary>Highest spending cap in droplets (10^9 SKY, more than the supply): sums of caps never overflow a long.</summary>
    public const ulong MaxSpendDroplets = 1_000_000_000_000_000;

    /// <summary>Signing domains: every signature covers one of these prefixes and the message body, so a signature made
    /// for one role or message type is never valid for another (swapped signatures fail).</summary>
    internal static ReadOnlySpan<byte> DomainTermsManager => "skywire/metering/v1/terms/manager\0"u8;

    internal static ReadOnlySpan<byte> DomainTermsSource => "skywire/metering/v1/terms/source\0"u8;

    internal static ReadOnlySpan<byte> DomainReceiptReceiver => "skywire/metering/v1/receipt/receiver\0"u8;

    internal static ReadOnlySpan<byte> DomainReceiptSender => "skywire/metering/v1/receipt/sender\0"u8;

    internal static ReadOnlySpan<byte> DomainAuth => "skywire/metering/v1/auth/source\0"u8;

    internal static ReadOnlySpan<byte> DomainBinding => "skywire/metering/v1/binding/node\0"u8;

    internal static byte[] Concat(ReadOnlySpan<byte> a, ReadOnlySpan<byte> b, ReadOnlySpan<byte> c = default)
    {
        var result = new byte[a.Length + b.Length + c.Length];
        a.CopyTo(result);
        b.CopyTo(result.AsSpan(a.Length));
        c.CopyTo(result.AsSpan(a.Length + b.Length));
        return result;
    }

    internal static byte[] TermsIdOf(ReadOnlySpan<byte> body)
    {
        Span<byte> hash = stackalloc byte[32];
        SHA256.HashData(body, hash);
        return hash[..TermsIdLength].ToArray();
    }

    [DoesNotReturn]
    internal static void Throw(string what, string message) =>
        throw new ProtocolViolationException($"{what}: {message}");

    internal static string Hex(ReadOnlySpan<byte> bytes) => Convert.ToHexStringLower(bytes);

    internal static void Require(bool condition, string what, string message)
    {
        if (!condition)
        {
            Throw(what, message);
        }
    }

    internal static ulong U64(ReadOnlySpan<byte> data, ref int offset)
    {
        var value = BinaryPrimitives.ReadUInt64BigEndian(data[offset..]);
        offset += 8;
        return value;
    }

    internal static long I64(ReadOnlySpan<byte> data, ref int offset)
    {
        var value = BinaryPrimitives.ReadInt64BigEndian(data[offset..]);
        offset += 8;
        return value;
    }

    internal static void Put(Span<byte> data, ref int offset, ulong value)
    {
        BinaryPrimitives.WriteUInt64BigEndian(data[offset..], value);
        offset += 8;
    }

    internal static void Put(Span<byte> data, ref int offset, long value)
    {
        BinaryPrimitives.WriteInt64BigEndian(data[offset..], value);
        offset += 8;
    }

    internal static void Put(Span<byte> data, ref int offset, ReadOnlySpan<byte> value)
    {
        value.CopyTo(data[offset..]);
        offset += value.Length;
    }

    internal static void Put(Span<byte> data, ref int offset, PubKey key)
    {
        key.WriteTo(data[offset..]);
        offset += PubKey.Length;
    }

    internal static PubKey Key(ReadOnlySpan<byte> data, ref int offset, string what, string field)
    {
        if (!PubKey.TryRead(data[offset..], out var key))
        {
            Throw(what, $"{field} is not a compressed public key");
        }

        offset += PubKey.Length;
        return key;
    }
}
