using System.Collections.Concurrent;
using Skywire.Core.Channels;
using Skywire.Core.Metering;
using Skywire.Protocol;
using Skywire.Protocol.Control;
using Skywire.Protocol.Metering;

namespace Skywire.Core.Manager;

/// <summary>Metering on live routes (docs/metering.md "Live path"): terms at setup, receipts and authorizations relayed to the ledger.</summary>
public sealed partial class MeshController
{
    /// <summary>The terms each metered route (by session id) currently runs on.</summary>
    private readonly ConcurrentDictionary<ulong, RouteTerms> _meteredTerms = new();

    /// <summary>The manager's metering (ledger, terms); null: routes are not metered (the default).</summary>
    public MeteringHub? Metering { get; set; }

    /// <summary>
    /// Terms for a route's new path (a re-route): the current terms end first (their reserve beyond the frozen caps goes
    /// back to the source), then the new path's terms are agreed and opened like at setup. Null when the route is not metered.
    /// </summary>
    private async Task<RouteTerms?> RenewTermsAsync(RoutePlan plan, CancellationToken cancellationToken)
    {
        if (Metering is null)
        {
            return null;
        }

        EndTerms(plan.SessionId);
        return await AgreeTermsAsync(plan, cancellationToken);
    }

    /// <summary>
    /// Terms for a route this manager adopts (it restarted, or took the route over from a manager that died): the terms
    /// the route ran on before, which no live route of this manager holds now, end in this ledger (so their reserve goes
    /// back and their caps freeze), then the route gets new terms like at setup. Null when this manager does not meter.
    /// Called under the route gate (no route setup runs meanwhile, so every live route's terms are known).
    /// </summary>
    private async Task<RouteTerms?> AdoptTermsAsync(RoutePlan plan, CancellationToken cancellationToken)
    {
        if (Metering is not { } hub)
        {
            return null;
        }

        var live = _meteredTerms.Values.Select(t => Convert.ToHexStringLower(t.TermsId)).ToHashSet(StringComparer.Ordinal);
        hub.EndOrphans(plan.Path[0], plan.Path[^1], id => live.Contains(Convert.ToHexStringLower(id)));
        return await AgreeTermsAsync(plan, cancellationToken);
    }

    /// <summary>The route was dropped or moved off its terms: the ledger ends them (nothing when it is not metered).</summary>
    private void EndTerms(ulong sessionId)
    {
        if (Metering is { } hub && _meteredTerms.TryRemove(sessionId, out var terms))
        {
            hub.End(terms);
        }
    }

    /// <summary>
    /// Terms for the plan, accepted by its source and opened in the ledger (funds reserved), or null when this manager
    /// does not meter. Throws (PaymentRequired, Forbidden, Unavailable) when the route must not be built.
    /// </summary>
    private async Task<RouteTerms?> AgreeTermsAsync(RoutePlan plan, CancellationToken cancellationToken)
    {
        if (Metering is not { } hub)
        {
            return null;
        }

        // Sent in the signed layout with the source's signature still zero: the source fills it in by accepting.
        var offered = hub.Issue(plan.Path);
        var answer = await CallAsync(plan.From, ControlOpcode.MeterTerms, new MeterMessage { Data = Convert.ToHexStringLower((offered with { SourceSignature = new byte[MeteringWire.SignatureLength] }).Encode()) }, cancellationToken);
        var terms = hub.Open(answer.Data);
        _meteredTerms[plan.SessionId] = terms;
        return terms;
    }

    /// <summary>Tells every node of the route its position and labels, so it meters and gates (before the source's session starts).</summary>
    private async Task MeterRouteAsync(RoutePlan plan, RouteTerms terms, CancellationToken cancellationToken)
    {
        var data = Convert.ToHexStringLower(terms.Encode());
        var k = plan.Path.Count - 1;
        await Task.WhenAll(Enumerable.Range(0, k + 1).Select(p => CallAsync(plan.Path[p], ControlOpcode.MeterRoute, new MeterMessage
        {
            Data = data,
            Position = p,
            ForwardIn = p >= 1 ? plan.Forward[p] : 0,
            ReverseIn = p < k ? plan.Reverse[p] : 0,
            ForwardOut = p < k ? plan.Forward[p + 1] : 0,
            ReverseOut = p >= 1 ? plan.Reverse[p - 1] : 0,
        }, cancellationToken)));
    }

    /// <summary>A node uploads a receipt it signed as a hop's receiver: the hop's sender countersigns, the ledger takes it, the receiver gets it back.</summary>
    internal async Task<MeterMessage> MeterReceiptAsync(PubKey node, MeterMessage message, CancellationToken cancellationToken)
    {
        var hub = Metering ?? throw new ControlException(ControlErrorCode.BadRequest, "this manager does not meter routes");
        var (proposal, terms, sender) = hub.Proposal(node, message.Data);
        var answer = await CallAsync(sender, ControlOpcode.MeterCountersign, new MeterMessage { Data = message.Data }, cancellationToken);
        var signed = hub.Countersigned(proposal, terms, answer.Data);
        if (signed.Direction == MeteringDirection.Forward && signed.Hop == terms.HopCount - 1)
        {
            // The destination confirmed more: tell the source now, so it raises the caps before its senders reach them.
            _ = PushDeliveredAsync(terms, hub.DeliveredForward(terms));
        }

        return new MeterMessage { Data = Convert.ToHexStringLower(signed.Encode()) };
    }

    /// <summary>
    /// The source uploads an authorization (or asks how much was delivered): the ledger takes it, the relays and then the
    /// destination raise their caps; the answer tells the source the forward bytes the destination co-signed.
    /// </summary>
    internal async Task<MeterMessage> MeterAuthAsync(PubKey node, MeterMessage message, CancellationToken cancellationToken)
    {
        var hub = Metering ?? throw new ControlException(ControlErrorCode.BadRequest, "this manager does not meter routes");
        RouteTerms terms;
        if (message.Data is null)
        {
            terms = hub.SourceTerms(node, message.TermsId);
        }
        else
        {
            (_, terms) = hub.Authorization(node, message.Data);
            var push = new MeterMessage { Data = message.Data };
            // Relays first: a destination that sends more reverse bytes before its relays may carry them would look like loss.
            await Task.WhenAll(terms.Relays.Select(r => CallAsync(r.Node, ControlOpcode.MeterCaps, push, cancellationToken)));
            await CallAsync(terms.Destination, ControlOpcode.MeterCaps, push, cancellationToken);
        }

        return new MeterMessage { DeliveredForward = hub.DeliveredForward(terms) };
    }

    /// <summary>
    /// The operator's grant through the running manager (<c>skywire ledger grant --manager</c>): the ledger has one
    /// writer, so a grant while the manager runs goes through it. Only the manager's own key may grant (it pins the
    /// ledger, as the offline command requires it): an admin key may steer routes, not create money.
    /// </summary>
    /// <exception cref="ControlException">Forbidden for another key, BadRequest without a ledger or for a refused grant.</exception>
    internal LedgerGrantMessage Grant(PubKey caller, LedgerGrantMessage request)
    {
        var hub = Metering ?? throw new ControlException(ControlErrorCode.BadRequest, "this manager keeps no ledger (start it with --ledger DIR)");
        if (caller != hub.Manager)
        {
            throw new ControlException(ControlErrorCode.Forbidden, "only the manager's own key grants funds");
        }

        if (!PubKey.TryParse(request.Node, out var node))
        {
            throw new ControlException(ControlErrorCode.BadRequest, "NODE is not a public key (66 hex)");
        }

        if (request.Memo is { Length: > 256 })
        {
            throw new ControlException(ControlErrorCode.BadRequest, "a memo is at most 256 characters");
        }

        var outcome = hub.Grant(node, request.Droplets, request.Memo);
        return outcome.Status == LedgerStatus.Accepted
            ? request with { Outcome = outcome.Message }
            : throw new ControlException(ControlErrorCode.BadRequest, "grant refused: " + outcome.Message);
    }

    /// <summary>
    /// The operator's other write acts through the running manager (<c>skywire ledger close|export|paid|submit
    /// --manager</c>), for the same reason and with the same rule as <see cref="Grant"/>: the manager's own key only.
    /// </summary>
    /// <exception cref="ControlException">Forbidden for another key, BadRequest without a ledger or for a refused act.</exception>
    internal LedgerActMessage LedgerAct(PubKey caller, LedgerActMessage request)
    {
        var hub = Metering ?? throw new ControlException(ControlErrorCode.BadRequest, "this manager keeps no ledger (start it with --ledger DIR)");
        if (caller != hub.Manager)
        {
            throw new ControlException(ControlErrorCode.Forbidden, "only the manager's own key writes its ledger");
        }

        switch (request.Act)
        {
            case "close":
                var root = hub.CloseEpoch();
                return new LedgerActMessage { Act = request.Act, Outcome = $"epoch {root.Epoch} closed, root {root.Root}" };
            case "export":
                if (!PayoutDay.IsDay(request.Day))
                {
                    throw new ControlException(ControlErrorCode.BadRequest, "export needs a day (yyyy-MM-dd)");
                }

                var (exported, files) = hub.Export(request.Day!, request.Min ?? PayoutDay.DropletsPerSky);
                return exported.Status == LedgerStatus.Accepted
                    ? new LedgerActMessage { Act = request.Act, Day = request.Day, Outcome = exported.Message, Details = files }
                    : throw new ControlException(ControlErrorCode.BadRequest, "export refused: " + exported.Message);
            case "paid":
                var paid = hub.MarkPaid(request.Day ?? "", request.TxId ?? "");
                return paid.Status == LedgerStatus.Accepted
                    ? new LedgerActMessage { Act = request.Act, Day = request.Day, Outcome = paid.Message }
                    : throw new ControlException(ControlErrorCode.BadRequest, "paid refused: " + paid.Message);
            case "submit":
                if (request.Lines is not { Count: > 0 and <= MeteringHub.MaxSubmitLines } lines)
                {
                    throw new ControlException(ControlErrorCode.BadRequest, $"submit carries 1 to {MeteringHub.MaxSubmitLines} messages");
                }

                var (counts, problems) = hub.Submit(lines);
                return new LedgerActMessage { Act = request.Act, Outcome = string.Join(", ", counts.Select(c => $"{c.Value} {c.Key}")), Details = problems };
            default:
                throw new ControlException(ControlErrorCode.BadRequest, $"unknown ledger act '{request.Act}' (close, export, paid, submit)");
        }
    }

    /// <summary>Best effort (the source also asks on its own tick): the forward bytes the destination co-signed, to the source.</summary>
    private async Task PushDeliveredAsync(RouteTerms terms, ulong delivered)
    {
        try
        {
            await CallAsync(terms.Source, ControlOpcode.MeterCaps, new MeterMessage { TermsId = Convert.ToHexStringLower(terms.TermsId), DeliveredForward = delivered }, _stopping);
        }
        catch (Exception ex) when (ex is ControlException or OperationCanceledException or IOException)
        {
        }
    }

    private async Task<MeterMessage> CallAsync(PubKey node, ControlOpcode opcode, MeterMessage message, CancellationToken cancellationToken)
    {
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, _stopping);
        timeout.CancelAfter(_options.CommandTimeout);
        try
        {
            return await Channel(node).MeterAsync(opcode, message, timeout.Token);
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            throw new ControlException(ControlErrorCode.Unavailable, $"node {node.ToShortString(12)} did not answer a metering call in time");
        }
    }
}
