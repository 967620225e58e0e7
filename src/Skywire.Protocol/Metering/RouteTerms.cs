using Skywire.Protocol.Framing;

namespace Skywire.Protocol.Metering;

/// <summary>One relay of a route and its prices.</summary>
/// <param name="Node">The relay's node key.</param>
/// <param name="PriceForward">Droplets per GiB it charges for forward bytes it delivers.</param>
/// <param name="PriceReverse">Droplets per GiB it charges for reverse bytes it delivers.</param>
public readonly record struct RelayPrice(PubKey Node, ulong PriceForward, ulong PriceReverse);

/// <summary>
/// The terms of one metered route, fixed at route setup: who is on it, what each charges, the fee, the spending
/// cap and the credit window. Signed by the manager, countersigned by the source (it accepts the prices).
/// </summary>
/// <remarks>
/// Positions: node 0 is the source, 1..k the relays in order, k+1 the destination. Hop i joins node i and node i+1.
/// Layout (big-endian): tag 0x51, version, manager key (33), route id (16), created ms (i64), expires ms (i64),
/// source (33), destination (33), relay count (1), per relay: key (33) + forward price (u64) + reverse price (u64),
/// destination forward price (u64), destination reverse price (u64), fee bps (u16), max spend droplets (u64),
/// window bytes (u64); then the manager's and the source's signatures (64 each). <see cref="TermsId"/> is the first
/// 16 bytes of SHA-256 of the body (everything before the signatures); every receipt and authorization binds to it.
/// </remarks>
public sealed record RouteTerms
{
    private const string What = "route terms";
    private const int FixedBody = 2 + PubKey.Length + MeteringWire.RouteIdLength + 8 + 8 + PubKey.Length * 2 + 1 + 8 + 8 + 2 + 8 + 8;
    private const int RelayLength = PubKey.Length + 16;

    /// <summary>Smallest encoded length (no relays).</summary>
    public const int MinLength = FixedBody + 2 * MeteringWire.SignatureLength;

    /// <summary>Largest encoded length.</summary>
    public const int MaxLength = MinLength + MeteringWire.MaxRelays * RelayLength;

    /// <summary>The manager that issued the terms (its key is the cluster's identity and signs every epoch root).</summary>
    public required PubKey Manager { get; init; }

    /// <summary>A 16-byte route id chosen by the manager.</summary>
    public required byte[] RouteId { get; init; }

    /// <summary>Creation time (Unix ms).</summary>
    public required long CreatedMs { get; init; }

    /// <summary>Expiry (Unix ms): no receipt with a later end time counts.</summary>
    public required long ExpiresMs { get; init; }

    /// <summary>The paying source.</summary>
    public required PubKey Source { get; init; }

    /// <summary>The destination (VPN exit, server).</summary>
    public required PubKey Destination { get; init; }

    /// <summary>Relays in route order, with prices.</summary>
    public required IReadOnlyList<RelayPrice> Relays { get; init; }

    /// <summary>Droplets per GiB the destination charges for forward bytes delivered to it.</summary>
    public ulong DestinationPriceForward { get; init; }

    /// <summary>Droplets per GiB the destination charges for reverse bytes it delivers.</summary>
    public ulong DestinationPriceReverse { get; init; }

    /// <summary>Operator fee in basis points of the providers' charge.</summary>
    public ushort FeeBps { get; init; }

    /// <summary>The most the source can be charged on this route (droplets); the manager reserves it at setup.</summary>
    public required ulong MaxSpend { get; init; }

    /// <summary>Bytes per direction the source authorizes by accepting the terms, before any spend authorization.</summary>
    public required ulong WindowBytes { get; init; }

    /// <summary>The manager's signature (64 bytes), or empty when not yet signed.</summary>
    public byte[] ManagerSignature { get; init; } = [];

    /// <summary>The source's signature (64 bytes), or empty when not yet accepted.</summary>
    public byte[] SourceSignature { get; init; } = [];

    /// <summary>Number of hops (relays + 1).</summary>
    public int HopCount => Relays.Count + 1;

    /// <summary>The node at <paramref name="position"/> (0 = source, relay count + 1 = destination).</summary>
    public PubKey NodeAt(int position) =>
        position == 0 ? Source : position == Relays.Count + 1 ? Destination : Relays[position - 1].Node;

    /// <summary>The receiver of hop <paramref name="hop"/> in <paramref name="direction"/> (it signs first).</summary>
    public PubKey ReceiverOf(int hop, MeteringDirection direction) =>
        direction == MeteringDirection.Forward ? NodeAt(hop + 1) : NodeAt(hop);

    /// <summary>The sender of hop <paramref name="hop"/> in <paramref name="direction"/> (it countersigns).</summary>
    public PubKey SenderOf(int hop, MeteringDirection direction) =>
        direction == MeteringDirection.Forward ? NodeAt(hop) : NodeAt(hop + 1);

    /// <summary>The terms id: first 16 bytes of SHA-256 of the body.</summary>
    public byte[] TermsId => MeteringWire.TermsIdOf(EncodeBody());

    /// <summary>The bytes the manager signs.</summary>
    public byte[] ManagerSigningBytes() => MeteringWire.Concat(MeteringWire.DomainTermsManager, EncodeBody());

    /// <summary>The bytes the source signs to accept the terms (binds the manager's signature too).</summary>
    public byte[] SourceSigningBytes() => MeteringWire.Concat(MeteringWire.DomainTermsSource, EncodeBody(), ManagerSignature);

    /// <summary>Checks the fields; throws <see cref="ProtocolViolationException"/> naming the first problem.</summary>
    public void Validate()
    {
        MeteringWire.Require(!Manager.IsEmpty && !Source.IsEmpty && !Destination.IsEmpty, What, "a key is empty");
        MeteringWire.Require(RouteId is { Length: MeteringWire.RouteIdLength }, What, "route id must be 16 bytes");
        MeteringWire.Require(Relays is not null && Relays.Count <= MeteringWire.MaxRelays, What, $"at most {MeteringWire.MaxRelays} relays");
        MeteringWire.Require(CreatedMs >= 0 && ExpiresMs > CreatedMs, What, "expiry must follow creation");
        MeteringWire.Require(FeeBps <= MeteringWire.MaxFeeBps, What, $"fee above {MeteringWire.MaxFeeBps} bps");
        MeteringWire.Require(MaxSpend is > 0 and <= MeteringWire.MaxSpendDroplets, What, "max spend out of range");
        MeteringWire.Require(WindowBytes is > 0 and <= MeteringWire.MaxCounter, What, "window out of range");
        MeteringWire.Require(DestinationPriceForward <= MeteringWire.MaxPricePerGiB && DestinationPriceReverse <= MeteringWire.MaxPricePerGiB, What, "price out of range");
        var seen = new HashSet<PubKey> { Source };
        MeteringWire.Require(seen.Add(Destination), What, "source and destination are the same node");
        foreach (var relay in Relays!)
        {
            MeteringWire.Require(!relay.Node.IsEmpty, What, "a relay key is empty");
            MeteringWire.Require(relay.PriceForward <= MeteringWire.MaxPricePerGiB && relay.PriceReverse <= MeteringWire.MaxPricePerGiB, What, "price out of range");
            // A node at two positions could be paid twice for one byte and would break the per-node conservation rule.
            MeteringWire.Require(seen.Add(relay.Node), What, "a node appears twice on the route");
        }

        MeteringWire.Require(ManagerSignature.Length is 0 or MeteringWire.SignatureLength, What, "manager signature must be 64 bytes");
        MeteringWire.Require(SourceSignature.Length is 0 or MeteringWire.SignatureLength, What, "source signature must be 64 bytes");
    }

    /// <summary>The unsigned body (what the terms id hashes).</summary>
    public byte[] EncodeBody()
    {
        var body = new byte[FixedBody + Relays.Count * RelayLength];
        var o = 0;
        body[o++] = MeteringWire.TermsTag;
        body[o++] = MeteringWire.Version;
        MeteringWire.Put(body, ref o, Manager);
        MeteringWire.Put(body, ref o, RouteId);
        MeteringWire.Put(body, ref o, CreatedMs);
        MeteringWire.Put(body, ref o, ExpiresMs);
        MeteringWire.Put(body, ref o, Source);
        MeteringWire.Put(body, ref o, Destination);
        body[o++] = (byte)Relays.Count;
        foreach (var relay in Relays)
        {
            MeteringWire.Put(body, ref o, relay.Node);
            MeteringWire.Put(body, ref o, relay.PriceForward);
            MeteringWire.Put(body, ref o, relay.PriceReverse);
        }

        MeteringWire.Put(body, ref o, DestinationPriceForward);
        MeteringWire.Put(body, ref o, DestinationPriceReverse);
        body[o++] = (byte)(FeeBps >> 8);
        body[o++] = (byte)FeeBps;
        MeteringWire.Put(body, ref o, MaxSpend);
        MeteringWire.Put(body, ref o, WindowBytes);
        return body;
    }

    /// <summary>The signed message: body, manager signature, source signature (both required).</summary>
    /// <exception cref="ProtocolViolationException">Invalid fields or a missing signature.</exception>
    public byte[] Encode()
    {
        Validate();
        MeteringWire.Require(ManagerSignature.Length == MeteringWire.SignatureLength && SourceSignature.Length == MeteringWire.SignatureLength, What, "both signatures are required to encode");
        return MeteringWire.Concat(EncodeBody(), ManagerSignature, SourceSignature);
    }

    /// <summary>Decodes a signed message (exact length, no trailing bytes). Signatures are not verified here.</summary>
    /// <exception cref="ProtocolViolationException">Any malformed field.</exception>
    public static RouteTerms Decode(ReadOnlySpan<byte> data)
    {
        MeteringWire.Require(data.Length is >= MinLength and <= MaxLength, What, $"length {data.Length} outside {MinLength}..{MaxLength}");
        MeteringWire.Require(data[0] == MeteringWire.TermsTag, What, "wrong type tag");
        MeteringWire.Require(data[1] == MeteringWire.Version, What, $"unsupported version {data[1]}");
        var o = 2;
        var manager = MeteringWire.Key(data, ref o, What, "manager");
        var routeId = data.Slice(o, MeteringWire.RouteIdLength).ToArray();
        o += MeteringWire.RouteIdLength;
        var created = MeteringWire.I64(data, ref o);
        var expires = MeteringWire.I64(data, ref o);
        var source = MeteringWire.Key(data, ref o, What, "source");
        var destination = MeteringWire.Key(data, ref o, What, "destination");
        int count = data[o++];
        MeteringWire.Require(count <= MeteringWire.MaxRelays, What, $"{count} relays, at most {MeteringWire.MaxRelays}");
        MeteringWire.Require(data.Length == MinLength + count * RelayLength, What, $"length {data.Length} does not match {count} relays");
        var relays = new RelayPrice[count];
        for (var i = 0; i < count; i++)
        {
            var node = MeteringWire.Key(data, ref o, What, $"relay {i + 1}");
            relays[i] = new RelayPrice(node, MeteringWire.U64(data, ref o), MeteringWire.U64(data, ref o));
        }

        var dFwd = MeteringWire.U64(data, ref o);
        var dRev = MeteringWire.U64(data, ref o);
        var fee = (ushort)((data[o] << 8) | data[o + 1]);
        o += 2;
        var maxSpend = MeteringWire.U64(data, ref o);
        var window = MeteringWire.U64(data, ref o);
        var terms = new RouteTerms
        {
            Manager = manager,
            RouteId = routeId,
            CreatedMs = created,
            ExpiresMs = expires,
            Source = source,
            Destination = destination,
            Relays = relays,
            DestinationPriceForward = dFwd,
            DestinationPriceReverse = dRev,
            FeeBps = fee,
            MaxSpend = maxSpend,
            WindowBytes = window,
            ManagerSignature = data.Slice(o, MeteringWire.SignatureLength).ToArray(),
            SourceSignature = data.Slice(o + MeteringWire.SignatureLength, MeteringWire.SignatureLength).ToArray(),
        };
        terms.Validate();
        return terms;
    }

    /// <summary>Decodes; false with a reason instead of an exception.</summary>
    public static bool TryDecode(ReadOnlySpan<byte> data, out RouteTerms? terms, out string? error)
    {
        try
        {
            terms = Decode(data);
            error = null;
            return true;
        }
        catch (ProtocolViolationException e)
        {
            terms = null;
            error = e.Message;
            return false;
        }
    }

    /// <summary>Route id, hops and terms id; no signatures.</summary>
    public override string ToString() =>
        $"RouteTerms(route {MeteringWire.Hex(RouteId)}, {HopCount} hops, source {Source.ToShortString()}, destination {Destination.ToShortString()})";
}
