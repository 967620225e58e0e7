namespace Skywire.Core.Metering;

/// <summary>What a node accepts and how it meters live routes (docs/metering.md "Live path").</summary>
public sealed record NodeMeteringOptions
{
    /// <summary>The defaults: prices up to 10 SKY per GiB per position, fees up to 10 %, a journal only in memory.</summary>
    public static NodeMeteringOptions Default { get; } = new();

    /// <summary>As a route's source, refuse terms in which any position charges more than this (droplets per GiB, each direction).</summary>
    public ulong MaxPricePerGiB { get; init; } = 10_000_000;

    /// <summary>As a route's source, refuse terms with a higher operator fee (basis points).</summary>
    public ushort MaxFeeBps { get; init; } = 1000;

    /// <summary>
    /// Where the node appends every metering message it signs or receives (terms, countersigned receipts, authorizations),
    /// one hex message per line: the shape <c>skywire ledger submit</c> reads. Null: kept in memory only (tests).
    /// </summary>
    public string? JournalFile { get; init; }

    /// <summary>
    /// Whether this node, as a source, raises the caps with spend authorizations as data is delivered (default). False:
    /// it never pays for more than the window it accepted with the terms, and its routes stall there.
    /// </summary>
    public bool Authorize { get; init; } = true;

    /// <summary>Receipt cadence and the loss bound of a countersignature.</summary>
    public HopMeterOptions Receipts { get; init; } = HopMeterOptions.Default;

    /// <summary>How often the agent reads the counters (receipts due, caps to raise, routes closed).</summary>
    public TimeSpan Tick { get; init; } = TimeSpan.FromMilliseconds(250);

    /// <summary>How long a closed route's meters stay to countersign the neighbours' final receipts.</summary>
    public TimeSpan Linger { get; init; } = TimeSpan.FromSeconds(60);

    /// <summary>
    /// How long a clean stop waits for the final receipts of this node's metered routes (docs/metering.md "Clean stop");
    /// within viscript's default stop timeout of 5 s.
    /// </summary>
    public TimeSpan DrainTimeout { get; init; } = TimeSpan.FromSeconds(3);

    /// <summary>Deadline of one call to the manager (receipt upload, authorization).</summary>
    public TimeSpan CallTimeout { get; init; } = TimeSpan.FromSeconds(10);
}

/// <summary>
/// The manager's metering (docs/metering.md "Live path"): the ledger it keeps and the terms it offers. Off unless a
/// ledger directory is given (<c>skywire manager --ledger DIR</c>).
/// </summary>
public sealed record ManagerMeteringOptions
{
    /// <summary>The ledger directory (journal.jsonl, manager.pub), the same that <c>skywire ledger</c> reads.</summary>
    public required string LedgerDirectory { get; init; }

    /// <summary>Droplets per GiB every relay charges, each direction (default 1 SKY per GiB).</summary>
    public ulong RelayPricePerGiB { get; init; } = 1_000_000;

    /// <summary>Droplets per GiB the destination charges, each direction (default 1 SKY per GiB).</summary>
    public ulong DestinationPricePerGiB { get; init; } = 1_000_000;

    /// <summary>Operator fee in basis points of the providers' charge (default 1 %).</summary>
    public ushort FeeBps { get; init; } = 100;

    /// <summary>
    /// Bytes per direction the source authorizes with the terms and keeps ahead with authorizations (default 256 MiB:
    /// the window must outlast the metering loop — the destination's receipt through the manager, the source's next
    /// authorization back to the relays — at the route's rate, or the source's sends stop at the cap; at 100 MB/s and a
    /// loop of about a second under load, 64 MiB stalled a route measurably, docs/benchmarks.md "Metering on vs off").
    /// One window at the default prices (1 SKY/GiB per position) is about 1.5 SKY over 3 hops: the source's exposure.
    /// </summary>
    public ulong WindowBytes { get; init; } = 256 * 1024 * 1024;

    /// <summary>The most a route may cost its source (droplets; default 100 SKY); the ledger reserves up to this.</summary>
    public ulong MaxSpend { get; init; } = 100_000_000;

    /// <summary>How long terms are valid; receipts after it do not count (default 24 h).</summary>
    public TimeSpan TermsLifetime { get; init; } = TimeSpan.FromHours(24);

    /// <summary>How often the ledger closes an epoch (settles, signs a root); also closed when the manager stops (default 1 h).</summary>
    public TimeSpan EpochInterval { get; init; } = TimeSpan.FromHours(1);
}
