using System.Globalization;
using System.Text;
using System.Text.Json;
using Skywire.Core.Metering;
using Skywire.Protocol;
using Skywire.Protocol.Metering;

namespace Skywire.Commands;

/// <summary>The read views of <c>skywire ledger</c>: tables and <c>--json</c>.</summary>
internal static partial class LedgerCommand
{
    private static void Epochs(Ledger ledger, bool json)
    {
        var epochs = LedgerEarnings.PerEpoch(ledger);
        if (json)
        {
            WriteJson(w =>
            {
                w.WriteString("manager", ledger.Manager.ToString());
                w.WriteStartArray("epochs");
                foreach (var epoch in epochs)
                {
                    w.WriteStartObject();
                    w.WriteNumber("epoch", epoch.Epoch);
                    w.WriteNumber("closedAtMs", epoch.ClosedAtMs);
                    w.WriteStartArray("nodes");
                    foreach (var n in epoch.Nodes)
                    {
                        w.WriteStartObject();
                        w.WriteString("node", n.Node.ToString());
                        w.WriteNumber("earned", n.Earned);
                        w.WriteNumber("spent", n.Spent);
                        w.WriteEndObject();
                    }

                    w.WriteEndArray();
                    w.WriteEndObject();
                }

                w.WriteEndArray();
            });
            return;
        }

        Common.Table(["EPOCH", "CLOSED (UTC)", "NODE", "EARNED", "SPENT"], epochs.SelectMany(e => e.Nodes.Select(n => (IReadOnlyList<string>)
        [
            e.Epoch.ToString(CultureInfo.InvariantCulture),
            DateTimeOffset.FromUnixTimeMilliseconds(e.ClosedAtMs).UtcDateTime.ToString("yyyy-MM-dd HH:mm:ss", CultureInfo.InvariantCulture),
            n.Node.ToString(), n.Earned.ToString(CultureInfo.InvariantCulture), n.Spent.ToString(CultureInfo.InvariantCulture),
        ])));
    }

    private static void Balances(Ledger ledger, bool json)
    {
        if (json)
        {
            WriteJson(w =>
            {
                w.WriteStartArray("accounts");
                foreach (var (account, balance) in ledger.Balances)
                {
                    w.WriteStartObject();
                    w.WriteString("account", account);
                    w.WriteNumber("droplets", balance);
                    if (NodeOf(account) is { } node)
                    {
                        w.WriteString("address", ledger.PayoutAddress(node));
                    }

                    w.WriteEndObject();
                }

                w.WriteEndArray();
                w.WriteNumber("sum", ledger.Balances.Values.Sum());
            });
            return;
        }

        Common.Table(["ACCOUNT", "NODE / NAME", "SKYCOIN ADDRESS", "DROPLETS", "SKY"], ledger.Balances.Select(b =>
        {
            var kind = b.Key.Split(':')[0];
            var rest = b.Key.Length > kind.Length ? b.Key[(kind.Length + 1)..] : "";
            var node = NodeOf(b.Key);
            return (IReadOnlyList<string>)[kind, node is { } n ? n.ToShortString(16) : rest, node is { } m ? ledger.PayoutAddress(m) : "", b.Value.ToString(CultureInfo.InvariantCulture), PayoutDay.Sky(b.Value)];
        }));
        Console.WriteLine($"sum of all balances: {ledger.Balances.Values.Sum()} (always 0)");
    }

    private static void Routes(Ledger ledger, bool json)
    {
        if (json)
        {
            WriteJson(w =>
            {
                w.WriteStartArray("routes");
                foreach (var r in ledger.Routes)
                {
                    w.WriteStartObject();
                    w.WriteString("route", r.Id);
                    w.WriteString("source", r.Terms.Source.ToString());
                    w.WriteString("destination", r.Terms.Destination.ToString());
                    w.WriteNumber("hops", r.Terms.HopCount);
                    w.WriteString("status", Status(ledger, r));
                    w.WriteNumber("reserved", r.Reserved);
                    w.WriteNumber("spent", r.Spent);
                    w.WriteNumber("fee", r.FeePaid);
                    w.WriteNumber("cap_forward", r.CapForward);
                    w.WriteNumber("cap_reverse", r.CapReverse);
                    w.WriteStartArray("positions");
                    for (var p = 0; p <= r.Terms.HopCount; p++)
                    {
                        w.WriteStartObject();
                        w.WriteString("node", r.Terms.NodeAt(p).ToString());
                        w.WriteString("role", p == 0 ? "source" : p == r.Terms.HopCount ? "destination" : "relay");
                        w.WriteNumber("paid", r.Paid[p]);
                        if (p < r.Terms.HopCount)
                        {
                            w.WriteNumber("hop_bytes_forward", r.Bytes(p, MeteringDirection.Forward));
                            w.WriteNumber("hop_bytes_reverse", r.Bytes(p, MeteringDirection.Reverse));
                        }

                        w.WriteEndObject();
                    }

                    w.WriteEndArray();
                    w.WriteEndObject();
                }

                w.WriteEndArray();
            });
            return;
        }

        Common.Table(["ROUTE", "HOPS", "STATUS", "RESERVED", "SPENT", "FEE", "CO-SIGNED BYTES FWD (hop 0..k)", "REV"], ledger.Routes.Select(r => (IReadOnlyList<string>)
        [
            r.Id[..12], r.Terms.HopCount.ToString(CultureInfo.InvariantCulture), Status(ledger, r), r.Reserved.ToString(CultureInfo.InvariantCulture),
            r.Spent.ToString(CultureInfo.InvariantCulture), r.FeePaid.ToString(CultureInfo.InvariantCulture),
            string.Join(" ", Enumerable.Range(0, r.Terms.HopCount).Select(h => r.Bytes(h, MeteringDirection.Forward))),
            string.Join(" ", Enumerable.Range(0, r.Terms.HopCount).Select(h => r.Bytes(h, MeteringDirection.Reverse))),
        ]));
        foreach (var r in ledger.Routes)
        {
            Console.WriteLine();
            Console.WriteLine($"route {r.Id}");
            Common.Table(["POS", "ROLE", "NODE", "PAID (droplets)"], Enumerable.Range(0, r.Terms.HopCount + 1).Select(p => (IReadOnlyList<string>)
            [
                p.ToString(CultureInfo.InvariantCulture), p == 0 ? "source" : p == r.Terms.HopCount ? "destination" : "relay",
                r.Terms.NodeAt(p).ToShortString(16), p == 0 ? $"-{r.Spent} (spent)" : r.Paid[p].ToString(CultureInfo.InvariantCulture),
            ]));
        }
    }

    private static void Disputes(Ledger ledger, bool json)
    {
        if (json)
        {
            WriteJson(w =>
            {
                w.WriteStartArray("disputes");
                foreach (var d in ledger.Disputes)
                {
                    w.WriteStartObject();
                    w.WriteNumber("epoch", d.Epoch);
                    w.WriteNumber("code", (int)d.Code);
                    w.WriteString("rule", d.Label);
                    w.WriteBoolean("fraud", d.IsFraud);
                    w.WriteString("route", d.Route);
                    w.WriteStartArray("named");
                    foreach (var n in d.Named)
                    {
                        w.WriteStringValue(n);
                    }

                    w.WriteEndArray();
                    w.WriteString("reason", d.Reason);
                    w.WriteStartArray("evidence");
                    foreach (var e in d.Evidence)
                    {
                        w.WriteStringValue(e);
                    }

                    w.WriteEndArray();
                    w.WriteEndObject();
                }

                w.WriteEndArray();
            });
            return;
        }

        Common.Table(["EPOCH", "RULE", "ROUTE", "NAMED", "EVIDENCE", "REASON"], ledger.Disputes.Select(d => (IReadOnlyList<string>)
        [
            d.Epoch.ToString(CultureInfo.InvariantCulture), d.Label, d.Route.Length >= 12 ? d.Route[..12] : d.Route,
            string.Join(",", d.Named.Select(n => n[..Math.Min(12, n.Length)])), d.Evidence.Count.ToString(CultureInfo.InvariantCulture), d.Reason,
        ]));
    }

    private static string Status(Ledger ledger, LedgerRoute r)
    {
        var disputes = ledger.Disputes.Where(d => d.Route == r.Id).Select(d => d.Label.Split(' ')[1]).Distinct().ToList();
        var state = r.Released ? "settled" : "open";
        return disputes.Count == 0 ? state : $"{state}, {string.Join("+", disputes)}";
    }

    private static PubKey? NodeOf(string account)
    {
        var colon = account.IndexOf(':', StringComparison.Ordinal);
        return colon > 0 && PubKey.TryParse(account[(colon + 1)..], out var key) ? key : null;
    }

    private static void WriteJson(Action<Utf8JsonWriter> body)
    {
        using var stream = new MemoryStream();
        using (var w = new Utf8JsonWriter(stream, new JsonWriterOptions { Indented = true }))
        {
            w.WriteStartObject();
            body(w);
            w.WriteEndObject();
        }

        Console.WriteLine(Encoding.UTF8.GetString(stream.ToArray()));
    }
}
