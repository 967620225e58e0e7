using System.Diagnostics;
using System.Net;
using Microsoft.Extensions.Logging.Abstractions;
using Skywire.Core.Control;
using Skywire.Core.Crypto;
using Skywire.Core.Manager;
using Skywire.Core.Manager.Store;
using Skywire.Core.Node;
using Skywire.Protocol;
using Skywire.Protocol.Control;
using Skywire.TestKit.Etcd;

namespace Skywire.Benchmarks.Store;

/// <summary>
/// `Skywire.Benchmarks.dll store [N] [ROUTES] [BIG]` (issue 17, bench/store-bench.sh): in one run on this machine, with
/// the embedded store (the baseline) and a real 1-member etcd (Debian's etcd-server, started and stopped here):
/// registrations per second and route set-ups per second (1 and 2 managers), the time from a manager's death to its
/// nodes being served by the other, and route computation on a BIG-node registry loaded from etcd. Controllers talk to
/// in-memory nodes except for the failover figure (real nodes and managers on loopback). Prints a table and RESULT lines.
/// </summary>
internal static class StoreBench
{
    private sealed class Sink : INodeChannel
    {
        public Task OpenLinkAsync(OpenLinkMessage message, CancellationToken cancellationToken) => Task.CompletedTask;

        public Task CloseLinkAsync(CloseLinkMessage message, CancellationToken cancellationToken) => Task.CompletedTask;

        public Task InstallRulesAsync(InstallRulesMessage message, CancellationToken cancellationToken) => Task.CompletedTask;

        public Task RemoveRulesAsync(RemoveRulesMessage message, CancellationToken cancellationToken) => Task.CompletedTask;

        public Task SessionRouteAsync(SessionRouteMessage message, CancellationToken cancellationToken) => Task.CompletedTask;

        public Task RouteClosedAsync(RouteCloseMessage message, CancellationToken cancellationToken) => Task.CompletedTask;
    }

    public static async Task RunAsync(string[] args)
    {
        var nodes = args.Length > 1 ? int.Parse(args[1], System.Globalization.CultureInfo.InvariantCulture) : 500;
        var routes = args.Length > 2 ? int.Parse(args[2], System.Globalization.CultureInfo.InvariantCulture) : 300;
        var big = args.Length > 3 ? int.Parse(args[3], System.Globalization.CultureInfo.InvariantCulture) : 100_000;
        Console.WriteLine($"Machine: {Environment.ProcessorCount} CPUs, {System.Runtime.InteropServices.RuntimeInformation.OSDescription}; etcd {EtcdCluster.Executable}");
        await using var etcd = await EtcdCluster.StartAsync(1);
        var results = new List<(string Name, double Ours, double Baseline, string Unit, string Better)>();
        var prefix = 0;
        // One prefix per scenario, shared by its managers.
        Func<IMeshStore> Etcd()
        {
            var at = etcd.StoreAddress($"/bench{++prefix}/");
            return () => new EtcdStore(EtcdStoreOptions.Parse(at));
        }

        // Registrations per second: N nodes register; done when the store holds every presence (and, with 2 managers,
        // when the other manager sees every node online).
        var embedded = await RegistrationsAsync(1, nodes, () => new EmbeddedStore());
        var etcd1 = await RegistrationsAsync(1, nodes, Etcd());
        var shared = new EmbeddedStore();
        var embedded2 = await RegistrationsAsync(2, nodes, shared.OpenSession);
        var etcd2 = await RegistrationsAsync(2, nodes, Etcd());
        results.Add(("store_registrations_1mgr", etcd1, embedded, "regs/s", "higher"));
        results.Add(("store_registrations_2mgr", etcd2, embedded2, "regs/s", "higher"));

        // Route set-ups per second: a chain a - r1 - r2 - b; with 2 managers the relays' rules go through the store.
        var rEmbedded = await RouteSetUpsAsync(1, routes, () => new EmbeddedStore());
        var rEtcd1 = await RouteSetUpsAsync(1, routes, Etcd());
        var shared2 = new EmbeddedStore();
        var rEmbedded2 = await RouteSetUpsAsync(2, routes, shared2.OpenSession);
        var rEtcd2 = await RouteSetUpsAsync(2, routes, Etcd());
        results.Add(("store_route_setups_1mgr", rEtcd1, rEmbedded, "routes/s", "higher"));
        results.Add(("store_route_setups_2mgr", rEtcd2, rEmbedded2, "routes/s", "higher"));

        // A manager's death to its nodes served by the other (real nodes on loopback).
        var failover = await FailoverAsync(Etcd(), nodes: 8);
        var shared3 = new EmbeddedStore();
        var failoverEmbedded = await FailoverAsync(shared3.OpenSession, nodes: 8);

        // Route computation on a big registry loaded from etcd (and from the embedded store).
        var bigWriter = new EtcdStore(EtcdStoreOptions.Parse(etcd.StoreAddress("/big/")) with { LeaseTtl = TimeSpan.FromSeconds(600) });
        var (load, plan) = await BigRegistryAsync(bigWriter, new EtcdStore(EtcdStoreOptions.Parse(etcd.StoreAddress("/big/")) with { CallTimeout = TimeSpan.FromSeconds(60) }), big);
        var shared4 = new EmbeddedStore();
        var (loadEmbedded, planEmbedded) = await BigRegistryAsync(shared4.OpenSession(), shared4.OpenSession(), big);

        Console.WriteLine();
        Console.WriteLine("| figure | embedded store | etcd (1 member) |");
        Console.WriteLine("|---|---|---|");
        Console.WriteLine($"| registrations/s, 1 manager ({nodes} nodes) | {embedded:0} | {etcd1:0} |");
        Console.WriteLine($"| registrations/s, 2 managers (seen by both) | {embedded2:0} | {etcd2:0} |");
        Console.WriteLine($"| route set-ups/s, 1 manager (3-hop chain, {routes} routes, 8 at once) | {rEmbedded:0} | {rEtcd1:0} |");
        Console.WriteLine($"| route set-ups/s, 2 managers (relays on the other manager) | {rEmbedded2:0} | {rEtcd2:0} |");
        Console.WriteLine($"| manager killed -> its 8 nodes registered with the other | {failoverEmbedded.TotalMilliseconds:0} ms | {failover.TotalMilliseconds:0} ms |");
        Console.WriteLine($"| {big} nodes + links loaded by a starting manager | {loadEmbedded.TotalSeconds:0.0} s | {load.TotalSeconds:0.0} s |");
        Console.WriteLine($"| one route computed over those {big} nodes | {planEmbedded.TotalMilliseconds:0.0} ms | {plan.TotalMilliseconds:0.0} ms |");
        foreach (var (name, ours, baseline, unit, better) in results)
        {
            Console.WriteLine(FormattableString.Invariant($"RESULT name={name} ours={ours:0.0} baseline={baseline:0.0} unit={unit} better={better}"));
        }

        Console.WriteLine(FormattableString.Invariant($"RESULT name=store_failover_ms ours={failover.TotalMilliseconds:0} baseline={failoverEmbedded.TotalMilliseconds:0} unit=ms better=lower"));
        Console.WriteLine(FormattableString.Invariant($"RESULT name=store_registry_load_{big}_s ours={load.TotalSeconds:0.00} baseline={loadEmbedded.TotalSeconds:0.00} unit=s better=lower"));
        Console.WriteLine(FormattableString.Invariant($"RESULT name=store_route_plan_{big}_ms ours={plan.TotalMilliseconds:0.0} baseline={planEmbedded.TotalMilliseconds:0.0} unit=ms better=lower"));
    }

    private static PubKey Key(int i)
    {
        Span<byte> bytes = stackalloc byte[33];
        bytes.Clear();
        bytes[0] = 2;
        BitConverter.TryWriteBytes(bytes[29..], i + 1);
        return PubKey.Parse(Convert.ToHexStringLower(bytes));
    }

    private static async Task<MeshController[]> StartAsync(int managers, Func<IMeshStore> open, List<IMeshStore> stores)
    {
        var controllers = new MeshController[managers];
        for (var i = 0; i < managers; i++)
        {
            var store = open();
            stores.Add(store);
            // Link reports are given once and never repeated here: they must not age out while a slow step runs.
            controllers[i] = new MeshController(new ManagerOptions { LinkReportMaxAge = TimeSpan.FromHours(1) }, NullLogger.Instance);
            controllers[i].UseStore(store, $"127.0.0.1:{6000 + i}");
            controllers[i].Start();
        }

        try
        {
            await WaitAsync(() => controllers.All(c => c.Shared!.Synchronized && c.Shared.LiveManagers.Count == managers), TimeSpan.FromSeconds(30));
        }
        catch (TimeoutException)
        {
            Console.Error.WriteLine($"start: synchronized {string.Join(",", controllers.Select(c => c.Shared!.Synchronized))}, managers {string.Join(",", controllers.Select(c => c.Shared!.LiveManagers.Count))}, pending {string.Join(",", controllers.Select(c => c.Shared!.PendingWrites))}");
            throw;
        }
        return controllers;
    }

    private static async Task StopAsync(MeshController[] controllers, List<IMeshStore> stores)
    {
        foreach (var c in controllers)
        {
            await c.DisposeAsync();
        }

        foreach (var s in stores)
        {
            await s.DisposeAsync();
        }
    }

    private static async Task<double> RegistrationsAsync(int managers, int n, Func<IMeshStore> open)
    {
        var stores = new List<IMeshStore>();
        var controllers = await StartAsync(managers, open, stores);
        var watch = Stopwatch.StartNew();
        for (var i = 0; i < n; i++)
        {
            controllers[i % managers].NodeConnected(Key(i), $"127.0.0.1:{10000 + (i % 50000)}", new Sink());
        }

        await WaitAsync(() => controllers.All(c => c.Shared!.PendingWrites == 0 && c.Nodes.OnlineKeys().Count == n), TimeSpan.FromMinutes(5));
        var rate = n / watch.Elapsed.TotalSeconds;
        await StopAsync(controllers, stores);
        return rate;
    }

    private static async Task<double> RouteSetUpsAsync(int managers, int count, Func<IMeshStore> open)
    {
        var stores = new List<IMeshStore>();
        var controllers = await StartAsync(managers, open, stores);
        // a (M0) - r1 - r2 - b; with 2 managers r1, r2 and b are on M1.
        var chain = Enumerable.Range(0, 4).Select(Key).ToArray();
        for (var i = 0; i < chain.Length; i++)
        {
            controllers[i == 0 ? 0 : managers - 1].NodeConnected(chain[i], $"127.0.0.1:{20000 + i}", new Sink());
        }

        await WaitAsync(() => controllers.All(c => chain.All(c.Nodes.IsOnline)), TimeSpan.FromSeconds(30));
        for (var i = 0; i < chain.Length; i++)
        {
            var peers = new[] { i - 1, i + 1 }.Where(p => p >= 0 && p < chain.Length).Select(p => new LinkState { Peer = chain[p].ToString(), Up = true, RttMicros = 500 });
            controllers[i == 0 ? 0 : managers - 1].ReportLinks(chain[i], new LinkReportMessage { Links = [.. peers] });
        }

        await WaitAsync(() => controllers.All(c => RoutePlanner.FindPath(c.Graph(), chain[0], chain[^1]) is not null), TimeSpan.FromSeconds(30));
        var watch = Stopwatch.StartNew();
        var next = 0;
        await Task.WhenAll(Enumerable.Range(0, 8).Select(_ => Task.Run(async () =>
        {
            while (Interlocked.Increment(ref next) <= count)
            {
                await controllers[0].BuildRouteAsync(chain[0], chain[^1], CancellationToken.None);
            }
        })));
        var rate = count / watch.Elapsed.TotalSeconds;
        await StopAsync(controllers, stores);
        return rate;
    }

    private static async Task<TimeSpan> FailoverAsync(Func<IMeshStore> open, int nodes)
    {
        using var key = KeyPair.Generate();
        var options = new ManagerOptions { Listen = new IPEndPoint(IPAddress.Loopback, 0), ReportInterval = TimeSpan.FromMilliseconds(200) };
        var stores = new[] { open(), open() };
        var managers = stores.Select(s => new ManagerServer(key, options with { Store = s })).ToArray();
        foreach (var m in managers)
        {
            m.Start();
        }

        var addresses = managers.Select(m => new ManagerAddress(m.LocalEndPoint, key.Public)).ToArray();
        var hosts = new List<NodeHost>();
        for (var i = 0; i < nodes; i++)
        {
            var host = new NodeHost(KeyPair.Generate(), new NodeOptions { Manager = addresses[0], AlternateManagers = [addresses[1]], ReconnectDelay = TimeSpan.FromMilliseconds(100), MaxReconnectDelay = TimeSpan.FromSeconds(1) });
            await host.StartAsync();
            hosts.Add(host);
        }

        await WaitAsync(() => hosts.All(h => managers[1].Controller.Nodes.IsOnline(h.PublicKey)), TimeSpan.FromSeconds(30));
        var watch = Stopwatch.StartNew();
        await managers[0].DisposeAsync();
        await WaitAsync(() => hosts.All(h => h.ManagerConnected && managers[1].Controller.LocalChannel(h.PublicKey) is not null), TimeSpan.FromSeconds(60));
        var elapsed = watch.Elapsed;
        foreach (var h in hosts)
        {
            await h.DisposeAsync();
        }

        await managers[1].DisposeAsync();
        foreach (var s in stores)
        {
            await s.DisposeAsync();
        }

        return elapsed;
    }

    private static async Task<(TimeSpan Load, TimeSpan Plan)> BigRegistryAsync(IMeshStore writer, IMeshStore store, int n)
    {
        // Another manager's nodes: presence and a ring with chords (4 links each), written straight to the store.
        writer.Start();
        await WaitAsync(() => writer is not EtcdStore etcdWriter || etcdWriter.HasSession, TimeSpan.FromSeconds(30));
        var ops = new List<StoreOp>();
        for (var i = 0; i < n; i++)
        {
            var node = Key(i);
            int[] peers = [(i + 1) % n, (i + n - 1) % n, (i + 97) % n, (i + n - 97) % n];
            ops.Add(StoreOp.Put(MeshStoreCodec.PresenceKey(node), MeshStoreCodec.Encode(new PresenceValue { Manager = "bulk", Link = $"127.0.0.1:{1 + (i % 60000)}" }), leased: true));
            ops.Add(StoreOp.Put(MeshStoreCodec.LinksKey(node), MeshStoreCodec.Encode(new LinksValue
            {
                Manager = "bulk",
                Links = [.. peers.Select(p => new LinkValue { Peer = Key(p).ToString(), Up = true, Rtt = 500 + (p % 7) * 100 })],
            }), leased: true));
            if (ops.Count >= 120)
            {
                await writer.TransactAsync(new StoreTransaction([], ops), CancellationToken.None);
                ops = [];
            }
        }

        if (ops.Count > 0)
        {
            await writer.TransactAsync(new StoreTransaction([], ops), CancellationToken.None);
        }

        await writer.TransactAsync(StoreTransaction.Write(StoreOp.Put(MeshStoreCodec.ManagerKey("bulk"), [0x7b, 0x7d], leased: true)), CancellationToken.None);
        var controller = new MeshController(new ManagerOptions { Limits = ManagerLimits.Default with { MaxOfflineNodes = n } }, NullLogger.Instance);
        controller.UseStore(store, "127.0.0.1:6100");
        var watch = Stopwatch.StartNew();
        controller.Start();
        // Links.Count, not Snapshot(): polling a sorted copy of 400 000 reports every few ms slowed the load it measures.
        await WaitAsync(() => controller.Shared!.Synchronized && controller.Links.Count >= 4 * n, TimeSpan.FromMinutes(30));
        var load = watch.Elapsed;
        var graph = controller.Graph();
        watch.Restart();
        const int Plans = 5;
        for (var i = 0; i < Plans; i++)
        {
            _ = RoutePlanner.FindPath(graph, Key(i * 7), Key(n / 2 + i)) ?? throw new InvalidOperationException(
                $"no path in the big graph from {i * 7} to {n / 2 + i}: {graph.LinkCount} routable links, {controller.Nodes.OnlineKeys().Count} nodes online, " +
                $"{controller.Links.Snapshot().Count} reports, ends in the graph: {graph.Contains(Key(i * 7))} {graph.Contains(Key(n / 2 + i))}");
        }

        var plan = watch.Elapsed / Plans;
        await controller.DisposeAsync();
        await store.DisposeAsync();
        await writer.DisposeAsync();
        return (load, plan);
    }

    private static async Task WaitAsync(Func<bool> condition, TimeSpan limit)
    {
        var deadline = DateTime.UtcNow + limit;
        while (!condition())
        {
            if (DateTime.UtcNow > deadline)
            {
                throw new TimeoutException("benchmark step did not finish in time");
            }

            await Task.Delay(5);
        }
    }
}
