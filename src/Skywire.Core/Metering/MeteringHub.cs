using System.Security.Cryptography;
using Microsoft.Extensions.Logging;
using Skywire.Core.Channels;
using Skywire.Core.Crypto;
using Skywire.Protocol;
using Skywire.Protocol.Control;
using Skywire.Protocol.Metering;

namespace Skywire.Core.Metering;

/// <summary>
/// The manager's side of metering on live routes (docs/metering.md "Live path"): issues route terms at setup, opens the
/// route in the ledger (refused without funds), checks and posts the receipts and authorizations nodes upload, and
/// closes an epoch on schedule and when the manager stops. The ledger is not thread-safe: every call takes one lock,
/// never held across I/O (the manager's node calls happen outside it).
/// </summary>
public sealed partial class MeteringHub : IAsyncDisposable
{
    /// <summary>File in the ledger directory naming the manager that writes it (as <c>skywire ledger</c> pins it).</summary>
    public const string ManagerFile = "manager.pub";

    private readonly KeyPair _key;
    private readonly ManagerMeteringOptions _options;
    private readonly TimeProvider _time;
    private readonly ILogger _logger;
    private readonly FileLedgerStore _store;
    private readonly Ledger _ledger;
    private readonly Lock _sync = new();
    private readonly Dictionary<string, RouteTerms> _terms = new(StringComparer.Ordinal);
    private readonly CancellationTokenSource _cts = new();
    private Task? _epochs;
    private int _disposed;

    /// <summary>Opens (or creates) the ledger in <see cref="ManagerMeteringOptions.LedgerDirectory"/>, replaying and verifying its journal.</summary>
    /// <exception cref="IOException">Another process writes the ledger, or the directory names another manager.</exception>
    /// <exception cref="LedgerVerificationException">The journal does not recompute.</exception>
    public MeteringHub(KeyPair key, ManagerMeteringOptions options, TimeProvider? time = null, ILogger? logger = null)
    {
        ArgumentNullException.ThrowIfNull(key);
        ArgumentNullException.ThrowIfNull(options);
        (_key, _options, _time) = (key, options, time ?? TimeProvider.System);
        _logger = logger ?? Microsoft.Extensions.Logging.Abstractions.NullLogger.Instance;
        Directory.CreateDirectory(options.LedgerDirectory);
        var pub = Path.Combine(options.LedgerDirectory, ManagerFile);
        if (!File.Exists(pub))
        {
            File.WriteAllText(pub, key.Public + "\n");
        }
        else if (!PubKey.TryParse(File.ReadAllText(pub).Trim(), out var owner) || owner != key.Public)
        {
            throw new IOException($"{pub} names another manager; this ledger is not this manager's to write");
        }

        _store = FileLedgerStore.Open(options.LedgerDirectory, writable: true);
        try
        {
            _ledger = Ledger.Open(_store, key.Public);
        }
        catch
        {
            _store.Dispose();
            throw;
        }

        foreach (var route in _ledger.Routes)
        {
            _terms[Convert.ToHexStringLower(route.TermsId)] = route.Terms;
        }
    }

    /// <summary>The settings.</summary>
    public ManagerMeteringOptions Options => _options;

    /// <summary>The key that writes (and pins) this ledger.</summary>
    public PubKey Manager => _key.Public;

    /// <summary>Starts closing an epoch every <see cref="ManagerMeteringOptions.EpochInterval"/>.</summary>
    public void Start()
    {
        MeteringWarmUp.Start(); // before the first route: every receipt passes through here
        _epochs ??= Task.Run(EpochLoopAsync);
    }

    /// <summary>Reads the ledger under its lock (tests, listings).</summary>
    public T Read<T>(Func<Ledger, T> read)
    {
        ArgumentNullException.ThrowIfNull(read);
        lock (_sync)
        {
            return read(_ledger);
        }
    }

    /// <summary>Credits a node's consumer account from the grant account (the operator's top-up, as <c>skywire ledger grant</c>).</summary>
    public LedgerOutcome Grant(PubKey node, long droplets, string? memo = null)
    {
        lock (_sync)
        {
            return _ledger.Grant(node, droplets, Now(), memo);
        }
    }

    /// <summary>Terms for a route along <paramref name="path"/> (source first), signed by this manager, not yet accepted.</summary>
    public RouteTerms Issue(IReadOnlyList<PubKey> path)
    {
        ArgumentNullException.ThrowIfNull(path);
        var now = _time.GetUtcNow().ToUnixTimeMilliseconds();
        var terms = new RouteTerms
        {
            Manager = _key.Public,
            RouteId = RandomNumberGenerator.GetBytes(MeteringWire.RouteIdLength),
            CreatedMs = now,
            ExpiresMs = now + (long)_options.TermsLifetime.TotalMilliseconds,
            Source = path[0],
            Destination = path[^1],
            Relays = [.. path.Skip(1).SkipLast(1).Select(n => new RelayPrice(n, _options.RelayPricePerGiB, _options.RelayPricePerGiB))],
            DestinationPriceForward = _options.DestinationPricePerGiB,
            DestinationPriceReverse = _options.DestinationPricePerGiB,
            FeeBps = _options.FeeBps,
            MaxSpend = _options.MaxSpend,
            WindowBytes = _options.WindowBytes,
        };
        return MeteringSigner.SignAsManager(terms, _key);
    }

    /// <summary>Opens the route in the ledger from the terms the source accepted; reserves its funds.</summary>
    /// <exception cref="ControlException">PaymentRequired without funds; BadRequest for terms that do not verify.</exception>
    public RouteTerms Open(string? acceptedHex)
    {
        var terms = Decode<RouteTerms>(acceptedHex, RouteTerms.TryDecode);
        if (MeteringSigner.VerifyTerms(terms, _key.Public) is { } problem)
        {
            throw new ControlException(ControlErrorCode.BadRequest, "the source's acceptance does not verify: " + problem);
        }

        lock (_sync)
        {
            var outcome = _ledger.OpenRoute(terms.Encode(), Now());
            if (outcome.Status == LedgerStatus.Refused)
            {
                Log.RouteRefused(_logger, terms.Source, outcome.Message);
                throw new ControlException(ControlErrorCode.PaymentRequired, "metered route refused: " + outcome.Message);
            }

            var id = Convert.ToHexStringLower(terms.TermsId);
            _terms[id] = terms;
            Log.RouteOpened(_logger, id, terms.HopCount, outcome.Message);
        }

        return terms;
    }

    /// <summary>
    /// The manager no longer uses the route (closed, or re-routed onto new terms): its caps freeze and the reserve beyond
    /// them goes back to the source now (so a re-route can reserve again); late final receipts still count.
    /// </summary>
    public void End(RouteTerms terms)
    {
        ArgumentNullException.ThrowIfNull(terms);
        lock (_sync)
        {
            var outcome = _ledger.EndRoute(terms.TermsId, Now());
            if (outcome.Status == LedgerStatus.Accepted)
            {
                Log.RouteEnded(_logger, outcome.Message);
            }
        }
    }

    /// <summary>
    /// Ends the open routes from <paramref name="source"/> to <paramref name="destination"/> that no live route runs on
    /// (<paramref name="isLive"/> false for their terms id): a restarted manager adopts such a route with new terms.
    /// </summary>
    /// <returns>How many ended.</returns>
    public int EndOrphans(PubKey source, PubKey destination, Func<byte[], bool> isLive)
    {
        ArgumentNullException.ThrowIfNull(isLive);
        lock (_sync)
        {
            var orphans = _ledger.Routes.Where(r => !r.Released && r.EndedMs is null && r.Terms.Source == source && r.Terms.Destination == destination && !isLive(r.TermsId)).ToList();
            foreach (var route in orphans)
            {
                var outcome = _ledger.EndRoute(route.TermsId, Now());
                if (outcome.Status == LedgerStatus.Accepted)
                {
                    Log.RouteEnded(_logger, outcome.Message);
                }
            }

            return orphans.Count;
        }
    }

    /// <summary>
    /// A receipt <paramref name="node"/> proposed as a hop's receiver: its terms, and the hop's sender who must countersign.
    /// </summary>
    /// <exception cref="ControlException">Unknown terms, not the hop's receiver, or a receiver signature that does not verify.</exception>
    public (HopReceipt Proposal, RouteTerms Terms, PubKey Sender) Proposal(PubKey node, string? hex)
    {
        var proposal = Decode<HopReceipt>(hex, HopReceipt.TryDecode);
        var terms = TermsOf(proposal.TermsId);
        if (proposal.Hop >= terms.HopCount || terms.ReceiverOf(proposal.Hop, proposal.Direction) != node)
        {
            throw new ControlException(ControlErrorCode.Forbidden, "only the hop's receiver proposes its receipt");
        }

        if (!KeyPair.Verify(node, proposal.ReceiverSigningBytes(), proposal.ReceiverSignature))
        {
            throw new ControlException(ControlErrorCode.BadRequest, "the receiver's signature does not verify");
        }

        return (proposal, terms, terms.SenderOf(proposal.Hop, proposal.Direction));
    }

    /// <summary>Checks the sender's countersigned copy of <paramref name="proposal"/> and posts it to the ledger.</summary>
    /// <exception cref="ControlException">The sender's answer is not a valid countersignature of that proposal.</exception>
    public HopReceipt Countersigned(HopReceipt proposal, RouteTerms terms, string? hex)
    {
        ArgumentNullException.ThrowIfNull(proposal);
        ArgumentNullException.ThrowIfNull(terms);
        var signed = Decode<HopReceipt>(hex, HopReceipt.TryDecode);
        if (!signed.EncodeBody().AsSpan().SequenceEqual(proposal.EncodeBody()) || !signed.ReceiverSignature.AsSpan().SequenceEqual(proposal.ReceiverSignature)
            || MeteringSigner.VerifyReceipt(signed, terms, terms.TermsId) is not null)
        {
            throw new ControlException(ControlErrorCode.BadRequest, "the sender's answer is not a countersignature of that receipt");
        }

        lock (_sync)
        {
            var outcome = _ledger.SubmitReceipt(signed.Encode(), Now());
            Report(outcome, signed.ToString());
        }

        return signed;
    }

    /// <summary>An authorization <paramref name="node"/> signed as the source: posted to the ledger; the terms come back for the push to the route.</summary>
    /// <exception cref="ControlException">Unknown terms, not the source, or a signature that does not verify.</exception>
    public (SpendAuthorization Auth, RouteTerms Terms) Authorization(PubKey node, string? hex)
    {
        var auth = Decode<SpendAuthorization>(hex, SpendAuthorization.TryDecode);
        var terms = TermsOf(auth.TermsId);
        if (terms.Source != node || MeteringSigner.VerifyAuthorization(auth, terms, terms.TermsId) is { } problem)
        {
            throw new ControlException(ControlErrorCode.Forbidden, "only the route's source authorizes, with its own signature");
        }

        lock (_sync)
        {
            var outcome = _ledger.SubmitAuthorization(auth.Encode(), Now());
            Report(outcome, auth.ToString());
        }

        return (auth, terms);
    }

    /// <summary>Terms by id (hex), checking that <paramref name="node"/> is their source (a status query).</summary>
    public RouteTerms SourceTerms(PubKey node, string? termsIdHex)
    {
        var terms = TermsOf(termsIdHex is null ? [] : Convert.FromHexString(termsIdHex));
        return terms.Source == node ? terms : throw new ControlException(ControlErrorCode.Forbidden, "only the route's source asks");
    }

    /// <summary>Forward bytes the last hop's receiver (the destination) co-signed so far.</summary>
    public ulong DeliveredForward(RouteTerms terms)
    {
        ArgumentNullException.ThrowIfNull(terms);
        lock (_sync)
        {
            var id = terms.TermsId;
            var route = _ledger.Routes.LastOrDefault(r => r.TermsId.AsSpan().SequenceEqual(id));
            return route?.Bytes(terms.HopCount - 1, MeteringDirection.Forward) ?? 0;
        }
    }

    /// <summary>Closes an epoch now: settles every route, signs the root.</summary>
    public EpochRoot CloseEpoch()
    {
        lock (_sync)
        {
            var root = _ledger.CloseEpoch(_key, Now());
            Log.EpochClosed(_logger, root.Epoch, root.Root);
            return root;
        }
    }

    /// <summary>Stops the schedule, closes a last epoch (so the ledger shows everything settled), closes the journal.</summary>
    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            return;
        }

        await _cts.CancelAsync();
        if (_epochs is not null)
        {
            await _epochs.ContinueWith(_ => { }, TaskScheduler.Default);
        }

        try
        {
            CloseEpoch();
        }
        catch (Exception ex) when (ex is IOException or InvalidOperationException)
        {
            Log.EpochFailed(_logger, ex.Message);
        }

        _store.Dispose();
        _cts.Dispose();
    }

    private async Task EpochLoopAsync()
    {
        while (!_cts.IsCancellationRequested)
        {
            try
            {
                await Task.Delay(_options.EpochInterval, _time, _cts.Token);
                CloseEpoch();
            }
            catch (OperationCanceledException)
            {
                return;
            }
            catch (Exception ex) when (ex is IOException or InvalidOperationException)
            {
                Log.EpochFailed(_logger, ex.Message);
            }
        }
    }

    private void Report(LedgerOutcome outcome, string what)
    {
        if (outcome.Dispute is { } dispute)
        {
            Log.Disputed(_logger, what, dispute.ToString());
        }
        else if (outcome.Status == LedgerStatus.Refused)
        {
            Log.Refused(_logger, what, outcome.Message);
        }
    }

    private RouteTerms TermsOf(byte[] termsId)
    {
        lock (_sync)
        {
            return _terms.TryGetValue(Convert.ToHexStringLower(termsId), out var terms)
                ? terms
                : throw new ControlException(ControlErrorCode.NotFound, "no metered route with those terms");
        }
    }

    private long Now() => _time.GetUtcNow().ToUnixTimeMilliseconds();

    private static T Decode<T>(string? hex, TryDecoder<T> decode)
    {
        byte[] bytes;
        try
        {
            bytes = Convert.FromHexString(hex ?? "");
        }
        catch (FormatException)
        {
            throw new ControlException(ControlErrorCode.BadRequest, "the metering message is not hex");
        }

        return decode(bytes, out var value, out var error) ? value! : throw new ControlException(ControlErrorCode.BadRequest, error ?? "does not decode");
    }

    private delegate bool TryDecoder<T>(ReadOnlySpan<byte> data, out T? value, out string? error);

    private static partial class Log
    {
        [LoggerMessage(EventId = 4520, Level = LogLevel.Information, Message = "Metered route with terms {TermsId} open over {Hops} hops: {Outcome}")]
        public static partial void RouteOpened(ILogger logger, string termsId, int hops, string outcome);

        [LoggerMessage(EventId = 4521, Level = LogLevel.Warning, Message = "Metered route from {Source} refused: {Reason}")]
        public static partial void RouteRefused(ILogger logger, PubKey source, string reason);

        [LoggerMessage(EventId = 4522, Level = LogLevel.Warning, Message = "Ledger dispute on {What}: {Dispute}")]
        public static partial void Disputed(ILogger logger, string what, string dispute);

        [LoggerMessage(EventId = 4523, Level = LogLevel.Warning, Message = "Ledger refused {What}: {Reason}")]
        public static partial void Refused(ILogger logger, string what, string reason);

        [LoggerMessage(EventId = 4524, Level = LogLevel.Information, Message = "Ledger epoch {Epoch} closed, root {Root}")]
        public static partial void EpochClosed(ILogger logger, long epoch, string root);

        [LoggerMessage(EventId = 4526, Level = LogLevel.Information, Message = "Metered route ended: {Outcome}")]
        public static partial void RouteEnded(ILogger logger, string outcome);

        [LoggerMessage(EventId = 4525, Level = LogLevel.Error, Message = "Ledger epoch close failed: {Reason}")]
        public static partial void EpochFailed(ILogger logger, string reason);
    }
}
