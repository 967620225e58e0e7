using System.Diagnostics;
using System.Text.Json;
using Skywire.Core.Metering;
using Skywire.IntegrationTests.EndToEnd;

namespace Skywire.IntegrationTests.Metering;

/// <summary>
/// Issue 15's "done when" through the built executables: a manager with <c>--ledger</c>, four nodes in a line, 16 MiB
/// through three hops with <c>skywire app nc</c>; the manager stops (SIGTERM: it closes a last epoch), and
/// <c>skywire ledger routes|balances|verify --json</c> show the source charged and each relay and the exit credited
/// exactly per the terms for the bytes every hop co-signed; each node journaled its receipts beside its key.
/// </summary>
[Trait("Category", "E2E")]
public sealed class MeteredMeshProcessTests() : ExecutableTestBase("skywire-metered-")
{
    private static readonly TimeSpan Limit = TimeSpan.FromSeconds(120);
    private const long Size = 16L * 1024 * 1024;
    private const long Grant = 100_000_000;
    private const long RelayPrice = 2_000_000;
    private const long ExitPrice = 3_000_000;
    private const long FeeBps = 250;

    [Fact]
    public async Task ThreeHops_LedgerShowsSourceChargedAndProvidersCreditedPerTerms()
    {
        var processes = new List<SkywireProcess>();
        var ledger = FilePath("ledger");
        try
        {
            // Keys first: the operator grants the source before the manager (the ledger's one writer) starts.
            var keys = await KeygenAsync("manager", "a", "b", "c", "d");

            await using (var grant = Start(null, ["ledger", "grant", ledger, keys["a"], Grant.ToString(), "--key", FilePath("manager.json")]))
            {
                Assert.Equal(0, await grant.WaitForExitAsync(Limit));
            }

            var manager = Start(processes, ["manager", "--listen", "127.0.0.1:0", "--key", FilePath("manager.json"), "--ledger", ledger,
                "--price-relay", RelayPrice.ToString(), "--price-exit", ExitPrice.ToString(), "--fee-bps", FeeBps.ToString(), "--window", (4 << 20).ToString()]);
            var managerLine = await manager.WaitForLineAsync("listening on", Limit);
            var managerAt = $"{keys["manager"]}@127.0.0.1:{ManagerLine().Match(managerLine).Groups[1].Value}";
            var apps = new Dictionary<string, string>();
            foreach (var name in new[] { "a", "b", "c", "d" })
            {
                var node = Start(processes, ["node", "--manager", managerAt, "--key", FilePath(name + ".json"), "--app-token-file", FilePath(name + ".token")]);
                apps[name] = NodeLine().Match(await node.WaitForLineAsync(" apps 127.0.0.1", Limit)).Groups[2].Value;
            }

            string[] Cli(params string[] args) => ["cli", "--manager", managerAt, "--key", FilePath("manager.json"), .. args];
            foreach (var (x, y) in new[] { ("a", "b"), ("b", "c"), ("c", "d") })
            {
                await using var link = Start(null, Cli("link", keys[x], keys[y]));
                Assert.Equal(0, await link.WaitForExitAsync(Limit));
            }

            await WaitForAsync(Cli("links"), text => text.Split('\n').Count(l => l.Contains(" yes ", StringComparison.Ordinal)) >= 6, "all links routed");
            var listener = Start(processes, ["app", "nc", "--node-apps", "127.0.0.1:" + apps["d"], "--token-file", FilePath("d.token"), "--name", "sink", "--listen"]);
            await listener.WaitForLineAsync("listening as", Limit);
            var payload = new byte[Size];
            new Random(15).NextBytes(payload);
            var dialer = Start(processes, ["app", "nc", "--node-apps", "127.0.0.1:" + apps["a"], "--token-file", FilePath("a.token"), "--name", "src",
                "--to", $"{keys["d"]}/sink"], new MemoryStream(payload));
            Assert.Equal(0, await dialer.WaitForExitAsync(Limit));
            Assert.Equal(0, await listener.WaitForExitAsync(Limit));
            Assert.True(listener.Stdout.AsSpan().SequenceEqual(payload), "the bytes differ");

            // Receipts come every 4 MiB or 10 s while counters move: wait until every forward hop co-signed the data.
            await WaitUntilAsync(async () =>
            {
                var hops = await HopBytesAsync(ledger);
                return hops is { } h && h.Forward.All(f => f >= Size) && h.Reverse.All(r => r > 0);
            }, "receipts of the transfer on every hop");

            // SIGTERM: the manager closes a last epoch (settles the route) before it exits.
            using (var kill = Process.Start("kill", ["-TERM", manager.Id.ToString()]))
            {
                await kill.WaitForExitAsync();
            }

            Assert.Equal(0, await manager.WaitForExitAsync(Limit));

            var (forward, reverse) = (await HopBytesAsync(ledger))!.Value;
            var flowF = RunningMin(forward, fromEnd: false);
            var flowR = RunningMin(reverse, fromEnd: true);
            long Charge(ulong bytes, long price) => Settlement.Charge(bytes, (ulong)price);
            var earnedB = Charge(flowF[1], RelayPrice) + Charge(flowR[0], RelayPrice);
            var earnedC = Charge(flowF[2], RelayPrice) + Charge(flowR[1], RelayPrice);
            var earnedD = Charge(flowF[2], ExitPrice) + Charge(flowR[0], ExitPrice);
            var gross = earnedB + earnedC + earnedD;
            var fee = gross * FeeBps / 10_000;
            Assert.True(earnedB > 0 && earnedC > 0 && earnedD > 0);

            var balances = (await LedgerJsonAsync("balances", ledger)).GetProperty("accounts").EnumerateArray()
                .ToDictionary(e => e.GetProperty("account").GetString()!, e => e.GetProperty("droplets").GetInt64());
            Assert.Equal(earnedB, balances["provider:" + keys["b"]]);
            Assert.Equal(earnedC, balances["provider:" + keys["c"]]);
            Assert.Equal(earnedD, balances["provider:" + keys["d"]]);
            Assert.Equal(fee, balances["fee"]);
            var reserve = balances.Where(b => b.Key.StartsWith("reserve:", StringComparison.Ordinal)).Sum(b => b.Value);
            Assert.Equal(Grant - gross - fee, balances["consumer:" + keys["a"]] + reserve);
            Assert.Equal(0, balances.Values.Sum());

            var verify = await LedgerJsonAsync("verify", ledger);
            Assert.True(verify.GetProperty("ok").GetBoolean(), verify.ToString());

            // Persisted at both ends: every node journaled co-signed receipts (tag 0x52) beside its key file.
            foreach (var name in new[] { "a", "b", "c", "d" })
            {
                var journal = await File.ReadAllLinesAsync(FilePath(name + ".metering.hex"), TestContext.Current.CancellationToken);
                Assert.Contains(journal, l => l.StartsWith("52", StringComparison.Ordinal));
            }
        }
        finally
        {
            foreach (var p in processes)
            {
                await p.DisposeAsync();
            }
        }
    }

    /// <summary>
    /// Issue 15: `ledger grant` while the manager runs. The journal has one writer (the manager), so the offline grant is
    /// refused with a hint, and `--manager` sends the grant through the running manager, authenticated by the manager's
    /// own key: another key (even a node's) is refused, the granted amount is in the journal the manager writes.
    /// </summary>
    [Fact]
    public async Task Grant_WhileTheManagerRuns_GoesThroughIt_OnlyWithTheManagersKey()
    {
        var processes = new List<SkywireProcess>();
        var ledger = FilePath("ledger");
        try
        {
            var keys = await KeygenAsync("manager", "a");

            var manager = Start(processes, ["manager", "--listen", "127.0.0.1:0", "--key", FilePath("manager.json"), "--ledger", ledger, "--admin", keys["a"]]);
            var port = ManagerLine().Match(await manager.WaitForLineAsync("listening on", Limit)).Groups[1].Value;

            async Task<SkywireProcess> GrantAsync(string key, params string[] extra) => await GrantInAsync(ledger, key, extra);
            async Task<SkywireProcess> GrantInAsync(string dir, string key, params string[] extra)
            {
                var grant = Start(null, ["ledger", "grant", dir, keys["a"], "2500000", "--key", FilePath(key + ".json"), "--memo", "top-up", .. extra]);
                await grant.WaitForExitAsync(Limit);
                return grant;
            }

            await using (var offline = await GrantAsync("manager"))
            {
                Assert.Equal(1, await offline.WaitForExitAsync(Limit));
                Assert.Contains("--manager host:port", offline.Stderr, StringComparison.Ordinal);
            }

            await using (var online = await GrantAsync("manager", "--manager", "127.0.0.1:" + port))
            {
                Assert.True(await online.WaitForExitAsync(Limit) == 0, online.Stderr);
                Assert.Contains("granted 2500000 droplets", online.StdoutText, StringComparison.Ordinal);
            }

            // A key that does not pin this ledger is refused before any call; the manager itself refuses any key but its
            // own (an admin key may steer routes, not create money): exit 3, Forbidden, both times.
            await using (var pinned = await GrantAsync("a", "--manager", $"{keys["manager"]}@127.0.0.1:{port}"))
            {
                Assert.Equal(3, await pinned.WaitForExitAsync(Limit));
            }

            await using (var admin = await GrantInAsync(FilePath("not-the-ledger"), "a", "--manager", $"{keys["manager"]}@127.0.0.1:{port}"))
            {
                Assert.Equal(3, await admin.WaitForExitAsync(Limit));
                Assert.Contains("only the manager's own key grants funds", admin.Stderr, StringComparison.Ordinal);
            }

            var balances = (await LedgerJsonAsync("balances", ledger)).GetProperty("accounts").EnumerateArray()
                .ToDictionary(e => e.GetProperty("account").GetString()!, e => e.GetProperty("droplets").GetInt64());
            Assert.Equal(2_500_000, balances["consumer:" + keys["a"]]);
            Assert.True((await LedgerJsonAsync("verify", ledger)).GetProperty("ok").GetBoolean());
        }
        finally
        {
            foreach (var p in processes)
            {
                await p.DisposeAsync();
            }
        }
    }

    /// <summary>
    /// Issue 15: `ledger close|export|paid|submit` while the manager runs go through it with `--manager` (its own key
    /// only), like `grant`; a node's signed payout binding (`ledger bind`) reaches the ledger through `submit`. The
    /// offline form is refused with the hint while the manager holds the journal, and `verify` recomputes everything.
    /// </summary>
    [Fact]
    public async Task CloseExportPaidSubmit_WhileTheManagerRuns_GoThroughIt()
    {
        var processes = new List<SkywireProcess>();
        var ledger = FilePath("ledger");
        try
        {
            var keys = await KeygenAsync("manager", "a");

            var manager = Start(processes, ["manager", "--listen", "127.0.0.1:0", "--key", FilePath("manager.json"), "--ledger", ledger, "--admin", keys["a"]]);
            var at = "127.0.0.1:" + ManagerLine().Match(await manager.WaitForLineAsync("listening on", Limit)).Groups[1].Value;

            async Task<SkywireProcess> LedgerAsync(int expected, params string[] args)
            {
                var process = Start(null, ["ledger", .. args]);
                var code = await process.WaitForExitAsync(Limit);
                Assert.True(code == expected, $"skywire ledger {string.Join(' ', args)} exited {code}, not {expected}: {process.Stderr}");
                return process;
            }

            await using (var offline = await LedgerAsync(1, "close", ledger, "--key", FilePath("manager.json")))
            {
                Assert.Contains("--manager host:port", offline.Stderr, StringComparison.Ordinal);
            }

            // Node a binds its payouts to another address (here the manager key's); the binding proves itself.
            var address = Skywire.Core.Crypto.SkycoinAddress.FromPubKey(Skywire.Protocol.PubKey.Parse(keys["manager"]));
            await using (var bind = await LedgerAsync(0, "bind", address, "--key", FilePath("a.json"), "--seq", "7"))
            {
                await File.WriteAllTextAsync(FilePath("binding.hex"), bind.StdoutText);
            }

            await using (var submit = await LedgerAsync(0, "submit", ledger, FilePath("binding.hex"), "--key", FilePath("manager.json"), "--manager", at))
            {
                Assert.Contains("1 accepted", submit.StdoutText, StringComparison.Ordinal);
            }

            await using (var close = await LedgerAsync(0, "close", ledger, "--key", FilePath("manager.json"), "--manager", at))
            {
                Assert.Contains("epoch 1 closed", close.StdoutText, StringComparison.Ordinal);
            }

            await using (var export = await LedgerAsync(0, "export", ledger, "--key", FilePath("manager.json"), "--day", "2026-12-05", "--manager", at))
            {
                Assert.Contains("2026-12-05: 0 payouts", export.StdoutText, StringComparison.Ordinal);
                Assert.True(File.Exists(Path.Combine(ledger, "exports", "manifest-2026-12-05.json")), export.StdoutText);
            }

            await using (var paid = await LedgerAsync(0, "paid", ledger, "2026-12-05", "abc123", "--key", FilePath("manager.json"), "--manager", at))
            {
                Assert.Contains("paid in abc123", paid.StdoutText, StringComparison.Ordinal);
            }

            // Refused acts come back as errors; a key that is not the manager's is refused by the manager.
            await using (var again = await LedgerAsync(2, "paid", ledger, "2026-12-05", "def456", "--key", FilePath("manager.json"), "--manager", at))
            {
                Assert.Contains("already recorded as paid", again.Stderr, StringComparison.Ordinal);
            }

            await using (var other = await LedgerAsync(3, "close", FilePath("not-the-ledger"), "--key", FilePath("a.json"), "--manager", $"{keys["manager"]}@{at}"))
            {
                Assert.Contains("only the manager's own key", other.Stderr, StringComparison.Ordinal);
            }

            var verify = await LedgerJsonAsync("verify", ledger);
            Assert.True(verify.GetProperty("ok").GetBoolean(), verify.ToString());
            Assert.Equal(1, verify.GetProperty("epochs").GetInt32());
        }
        finally
        {
            foreach (var p in processes)
            {
                await p.DisposeAsync();
            }
        }
    }

    private static async Task<(ulong[] Forward, ulong[] Reverse)?> HopBytesAsync(string ledger)
    {
        var routes = (await LedgerJsonAsync("routes", ledger)).GetProperty("routes");
        if (routes.GetArrayLength() != 1)
        {
            return null;
        }

        var positions = routes[0].GetProperty("positions").EnumerateArray().Where(p => p.TryGetProperty("hop_bytes_forward", out _)).ToList();
        return ([.. positions.Select(p => p.GetProperty("hop_bytes_forward").GetUInt64())], [.. positions.Select(p => p.GetProperty("hop_bytes_reverse").GetUInt64())]);
    }

    private static async Task<JsonElement> LedgerJsonAsync(string verb, string ledger)
    {
        await using var process = SkywireProcess.Start(null, ["ledger", verb, ledger, "--json"]);
        var code = await process.WaitForExitAsync(Limit);
        Assert.True(code == 0, $"skywire ledger {verb} exited {code}: {process.Stderr}");
        return JsonDocument.Parse(process.StdoutText).RootElement.Clone();
    }

    private static ulong[] RunningMin(ulong[] coSigned, bool fromEnd)
    {
        var flow = new ulong[coSigned.Length];
        var previous = ulong.MaxValue;
        for (var step = 0; step < coSigned.Length; step++)
        {
            var hop = fromEnd ? coSigned.Length - 1 - step : step;
            previous = Math.Min(previous, coSigned[hop]);
            flow[hop] = previous;
        }

        return flow;
    }

    /// <summary>`skywire keygen` for each name (FilePath(name + ".json")); the public keys by name.</summary>
    private async Task<Dictionary<string, string>> KeygenAsync(params string[] names)
    {
        var keys = new Dictionary<string, string>();
        foreach (var name in names)
        {
            await using var keygen = Start(null, ["keygen", "--out", FilePath(name + ".json")]);
            Assert.Equal(0, await keygen.WaitForExitAsync(Limit));
            keys[name] = keygen.StdoutText.Split((char[])[' ', '\n'], StringSplitOptions.RemoveEmptyEntries)[0];
        }

        return keys;
    }

    private static SkywireProcess Start(List<SkywireProcess>? processes, IEnumerable<string> args, Stream? stdin = null)
    {
        var process = SkywireProcess.Start(null, args, stdin);
        processes?.Add(process);
        return process;
    }

    private static async Task<string> WaitForAsync(string[] cli, Func<string, bool> done, string what)
    {
        var deadline = DateTime.UtcNow + Limit;
        while (true)
        {
            await using var query = SkywireProcess.Start(null, cli);
            Assert.Equal(0, await query.WaitForExitAsync(Limit));
            if (done(query.StdoutText))
            {
                return query.StdoutText;
            }

            Assert.True(DateTime.UtcNow < deadline, $"timed out waiting for {what}:\n{query.StdoutText}");
            await Task.Delay(200);
        }
    }

    private static async Task WaitUntilAsync(Func<Task<bool>> condition, string what)
    {
        var deadline = DateTime.UtcNow + Limit;
        while (!await condition())
        {
            Assert.True(DateTime.UtcNow < deadline, "timed out waiting for: " + what);
            await Task.Delay(500);
        }
    }
}
