using Skywire.Protocol;
using Skywire.Protocol.Metering;

namespace Skywire.Core.Metering;

public sealed partial class Ledger
{
    private LedgerOutcome ApplyReceipt(LedgerRecord record)
    {
        if (record.Data is not null && _seen.Contains(record.Data))
        {
            return new(LedgerStatus.Duplicate, "receipt already known");
        }

        if (record.Data is null || record.Data.Length > 2 * RouteTerms.MaxLength)
        {
            // Never journaled, so junk cannot grow the journal beyond a bounded line.
            return new(LedgerStatus.Refused, "receipt missing or longer than any metering message");
        }

        string? error = null;

        if (!TryHex(record.Data, out var bytes) || !HopReceipt.TryDecode(bytes, out var receipt, out error))
        {
            return Reject(null, "receipt does not decode: " + (error ?? "not hex"), record.Data);
        }

        if (!_byTermsId.TryGetValue(Convert.ToHexStringLower(receipt!.TermsId), out var route))
        {
            return Reject(null, "receipt for unknown terms", record.Data);
        }

        var problem = MeteringSigner.VerifyReceipt(receipt, route.Terms, route.TermsId);
        if (problem is not null)
        {
            // The receiver's signature is checked first: when only the sender's fails, the receiver signed a figure
            // its sender never countersigned (a lone inflater), and that signature names it.
            PubKey[] named = problem == "sender signature invalid" ? [route.Terms.ReceiverOf(receipt.Hop, receipt.Direction)] : [];
            return Reject(route, $"hop {receipt.Hop} {receipt.Direction}: {problem}", record.Data, named);
        }

        _seen.Add(record.Data!);
        if (route.Released || receipt.EndMs < route.Terms.CreatedMs || receipt.EndMs > route.Terms.ExpiresMs)
        {
            var why = route.Released ? "arrived after the route was released" : "ends outside the terms' validity";
            return Raise(new LedgerDispute(Epoch, DisputeCode.Stale, route.Id, [], $"hop {receipt.Hop} {receipt.Direction} seq {receipt.Seq} {why}; void", [record.Data!]), null);
        }

        var slot = route.Slot(receipt.Hop, receipt.Direction);
        var rx = route.Terms.ReceiverOf(receipt.Hop, receipt.Direction);
        var tx = route.Terms.SenderOf(receipt.Hop, receipt.Direction);
        HopReceipt? conflict = null;
        string? how = null;
        if (slot.TryGetValue(receipt.Seq, out var same))
        {
            (conflict, how) = (same, "two receipts with the same seq");
        }
        else
        {
            var before = slot.LastOrDefault(p => p.Key < receipt.Seq).Value;
            var after = slot.FirstOrDefault(p => p.Key > receipt.Seq).Value;
            if (before is not null && (before.Bytes > receipt.Bytes || before.Frames > receipt.Frames))
            {
                (conflict, how) = (before, "a later receipt with lower counters");
            }
            else if (before is { Final: true })
            {
                (conflict, how) = (before, "a receipt after the final one");
            }
            else if (after is not null && (after.Bytes < receipt.Bytes || after.Frames < receipt.Frames))
            {
                (conflict, how) = (after, "an earlier receipt with higher counters");
            }
            else if (receipt.Final && after is not null)
            {
                (conflict, how) = (after, "a final receipt before a later one");
            }
        }

        if (conflict is not null)
        {
            // Honest parties never sign both: each keeps the last receipt it signed and signs only higher seqs with
            // counters that do not go down. Both signed both, so both are named and lose further credit here.
            route.Forfeited.Add(rx);
            route.Forfeited.Add(tx);
            return Raise(new LedgerDispute(Epoch, DisputeCode.Equivocation, route.Id, [rx.ToString(), tx.ToString()],
                $"hop {receipt.Hop} {receipt.Direction}: {how} (seq {conflict.Seq}: {conflict.Bytes} B, seq {receipt.Seq}: {receipt.Bytes} B), signed by both {rx.ToShortString()} and {tx.ToShortString()}",
                [Convert.ToHexStringLower(conflict.Encode()), record.Data!]), null);
        }

        slot[receipt.Seq] = receipt;
        return new(LedgerStatus.Accepted, $"hop {receipt.Hop} {receipt.Direction} seq {receipt.Seq}: {receipt.Bytes} B");
    }

    private LedgerOutcome ApplyAuth(LedgerRecord record)
    {
        if (record.Data is not null && _seen.Contains(record.Data))
        {
            return new(LedgerStatus.Duplicate, "authorization already known");
        }

        if (record.Data is null || record.Data.Length > 2 * RouteTerms.MaxLength)
        {
            // Never journaled, so junk cannot grow the journal beyond a bounded line.
            return new(LedgerStatus.Refused, "authorization missing or longer than any metering message");
        }

        string? error = null;

        if (!TryHex(record.Data, out var bytes) || !SpendAuthorization.TryDecode(bytes, out var auth, out error))
        {
            return Reject(null, "authorization does not decode: " + (error ?? "not hex"), record.Data);
        }

        if (!_byTermsId.TryGetValue(Convert.ToHexStringLower(auth!.TermsId), out var route))
        {
            return Reject(null, "authorization for unknown terms", record.Data);
        }

        var problem = MeteringSigner.VerifyAuthorization(auth, route.Terms, route.TermsId);
        if (problem is not null)
        {
            return Reject(route, "authorization: " + problem, record.Data);
        }

        if (route.EndedMs is not null || route.Released)
        {
            // Caps froze when the route ended (its reserve was cut to them): never journaled.
            return new(LedgerStatus.Refused, $"route {route.Id} has ended; its caps no longer rise");
        }

        _seen.Add(record.Data!);
        var before = route.Auths.LastOrDefault(p => p.Key <= auth.Seq).Value;
        var after = route.Auths.FirstOrDefault(p => p.Key > auth.Seq).Value;
        var conflict = before is not null && (before.Seq == auth.Seq || before.CapForward > auth.CapForward || before.CapReverse > auth.CapReverse)
            ? before
            : after is not null && (after.CapForward < auth.CapForward || after.CapReverse < auth.CapReverse) ? after : null;

        // The source signed it either way, so the higher caps bind it: it pays for what it authorized.
        route.AuthForward = Math.Max(route.AuthForward, auth.CapForward);
        route.AuthReverse = Math.Max(route.AuthReverse, auth.CapReverse);
        if (conflict is not null)
        {
            var source = route.Terms.Source;
            return Raise(new LedgerDispute(Epoch, DisputeCode.Equivocation, route.Id, [source.ToString()],
                $"source {source.ToShortString()} signed conflicting authorizations (seq {conflict.Seq} and {auth.Seq}); the higher caps bind it",
                [Convert.ToHexStringLower(conflict.Encode()), record.Data!]), null);
        }

        route.Auths[auth.Seq] = auth;
        return new(LedgerStatus.Accepted, $"caps raised to {route.CapForward} B forward, {route.CapReverse} B reverse");
    }

    /// <summary>D1: kept as evidence (bounded per epoch) and counted against the route when it is known.</summary>
    private LedgerOutcome Reject(LedgerRoute? route, string reason, string? data, params PubKey[] named)
    {
        if (_rejectionsThisEpoch >= MaxRejectionsPerEpoch)
        {
            return new(LedgerStatus.Refused, reason + " (rejection log full this epoch)");
        }

        _rejectionsThisEpoch++;
        var evidence = data is null ? [] : new[] { data };
        return Raise(new LedgerDispute(Epoch, DisputeCode.Forged, route?.Id ?? "", [.. named.Select(n => n.ToString())], reason + "; rejected", evidence), null);
    }

    private LedgerOutcome Raise(LedgerDispute dispute, string? onceKey)
    {
        if (onceKey is not null && !_disputeKeys.Add(onceKey))
        {
            return new(LedgerStatus.Accepted, dispute.Reason);
        }

        _disputes.Add(dispute);
        return new(LedgerStatus.Disputed, $"{dispute.Label}: {dispute.Reason}", dispute);
    }

}
