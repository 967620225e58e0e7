using System.Buffers.Binary;
using System.Security.Cryptography;
using System.Text;
using Skywire.Core.Crypto;
using Skywire.Protocol.Metering;

namespace Skywire.Core.Metering;

public sealed partial class Ledger
{
    private LedgerOutcome ApplyClose(LedgerRecord record, KeyPair? signer)
    {
        if (record.Epoch != Epoch)
        {
            throw new LedgerVerificationException($"close of epoch {record.Epoch}, expected {Epoch}");
        }

        foreach (var route in _routes.Where(r => !r.Released))
        {
            Settle(route, record.AtMs);
        }

        Span<byte> lines = stackalloc byte[32];
        _epochLines.GetHashAndReset(lines);
        var root = ComputeRoot(_root, Epoch, record.AtMs, lines, BalancesHash());
        string signature;
        if (signer is not null)
        {
            signature = Convert.ToHexStringLower(signer.Sign(RootSigningBytes(root)));
        }
        else
        {
            var claimed = record.Root ?? "";
            if (!string.Equals(claimed, Convert.ToHexStringLower(root), StringComparison.Ordinal))
            {
                throw new LedgerVerificationException($"epoch {Epoch} root recomputes to {Convert.ToHexStringLower(root)}, journal says {claimed}");
            }

            signature = record.Signature ?? "";
            if (!TryHex(signature, out var sig) || !KeyPair.Verify(Manager, RootSigningBytes(root), sig))
            {
                throw new LedgerVerificationException($"epoch {Epoch} root is not signed by manager {Manager.ToShortString()}");
            }
        }

        _roots.Add(new EpochRoot(Epoch, record.AtMs, Convert.ToHexStringLower(root), signature));
        _root = root;
        _rejectionsThisEpoch = 0;
        return new(LedgerStatus.Accepted, $"epoch {_roots.Count} closed, root {Convert.ToHexStringLower(root)[..16]}");
    }

    /// <summary>Pays every position up to what the evidence now supports, within the reservation; flags what the rules see.</summary>
    private void Settle(LedgerRoute route, long atMs)
    {
        var terms = route.Terms;
        var hops = terms.HopCount;
        var k = terms.Relays.Count;
        var fwd = new ulong[hops];
        var rev = new ulong[hops];
        for (var i = 0; i < hops; i++)
        {
            fwd[i] = route.Bytes(i, MeteringDirection.Forward);
            rev[i] = route.Bytes(i, MeteringDirection.Reverse);
        }

        var flowF = Settlement.Flow(fwd, MeteringDirection.Forward, route.CapForward);
        var flowR = Settlement.Flow(rev, MeteringDirection.Reverse, route.CapReverse);
        for (var i = 1; i < hops; i++)
        {
            if (flowF[i] > flowF[i - 1] || flowR[i - 1] > flowR[i])
            {
                throw new LedgerInvariantException($"I3: route {route.Id} pays more bytes downstream than upstream at hop {i}");
            }
        }

        var earned = Settlement.Earned(terms, flowF, flowR);
        for (var position = 1; position <= k + 1; position++)
        {
            if (route.Forfeited.Contains(terms.NodeAt(position)))
            {
                earned[position] = route.Paid[position];
            }
        }

        Int128 gross = 0;
        foreach (var e in earned)
        {
            gross += e;
        }

        var feeTarget = Settlement.Fee(gross, terms.FeeBps);
        var remaining = route.Reserved - route.Spent;
        var postings = new List<(string, long)>();
        long debit = 0;
        var shortfall = false;
        for (var position = 1; position <= k + 1; position++)
        {
            var delta = Math.Max(0, earned[position] - route.Paid[position]);
            var pay = Math.Min(delta, remaining - debit);
            shortfall |= pay < delta;
            if (pay > 0)
            {
                route.Paid[position] += pay;
                debit += pay;
                postings.Add((ProviderAccount(terms.NodeAt(position)), pay));
            }
        }

        var feeDelta = Math.Max(0, feeTarget - route.FeePaid);
        var feePay = Math.Min(feeDelta, remaining - debit);
        shortfall |= feePay < feeDelta;
        if (feePay > 0)
        {
            route.FeePaid += feePay;
            debit += feePay;
            postings.Add((FeeAccount, feePay));
        }

        postings.Add((route.ReserveAccount, -debit));
        Post($"settle {route.Id} epoch {Epoch}", [.. postings]);
        Flag(route, fwd, rev, shortfall);
        if (atMs >= Math.Min(terms.ExpiresMs, route.EndedMs ?? long.MaxValue) + ReleaseGraceMs || (route.EndedMs is not null && Closed(route)))
        {
            Release(route);
        }
    }

    /// <summary>
    /// Every hop has its final receipt in both directions (a session's handshake crosses the route both ways, so both
    /// always carry something): nothing more can count on the route (a receipt after a final one is equivocation), so an
    /// ended route releases at this close instead of after the grace. A route missing any final waits out the grace.
    /// </summary>
    private static bool Closed(LedgerRoute route) =>
        Enumerable.Range(0, route.Terms.HopCount).All(h =>
            route.Latest(h, MeteringDirection.Forward) is { Final: true } && route.Latest(h, MeteringDirection.Reverse) is { Final: true });

    private void Flag(LedgerRoute route, ulong[] fwd, ulong[] rev, bool shortfall)
    {
        var terms = route.Terms;
        var k = terms.Relays.Count;
        if (shortfall)
        {
            Raise(new LedgerDispute(Epoch, DisputeCode.OverBudget, route.Id, [terms.Source.ToString()],
                $"claims exceed the reservation of {route.Reserved} droplets; paid up to it", []), $"D5|{route.Id}");
        }

        if (fwd[0] > route.CapForward || rev[k] > route.CapReverse)
        {
            Raise(new LedgerDispute(Epoch, DisputeCode.OverCap, route.Id, [],
                $"bytes entered the route beyond the source's cap ({fwd[0]} > {route.CapForward} forward or {rev[k]} > {route.CapReverse} reverse); excess unpaid", []),
                $"D4|{route.Id}|{Epoch}");
        }

        foreach (var direction in new[] { MeteringDirection.Forward, MeteringDirection.Reverse })
        {
            for (var j = 1; j <= k; j++)
            {
                // Relay j receives on hop j−1 and sends on hop j (forward); the other way round in reverse.
                var inHop = direction == MeteringDirection.Forward ? j - 1 : j;
                var outHop = direction == MeteringDirection.Forward ? j : j - 1;
                var inbound = route.Latest(inHop, direction);
                var outbound = route.Latest(outHop, direction);
                if (inbound is not { Final: true } || outbound is not { Final: true })
                {
                    continue;
                }

                var node = terms.NodeAt(j);
                if (outbound.Bytes > inbound.Bytes || outbound.Frames > inbound.Frames)
                {
                    Raise(new LedgerDispute(Epoch, DisputeCode.Conservation, route.Id, [node.ToString()],
                        $"relay {node.ToShortString()} delivered {outbound.Bytes} B {direction} but received {inbound.Bytes} B (it signed both); paid at most what it received",
                        [Convert.ToHexStringLower(inbound.Encode()), Convert.ToHexStringLower(outbound.Encode())]), $"D3|{route.Id}|{direction}|{j}");
                }
                else if (inbound.Frames - outbound.Frames > inbound.Frames / 50 + 64)
                {
                    Raise(new LedgerDispute(Epoch, DisputeCode.Loss, route.Id, [],
                        $"hop {outHop} {direction} lost {inbound.Frames - outbound.Frames} of {inbound.Frames} frames", []), $"D7|{route.Id}|{direction}|{outHop}");
                }
            }
        }
    }

    private void Release(LedgerRoute route)
    {
        var terms = route.Terms;
        foreach (var direction in new[] { MeteringDirection.Forward, MeteringDirection.Reverse })
        {
            var any = Enumerable.Range(0, terms.HopCount).Any(h => route.Latest(h, direction) is not null);
            for (var hop = 0; any && hop < terms.HopCount; hop++)
            {
                if (route.Latest(hop, direction) is null)
                {
                    var rx = terms.ReceiverOf(hop, direction);
                    Raise(new LedgerDispute(Epoch, DisputeCode.Gap, route.Id, [],
                        $"no co-signed receipt for hop {hop} {direction} from {rx.ToShortString()} (receiver) and {terms.SenderOf(hop, direction).ToShortString()} (sender); unpaid", []),
                        $"D8|{route.Id}|{direction}|{hop}");
                }
            }
        }

        var left = Balance(route.ReserveAccount);
        route.Refunded += left;
        route.Released = true;
        Post($"release {route.Id}", (route.ReserveAccount, -left), (ConsumerAccount(terms.Source), left));
    }

    private LedgerOutcome ApplyEnd(LedgerRecord record)
    {
        if (record.Data is null || !_byTermsId.TryGetValue(record.Data, out var route))
        {
            return new(LedgerStatus.Refused, "end of unknown terms");
        }

        if (route.EndedMs is not null || route.Released)
        {
            return new(LedgerStatus.Duplicate, $"route {route.Id} already ended");
        }

        route.EndedMs = record.AtMs;

        // The most the route can still cost: every hop paid up to the frozen caps, fee included (pay only grows with flow).
        var terms = route.Terms;
        var earned = Settlement.Earned(terms, Enumerable.Repeat(route.CapForward, terms.HopCount).ToArray(), Enumerable.Repeat(route.CapReverse, terms.HopCount).ToArray());
        Int128 gross = 0;
        foreach (var e in earned)
        {
            gross += e;
        }

        var bound = gross + Settlement.Fee(gross, terms.FeeBps);
        var keep = (long)Int128.Clamp(bound - route.Spent, 0, long.MaxValue);
        var excess = Balance(route.ReserveAccount) - keep;
        if (excess > 0)
        {
            route.Refunded += excess;
            Post($"end {route.Id}", (route.ReserveAccount, -excess), (ConsumerAccount(terms.Source), excess));
        }

        return new(LedgerStatus.Accepted, $"route {route.Id} ended, {Math.Max(0, excess)} droplets back to the source");
    }

    private byte[] BalancesHash()
    {
        var text = new StringBuilder();
        foreach (var (account, balance) in _balances)
        {
            text.Append(account).Append('=').Append(balance).Append('\n');
        }

        return SHA256.HashData(Encoding.UTF8.GetBytes(text.ToString()));
    }

    private static byte[] ComputeRoot(ReadOnlySpan<byte> previous, long epoch, long atMs, ReadOnlySpan<byte> lines, ReadOnlySpan<byte> balances)
    {
        Span<byte> numbers = stackalloc byte[16];
        BinaryPrimitives.WriteInt64BigEndian(numbers, epoch);
        BinaryPrimitives.WriteInt64BigEndian(numbers[8..], atMs);
        return SHA256.HashData([.. s_rootDomain, .. previous, .. numbers, .. lines, .. balances]);
    }
}
