using System.Text;
using Microsoft.Extensions.Time.Testing;
using Skywire.Core.Channels;
using Skywire.Core.Manager;
using Skywire.Core.Manager.Store;
using Skywire.Protocol;
using Skywire.Protocol.Control;
using Skywire.TestKit.Logging;

namespace Skywire.Tests.Manager;

/// <summary>
/// Two managers' controllers sharing one store (the embedded one, each with its own session; no sockets): label
/// uniqueness under concurrent route set-up from both, hostile values written by another store client, the store's own
/// transaction and persistence rules.
/// </summary>
public class MeshStoreTests
{
    private static readonly TimeSpan Limit = TimeSpan.FromSeconds(30);

    private static Action<string>? Output() => TestContext.Current.TestOutputHelper is { } output ? output.WriteLine : null;

    /// <summary>Random labels from a tiny space, unique in memory: collisions between managers are frequent.</summary>
    private sealed class TinyLabels(int space, int seed) : ILabelAllocator
    {
        private readonly HashSet<(PubKey, PubKey, uint)> _used = [];
        private readonly Random _random = new(seed);

        public uint Allocate(PubKey node, PubKey inLink)
        {
            lock (_used)
            {
                for (var i = 0; i < 1000; i++)
                {
                    var label = (uint)_random.Next(1, space + 1);
                    if (_used.Add((node, inLink, label)))
                    {
                        return label;
                    }
                }

                throw new ControlException(ControlErrorCode.LimitExceeded, "label space exhausted");
            }
        }

        public void Release(PubKey node, PubKey inLink, uint label)
        {
            lock (_used)
            {
                _used.Remove((node, inLink, label));
            }
        }
    }

    private static async Task WaitAsync(Func<bool> condition, string what)
    {
        var deadline = DateTime.UtcNow + Limit;
        while (!condition())
        {
            Assert.True(DateTime.UtcNow < deadline, "timed out waiting for: " + what);
            await Task.Delay(10);
        }
    }

    /// <summary>
    /// Relay e with ends a, b on manager 0 and c, d on manager 1 (links a-e, b-e, c-e, d-e). Both managers build routes
    /// in both directions at once, drawing labels from a space of a few values: every route that was made holds labels no
    /// other live route holds on the same (node, incoming link), in both managers' tables and in the store.
    /// </summary>
    [Theory]
    [InlineData(6, 1)]
    [InlineData(10, 2)]
    [InlineData(16, 3)]
    [InlineData(40, 4)]
    public async Task Labels_NeverCollide_UnderConcurrentRouteSetUpFromTwoManagers(int space, int seed)
    {
        using var log = new TestLog(Output());
        await using var store = new EmbeddedStore();
        var sessions = new[] { store.OpenSession(), store.OpenSession() };
        var managers = new MeshController[2];
        for (var i = 0; i < 2; i++)
        {
            managers[i] = new MeshController(new ManagerOptions(), log.CreateLogger($"M{i}"), new TinyLabels(space, seed * 10 + i));
            managers[i].UseStore(sessions[i], $"127.0.0.1:{5990 + i}");
            managers[i].Start();
        }

        try
        {
            var names = new[] { ('a', 0), ('b', 0), ('e', 0), ('c', 1), ('d', 1) };
            foreach (var (name, owner) in names)
            {
                managers[owner].NodeConnected(TestMesh.Key(name), $"127.0.0.1:{1000 + name}", new FakeNode(TestMesh.Key(name)));
            }

            await WaitAsync(() => managers.All(m => names.All(n => m.Nodes.IsOnline(TestMesh.Key(n.Item1)))), "every node online on both managers");
            foreach (var (name, owner) in names)
            {
                var peers = name == 'e' ? "abcd" : "e";
                managers[owner].ReportLinks(TestMesh.Key(name), new LinkReportMessage
                {
                    Links = [.. peers.Select(p => new LinkState { Peer = TestMesh.Key(p).ToString(), Up = true, RttMicros = 500 })],
                });
            }

            await WaitAsync(() => managers.All(m => m.Graph().HasLink(TestMesh.Key('a'), TestMesh.Key('e')) && m.Graph().HasLink(TestMesh.Key('e'), TestMesh.Key('d'))), "links routed by both managers");

            var random = new Random(seed);
            var builds = new List<Task>();
            for (var i = 0; i < 24; i++)
            {
                var (m, from, to) = random.Next(4) switch
                {
                    0 => (0, 'a', 'c'),
                    1 => (0, 'b', 'd'),
                    2 => (1, 'c', 'a'),
                    _ => (1, 'd', 'b'),
                };
                builds.Add(Task.Run(async () =>
                {
                    try
                    {
                        await managers[m].BuildRouteAsync(TestMesh.Key(from), TestMesh.Key(to), CancellationToken.None);
                    }
                    catch (ControlException ex) when (ex.Code is ControlErrorCode.Unavailable or ControlErrorCode.LimitExceeded)
                    {
                        // The label space ran out: refused, never doubled.
                    }
                }));
            }

            await Task.WhenAll(builds).WaitAsync(Limit);
            var live = managers.SelectMany(m => m.Routes.Snapshot()).ToList();
            Assert.NotEmpty(live);
            var labels = live.SelectMany(r => r.Plan.Labels()).ToList();
            Assert.Equal(labels.Count, labels.Distinct().Count());

            // The store holds exactly those labels, each naming its route.
            var stored = (await store.ReadAsync(MeshStoreCodec.Labels, CancellationToken.None)).Entries;
            Assert.Equal(labels.Select(l => MeshStoreCodec.LabelKey(l.Node, l.InLink, l.Label)).Order(StringComparer.Ordinal), stored.Select(e => e.Key).Order(StringComparer.Ordinal));
            Assert.Equal(live.Count, (await store.ReadAsync(MeshStoreCodec.Routes, CancellationToken.None)).Entries.Count);
        }
        finally
        {
            foreach (var manager in managers)
            {
                await manager.DisposeAsync();
            }
        }
    }

    /// <summary>
    /// Another client of the store writes garbage under every prefix: each value is ignored (counted), nothing throws,
    /// and what a manager writes afterwards is applied as before. The garbage reaches the manager either change by
    /// change (its watch runs already) or in its watch's first snapshot (written before it started, or before its watch
    /// got going on a loaded machine: that order once lost the answers to the hostile commands).
    /// </summary>
    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task HostileValues_AreIgnored_AndTheManagerKeepsWorking(bool writtenBeforeTheWatch)
    {
        using var log = new TestLog(Output());
        await using var store = new EmbeddedStore();
        await using var manager = new MeshController(new ManagerOptions(), log.CreateLogger("M0"));
        var sync = manager.UseStore(store.OpenSession(), "127.0.0.1:5990");
        if (!writtenBeforeTheWatch)
        {
            manager.Start();
        }

        var local = new FakeNode(TestMesh.Key('a'));
        manager.NodeConnected(local.Key, "127.0.0.1:1001", local);
        var hostile = store.OpenSession();
        var random = new Random(17);
        var prefixes = new[] { "managers/", "nodes/", "presence/", "links/", "apps/", "routes/", "labels/", "cmd/", "ack/", "", "x/" };
        var node = TestMesh.Key('b').ToString();
        var crafted = new (string Key, string Value)[]
        {
            ("presence/" + node, "{\"manager\":\"evil\",\"link\":\"not an address\"}"),
            ("presence/" + node, "[]"),
            ("presence/zz", "{\"manager\":\"evil\",\"link\":\"127.0.0.1:9\"}"),
            ("links/" + node, "{\"manager\":\"evil\",\"links\":[null,{\"peer\":\"nope\"}]}"),
            ("apps/" + node + "/" + new string('x', 500), "{\"manager\":\"evil\",\"type\":\"a b\"}"),
            ("apps/" + node + "/ok", "{\"manager\":\"evil\",\"type\":\"" + new string('t', 300) + "\"}"),
            ("routes/0000000000000000", "{\"owner\":\"evil\",\"path\":[],\"forward\":[],\"reverse\":[]}"),
            ("routes/00000000000000ff", "{\"owner\":\"evil\",\"path\":[\"" + node + "\",\"" + node + "\"],\"forward\":[0,1],\"reverse\":[1,0]}"),
            ("routes/00000000000000fe", "{\"owner\":\"evil\",\"path\":[\"" + node + "\"],\"forward\":[0,4294967295],\"reverse\":[1]}"),
            ("cmd/" + local.Key + "/x1", "{\"from\":\"evil\",\"op\":\"format-disk\",\"message\":{}}"),
            ("cmd/" + local.Key + "/x2", "{\"from\":\"evil\",\"op\":\"install-rules\",\"message\":{\"rules\":\"no\"}}"),
            ("cmd/" + local.Key + "/x3", "{\"from\":\"evil\",\"op\":\"install-rules\",\"message\":null}"),
            ("ack/unknown", "{\"ok\":true}"),
        };
        foreach (var (key, value) in crafted)
        {
            await hostile.TransactAsync(StoreTransaction.Write(StoreOp.Put(key, Encoding.UTF8.GetBytes(value))), CancellationToken.None);
        }

        for (var i = 0; i < 300; i++)
        {
            var key = prefixes[random.Next(prefixes.Length)] + RandomText(random);
            var value = new byte[random.Next(0, 2048)];
            random.NextBytes(value);
            await hostile.TransactAsync(StoreTransaction.Write(StoreOp.Put(key, value)), CancellationToken.None);
        }

        if (writtenBeforeTheWatch)
        {
            manager.Start();
        }

        // A well-formed presence written after the garbage is applied: the watch is still running.
        await hostile.TransactAsync(StoreTransaction.Write(StoreOp.Put("presence/" + TestMesh.Key('c'), MeshStoreCodec.Encode(new PresenceValue { Manager = "other", Link = "127.0.0.1:1003" }))), CancellationToken.None);
        await WaitAsync(() => manager.Nodes.IsOnline(TestMesh.Key('c')), "a valid presence after the garbage");
        Assert.True(sync.IgnoredValues > 0);
        Assert.False(manager.Nodes.IsOnline(TestMesh.Key('b')));
        Assert.Empty(local.Rules);
        Assert.Empty(manager.Routes.Snapshot());
        Assert.True(manager.Nodes.IsOnline(local.Key));

        // Unknown or malformed commands are answered as errors, never run.
        string[] answers = ["ack/x1", "ack/x2", "ack/x3"];
        await WaitAsync(() => store.ReadAsync("ack/x", CancellationToken.None).Result.Entries.Count(e => answers.Contains(e.Key)) == 3, "three error answers");
        foreach (var ack in (await store.ReadAsync("ack/x", CancellationToken.None)).Entries.Where(e => answers.Contains(e.Key)))
        {
            var answer = MeshStoreCodec.TryDecode<AckValue>(ack.Value);
            Assert.NotNull(answer);
            Assert.False(answer.Ok);
            Assert.Equal((int)ControlErrorCode.BadRequest, answer.Code);
        }
    }

    /// <summary>
    /// The link report of another manager's node holds while its key does, however long ago it arrived. Reports were
    /// once stamped with the receiving manager's clock and re-stamped by a pass over all of them each maintenance tick,
    /// with a time taken before the pass: at 100 000 nodes on a loaded machine the pass outlasted the report age and a
    /// registry loaded from etcd had no routable link (bench/store-bench.sh). Here the manager's clock jumps well past
    /// the age with no maintenance tick in between: the link still routes, and what changes or removes the key (a report
    /// of the link down, the key deleted) still ends it.
    /// </summary>
    [Fact]
    public async Task RemoteLinkReports_HoldWhileTheirKeyDoes_HoweverOldTheyAre()
    {
        using var log = new TestLog(Output());
        await using var store = new EmbeddedStore();
        var time = new FakeTimeProvider(DateTimeOffset.UtcNow);
        var options = new ManagerOptions { TimeProvider = time };
        await using var manager = new MeshController(options, log.CreateLogger("M1"));
        var sync = manager.UseStore(store.OpenSession(), "127.0.0.1:5991");
        sync.Start(); // the watch, without the maintenance loop: no tick runs while the clock jumps
        var other = store.OpenSession();
        var (a, b) = (TestMesh.Key('a'), TestMesh.Key('b'));
        Task Write(params StoreOp[] ops) => other.TransactAsync(StoreTransaction.Write(ops), CancellationToken.None);
        StoreOp Links(PubKey node, PubKey peer, bool up) => StoreOp.Put(MeshStoreCodec.LinksKey(node), MeshStoreCodec.Encode(new LinksValue
        {
            Manager = "other",
            Links = [new LinkValue { Peer = peer.ToString(), Up = up, Rtt = 500 }],
        }));

        await Write(
            StoreOp.Put(MeshStoreCodec.PresenceKey(a), MeshStoreCodec.Encode(new PresenceValue { Manager = "other", Link = "127.0.0.1:1001" })),
            StoreOp.Put(MeshStoreCodec.PresenceKey(b), MeshStoreCodec.Encode(new PresenceValue { Manager = "other", Link = "127.0.0.1:1002" })));
        await WaitAsync(() => manager.Nodes.IsOnline(a) && manager.Nodes.IsOnline(b), "both nodes of the other manager online");
        await Write(Links(a, b, up: true), Links(b, a, up: true));
        await WaitAsync(() => manager.Graph().HasLink(a, b), "the other manager's link routable");

        time.Advance(options.LinkReportMaxAge * 3);
        Assert.True(manager.Graph().HasLink(a, b), "a report held by the store aged out on this manager's clock");
        Assert.True(Assert.Single(manager.ListLinks().Links, l => l.From == a.ToString()).Confirmed);

        await Write(Links(a, b, up: false));
        await WaitAsync(() => !manager.Graph().HasLink(a, b), "the link reported down");
        await Write(Links(a, b, up: true));
        await WaitAsync(() => manager.Graph().HasLink(a, b), "the link reported up again");
        await Write(StoreOp.Delete(MeshStoreCodec.LinksKey(b)));
        await WaitAsync(() => !manager.Graph().HasLink(a, b), "one end's report gone with its key");
    }

    [Fact]
    public void Codec_RandomBytesAndKeys_NeverThrow()
    {
        var random = new Random(5);
        for (var i = 0; i < 2000; i++)
        {
            var bytes = new byte[random.Next(0, 300)];
            random.NextBytes(bytes);
            if (i % 3 == 0)
            {
                bytes = Encoding.UTF8.GetBytes("{\"path\":[" + string.Join(",", bytes.Take(5).Select(b => b.ToString(System.Globalization.CultureInfo.InvariantCulture))) + "],\"owner\":1}");
            }

            _ = MeshStoreCodec.TryDecode<RouteValue>(bytes);
            _ = MeshStoreCodec.TryDecode<PresenceValue>(bytes);
            _ = MeshStoreCodec.TryDecode<LinksValue>(bytes);
            _ = MeshStoreCodec.TryDecode<CommandValue>(bytes);
            var key = RandomText(random);
            _ = MeshStoreCodec.LabelOf("labels/" + key);
            _ = MeshStoreCodec.AppOf("apps/" + key);
            _ = MeshStoreCodec.RouteOf("routes/" + key);
            _ = MeshStoreCodec.CommandOf("cmd/" + key);
            _ = MeshStoreCodec.NodeOf("presence/" + key, "presence/");
        }

        Assert.Null(MeshStoreCodec.TryDecode<RouteValue>(new byte[MeshStoreCodec.MaxValueBytes + 1]));
        Assert.Null(RoutePlan.FromLabels(1, [TestMesh.Key('a'), TestMesh.Key('a')], [0, 1], [1, 0]));
        Assert.Null(RoutePlan.FromLabels(1, [TestMesh.Key('a'), TestMesh.Key('b')], [0, 0], [1, 0]));
        Assert.NotNull(RoutePlan.FromLabels(1, [TestMesh.Key('a'), TestMesh.Key('b')], [0, 7], [9, 0]));
    }

    [Fact]
    public async Task EmbeddedStore_Transactions_CompareAndSet()
    {
        await using var store = new EmbeddedStore();
        Assert.True(await store.TransactAsync(new StoreTransaction([StoreCompare.IsAbsent("k")], [StoreOp.Put("k", [1])]), CancellationToken.None));
        Assert.False(await store.TransactAsync(new StoreTransaction([StoreCompare.IsAbsent("k")], [StoreOp.Put("k", [2])]), CancellationToken.None));
        var entry = Assert.Single((await store.ReadAsync("k", CancellationToken.None)).Entries);
        Assert.Equal(new byte[] { 1 }, entry.Value);
        Assert.False(await store.TransactAsync(new StoreTransaction([StoreCompare.WrittenAt("k", entry.ModRevision + 1)], [StoreOp.Delete("k")]), CancellationToken.None));
        Assert.False(await store.TransactAsync(new StoreTransaction([StoreCompare.Holds("k", [2])], [StoreOp.Delete("k")]), CancellationToken.None));
        Assert.True(await store.TransactAsync(new StoreTransaction([StoreCompare.WrittenAt("k", entry.ModRevision), StoreCompare.Holds("k", [1])], [StoreOp.Delete("k")]), CancellationToken.None));
        Assert.Empty((await store.ReadAsync("", CancellationToken.None)).Entries);
        await Assert.ThrowsAsync<StoreUnavailableException>(() => store.TransactAsync(StoreTransaction.Write([.. Enumerable.Range(0, 129).Select(i => StoreOp.Put($"k{i}", [1]))]), CancellationToken.None));
    }

    [Fact]
    public async Task EmbeddedStore_File_KeepsWhatIsNotLeased_AcrossARestart()
    {
        var folder = Directory.CreateTempSubdirectory("skywire-store-").FullName;
        try
        {
            var file = Path.Combine(folder, "state.json");
            await using (var store = new EmbeddedStore(file))
            {
                await store.TransactAsync(StoreTransaction.Write(StoreOp.Put("routes/1", [1, 2, 3]), StoreOp.Put("presence/x", [4], leased: true)), CancellationToken.None);
            }

            if (!OperatingSystem.IsWindows())
            {
                Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(file));
            }

            await using (var again = new EmbeddedStore(file))
            {
                var entries = (await again.ReadAsync("", CancellationToken.None)).Entries;
                var route = Assert.Single(entries);
                Assert.Equal("routes/1", route.Key);
                Assert.Equal(new byte[] { 1, 2, 3 }, route.Value);
            }

            await File.WriteAllTextAsync(file, "{ not json", TestContext.Current.CancellationToken);
            var refused = Assert.Throws<StoreUnavailableException>(() => new EmbeddedStore(file));
            Assert.Contains(file, refused.Message, StringComparison.Ordinal);
        }
        finally
        {
            Directory.Delete(folder, recursive: true);
        }
    }

    [Fact]
    public async Task EmbeddedStore_Watch_StartsWithASnapshot_ThenEveryChange_AndASessionEndDeletesItsLeasedKeys()
    {
        await using var store = new EmbeddedStore();
        var session = store.OpenSession();
        await store.TransactAsync(StoreTransaction.Write(StoreOp.Put("a/1", [1])), CancellationToken.None);
        using var cts = new CancellationTokenSource(Limit);
        await using var watch = store.WatchAsync("a/", cts.Token).GetAsyncEnumerator(cts.Token);
        Assert.True(await watch.MoveNextAsync());
        Assert.Equal(StoreChangeKind.Snapshot, watch.Current.Kind);
        Assert.Equal("a/1", Assert.Single(watch.Current.Snapshot!.Entries).Key);
        await session.TransactAsync(StoreTransaction.Write(StoreOp.Put("a/2", [2], leased: true), StoreOp.Put("b/1", [3])), CancellationToken.None);
        Assert.True(await watch.MoveNextAsync());
        Assert.Equal((StoreChangeKind.Put, "a/2"), (watch.Current.Kind, watch.Current.Entry!.Key));
        await session.DisposeAsync();
        Assert.True(await watch.MoveNextAsync());
        Assert.Equal((StoreChangeKind.Delete, "a/2"), (watch.Current.Kind, watch.Current.Entry!.Key));
        Assert.Equal(new byte[] { 2 }, watch.Current.Entry.Value);
        await Assert.ThrowsAsync<StoreUnavailableException>(() => session.TransactAsync(StoreTransaction.Write(StoreOp.Put("a/3", [3])), CancellationToken.None));
    }

    [Theory]
    [InlineData("etcd://127.0.0.1:2379", "/skywire/v1/", 1)]
    [InlineData("etcd://10.0.0.1:2379,10.0.0.2:2379,etcd3:2379/mesh-a", "/mesh-a/", 3)]
    public void EtcdAddress_Parses(string text, string prefix, int members)
    {
        var options = EtcdStoreOptions.Parse(text);
        Assert.Equal(prefix, options.Prefix);
        Assert.Equal(members, options.Endpoints.Count);
    }

    [Theory]
    [InlineData("http://127.0.0.1:2379")]
    [InlineData("etcd://")]
    [InlineData("etcd://host")]
    [InlineData("etcd://host:99999")]
    public void EtcdAddress_Malformed_IsRefused(string text) => Assert.Throws<FormatException>(() => EtcdStoreOptions.Parse(text));

    private static string RandomText(Random random)
    {
        const string alphabet = "0123456789abcdef/xyz-\u0001 \u00e9";
        var chars = new char[random.Next(0, 140)];
        for (var i = 0; i < chars.Length; i++)
        {
            chars[i] = alphabet[random.Next(alphabet.Length)];
        }

        return random.Next(4) == 0 ? TestMesh.Key('e') + "/" + new string(chars) : new string(chars);
    }
}
