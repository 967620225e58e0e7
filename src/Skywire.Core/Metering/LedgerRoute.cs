using Skywire.Protocol;
using Skywire.Protocol.Metering;

namespace Skywire.Core.Metering;

/// <summary>The ledger's view of one metered route: its terms, reservation, evidence and what it has paid.</summary>
public sealed class LedgerRoute
{
    private readonly SortedDictionary<ulong, HopReceipt>[] _receipts;

    internal LedgerRoute(RouteTerms terms, byte[] termsId, long reserved, long openedEpoch)
    {
        Terms = terms;
        TermsId = termsId;
        Reserved = reserved;
        OpenedEpoch = openedEpoch;
        _receipts = new SortedDictionary<ulong, HopReceipt>[terms.HopCount * 2];
        for (var i = 0; i < _receipts.Length; i++)
        {
            _receipts[i] = [];
        }

        Paid = new long[terms.HopCount + 2];
    }

    /// <summary>The signed terms.</summary>
    public RouteTerms Terms { get; }

    /// <summary>The terms id.</summary>
    public byte[] TermsId { get; }

    /// <summary>Route id (hex), the ledger's name for the route.</summary>
    public string Id => Convert.ToHexStringLower(Terms.RouteId);

    /// <summary>Reserve account name.</summary>
    public string ReserveAccount => "reserve:" + Id;

    /// <summary>Droplets reserved from the source at setup.</summary>
    public long Reserved { get; }

    /// <summary>Epoch the route was opened in.</summary>
    public long OpenedEpoch { get; }

    /// <summary>Droplets paid so far per position (index 1..relays+1; 0 unused) — what the telescoping settles against.</summary>
    public long[] Paid { get; }

    /// <summary>Fee paid so far.</summary>
    public long FeePaid { get; internal set; }

    /// <summary>Droplets returned to the source (beyond the frozen caps when the route ended, the rest at release).</summary>
    public long Refunded { get; internal set; }

    /// <summary>True once the reservation was released (no receipt counts after that).</summary>
    public bool Released { get; internal set; }

    /// <summary>When the manager ended the route (closed or re-routed), Unix ms; null while it runs. Caps are frozen from then.</summary>
    public long? EndedMs { get; internal set; }

    /// <summary>Latest forward and reverse caps the source authorized (0 = none yet).</summary>
    public ulong AuthForward { get; internal set; }

    /// <summary>Latest reverse cap.</summary>
    public ulong AuthReverse { get; internal set; }

    /// <summary>Highest authorization seq seen, and its caps, for equivocation checks.</summary>
    internal SortedDictionary<ulong, SpendAuthorization> Auths { get; } = [];

    /// <summary>Nodes named by D2 on this route: they get no further credit here.</summary>
    internal HashSet<PubKey> Forfeited { get; } = [];

    /// <summary>Effective forward cap: the window the source accepted with the terms, or its latest authorization.</summary>
    public ulong CapForward => Math.Max(Terms.WindowBytes, AuthForward);

    /// <summary>Effective reverse cap.</summary>
    public ulong CapReverse => Math.Max(Terms.WindowBytes, AuthReverse);

    /// <summary>Droplets debited from the reservation so far.</summary>
    public long Spent => Paid.Sum() + FeePaid;

    /// <summary>Accepted receipts of one hop and direction, by seq.</summary>
    internal SortedDictionary<ulong, HopReceipt> Slot(int hop, MeteringDirection direction) =>
        _receipts[hop * 2 + (direction == MeteringDirection.Forward ? 0 : 1)];

    /// <summary>The latest accepted receipt of a hop and direction, or null.</summary>
    public HopReceipt? Latest(int hop, MeteringDirection direction)
    {
        var slot = Slot(hop, direction);
        return slot.Count == 0 ? null : slot.Values.Last();
    }

    /// <summary>Co-signed bytes of a hop and direction (0 without a receipt).</summary>
    public ulong Bytes(int hop, MeteringDirection direction) => Latest(hop, direction)?.Bytes ?? 0;
}
