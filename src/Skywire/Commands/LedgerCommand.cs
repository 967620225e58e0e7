using System.CommandLine;
using System.CommandLine.Invocation;
using System.Globalization;
using System.Text;
using System.Text.Json;
using Microsoft.Extensions.Logging.Abstractions;
using Skywire.Core.Channels;
using Skywire.Core.Control;
using Skywire.Core.Crypto;
using Skywire.Core.Metering;
using Skywire.Protocol;
using Skywire.Protocol.Control;
using Skywire.Protocol.Metering;

namespace Skywire.Commands;

/// <summary>
/// <c>skywire ledger</c>: the operator's view of the metering ledger in a directory (docs/metering.md "Operator
/// commands"). Read commands replay and verify the journal first; write commands need the manager's key file.
/// </summary>
internal static class LedgerCommand
{
    private const string ManagerFile = "manager.pub";

    public static Command Create()
    {
        var command = new Command("ledger", "Metering ledger: balances, routes, disputes, verify, grant, submit, close, export, paid.");
        command.Subcommands.Add(Read("balances", "Balances per account (consumer, provider, reserve, fee, payout).", Balances));
        command.Subcommands.Add(Read("routes", "Metered routes: terms, reservation, co-signed bytes per hop, paid, status.", Routes));
        command.Subcommands.Add(Read("disputes", "Disputes found by the rules D1-D8, with who is named and the evidence count.", Disputes));
        command.Subcommands.Add(Read("epochs", "Earned (as a provider) and spent (as a source) per node and closed epoch, with the close time (the viscript GUI's chart).", Epochs));
        command.Subcommands.Add(Verify());
        command.Subcommands.Add(Grant());
        command.Subcommands.Add(Submit());
        command.Subcommands.Add(Write("close", "Close the epoch: settle every route, release expired ones, sign the root.", [], (ledger, key, _, now) =>
        {
            var root = ledger.CloseEpoch(key, now);
            return new LedgerOutcome(LedgerStatus.Accepted, $"epoch {root.Epoch} closed, root {root.Root}");
        }));
        command.Subcommands.Add(Export());
        var day = new Argument<string>("DAY") { Description = "Exported day (yyyy-MM-dd)." };
        var txid = new Argument<string>("TXID") { Description = "The wallet's transaction id." };
        command.Subcommands.Add(Write("paid", "Record the transaction id that paid an exported day.", [day, txid], (ledger, _, parse, now) =>
            ledger.MarkPaid(parse.GetValue(day)!, parse.GetValue(txid)!, now)));
        return command;
    }

    private static Argument<string> DirArgument() => new("DIR") { Description = "Ledger directory (journal.jsonl, manager.pub, exports/)." };

    private static Option<bool> JsonOption() => new("--json") { Description = "Print JSON instead of a table." };

    private static Command Read(string name, string description, Action<Ledger, bool> print)
    {
        var dir = DirArgument();
        var json = JsonOption();
        var command = new Command(name, description) { dir, json };
        command.SetAction(parse =>
        {
            var ledger = OpenForRead(parse.GetValue(dir)!, pinned: null, out var error);
            if (ledger is null)
            {
                Console.Error.WriteLine($"error: {error}");
                return Common.Failure;
            }

            print(ledger, parse.GetValue(json));
            return Common.Ok;
        });
        return command;
    }

    private static Command Verify()
    {
        var dir = DirArgument();
        var json = JsonOption();
        var manager = new Option<string>("--manager") { Description = "Expected manager key (hex); default: the directory's manager.pub." };
        var command = new Command("verify", "Recompute every balance and epoch root from the raw evidence, check every signature and the exported files.") { dir, json, manager };
        command.SetAction(parse =>
        {
            var path = parse.GetValue(dir)!;
            PubKey? pinned = null;
            if (parse.GetValue(manager) is { } text)
            {
                if (!PubKey.TryParse(text, out var key))
                {
                    Console.Error.WriteLine("error: --manager is not a public key (66 hex)");
                    return Common.Usage;
                }

                pinned = key;
            }

            var ledger = OpenForRead(path, pinned, out var error);
            var problems = new List<string>();
            if (ledger is null)
            {
                problems.Add(error!);
            }
            else
            {
                foreach (var day in ledger.Days.Values)
                {
                    if (PayoutExport.Verify(Path.Combine(path, "exports"), day, ledger.Manager) is { } problem)
                    {
                        problems.Add(problem);
                    }
                }
            }

            if (parse.GetValue(json))
            {
                WriteJson(w =>
                {
                    w.WriteBoolean("ok", problems.Count == 0);
                    w.WriteString("manager", ledger?.Manager.ToString());
                    w.WriteNumber("epochs", ledger?.Roots.Count ?? 0);
                    w.WriteString("root", ledger?.CurrentRoot);
                    w.WriteNumber("records", ledger is null ? 0 : FileLedgerStore.Open(path, writable: false).ReadAll().Count);
                    w.WriteStartArray("problems");
                    problems.ForEach(w.WriteStringValue);
                    w.WriteEndArray();
                });
            }
            else if (problems.Count == 0)
            {
                Console.WriteLine($"ok: {ledger!.Roots.Count} epoch root(s) recomputed and signed by {ledger.Manager}, balances sum to 0, {ledger.Days.Count} export(s) match");
                Console.WriteLine($"root {ledger.CurrentRoot}");
            }
            else
            {
                problems.ForEach(p => Console.Error.WriteLine($"FAILED: {p}"));
            }

            return problems.Count == 0 ? Common.Ok : Common.Failure;
        });
        return command;
    }

    private static Command Grant()
    {
        var node = new Argument<string>("NODE") { Description = "Consumer node key (hex)." };
        var droplets = new Argument<long>("DROPLETS") { Description = "Amount in droplets (1 SKY = 1000000)." };
        var memo = new Option<string>("--memo") { Description = "Why (kept in the journal)." };
        var manager = new Option<string?>("--manager") { Description = "host:port of the manager running on this ledger: grant through it (it is the ledger's one writer), authenticated by --key." };
        var command = Write("grant", "Credit a consumer's balance (the operator's top-up). While the manager runs, add --manager host:port.", [node, droplets, memo, manager], (ledger, _, parse, now) =>
            PubKey.TryParse(parse.GetValue(node), out var key)
                ? ledger.Grant(key, parse.GetValue(droplets), now, parse.GetValue(memo))
                : new LedgerOutcome(LedgerStatus.Refused, "NODE is not a public key (66 hex)"));
        var offline = (SynchronousCommandLineAction)command.Action!;
        command.SetAction((parse, ct) => parse.GetValue(manager) is { } address
            ? GrantThroughManagerAsync(parse, address, node, droplets, memo, ct)
            : Task.FromResult(offline.Invoke(parse)));
        return command;
    }

    /// <summary>
    /// A grant while the manager runs: sent over its control channel (Noise, authenticated by the manager's own key,
    /// which the connection also pins), applied and journaled by the manager; DIR must be the ledger that key writes.
    /// </summary>
    private static async Task<int> GrantThroughManagerAsync(ParseResult parse, string address, Argument<string> node, Argument<long> droplets, Option<string> memo, CancellationToken cancellationToken)
    {
        using var key = Common.LoadKey(parse.GetValue<string>("--key")!);
        if (key is null)
        {
            return Common.Failure;
        }

        var pub = Path.Combine(parse.GetValue<string>("DIR")!, ManagerFile);
        if (File.Exists(pub) && (!PubKey.TryParse(File.ReadAllText(pub).Trim(), out var owner) || owner != key.Public))
        {
            Console.Error.WriteLine($"error: {pub} names another manager; this ledger is not yours to write");
            return Common.Forbidden;
        }

        var at = Common.ParseManager(address, address.Contains('@', StringComparison.Ordinal) ? null : key.Public.ToString());
        if (at is null)
        {
            return Common.Usage;
        }

        try
        {
            var (connection, _) = await ControlClient.ConnectAsync(at, key, "cli", null,
                (_, _, _) => throw new ControlException(ControlErrorCode.Forbidden, "the cli serves no requests"), NullLogger.Instance, TimeSpan.FromSeconds(10), cancellationToken);
            await using (connection)
            {
                var request = new LedgerGrantMessage { Node = parse.GetValue(node)!, Droplets = parse.GetValue(droplets), Memo = parse.GetValue(memo) };
                var answer = await connection.RequestAsync((byte)ControlOpcode.LedgerGrant, request, ControlJsonContext.Default.LedgerGrantMessage, ControlJsonContext.Default.LedgerGrantMessage, cancellationToken);
                Console.WriteLine(answer.Outcome);
                return Common.Ok;
            }
        }
        catch (ControlException ex)
        {
            Console.Error.WriteLine($"error: {ex.Message}");
            return Common.ExitCode(ex.Code);
        }
    }

    private static Command Submit()
    {
        var files = new Argument<string[]>("FILE") { Description = "Files with one signed message per line (hex): route terms, hop receipts, spend authorizations.", Arity = ArgumentArity.OneOrMore };
        return Write("submit", "Ingest signed terms, receipts and authorizations (what nodes upload).", [files], (ledger, _, parse, now) =>
        {
            var counts = new SortedDictionary<string, int>(StringComparer.Ordinal);
            foreach (var file in parse.GetValue(files)!)
            {
                foreach (var line in File.ReadLines(file).Select(l => l.Trim()).Where(l => l.Length > 0 && !l.StartsWith('#')))
                {
                    byte[] bytes;
                    try
                    {
                        bytes = Convert.FromHexString(line);
                    }
                    catch (FormatException)
                    {
                        bytes = [];
                    }

                    var outcome = bytes.Length == 0 ? new LedgerOutcome(LedgerStatus.Refused, "not hex")
                        : bytes[0] == MeteringWire.TermsTag ? ledger.OpenRoute(bytes, now)
                        : bytes[0] == MeteringWire.AuthTag ? ledger.SubmitAuthorization(bytes, now)
                        : ledger.SubmitReceipt(bytes, now);
                    var key = outcome.Status.ToString().ToLowerInvariant();
                    counts[key] = counts.GetValueOrDefault(key) + 1;
                    if (outcome.Status is LedgerStatus.Refused or LedgerStatus.Disputed)
                    {
                        Console.Error.WriteLine($"{file}: {outcome.Message}");
                    }
                }
            }

            return new LedgerOutcome(LedgerStatus.Accepted, string.Join(", ", counts.Select(c => $"{c.Value} {c.Key}")));
        });
    }

    private static Command Export()
    {
        var day = new Option<string>("--day") { Description = "Payout day (yyyy-MM-dd); default: today (UTC)." };
        var min = new Option<long>("--min") { Description = "Smallest payout in droplets (a multiple of 1000); smaller balances are carried.", DefaultValueFactory = _ => PayoutDay.DropletsPerSky };
        Option[] options = [day, min];
        var command = Write("export", "Move provider balances to a day's payout and write payouts-DAY.csv (address,droplets), payouts-DAY.sky.csv (address,coins for a Skycoin wallet) and the signed manifest-DAY.json into DIR/exports.", options, (ledger, key, parse, now) =>
        {
            var name = parse.GetValue(day) ?? DateTimeOffset.FromUnixTimeMilliseconds(now).UtcDateTime.ToString("yyyy-MM-dd", CultureInfo.InvariantCulture);
            var outcome = ledger.Export(name, parse.GetValue(min), now);
            if (outcome.Status == LedgerStatus.Accepted)
            {
                foreach (var path in PayoutExport.Write(Path.Combine(parse.GetValue<string>("DIR")!, "exports"), ledger.Days[name], key))
                {
                    Console.WriteLine($"wrote {path}");
                }
            }

            return outcome;
        });
        return command;
    }

    private static Command Write(string name, string description, IReadOnlyList<Symbol> symbols, Func<Ledger, KeyPair, ParseResult, long, LedgerOutcome> act)
    {
        var dir = DirArgument();
        var keyFile = new Option<string>("--key") { Description = "The manager's key file (signs epoch roots and manifests).", Required = true };
        var command = new Command(name, description) { dir, keyFile };
        foreach (var symbol in symbols)
        {
            switch (symbol)
            {
                case Argument a: command.Arguments.Add(a); break;
                case Option o: command.Options.Add(o); break;
            }
        }

        command.SetAction(parse =>
        {
            var path = parse.GetValue(dir)!;
            using var key = Common.LoadKey(parse.GetValue(keyFile)!);
            if (key is null)
            {
                return Common.Failure;
            }

            try
            {
                Directory.CreateDirectory(path);
                var pub = Path.Combine(path, ManagerFile);
                if (!File.Exists(pub))
                {
                    File.WriteAllText(pub, key.Public + "\n");
                }
                else if (!PubKey.TryParse(File.ReadAllText(pub).Trim(), out var owner) || owner != key.Public)
                {
                    Console.Error.WriteLine($"error: {pub} names another manager; this ledger is not yours to write");
                    return Common.Forbidden;
                }

                using var store = FileLedgerStore.Open(path, writable: true);
                var ledger = Ledger.Open(store, key.Public);
                var outcome = act(ledger, key, parse, DateTimeOffset.UtcNow.ToUnixTimeMilliseconds());
                (outcome.Status == LedgerStatus.Refused ? Console.Error : Console.Out).WriteLine(outcome.Message);
                return outcome.Status == LedgerStatus.Refused ? Common.Failure : Common.Ok;
            }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException or LedgerVerificationException)
            {
                var running = ex is IOException && ex.Message.Contains("journal.lock", StringComparison.Ordinal)
                    ? " (a manager is writing this ledger: stop it first; a grant can go through it with --manager host:port)"
                    : "";
                Console.Error.WriteLine($"error: {ex.Message}{running}");
                return Common.Failure;
            }
        });
        return command;
    }

    private static Ledger? OpenForRead(string path, PubKey? pinned, out string? error)
    {
        error = null;
        try
        {
            var pub = Path.Combine(path, ManagerFile);
            if (!File.Exists(pub))
            {
                error = $"{path} is not a ledger directory (no {ManagerFile})";
                return null;
            }

            if (!PubKey.TryParse(File.ReadAllText(pub).Trim(), out var manager))
            {
                error = $"{pub} does not hold a public key";
                return null;
            }

            if (pinned is { } expected && expected != manager)
            {
                error = $"the ledger names manager {manager}, not {expected}";
                return null;
            }

            using var store = FileLedgerStore.Open(path, writable: false);
            if (store.TornTailBytes > 0)
            {
                Console.Error.WriteLine($"warning: the journal ends with {store.TornTailBytes} bytes of an unfinished line (ignored; never acknowledged)");
            }

            return Ledger.Open(store, manager);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException or LedgerVerificationException or LedgerInvariantException)
        {
            error = ex.Message;
            return null;
        }
    }

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
                        w.WriteString("address", SkycoinAddress.FromPubKey(node));
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
            return (IReadOnlyList<string>)[kind, node is { } n ? n.ToShortString(16) : rest, node is { } m ? SkycoinAddress.FromPubKey(m) : "", b.Value.ToString(CultureInfo.InvariantCulture), PayoutDay.Sky(b.Value)];
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
