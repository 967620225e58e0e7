using System.Buffers.Binary;
using Skywire.Core.Crypto;
using Skywire.Protocol.Links;

namespace Skywire.Core.Forwarding;

/// <summary>
/// The one framing of a Routed packet (docs/protocol.md §3.2): transport header, label, the end-to-end payload
/// untouched, and a link tag that authenticates the header, the label, the payload's length and its last 16
/// bytes (its end-to-end tag) without processing the payload body ("never seal the payload twice").
/// </summary>
internal static class RoutedPacket
{
    /// <summary>Associated data of the link tag: header and label (20), payload length (2), end-to-end tag (16).</summary>
    private const int AdLength = LinkLimits.RoutedHeaderLength + 2 + LinkLimits.TagLength;

    /// <summary>
    /// Writes the header (type Routed, <paramref name="receiverIndex"/>, <paramref name="counter"/>), the label and the
    /// link tag around the payload at <c>packet[20..(20 + payloadLength)]</c>.
    /// </summary>
    /// <exception cref="ObjectDisposedException">The key was disposed (the link went down meanwhile).</exception>
    public static void Frame(AeadKey key, uint receiverIndex, ulong counter, uint routeId, Span<byte> packet, int payloadLength)
    {
        new LinkTransportHeader(LinkPacketType.Routed, receiverIndex, counter).WriteTo(packet);
        BinaryPrimitives.WriteUInt32BigEndian(packet[LinkLimits.TransportHeaderLength..], routeId);
        SealTag(key, counter, packet, payloadLength);
    }

    /// <summary>Writes the link tag of a packet whose header and label are in place.</summary>
    public static void SealTag(AeadKey key, ulong counter, Span<byte> packet, int payloadLength)
    {
        Span<byte> ad = stackalloc byte[AdLength];
        BuildAd(packet, payloadLength, ad);
        key.Seal(counter, ad, [], packet.Slice(LinkLimits.RoutedHeaderLength + payloadLength, LinkLimits.TagLength));
    }

    /// <summary>Verifies the link tag: AEAD with an empty plaintext over the header, label, payload length and end-to-end tag.</summary>
    public static bool VerifyTag(AeadKey key, ulong counter, ReadOnlySpan<byte> packet, int payloadLength)
    {
        Span<byte> ad = stackalloc byte[AdLength];
        BuildAd(packet, payloadLength, ad);
        try
        {
            return key.Open(counter, ad, packet.Slice(LinkLimits.RoutedHeaderLength + payloadLength, LinkLimits.TagLength), []);
        }
        catch (ObjectDisposedException)
        {
            return false;
        }
    }

    private static void BuildAd(ReadOnlySpan<byte> packet, int payloadLength, Span<byte> ad)
    {
        packet[..LinkLimits.RoutedHeaderLength].CopyTo(ad);
        BinaryPrimitives.WriteUInt16BigEndian(ad[LinkLimits.RoutedHeaderLength..], (ushort)payloadLength);
        var payloadEnd = LinkLimits.RoutedHeaderLength + payloadLength;
        packet[(payloadEnd - LinkLimits.TagLength)..payloadEnd].CopyTo(ad[(LinkLimits.RoutedHeaderLength + 2)..]);
    }
}
