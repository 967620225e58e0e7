using Skywire.Protocol.Metering;

namespace Skywire.Core.Metering;

/// <summary>
/// The operator's write acts on a running manager's ledger (<c>skywire ledger close|export|paid|submit --manager</c>;
/// docs/metering.md "Operator commands"): the ledger has one writer, so while the manager runs they go through it.
/// </summary>
public sealed partial class MeteringHub
{
    /// <summary>Most signed messages one submit request carries (the largest, 8-relay terms, as hex: 660 KB, within one control frame); the cli sends larger files in several.</summary>
    public const int MaxSubmitLines = 500;

    /// <summary>Ingests signed messages (hex, one per item: terms, receipts, authorizations, bindings); counts per outcome and the refusals.</summary>
    public (SortedDictionary<string, int> Counts, List<string> Problems) Submit(IReadOnlyList<string> lines)
    {
        ArgumentNullException.ThrowIfNull(lines);
        var counts = new SortedDictionary<string, int>(StringComparer.Ordinal);
        var problems = new List<string>();
        lock (_sync)
        {
            foreach (var line in lines)
            {
                byte[] bytes;
                try
                {
                    bytes = Convert.FromHexString(line.Trim());
                }
                catch (FormatException)
                {
                    bytes = [];
                }

                var outcome = bytes.Length == 0 ? new LedgerOutcome(LedgerStatus.Refused, "not hex") : _ledger.SubmitSigned(bytes, Now());
                var key = outcome.Status.ToString().ToLowerInvariant();
                counts[key] = counts.GetValueOrDefault(key) + 1;
                if (outcome.Status is LedgerStatus.Refused or LedgerStatus.Disputed)
                {
                    problems.Add(outcome.Message);
                }
                else if (outcome.Status == LedgerStatus.Accepted && bytes[0] == MeteringWire.TermsTag)
                {
                    var route = _ledger.Routes[^1];
                    _terms[Convert.ToHexStringLower(route.TermsId)] = route.Terms;
                }
            }
        }

        return (counts, problems);
    }

    /// <summary>Exports a payout day and writes its files into the ledger directory's <c>exports/</c>; the paths written.</summary>
    public (LedgerOutcome Outcome, IReadOnlyList<string> Files) Export(string day, long minPayoutDroplets)
    {
        lock (_sync)
        {
            var outcome = _ledger.Export(day, minPayoutDroplets, Now());
            var files = outcome.Status == LedgerStatus.Accepted
                ? PayoutExport.Write(Path.Combine(_options.LedgerDirectory, "exports"), _ledger.Days[day], _key)
                : [];
            return (outcome, files);
        }
    }

    /// <summary>Records the transaction id that paid an exported day.</summary>
    public LedgerOutcome MarkPaid(string day, string txid)
    {
        lock (_sync)
        {
            return _ledger.MarkPaid(day, txid, Now());
        }
    }
}
