using System.Buffers.Binary;
using System.Text.Json;
using System.Text.Json.Serialization;
using System.Text.Json.Serialization.Metadata;
using Skywire.Core.Streams;

namespace Skywire.Apps.Vpn;

/// <summary>
/// The vpn-client's first message on its mesh stream to a vpn-server (docs/vpn.md): a u16 big-endian length, then
/// this JSON. The server answers with a <see cref="VpnWelcome"/>; then both attach to the stream's datagram flow and
/// IP packets travel as datagrams, one packet each. The stream stays open as the session's lifetime.
/// </summary>
public sealed record VpnHello
{
    /// <summary>Protocol version (1).</summary>
    public int Version { get; init; } = VpnProtocol.Version;

    /// <summary>The passcode the server asks for, if any. Never logged.</summary>
    public string? Passcode { get; init; }

    /// <summary>The client's own path MTU (0: not given); the server sends it nothing larger.</summary>
    public int Mtu { get; init; }

    /// <inheritdoc/>
    public override string ToString() => $"VpnHello {{ Version = {Version} }}";
}

/// <summary>The server's answer: the client's address, or why it is refused.</summary>
public sealed record VpnWelcome
{
    /// <summary>Null when accepted; otherwise the reason (the server closes the stream).</summary>
    public string? Error { get; init; }

    /// <summary>The client's IPv4 address.</summary>
    public string Address { get; init; } = "";

    /// <summary>Prefix length of the VPN subnet.</summary>
    public int PrefixLength { get; init; }

    /// <summary>The server's address in the subnet.</summary>
    public string Gateway { get; init; } = "";

    /// <summary>The server's tunnel MTU; the client uses the smaller of this and its own path's.</summary>
    public int Mtu { get; init; }

    /// <summary>The first resolver reachable through the tunnel, if the server pushes any (kept for version-1 clients).</summary>
    public string? Dns { get; init; }

    /// <summary>Every resolver the server pushes (IPv4 and IPv6), if any.</summary>
    public IReadOnlyList<string>? DnsServers { get; init; }

    /// <summary>The client's IPv6 address, when the server has an IPv6 pool (older servers omit it).</summary>
    public string? Address6 { get; init; }

    /// <summary>Prefix length of the IPv6 subnet.</summary>
    public int PrefixLength6 { get; init; }

    /// <summary>The server's IPv6 address in the subnet.</summary>
    public string? Gateway6 { get; init; }
}

/// <summary>
/// Sent by either side on the stream after the welcome, whenever its own path MTU changed (a link made or gone since):
/// the other side then sends it nothing larger (docs/vpn.md "MTU").
/// </summary>
public sealed record VpnUpdate
{
    /// <summary>The sender's path MTU now.</summary>
    public int Mtu { get; init; }
}

/// <summary>Framing of the VPN's control messages.</summary>
public static class VpnProtocol
{
    /// <summary>Protocol version.</summary>
    public const int Version = 1;

    /// <summary>Largest control message.</summary>
    public const int MaxMessage = 4096;

    /// <summary>Writes one message.</summary>
    public static async Task WriteAsync<T>(DuplexStream stream, T message, JsonTypeInfo<T> info, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(stream);
        var json = JsonSerializer.SerializeToUtf8Bytes(message, info);
        var frame = new byte[2 + json.Length];
        BinaryPrimitives.WriteUInt16BigEndian(frame, (ushort)json.Length);
        json.CopyTo(frame, 2);
        await stream.WriteAsync(frame, cancellationToken);
        await stream.FlushAsync(cancellationToken);
    }

    /// <summary>Reads one message.</summary>
    /// <exception cref="InvalidDataException">The peer sent something that is not a message, or closed.</exception>
    public static async Task<T> ReadAsync<T>(DuplexStream stream, JsonTypeInfo<T> info, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(stream);
        var prefix = new byte[2];
        try
        {
            await stream.ReadExactlyAsync(prefix, cancellationToken);
            var length = BinaryPrimitives.ReadUInt16BigEndian(prefix);
            if (length is 0 or > MaxMessage)
            {
                throw new InvalidDataException($"VPN control message of {length} bytes (at most {MaxMessage})");
            }

            var json = new byte[length];
            await stream.ReadExactlyAsync(json, cancellationToken);
            return JsonSerializer.Deserialize(json, info) ?? throw new InvalidDataException("empty VPN control message");
        }
        catch (EndOfStreamException)
        {
            throw new InvalidDataException("the peer closed the VPN stream before its control message");
        }
        catch (JsonException ex)
        {
            throw new InvalidDataException("malformed VPN control message: " + ex.Message);
        }
    }

    /// <summary>
    /// Reads the peer's updates until the stream ends (then returns; a malformed message ends it too), handing each
    /// to <paramref name="onUpdate"/>.
    /// </summary>
    public static async Task ReadUpdatesAsync(DuplexStream stream, Action<VpnUpdate> onUpdate, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(onUpdate);
        try
        {
            while (true)
            {
                onUpdate(await ReadAsync(stream, VpnJsonContext.Default.VpnUpdate, cancellationToken));
            }
        }
        catch (Exception ex) when (ex is IOException or InvalidDataException)
        {
        }
    }

}

/// <summary>Source-generated JSON for the VPN's control messages.</summary>
[JsonSourceGenerationOptions(PropertyNamingPolicy = JsonKnownNamingPolicy.CamelCase, DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull)]
[JsonSerializable(typeof(VpnHello))]
[JsonSerializable(typeof(VpnWelcome))]
[JsonSerializable(typeof(VpnUpdate))]
public sealed partial class VpnJsonContext : JsonSerializerContext;
