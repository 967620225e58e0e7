using System.CommandLine;
using System.CommandLine.Invocation;
using System.Globalization;
using Microsoft.Extensions.Logging.Abstractions;
using Skywire.Core.Channels;
using Skywire.Core.Control;
using Skywire.Core.Crypto;
using Skywire.Core.Metering;
using Skywire.Protocol;
using Skywire.Protocol.Control;

namespace Skywire.Commands;

/// <summary>
/// <c>skywire ledger</c>: the operator's view of the metering ledger in a directory (docs/metering.md "Operator
/// commands"). Read commands replay and verify the journal first; write commands need the manager's key file.
/// </summary>
internal static partial class LedgerCommand
{
    private const string ManagerFile = "manager.pub";

    public static Command Create()
    {
        var command = new Command("ledger", "Metering ledger: balances, routes, disputes, verify, grant, submit, close, export, paid, bind.");
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
        }, _ => new LedgerActMessage { Act = "close" }));
        command.Subcommands.Add(Export());
        var day = new Argument<string>("DAY") { Description = "Exported day (yyyy-MM-dd)." };
        var txid = new Argument<string>("TXID") { Description = "The wallet's transaction id." };
        command.Subcommands.Add(Write("paid", "Record the transaction id that paid an exported day.", [day, txid], (ledger, _, parse, now) =>
            ledger.MarkPaid(parse.GetValue(day)!, parse.GetValue(txid)!, now),
            parse => new LedgerActMessage { Act = "paid", Day = parse.GetValue(day), TxId = parse.GetValue(txid) }));
        command.Subcommands.Add(Bind());
        return command;
    }

    /// <summary>
    /// <c>skywire ledger bind ADDRESS --key node.json</c>: the node's signed payout binding, printed as one hex line for
    /// <c>ledger submit</c> (the node's key never leaves its host; the binding proves itself).
    /// </summary>
    private static Command Bind()
    {
        var address = new Argument<string>("ADDRESS") { Description = "The Skycoin address to be paid to instead of the node key's own." };
        var keyFile = new Option<string>("--key") { Description = "The node's key file (signs the binding).", Required = true };
        var seq = new Option<ulong?>("--seq") { Description = "Binding sequence number (a higher one replaces a lower); default: the current Unix time in seconds." };
        var command = new Command("bind", "Sign a payout binding: this node's earnings go to ADDRESS. Prints one hex line; give it to `ledger submit`.") { address, keyFile, seq };
        command.SetAction(parse =>
        {
            using var key = Common.LoadKey(parse.GetValue(keyFile)!);
            if (key is null)
            {
                return Common.Failure;
            }

            try
            {
                var binding = MeteringSigner.SignBinding(key, parse.GetValue(address)!, parse.GetValue(seq) ?? (ulong)DateTimeOffset.UtcNow.ToUnixTimeSeconds());
                Console.WriteLine(Convert.ToHexStringLower(binding.Encode()));
                Console.Error.WriteLine($"{key.Public}: paid to {parse.GetValue(address)} (seq {binding.Seq}) once a manager takes this line (`skywire ledger submit DIR FILE`)");
                return Common.Ok;
            }
            catch (ArgumentException ex)
            {
                Console.Error.WriteLine($"error: {ex.Message}");
                return Common.Usage;
            }
        });
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
        var manager = ManagerOption();
        var command = Write("grant", "Credit a consumer's balance (the operator's top-up). While the manager runs, add --manager host:port.", [node, droplets, memo, manager], (ledger, _, parse, now) =>
            PubKey.TryParse(parse.GetValue(node), out var key)
                ? ledger.Grant(key, parse.GetValue(droplets), now, parse.GetValue(memo))
                : new LedgerOutcome(LedgerStatus.Refused, "NODE is not a public key (66 hex)"));
        var offline = (SynchronousCommandLineAction)command.Action!;
        command.SetAction((parse, ct) => parse.GetValue(manager) is { } address
            ? ThroughManagerAsync(parse, address, async connection =>
            {
                var request = new LedgerGrantMessage { Node = parse.GetValue(node)!, Droplets = parse.GetValue(droplets), Memo = parse.GetValue(memo) };
                var answer = await connection.RequestAsync((byte)ControlOpcode.LedgerGrant, request, ControlJsonContext.Default.LedgerGrantMessage, ControlJsonContext.Default.LedgerGrantMessage, ct);
                Console.WriteLine(answer.Outcome);
            }, ct)
            : Task.FromResult(offline.Invoke(parse)));
        return command;
    }

    private static Option<string?> ManagerOption() =>
        new("--manager") { Description = "host:port of the manager running on this ledger: act through it (it is the ledger's one writer), authenticated by --key." };

    /// <summary>
    /// A write act while the manager runs: sent over its control channel (Noise, authenticated by the manager's own key,
    /// which the connection also pins), applied and journaled by the manager; DIR must be the ledger that key writes.
    /// </summary>
    private static async Task<int> ThroughManagerAsync(ParseResult parse, string address, Func<FrameConnection, Task> act, CancellationToken cancellationToken)
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
                await act(connection);
                return Common.Ok;
            }
        }
        catch (ControlException ex)
        {
            Console.Error.WriteLine($"error: {ex.Message}");
            return Common.ExitCode(ex.Code);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException or System.Net.Sockets.SocketException or TimeoutException)
        {
            Console.Error.WriteLine($"error: {ex.Message}");
            return Common.Failure;
        }
    }

    /// <summary>Sends one <see cref="LedgerActMessage"/>, prints the outcome (and the details: files, refusals).</summary>
    private static async Task<LedgerActMessage> ActAsync(FrameConnection connection, LedgerActMessage request, CancellationToken cancellationToken)
    {
        var answer = await connection.RequestAsync((byte)ControlOpcode.LedgerAct, request, ControlJsonContext.Default.LedgerActMessage, ControlJsonContext.Default.LedgerActMessage, cancellationToken);
        foreach (var detail in answer.Details ?? [])
        {
            (request.Act == "export" ? Console.Out : Console.Error).WriteLine(request.Act == "export" ? $"wrote {detail}" : detail);
        }

        Console.WriteLine(answer.Outcome);
        return answer;
    }

    private static Command Submit()
    {
        var files = new Argument<string[]>("FILE") { Description = "Files with one signed message per line (hex): route terms, hop receipts, spend authorizations, payout bindings.", Arity = ArgumentArity.OneOrMore };
        var command = Write("submit", "Ingest signed terms, receipts, authorizations and payout bindings (what nodes upload).", [files], (ledger, _, parse, now) =>
        {
            var counts = new SortedDictionary<string, int>(StringComparer.Ordinal);
            foreach (var (file, line) in Lines(parse.GetValue(files)!))
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

                var outcome = bytes.Length == 0 ? new LedgerOutcome(LedgerStatus.Refused, "not hex") : ledger.SubmitSigned(bytes, now);
                var key = outcome.Status.ToString().ToLowerInvariant();
                counts[key] = counts.GetValueOrDefault(key) + 1;
                if (outcome.Status is LedgerStatus.Refused or LedgerStatus.Disputed)
                {
                    Console.Error.WriteLine($"{file}: {outcome.Message}");
                }
            }

            return new LedgerOutcome(LedgerStatus.Accepted, string.Join(", ", counts.Select(c => $"{c.Value} {c.Key}")));
        }, remote: null);
        var manager = ManagerOption();
        command.Options.Add(manager);
        var offline = (SynchronousCommandLineAction)command.Action!;
        command.SetAction((parse, ct) => parse.GetValue(manager) is { } address
            ? ThroughManagerAsync(parse, address, async connection =>
            {
                // In requests of at most MaxSubmitLines messages (one control frame each).
                foreach (var chunk in Lines(parse.GetValue(files)!).Select(l => l.Line).Chunk(MeteringHub.MaxSubmitLines))
                {
                    await ActAsync(connection, new LedgerActMessage { Act = "submit", Lines = chunk }, ct);
                }
            }, ct)
            : Task.FromResult(offline.Invoke(parse)));
        return command;
    }

    private static IEnumerable<(string File, string Line)> Lines(IEnumerable<string> files) =>
        files.SelectMany(file => File.ReadLines(file).Select(l => l.Trim()).Where(l => l.Length > 0 && !l.StartsWith('#')).Select(l => (file, l)));

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
        }, parse => new LedgerActMessage
        {
            Act = "export",
            Day = parse.GetValue(day) ?? DateTimeOffset.UtcNow.UtcDateTime.ToString("yyyy-MM-dd", CultureInfo.InvariantCulture),
            Min = parse.GetValue(min),
        });
        return command;
    }

    /// <summary>
    /// A write command on the ledger in DIR. Offline it opens the journal itself (the manager must be stopped); with a
    /// <paramref name="remote"/> request it also takes <c>--manager host:port</c> and then acts through the running manager.
    /// </summary>
    private static Command Write(string name, string description, IReadOnlyList<Symbol> symbols, Func<Ledger, KeyPair, ParseResult, long, LedgerOutcome> act,
        Func<ParseResult, LedgerActMessage>? remote = null)
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
                    ? " (a manager is writing this ledger: add --manager host:port to act through it, or stop it first)"
                    : "";
                Console.Error.WriteLine($"error: {ex.Message}{running}");
                return Common.Failure;
            }
        });
        if (remote is not null)
        {
            var manager = ManagerOption();
            command.Options.Add(manager);
            var offline = (SynchronousCommandLineAction)command.Action!;
            command.SetAction((parse, ct) => parse.GetValue(manager) is { } address
                ? ThroughManagerAsync(parse, address, connection => ActAsync(connection, remote(parse), ct), ct)
                : Task.FromResult(offline.Invoke(parse)));
        }

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
}
