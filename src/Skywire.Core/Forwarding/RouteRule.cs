using Skywire.Protocol;

namespace Skywire.Core.Forwarding;

/// <summary>What a node does with a routed packet that matches a rule.</summary>
public enum RouteAction : byte
{
    /// <summary>Rewrite the label and send it on another link.</summary>
    Forward = 1,

    /// <summary>Deliver it to a local end-to-end session (installed by binding a session).</summary>
    Local = 2,
}

/// <summary>
/// A forwarding rule installed by the manager: packets that arrive on the link to
/// <see cref="InLink"/> with route id <see cref="InRoute"/> leave on the link to
/// <see cref="OutLink"/> with route id <see cref="OutRoute"/>. Only the 4-byte label changes;
/// the payload is never read. Route id 0 is reserved (never valid).
/// </summary>
/// <param name="InLink">Peer key of the incoming link.</param>
/// <param name="InRoute">Route id on the incoming link.</param>
/// <param name="OutLink">Peer key of the outgoing link.</param>
/// <param name="OutRoute">Route id written on the way out.</param>
/// <param name="Lifetime">The rule is dropped after this long unless installed again (a refresh).</param>
public sealed record RouteRule(PubKey InLink, uint InRoute, PubKey OutLink, uint OutRoute, TimeSpan Lifetime)
{
    /// <summary>Checks the fields; throws <see cref="ArgumentException"/> with every problem.</summary>
    public void Validate()
    {
        var errors = new List<string>();
        if (InLink.IsEmpty) { errors.Add("InLink is empty"); }
        if (OutLink.IsEmpty) { errors.Add("OutLink is empty"); }
        if (InRoute == 0) { errors.Add("InRoute 0 is reserved"); }
        if (OutRoute == 0) { errors.Add("OutRoute 0 is reserved"); }
        if (Lifetime <= TimeSpan.Zero) { errors.Add("Lifetime must be positive"); }
        if (errors.Count > 0)
        {
            throw new ArgumentException("invalid route rule: " + string.Join("; ", errors));
        }
    }
}

/// <summary>A rule as the node holds it, with its metering counters (for settlement).</summary>
/// <param name="InLink">Peer key of the incoming link.</param>
/// <param name="InRoute">Incoming route id.</param>
/// <param name="Action">Forward or Local.</param>
/// <param name="OutLink">Outgoing link (Forward) or the session's sending link (Local).</param>
/// <param name="OutRoute">Outgoing route id (Forward) or the session's sending route id (Local).</param>
/// <param name="ExpiresAt">When the rule lapses.</param>
/// <param name="Packets">Packets that matched the rule (forwarded or delivered).</param>
/// <param name="Bytes">Their routed payload bytes (the end-to-end packet, without link header and tag).</param>
/// <param name="SessionId">The session for Local rules, else 0.</param>
public sealed record RouteRuleInfo(
    PubKey InLink,
    uint InRoute,
    RouteAction Action,
    PubKey OutLink,
    uint OutRoute,
    DateTimeOffset ExpiresAt,
    long Packets,
    long Bytes,
    ulong SessionId);
