using System.Security.Cryptography;
using System.Text;
using Skywire.Core.Crypto;
using Skywire.Protocol;
using Skywire.Protocol.Metering;

namespace Skywire.Core.Metering;

/// <summary>What happened to one submitted record.</summary>
public enum LedgerStatus
{
    /// <summary>Applied and journaled.</summary>
    Accepted = 0,

    /// <summary>Already known; nothing changed, nothing journaled.</summary>
    Duplicate = 10,

    /// <summary>Applied as dispute evidence (journaled); see the dispute.</summary>
    Disputed = 20,

    /// <summary>Refused (no funds, invalid request); nothing journaled.</summary>
    Refused = 30,
}

/// <summary>The outcome of one submission.</summary>
/// <param name="Status">What happened.</param>
/// <param name="Message">A sentence for the operator.</param>
/// <param name="Dispute">The dispute raised, if any.</param>
public sealed record LedgerOutcome(LedgerStatus Status, string Message, LedgerDispute? Dispute = null);

/// <summary>A signed epoch root.</summary>
/// <param name="Epoch">Epoch number, from 1.</param>
/// <param name="AtMs">When it closed.</param>
/// <param name="Root">SHA-256 chain value over the previous root, the epoch's journal lines and the balances.</param>
/// <param name="Signature">The manager's signature (hex).</param>
public sealed record EpochRoot(long Epoch, long AtMs, string Root, string Signature);

/// <summary>A balanced set of postings.</summary>
/// <param name="Epoch">Epoch it belongs to.</param>
/// <param name="Memo">Why.</param>
/// <param name="Postings">Account and signed amount (droplets); they sum to zero.</param>
public sealed record LedgerEntry(long Epoch, string Memo, IReadOnlyList<KeyValuePair<string, long>> Postings);

/// <summary>The ledger's invariants failed: a bug, never a user error. The ledger refuses to continue.</summary>
public sealed class LedgerInvariantException(string message) : Exception(message);

/// <summary>The journal does not recompute to what it claims (tampered, reordered, or from another manager).</summary>
public sealed class LedgerVerificationException(string message) : Exception(message);

/// <summary>
/// The clearing-house ledger: double-entry in integer droplets, fed only by signed evidence, settled per epoch with
/// a signed root. State is a pure function of the journal (<see cref="ILedgerStore"/>): opening a ledger replays it and
/// checks every root, so <c>skywire ledger verify</c> is the same code as the manager's.
/// </summary>
/// <remarks>
/// Accounts: <c>grant</c> (the operator's source of funds; the only negative balance), <c>consumer:&lt;key&gt;</c>,
/// <c>reserve:&lt;route&gt;</c>, <c>provider:&lt;key&gt;</c>, <c>fee</c>, <c>payout:&lt;day&gt;</c>.
/// Invariants checked after every post: I1 all balances sum to 0; I2 per route, debits from its reserve equal the
/// credits plus the fee, and reserve = reserved − spent − refunded; I3 per route and direction, paid bytes never
/// grow along the route; no balance but <c>grant</c> is negative.
/// </remarks>
public sealed partial class Ledger
{
    /// <summary>A route's reservation is released this long after its expiry (late final receipts still count until then).</summary>
    public const long ReleaseGraceMs = 15 * 60 * 1000;

    /// <summary>Rejected (forged) messages kept as evidence per epoch; later ones are refused without a trace.</summary>
    public const int MaxRejectionsPerEpoch = 1000;

    /// <summary>Grant account name.</summary>
    public const string GrantAccount = "grant";

    /// <summary>Fee account name.</summary>
    public const string FeeAccount = "fee";

    private static readonly byte[] s_rootDomain = "skywire/ledger/v1/root\0"u8.ToArray();
    private static readonly byte[] s_rootSignDomain = "skywire/ledger/v1/root-signature\0"u8.ToArray();

    private readonly ILedgerStore _store;
    private readonly SortedDictionary<string, long> _balances = new(StringComparer.Ordinal);
    private readonly List<LedgerRoute> _routes = [];
    private readonly Dictionary<string, LedgerRoute> _byTermsId = new(StringComparer.Ordinal);
    private readonly List<LedgerDispute> _disputes = [];
    private readonly HashSet<string> _disputeKeys = new(StringComparer.Ordinal);
    private readonly List<LedgerEntry> _entries = [];
    private readonly HashSet<string> _seen = new(StringComparer.Ordinal);
    private readonly List<EpochRoot> _roots = [];
    private readonly IncrementalHash _epochLines = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
    private readonly SortedDictionary<string, PayoutDay> _days = new(StringComparer.Ordinal);
    private int _rejectionsThisEpoch;
    private byte[] _root = new byte[32];
    private long _lastAtMs;
    private bool _faulted;

    private Ledger(ILedgerStore store, PubKey manager)
    {
        _store = store;
        Manager = manager;
    }

    /// <summary>The manager whose terms and roots this ledger accepts.</summary>
    public PubKey Manager { get; }

    /// <summary>The epoch being filled (closed epochs + 1).</summary>
    public long Epoch => _roots.Count + 1;

    /// <summary>Balances by account (droplets), sorted by name.</summary>
    public IReadOnlyDictionary<string, long> Balances => _balances;

    /// <summary>Routes in the order they were opened.</summary>
    public IReadOnlyList<LedgerRoute> Routes => _routes;

    /// <summary>Disputes in the order found.</summary>
    public IReadOnlyList<LedgerDispute> Disputes => _disputes;

    /// <summary>Entries in the order posted.</summary>
    public IReadOnlyList<LedgerEntry> Entries => _entries;

    /// <summary>Signed roots of the closed epochs.</summary>
    public IReadOnlyList<EpochRoot> Roots => _roots;

    /// <summary>Exported payout days.</summary>
    public IReadOnlyDictionary<string, PayoutDay> Days => _days;

    /// <summary>The latest root (hex), zeros before the first close.</summary>
    public string CurrentRoot => Convert.ToHexStringLower(_root);

    /// <summary>Opens a ledger: replays the journal, recomputing every balance and checking every signed root.</summary>
    /// <exception cref="LedgerVerificationException">A line does not apply as journaled or a root differs.</exception>
    public static Ledger Open(ILedgerStore store, PubKey manager)
    {
        ArgumentNullException.ThrowIfNull(store);
        var ledger = new Ledger(store, manager);
        var lines = store.ReadAll();
        for (var i = 0; i < lines.Count; i++)
        {
            LedgerRecord record;
            try
            {
                record = FileLedgerStore.Deserialize(lines[i]);
            }
            catch (Exception e) when (e is System.Text.Json.JsonException or InvalidDataException)
            {
                throw new LedgerVerificationException($"journal line {i + 1}: not a ledger record ({e.Message})");
            }

            try
            {
                var outcome = ledger.Apply(record, lines[i], signer: null);
                if (outcome.Status is LedgerStatus.Duplicate or LedgerStatus.Refused)
                {
                    throw new LedgerVerificationException($"journal line {i + 1}: {record.Kind} would not have been journaled ({outcome.Message})");
                }
            }
            catch (LedgerVerificationException e) when (!e.Message.StartsWith("journal line", StringComparison.Ordinal))
            {
                throw new LedgerVerificationException($"journal line {i + 1}: {e.Message}");
            }
        }

        return ledger;
    }

    /// <summary>Credits a consumer from the grant account (the operator's top-up; later a watched deposit address).</summary>
    public LedgerOutcome Grant(PubKey node, long droplets, long atMs, string? memo = null) =>
        Submit(new LedgerRecord { Kind = LedgerRecordKind.Grant, AtMs = atMs, Node = node.ToString(), Droplets = droplets, Memo = memo });

    /// <summary>Opens a route from signed terms and reserves the source's funds; refused without funds.</summary>
    public LedgerOutcome OpenRoute(ReadOnlySpan<byte> terms, long atMs) =>
        Submit(new LedgerRecord { Kind = LedgerRecordKind.Terms, AtMs = atMs, Data = Convert.ToHexStringLower(terms) });

    /// <summary>Ingests an uploaded hop receipt.</summary>
    public LedgerOutcome SubmitReceipt(ReadOnlySpan<byte> receipt, long atMs) =>
        Submit(new LedgerRecord { Kind = LedgerRecordKind.Receipt, AtMs = atMs, Data = Convert.ToHexStringLower(receipt) });

    /// <summary>Ingests an uploaded spend authorization.</summary>
    public LedgerOutcome SubmitAuthorization(ReadOnlySpan<byte> auth, long atMs) =>
        Submit(new LedgerRecord { Kind = LedgerRecordKind.Auth, AtMs = atMs, Data = Convert.ToHexStringLower(auth) });

    /// <summary>
    /// The manager ended a route (closed, or re-routed onto new terms): no authorization counts after this, so what the
    /// route can still cost is bounded by its caps; the reserve beyond that goes back to the source now, the rest at the
    /// first close <see cref="ReleaseGraceMs"/> later (late final receipts still count until then).
    /// </summary>
    public LedgerOutcome EndRoute(ReadOnlySpan<byte> termsId, long atMs) =>
        Submit(new LedgerRecord { Kind = LedgerRecordKind.End, AtMs = atMs, Data = Convert.ToHexStringLower(termsId) });

    /// <summary>Closes the epoch: settles every open route, releases expired ones, signs and journals the root.</summary>
    public EpochRoot CloseEpoch(KeyPair manager, long atMs)
    {
        ArgumentNullException.ThrowIfNull(manager);
        if (manager.Public != Manager)
        {
            throw new ArgumentException("Only the ledger's manager key signs its roots.", nameof(manager));
        }

        Submit(new LedgerRecord { Kind = LedgerRecordKind.Close, AtMs = atMs, Epoch = Epoch }, manager);
        return _roots[^1];
    }

    /// <summary>Moves every provider balance of at least <paramref name="minPayoutDroplets"/>, rounded down to Skycoin's precision, to the day's payout.</summary>
    public LedgerOutcome Export(string day, long minPayoutDroplets, long atMs) =>
        Submit(new LedgerRecord { Kind = LedgerRecordKind.Export, AtMs = atMs, Day = day, Droplets = minPayoutDroplets });

    /// <summary>Records the wallet's transaction id for an exported day.</summary>
    public LedgerOutcome MarkPaid(string day, string txid, long atMs) =>
        Submit(new LedgerRecord { Kind = LedgerRecordKind.Paid, AtMs = atMs, Day = day, TxId = txid });

    /// <summary>The signing bytes of a root.</summary>
    public static byte[] RootSigningBytes(ReadOnlySpan<byte> root) => [.. s_rootSignDomain, .. root];

    private LedgerOutcome Submit(LedgerRecord record, KeyPair? signer = null)
    {
        if (_faulted)
        {
            throw new InvalidOperationException("The ledger failed to journal a record; reopen it.");
        }

        // The manager's clock may step back; the journal's times never do.
        record = record with { AtMs = Math.Max(record.AtMs, _lastAtMs) };
        var line = FileLedgerStore.Serialize(record);
        var outcome = Apply(record, line, signer);
        if (outcome.Status is LedgerStatus.Duplicate or LedgerStatus.Refused)
        {
            return outcome;
        }

        if (record.Kind == LedgerRecordKind.Close)
        {
            var root = _roots[^1];
            line = FileLedgerStore.Serialize(record with { Root = root.Root, Signature = root.Signature });
        }

        try
        {
            _store.Append(line);
        }
        catch
        {
            // State already holds the record; a journal that lacks it would not replay to this state.
            _faulted = true;
            throw;
        }

        return outcome;
    }

    private LedgerOutcome Apply(LedgerRecord record, string line, KeyPair? signer)
    {
        if (record.AtMs < _lastAtMs)
        {
            throw new LedgerVerificationException($"time goes back ({record.AtMs} < {_lastAtMs})");
        }

        var outcome = record.Kind switch
        {
            LedgerRecordKind.Grant => ApplyGrant(record),
            LedgerRecordKind.Terms => ApplyTerms(record),
            LedgerRecordKind.Receipt => ApplyReceipt(record),
            LedgerRecordKind.Auth => ApplyAuth(record),
            LedgerRecordKind.Close => ApplyClose(record, signer),
            LedgerRecordKind.Export => ApplyExport(record),
            LedgerRecordKind.Paid => ApplyPaid(record),
            LedgerRecordKind.End => ApplyEnd(record),
            LedgerRecordKind.Binding => ApplyBinding(record),
            _ => new LedgerOutcome(LedgerStatus.Refused, $"unknown record kind '{record.Kind}'"),
        };
        if (outcome.Status is LedgerStatus.Accepted or LedgerStatus.Disputed)
        {
            _lastAtMs = record.AtMs;
            if (record.Kind != LedgerRecordKind.Close)
            {
                _epochLines.AppendData(SHA256.HashData(Encoding.UTF8.GetBytes(line)));
            }
        }

        return outcome;
    }

    private LedgerOutcome ApplyGrant(LedgerRecord record)
    {
        if (!PubKey.TryParse(record.Node, out var node) || record.Droplets is not (> 0 and <= (long)MeteringWire.MaxSpendDroplets))
        {
            return new(LedgerStatus.Refused, "a grant needs a node key and a positive amount of at most 10^18 droplets");
        }

        Post("grant " + (record.Memo ?? ""), (GrantAccount, -record.Droplets.Value), (ConsumerAccount(node), record.Droplets.Value));
        return new(LedgerStatus.Accepted, $"granted {record.Droplets} droplets to {node.ToShortString()}");
    }

    private LedgerOutcome ApplyTerms(LedgerRecord record)
    {
        string? error = null;
        if (!TryHex(record.Data, out var bytes) || !RouteTerms.TryDecode(bytes, out var terms, out error))
        {
            return new(LedgerStatus.Refused, "terms do not decode: " + (error ?? "not hex"));
        }

        var problem = MeteringSigner.VerifyTerms(terms!, Manager);
        if (problem is not null)
        {
            return new(LedgerStatus.Refused, "terms refused: " + problem);
        }

        var termsId = terms!.TermsId;
        var key = Convert.ToHexStringLower(termsId);
        if (_byTermsId.ContainsKey(key))
        {
            return new(LedgerStatus.Duplicate, "route already open");
        }

        if (_routes.Any(r => r.Terms.RouteId.AsSpan().SequenceEqual(terms.RouteId)))
        {
            return new(LedgerStatus.Refused, "another route has that route id");
        }

        if (terms.ExpiresMs <= record.AtMs)
        {
            return new(LedgerStatus.Refused, "terms already expired");
        }

        var balance = Balance(ConsumerAccount(terms.Source));
        var need = Settlement.WindowCost(terms);
        var reserve = Math.Min((long)terms.MaxSpend, balance);
        if (need > (long)terms.MaxSpend)
        {
            return new(LedgerStatus.Refused, $"max spend {terms.MaxSpend} is below the cost of one window ({need} droplets)");
        }

        if (reserve < need)
        {
            return new(LedgerStatus.Refused, $"source {terms.Source.ToShortString()} has {balance} droplets; one window costs {need}");
        }

        var route = new LedgerRoute(terms, termsId, reserve, Epoch);
        _routes.Add(route);
        _byTermsId[key] = route;
        Post("reserve " + route.Id, (ConsumerAccount(terms.Source), -reserve), (route.ReserveAccount, reserve));
        return new(LedgerStatus.Accepted, $"route {route.Id} open, {reserve} droplets reserved");
    }

    private LedgerOutcome ApplyExport(LedgerRecord record)
    {
        if (!PayoutDay.IsDay(record.Day) || record.Droplets is not { } min || min < PayoutDay.Precision || min % PayoutDay.Precision != 0)
        {
            return new(LedgerStatus.Refused, $"an export needs a day (yyyy-MM-dd) and a minimum payout that is a positive multiple of {PayoutDay.Precision} droplets");
        }

        if (_days.ContainsKey(record.Day!))
        {
            return new(LedgerStatus.Refused, $"{record.Day} was already exported");
        }

        var rows = new List<PayoutRow>();
        foreach (var (account, balance) in _balances)
        {
            if (!account.StartsWith("provider:", StringComparison.Ordinal) || balance < min)
            {
                continue;
            }

            var node = PubKey.Parse(account["provider:".Length..]);
            rows.Add(new PayoutRow(node, PayoutAddress(node), balance - balance % PayoutDay.Precision));
        }

        // Two nodes may bind one address: their rows stay apart (each is its own provider account), ordered by node.
        rows.Sort((a, b) => string.CompareOrdinal(a.Address, b.Address) is var c && c != 0 ? c : string.CompareOrdinal(a.Node.ToString(), b.Node.ToString()));
        var payout = "payout:" + record.Day;
        foreach (var row in rows)
        {
            Post($"export {record.Day}", (ProviderAccount(row.Node), -row.Droplets), (payout, row.Droplets));
        }

        var carried = _balances.Where(b => b.Key.StartsWith("provider:", StringComparison.Ordinal)).Sum(b => b.Value);
        _days[record.Day!] = new PayoutDay(record.Day!, Epoch, rows, carried, CurrentRoot, record.AtMs);
        return new(LedgerStatus.Accepted, $"{record.Day}: {rows.Count} payouts, {rows.Sum(r => r.Droplets)} droplets, {carried} carried");
    }

    private LedgerOutcome ApplyPaid(LedgerRecord record)
    {
        if (record.Day is null || !_days.TryGetValue(record.Day, out var day))
        {
            return new(LedgerStatus.Refused, $"{record.Day} was not exported");
        }

        if (string.IsNullOrWhiteSpace(record.TxId) || record.TxId.Length > 128 || !record.TxId.All(char.IsAsciiLetterOrDigit))
        {
            return new(LedgerStatus.Refused, "a transaction id is 1 to 128 letters or digits");
        }

        if (day.TxId is not null)
        {
            return new(LedgerStatus.Refused, $"{record.Day} is already recorded as paid by {day.TxId}");
        }

        _days[record.Day] = day with { TxId = record.TxId };
        return new(LedgerStatus.Accepted, $"{record.Day} paid in {record.TxId}");
    }

    /// <summary>Balance of an account (0 when absent).</summary>
    public long Balance(string account) => _balances.TryGetValue(account, out var v) ? v : 0;

    /// <summary>The consumer account of a node.</summary>
    public static string ConsumerAccount(PubKey node) => "consumer:" + node;

    /// <summary>The provider account of a node.</summary>
    public static string ProviderAccount(PubKey node) => "provider:" + node;

    private void Post(string memo, params (string Account, long Amount)[] postings)
    {
        Int128 sum = 0;
        foreach (var (_, amount) in postings)
        {
            sum += amount;
        }

        if (sum != 0)
        {
            throw new LedgerInvariantException($"unbalanced entry '{memo}': sums to {sum}");
        }

        var kept = postings.Where(p => p.Amount != 0).Select(p => KeyValuePair.Create(p.Account, p.Amount)).ToArray();
        if (kept.Length == 0)
        {
            return;
        }

        foreach (var (account, amount) in kept)
        {
            _balances[account] = checked(Balance(account) + amount);
        }

        _entries.Add(new LedgerEntry(Epoch, memo, kept));
        CheckInvariants();
    }

    private void CheckInvariants()
    {
        Int128 total = 0;
        foreach (var (account, balance) in _balances)
        {
            total += balance;
            if (balance < 0 && account != GrantAccount)
            {
                throw new LedgerInvariantException($"I1: {account} is negative ({balance})");
            }
        }

        if (total != 0)
        {
            throw new LedgerInvariantException($"I1: balances sum to {total}");
        }

        foreach (var route in _routes)
        {
            var expected = route.Reserved - route.Spent - route.Refunded;
            if (Balance(route.ReserveAccount) != expected || expected < 0)
            {
                throw new LedgerInvariantException($"I2: route {route.Id} reserve {Balance(route.ReserveAccount)}, expected {expected}");
            }
        }
    }

    private static bool TryHex(string? text, out byte[] bytes)
    {
        bytes = [];
        if (text is null || text.Length % 2 != 0 || text.Length > 2 * RouteTerms.MaxLength)
        {
            return false;
        }

        try
        {
            bytes = Convert.FromHexString(text);
            return true;
        }
        catch (FormatException)
        {
            return false;
        }
    }
}
