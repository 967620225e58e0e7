using Skywire.Core.Manager;
using Skywire.Core.Metering;
using Skywire.Core.Node;
using Skywire.IntegrationTests.Mesh;
using Skywire.Protocol.Metering;

namespace Skywire.IntegrationTests.Metering;

/// <summary>
/// Metering on live routes, in process (docs/metering.md "Live path"): a manager with a ledger, four nodes in a line,
/// data through three hops; the receipts the nodes co-sign reach the ledger, and its balances are exactly what the
/// signed terms say for the co-signed bytes.
/// </summary>
public sealed class LiveMeteringTests : IDisposable
{
    private const long Sky = 1_000_000;
    private readonly string _dir = Directory.CreateTempSubdirectory("skywire-live-metering-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private ManagerOptions Metered(ulong window) => new()
    {
        Metering = new ManagerMeteringOptions { LedgerDirectory = Path.Combine(_dir, "ledger"), WindowBytes = window, EpochInterval = TimeSpan.FromHours(1) },
    };

    private static NodeOptions Fast(NodeOptions options) => options with
    {
        Metering = options.Metering with
        {
            Receipts = HopMeterOptions.Default with { BytesPerReceipt = 1024 * 1024, Interval = TimeSpan.FromMilliseconds(500) },
            Linger = TimeSpan.FromSeconds(2),
        },
    };

    [Fact]
    public async Task ThreeHops_ReceiptsFromEveryHop_LedgerPaysExactlyPerTerms()
    {
        // A window of 2 MiB for 12 MiB of data: the transfer only completes if the source keeps authorizing.
        await using var mesh = MeshHarness.Start(Metered(window: 2 * 1024 * 1024));
        var nodes = new NodeHost[4];
        for (var i = 0; i < nodes.Length; i++)
        {
            nodes[i] = await mesh.AddNodeAsync(Fast);
        }

        var (a, b, c, d) = (nodes[0], nodes[1], nodes[2], nodes[3]);
        await mesh.LinkAsync(a, b);
        await mesh.LinkAsync(b, c);
        await mesh.LinkAsync(c, d);
        var hub = mesh.Manager.Controller.Metering!;
        Assert.Equal(LedgerStatus.Accepted, hub.Grant(a.PublicKey, 100 * Sky, "test").Status);

        const long size = 12L * 1024 * 1024;
        var (sent, received, count) = await MeshHarness.TransferAsync(a, d, size);
        Assert.Equal(size, count);
        Assert.Equal(sent, received);

        var route = Assert.Single(hub.Read(l => l.Routes.ToList()));
        Assert.Equal(a.PublicKey, route.Terms.Source);
        Assert.Equal([b.PublicKey, c.PublicKey], route.Terms.Relays.Select(r => r.Node));
        Assert.Equal(d.PublicKey, route.Terms.Destination);

        // Receipts keep coming while counters move; wait until every hop's co-signed figures match the nodes' own
        // counters (what the receivers counted), then settle.
        await MeshHarness.WaitUntilAsync(() => Settled(hub, route.Terms, nodes), "every hop's latest receipt to match the receivers' counters");
        hub.CloseEpoch();

        var (balances, forward, reverse, authForward) = hub.Read(l =>
        {
            var r = l.Routes.Single();
            var fwd = Enumerable.Range(0, 3).Select(h => r.Bytes(h, MeteringDirection.Forward)).ToArray();
            var rev = Enumerable.Range(0, 3).Select(h => r.Bytes(h, MeteringDirection.Reverse)).ToArray();
            return (new Dictionary<string, long>(l.Balances), fwd, rev, r.AuthForward);
        });
        Assert.All(forward, f => Assert.True(f >= (ulong)size, $"a forward hop co-signed {f} B, less than the {size} B of data"));
        Assert.All(reverse, r => Assert.True(r > 0));
        Assert.True(authForward > 2 * 1024 * 1024, "the source raised the forward cap with authorizations");

        // Independent of the ledger's code: paid bytes are the running minimum along the direction of travel.
        var flowF = RunningMin(forward, fromEnd: false);
        var flowR = RunningMin(reverse, fromEnd: true);
        var relayPrice = hub.Options.RelayPricePerGiB;
        var exitPrice = hub.Options.DestinationPricePerGiB;
        var earnedB = Settlement.Charge(flowF[1], relayPrice) + Settlement.Charge(flowR[0], relayPrice);
        var earnedC = Settlement.Charge(flowF[2], relayPrice) + Settlement.Charge(flowR[1], relayPrice);
        var earnedD = Settlement.Charge(flowF[2], exitPrice) + Settlement.Charge(flowR[0], exitPrice);
        var gross = earnedB + earnedC + earnedD;
        var fee = gross * hub.Options.FeeBps / 10_000;
        Assert.Equal(earnedB, balances[Ledger.ProviderAccount(b.PublicKey)]);
        Assert.Equal(earnedC, balances[Ledger.ProviderAccount(c.PublicKey)]);
        Assert.Equal(earnedD, balances[Ledger.ProviderAccount(d.PublicKey)]);
        Assert.Equal(fee, balances[Ledger.FeeAccount]);
        var reserve = balances["reserve:" + route.Id];
        Assert.Equal(100 * Sky, balances[Ledger.ConsumerAccount(a.PublicKey)] + reserve + gross + fee);
        Assert.Equal(0, balances.Values.Sum());

        // Persisted at both ends: each relay journaled receipts it signed as receiver and countersigned as sender.
        foreach (var node in nodes)
        {
            Assert.Contains(node.Metering.JournalLines, line => line.StartsWith("52", StringComparison.Ordinal));
        }

        // `ledger verify`: the journal (readable while the manager writes) replays to the same balances.
        using var store = FileLedgerStore.Open(Path.Combine(_dir, "ledger"), writable: false);
        var replayed = Ledger.Open(store, mesh.ManagerKey.Public);
        Assert.True(replayed.Roots.Count >= 1);
        Assert.Equal(earnedB, replayed.Balance(Ledger.ProviderAccount(b.PublicKey)));
        Assert.DoesNotContain(replayed.Disputes, x => x.IsFraud);
    }

    /// <summary>
    /// Regression (issue 15): a metered route re-routed after its relay died ran unmetered on the new path. Now the old
    /// terms end (reserve beyond their caps back to the source) and the new path gets its own terms, caps and receipts:
    /// 12 MiB through a 2 MiB window only complete if the source authorizes on the new route too.
    /// </summary>
    [Fact]
    public async Task RelayKilled_ReroutedRouteIsMeteredOnItsNewPath()
    {
        const int window = 2 * 1024 * 1024;
        await using var mesh = MeshHarness.Start(Metered(window));
        var n = new NodeHost[4];
        for (var i = 0; i < n.Length; i++)
        {
            n[i] = await mesh.AddNodeAsync(Fast);
        }

        var (a, b, c, d) = (n[0], n[1], n[2], n[3]);
        await mesh.LinkAsync(a, b);
        await mesh.LinkAsync(b, d);
        await mesh.LinkAsync(a, c);
        await mesh.LinkAsync(c, d);
        var hub = mesh.Manager.Controller.Metering!;
        hub.Grant(a.PublicKey, 100 * Sky, "test");
        var rerouted = new TaskCompletionSource<IReadOnlyList<Skywire.Protocol.PubKey>>(TaskCreationOptions.RunContinuationsAsynchronously);
        mesh.Manager.Controller.Rerouted += (_, path) => rerouted.TrySetResult(path);
        NodeHost? victim = null;
        const long size = 12L * 1024 * 1024;
        var (sent, received, count) = await MeshHarness.TransferAsync(a, d, size, async _ =>
        {
            if (victim is null)
            {
                var relay = mesh.Manager.Controller.ListRoutes().Routes.Single().Path[1];
                victim = mesh.Nodes.Single(x => x.NodeKey == relay);
                await mesh.RemoveNodeAsync(victim);
            }
        });
        Assert.Equal(size, count);
        Assert.Equal(sent, received);
        var path = await rerouted.Task.WaitAsync(MeshHarness.Limit);
        var survivor = victim == b ? c : b;
        Assert.Equal([a.PublicKey, survivor.PublicKey, d.PublicKey], path);

        // Two routes in the ledger: the first (ended), then the new path's with its own terms.
        await MeshHarness.WaitUntilAsync(
            () => hub.Read(l => l.Routes.Count == 2 && l.Routes[1].Bytes(1, MeteringDirection.Forward) > 0 && l.Routes[1].Bytes(0, MeteringDirection.Forward) > 0),
            "co-signed receipts of both hops of the new path");
        var (first, second) = hub.Read(l => (l.Routes[0], l.Routes[1]));
        Assert.Equal([victim!.PublicKey], first.Terms.Relays.Select(r => r.Node));
        Assert.NotNull(first.EndedMs);
        Assert.Equal([survivor.PublicKey], second.Terms.Relays.Select(r => r.Node));
        Assert.Equal((a.PublicKey, d.PublicKey), (second.Terms.Source, second.Terms.Destination));
        Assert.Null(second.EndedMs);
        Assert.True(second.AuthForward > window, "the source raised the new route's forward cap with authorizations");

        hub.CloseEpoch();
        var (balances, disputes) = hub.Read(l => (new Dictionary<string, long>(l.Balances), l.Disputes.ToList()));
        Assert.True(balances.GetValueOrDefault(Ledger.ProviderAccount(survivor.PublicKey)) > 0, "the new relay earned");
        Assert.Equal(0, balances.Values.Sum());
        Assert.DoesNotContain(disputes, x => x.IsFraud);
        using var store = FileLedgerStore.Open(Path.Combine(_dir, "ledger"), writable: false);
        Assert.Equal(2, Ledger.Open(store, mesh.ManagerKey.Public).Routes.Count(r => r.Terms.Source == a.PublicKey));
    }

    /// <summary>
    /// Issue 15: a route adopted by a restarted manager (from its ends' reports) gets new terms, caps and receipts; the
    /// terms it ran on before end in the ledger (their reserve comes back), and the data keeps flowing through both.
    /// </summary>
    [Fact]
    public async Task ManagerRestart_AdoptedRouteGetsNewTerms_OldTermsEnd()
    {
        const int window = 2 * 1024 * 1024;
        await using var mesh = MeshHarness.Start(Metered(window));
        var n = new NodeHost[3];
        for (var i = 0; i < n.Length; i++)
        {
            n[i] = await mesh.AddNodeAsync(o => Fast(o) with { MaxReconnectDelay = TimeSpan.FromMilliseconds(500), ConnectTimeout = TimeSpan.FromSeconds(2) });
        }

        var (a, b, c) = (n[0], n[1], n[2]);
        await mesh.LinkAsync(a, b);
        await mesh.LinkAsync(b, c);
        mesh.Manager.Controller.Metering!.Grant(a.PublicKey, 100 * Sky, "test");
        var restarted = false;
        const long size = 16L * 1024 * 1024;
        var (sent, received, count) = await MeshHarness.TransferAsync(a, c, size, async _ =>
        {
            if (restarted)
            {
                return;
            }

            restarted = true;
            var sessionId = Assert.Single(mesh.Manager.Controller.ListRoutes().Routes).SessionId;
            await mesh.RestartManagerAsync(() => MeshHarness.WaitUntilAsync(() => n.All(x => !x.ManagerConnected), "the nodes noticed"));
            await MeshHarness.WaitUntilAsync(() => mesh.Manager.Controller.ListRoutes().Routes.Any(r => r.SessionId == sessionId), "the session adopted");
        });
        Assert.Equal(size, count);
        Assert.Equal(sent, received);

        // The same ledger, reopened by the new manager: the first terms ended, the adopted route's terms co-signed.
        var hub = mesh.Manager.Controller.Metering!;
        await MeshHarness.WaitUntilAsync(
            () => hub.Read(l => l.Routes.Count == 2 && l.Routes[1].Bytes(0, MeteringDirection.Forward) > 0 && l.Routes[1].Bytes(1, MeteringDirection.Forward) > 0),
            "co-signed receipts of both hops under the adopted route's terms");
        var (first, second) = hub.Read(l => (l.Routes[0], l.Routes[1]));
        Assert.NotNull(first.EndedMs);
        Assert.Null(second.EndedMs);
        Assert.Equal((a.PublicKey, c.PublicKey), (second.Terms.Source, second.Terms.Destination));
        Assert.Equal([b.PublicKey], second.Terms.Relays.Select(r => r.Node));
        Assert.True(first.Refunded > 0, "the ended terms' reserve beyond their caps went back to the source");

        hub.CloseEpoch();
        var (balances, disputes) = hub.Read(l => (new Dictionary<string, long>(l.Balances), l.Disputes.ToList()));
        Assert.Equal(0, balances.Values.Sum());
        Assert.DoesNotContain(disputes, x => x.IsFraud);
        Assert.True(balances.GetValueOrDefault(Ledger.ProviderAccount(b.PublicKey)) > 0, "the relay earned");
    }

    /// <summary>
    /// Regression (issue 15): after the source stopped, its route's reserve stayed held (the route was never ended and the
    /// hops it sent on had no final receipts). A clean stop now ends the route while the manager still hears the source,
    /// every hop's final receipts are co-signed in both directions, and the next close releases the reserve.
    /// </summary>
    [Fact]
    public async Task SourceStopsCleanly_RouteEnds_FinalsPosted_ReserveReleased()
    {
        await using var mesh = MeshHarness.Start(Metered(window: 2 * 1024 * 1024));
        var n = new NodeHost[4];
        for (var i = 0; i < n.Length; i++)
        {
            n[i] = await mesh.AddNodeAsync(o => Fast(o) with { Metering = Fast(o).Metering with { DrainTimeout = MeshHarness.Limit } });
        }

        var (a, b, c, d) = (n[0], n[1], n[2], n[3]);
        await mesh.LinkAsync(a, b);
        await mesh.LinkAsync(b, c);
        await mesh.LinkAsync(c, d);
        var hub = mesh.Manager.Controller.Metering!;
        hub.Grant(a.PublicKey, 100 * Sky, "test");
        const long size = 4L * 1024 * 1024;
        var (sent, received, count) = await MeshHarness.TransferAsync(a, d, size);
        Assert.Equal(size, count);
        Assert.Equal(sent, received);

        await a.DisposeAsync(); // SIGTERM's path: a clean stop of the source
        var route = hub.Read(l => l.Routes.Single());
        await MeshHarness.WaitUntilAsync(
            () => hub.Read(l => route.EndedMs is not null && Enumerable.Range(0, 3).All(h =>
                route.Latest(h, MeteringDirection.Forward) is { Final: true } && route.Latest(h, MeteringDirection.Reverse) is { Final: true })),
            "the route ended and every hop's final receipts co-signed in both directions");
        Assert.True(route.Bytes(0, MeteringDirection.Forward) >= size);

        hub.CloseEpoch();
        var (released, reserve, consumer, spent, disputes) = hub.Read(l =>
            (route.Released, l.Balance(route.ReserveAccount), l.Balance(Ledger.ConsumerAccount(a.PublicKey)), route.Spent, l.Disputes.ToList()));
        Assert.True(released, "released at the first close after the clean stop, not 15 min after");
        Assert.Equal(0, reserve);
        Assert.True(spent > 0);
        Assert.Equal(100 * Sky - spent, consumer);
        Assert.DoesNotContain(disputes, x => x.IsFraud || x.Code == DisputeCode.Gap);
    }

    [Fact]
    public async Task NoFunds_MeteredRouteRefused()
    {
        await using var mesh = MeshHarness.Start(Metered(window: 1024 * 1024));
        var a = await mesh.AddNodeAsync(Fast);
        var b = await mesh.AddNodeAsync(Fast);
        await mesh.LinkAsync(a, b);

        var refused = await Assert.ThrowsAnyAsync<Exception>(() => MeshHarness.TransferAsync(a, b, 1024));
        Assert.Contains("one window costs", refused.ToString(), StringComparison.Ordinal);
        Assert.Empty(mesh.Manager.Controller.ListRoutes().Routes);
        Assert.Empty(mesh.Manager.Controller.Metering!.Read(l => l.Routes.ToList()));
    }

    [Fact]
    public async Task SourceStopsAuthorizing_RouteStallsAtTheWindow()
    {
        const int window = 1024 * 1024;
        Task transfer;
        await using (var mesh = MeshHarness.Start(Metered(window)))
        {
            var a = await mesh.AddNodeAsync(o => Fast(o) with { Metering = Fast(o).Metering with { Authorize = false } });
            var b = await mesh.AddNodeAsync(Fast);
            var c = await mesh.AddNodeAsync(Fast);
            var d = await mesh.AddNodeAsync(Fast);
            await mesh.LinkAsync(a, b);
            await mesh.LinkAsync(b, c);
            await mesh.LinkAsync(c, d);
            mesh.Manager.Controller.Metering!.Grant(a.PublicKey, 100 * Sky);

            transfer = Task.Run(() => MeshHarness.TransferAsync(a, d, 8L * window));
            // At its cap the source holds its packets (bounded) rather than dropping them: docs/metering.md "Caps".
            await MeshHarness.WaitUntilAsync(() => a.DataPlane.Statistics.Held > 0 || transfer.IsCompleted, "the source's sends to stop at its cap");
            Assert.False(transfer.IsCompleted, "8 windows of data went through a route the source authorized for one");
            Assert.All(new[] { b, c, d }, n => Assert.All(n.DataPlane.GetRules().Where(r => r.InLink == PreviousOf(n, a, b, c)), r => Assert.InRange(r.Bytes, 1, window)));
        }

        await Assert.ThrowsAnyAsync<Exception>(() => transfer);
    }

    [Fact]
    public async Task SourceIgnoresItsCap_RelaysDropBeyondIt()
    {
        const int window = 1024 * 1024;
        await using var mesh = MeshHarness.Start(Metered(window));
        var a = await mesh.AddNodeAsync(o => Fast(o) with { Metering = Fast(o).Metering with { Authorize = false } });
        var b = await mesh.AddNodeAsync(Fast);
        var c = await mesh.AddNodeAsync(Fast);
        await mesh.LinkAsync(a, b);
        await mesh.LinkAsync(b, c);
        mesh.Manager.Controller.Metering!.Grant(a.PublicKey, 100 * Sky);
        await using var sink = await MeshHarness.AppAsync(c);
        await sink.RegisterAsync("sink", "test");
        await using var source = await MeshHarness.AppAsync(a);
        var accept = sink.AcceptAsync();
        await using var outbound = await source.DialAsync(c.NodeKey, "sink").WaitAsync(MeshHarness.Limit);
        await using var inbound = await accept.WaitAsync(MeshHarness.Limit);

        // A source that sends past its own cap (modified, or lying): the relay gates on the cap the source signed.
        var route = Assert.Single(a.DataPlane.GetSessions()).Route;
        var meter = a.DataPlane.Rules.FindSendMeter(route.OutLink, route.OutRoute);
        Assert.NotNull(meter);
        Volatile.Write(ref meter.Cap, long.MaxValue);
        using var stop = new CancellationTokenSource();
        var reader = Task.Run(async () =>
        {
            var buffer = new byte[64 * 1024];
            while (await inbound.ReadAsync(buffer, stop.Token) > 0)
            {
            }
        });
        var writer = Task.Run(async () =>
        {
            var chunk = new byte[64 * 1024];
            for (var i = 0; i < 4 * window / chunk.Length; i++)
            {
                await outbound.WriteAsync(chunk, stop.Token);
            }
        });

        await MeshHarness.WaitUntilAsync(() => b.DataPlane.Statistics.Capped > 0, "the relay to drop beyond the cap");
        var forward = Assert.Single(b.DataPlane.GetRules(), r => r.InLink == a.PublicKey);
        Assert.InRange(forward.Bytes, 1, window);
        var delivered = Assert.Single(c.DataPlane.GetRules(), r => r.InLink == b.PublicKey);
        Assert.InRange(delivered.Bytes, 1, window);
        Assert.False(writer.IsCompletedSuccessfully && reader.IsCompletedSuccessfully, "4 windows went through a relay capped at one");
        await stop.CancelAsync();
        await Task.WhenAll(reader, writer).ContinueWith(_ => { }, TaskScheduler.Default); // cancelled or broken: the route stalled
    }

    private static Skywire.Protocol.PubKey PreviousOf(NodeHost node, NodeHost a, NodeHost b, NodeHost c) =>
        node == b ? a.PublicKey : node == c ? b.PublicKey : c.PublicKey;

    private static bool Settled(MeteringHub hub, RouteTerms terms, NodeHost[] nodes)
    {
        var rules = nodes.Select(n => n.DataPlane.GetRules()).ToArray();
        return hub.Read(l =>
        {
            var route = l.Routes.Single();
            for (var hop = 0; hop < terms.HopCount; hop++)
            {
                // The receiver of hop h forward is node h+1: its rule from node h counts what arrived.
                var fwdRule = rules[hop + 1].FirstOrDefault(r => r.InLink == nodes[hop].PublicKey);
                var revRule = rules[hop].FirstOrDefault(r => r.InLink == nodes[hop + 1].PublicKey);
                if (fwdRule is null || revRule is null
                    || route.Bytes(hop, MeteringDirection.Forward) != (ulong)fwdRule.Bytes
                    || route.Bytes(hop, MeteringDirection.Reverse) != (ulong)revRule.Bytes)
                {
                    return false;
                }
            }

            return true;
        });
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
}
