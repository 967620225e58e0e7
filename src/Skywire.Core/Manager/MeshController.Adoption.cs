using Skywire.Protocol;
using Skywire.Protocol.Control;

namespace Skywire.Core.Manager;

/// <summary>
/// A manager that restarted (or took over) learns the live sessions from the nodes (docs/protocol.md §4.5, "Manager
/// loss"): after registering, each node reports the sessions it is an end of (<c>SessionReport</c>); a session that both
/// of its ends report, each naming the other and exactly one as the initiator, is adopted as a live route: it gets a
/// fresh plan over the current graph with the same session id, installed like a re-route (the session keeps its keys
/// and streams). One end's claim alone is never adopted, and a claim older than the rule lifetime is forgotten.
/// A node that registers again and does not report a session the manager routes for it (it restarted) has lost it:
/// that route is closed.
/// </summary>
public sealed partial class MeshController
{
    /// <summary>Most sessions one node's report may name (more are ignored; a node sends at most this many, in one frame).</summary>
    public const int MaxSessionClaimsPerNode = ControlProtocol.MaxReportedSessions;

    private readonly Lock _claimsLock = new();
    private readonly Dictionary<PubKey, NodeClaims> _claims = [];

    /// <summary>
    /// Node <paramref name="node"/> reported the sessions it is an end of (once per registration, one frame).
    /// Sessions the manager already routes are checked against it; unknown ones wait for the other end's claim.
    /// </summary>
    public void ReportSessions(PubKey node, SessionReportMessage report)
    {
        ArgumentNullException.ThrowIfNull(report);
        if (!Nodes.IsOnline(node))
        {
            return;
        }

        var now = _time.GetUtcNow();
        lock (_claimsLock)
        {
            var claims = _claims[node] = new NodeClaims(now);

            foreach (var session in report.Sessions)
            {
                if (claims.Sessions.Count >= MaxSessionClaimsPerNode)
                {
                    break;
                }

                // The peer need not be registered yet: after a manager restart the ends come back in any order. A claim
                // is bounded (per node, and by the rule lifetime) and adopted only when the peer claims it back.
                if (session is not null && session.SessionId != 0 && PubKey.TryParse(session.Peer, out var peer) && peer != node)
                {
                    claims.Sessions[session.SessionId] = new SessionClaim(peer, session.Initiator);
                }
            }

            claims.Reported = true;
        }

        Log.SessionsReported(_logger, node, report.Sessions.Count);
        _ = RepairRoutesAsync(_stopping);
    }

    private void ForgetClaims(PubKey node)
    {
        lock (_claimsLock)
        {
            _claims.Remove(node);
        }
    }

    /// <summary>Routes the manager holds for an end that registered again and reported its sessions without them (under the route gate).</summary>
    private List<RouteEntry> RoutesLostByTheirEnds()
    {
        var lost = new List<RouteEntry>();
        lock (_claimsLock)
        {
            foreach (var route in Routes.Snapshot())
            {
                foreach (var end in (ReadOnlySpan<PubKey>)[route.From, route.To])
                {
                    if (_claims.TryGetValue(end, out var claims) && claims.Reported && !claims.Checked && claims.Since > route.CreatedAt && !claims.Sessions.ContainsKey(route.SessionId))
                    {
                        lost.Add(route);
                        break;
                    }
                }
            }

            // A report is checked once; claims of sessions the manager routes are settled.
            foreach (var claims in _claims.Values)
            {
                claims.Checked |= claims.Reported;
                foreach (var id in claims.Sessions.Keys.Where(id => Routes.Get(id) is not null).ToList())
                {
                    claims.Sessions.Remove(id);
                }
            }
        }

        return lost;
    }

    /// <summary>Sessions both ends claimed and the manager does not route yet (under the route gate); stale claims are dropped.</summary>
    private List<(ulong SessionId, PubKey From, PubKey To)> MatchedClaims()
    {
        var now = _time.GetUtcNow();
        var matched = new List<(ulong, PubKey, PubKey)>();
        lock (_claimsLock)
        {
            foreach (var (node, claims) in _claims.Where(c => now - c.Value.Since > _options.RuleLifetime).ToList())
            {
                _claims.Remove(node);
            }

            foreach (var (node, claims) in _claims)
            {
                foreach (var (id, claim) in claims.Sessions)
                {
                    if (claim.Initiator
                        && _claims.TryGetValue(claim.Peer, out var other)
                        && other.Sessions.TryGetValue(id, out var back)
                        && back.Peer == node && !back.Initiator
                        && Routes.Get(id) is null)
                    {
                        matched.Add((id, node, claim.Peer));
                    }
                }
            }
        }

        return matched;
    }

    private void SettleClaim(ulong sessionId, PubKey from, PubKey to)
    {
        lock (_claimsLock)
        {
            foreach (var end in (ReadOnlySpan<PubKey>)[from, to])
            {
                if (_claims.TryGetValue(end, out var claims))
                {
                    claims.Sessions.Remove(sessionId);
                }
            }
        }
    }

    /// <summary>Adopts the sessions both ends claimed (under the route gate): a fresh plan, installed like a re-route.</summary>
    private async Task AdoptClaimedSessionsAsync(MeshGraph graph, CancellationToken cancellationToken)
    {
        foreach (var route in RoutesLostByTheirEnds())
        {
            Log.RouteClosed(_logger, route.SessionId, "an end registered again without the session");
            await DropRouteAsync(route, notifyEnds: true);
        }

        foreach (var (id, from, to) in MatchedClaims())
        {
            if (!Nodes.IsOnline(from) || !Nodes.IsOnline(to))
            {
                continue;
            }

            var created = _time.GetUtcNow();
            RoutePlan? plan;
            try
            {
                plan = await PlanAndCommitAsync(graph, new RouteRequest(id, from, to), from, created, null, cancellationToken);
            }
            catch (Channels.ControlException ex)
            {
                Log.RerouteFailed(_logger, id, ex.Message);
                continue; // the store is away: the claims wait
            }

            if (plan is null)
            {
                continue; // no path yet: the links come back (standing intents), the claims wait
            }

            var route = new RouteEntry(plan, requester: from, created);
            SettleClaim(id, from, to);
            if (!Routes.Adopt(route))
            {
                ReleaseLabels(plan);
                Shared?.RouteDropped(plan);
                Log.AdoptRefused(_logger, id, from);
                continue;
            }

            try
            {
                // A metered route gets terms, caps and receipts from this manager like a new one (its old terms end).
                var terms = await AdoptTermsAsync(plan, cancellationToken);
                await InstallAsync(plan, cancellationToken, terms is null ? null : ct => MeterRouteAsync(plan, terms, ct));
                Log.RouteAdopted(_logger, id, new PathText(plan.Path));
            }
            catch (Channels.ControlException ex)
            {
                route.NeedsRepair = true;
                Log.RerouteFailed(_logger, id, ex.Message);
            }
        }
    }

    private sealed record SessionClaim(PubKey Peer, bool Initiator);

    /// <summary>What one registration of a node reported (guarded by the claims lock).</summary>
    private sealed class NodeClaims(DateTimeOffset since)
    {
        public DateTimeOffset Since { get; } = since;
        public Dictionary<ulong, SessionClaim> Sessions { get; } = [];
        public bool Reported { get; set; }
        public bool Checked { get; set; }
    }
}
