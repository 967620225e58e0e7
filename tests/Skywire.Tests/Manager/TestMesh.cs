using System.Collections.Concurrent;
using Microsoft.Extensions.Time.Testing;
using Skywire.Core.Channels;
using Skywire.Core.Manager;
using Skywire.Protocol;
using Skywire.Protocol.Control;
using Skywire.TestKit.Logging;

namespace Skywire.Tests.Manager;

/// <summary>A node as the controller sees it: records every command, answers at once (or fails on request).</summary>
internal sealed class FakeNode(PubKey key) : INodeChannel
{
    public PubKey Key { get; } = key;
    public ConcurrentDictionary<(string InLink, uint InRoute), RuleMessage> Rules { get; } = new();
    public ConcurrentDictionary<ulong, SessionRouteMessage> Sessions { get; } = new();
    public ConcurrentBag<OpenLinkMessage> LinkRequests { get; } = [];
    public ConcurrentBag<ulong> Closed { get; } = [];
    public int FailSessionRoutes { get; set; }

    /// <summary>When set, session routes wait for it (a node slow to answer).</summary>
    public Task? Hold { get; set; }

    public Task OpenLinkAsync(OpenLinkMessage message, CancellationToken cancellationToken)
    {
        LinkRequests.Add(message);
        return Task.CompletedTask;
    }

    public ConcurrentBag<CloseLinkMessage> LinkCloses { get; } = [];

    public Task CloseLinkAsync(CloseLinkMessage message, CancellationToken cancellationToken)
    {
        LinkCloses.Add(message);
        return Task.CompletedTask;
    }

    public Task InstallRulesAsync(InstallRulesMessage message, CancellationToken cancellationToken)
    {
        foreach (var r in message.Rules)
        {
            Rules[(r.InLink, r.InRoute)] = r;
        }

        return Task.CompletedTask;
    }

    public Task RemoveRulesAsync(RemoveRulesMessage message, CancellationToken cancellationToken)
    {
        foreach (var r in message.Rules)
        {
            Rules.TryRemove((r.InLink, r.InRoute), out _);
        }

        return Task.CompletedTask;
    }

    public async Task SessionRouteAsync(SessionRouteMessage message, CancellationToken cancellationToken)
    {
        if (Hold is { } hold)
        {
            await hold.WaitAsync(cancellationToken);
        }

        if (FailSessionRoutes > 0)
        {
            FailSessionRoutes--;
            throw new ControlException(ControlErrorCode.Unavailable, "simulated timeout");
        }

        Sessions[message.SessionId] = message;
    }

    public Task RouteClosedAsync(RouteCloseMessage message, CancellationToken cancellationToken)
    {
        Closed.Add(message.SessionId);
        return Task.CompletedTask;
    }
}

/// <summary>
/// A <see cref="MeshController"/> with fake nodes named by one hex character ('a' is the key 02aaaa…), a fake clock and a
/// <see cref="TestLog"/> that fails the test on an unexpected error log when the mesh is disposed.
/// </summary>
internal sealed class TestMesh : IAsyncDisposable
{
    private readonly TestLog _log;

    public TestMesh(string names, string links, ManagerOptions? options = null)
    {
        _log = new TestLog(TestContext.Current.TestOutputHelper is { } output ? output.WriteLine : null);
        Clock = new FakeTimeProvider(DateTimeOffset.Parse("2026-01-01T00:00:00Z", System.Globalization.CultureInfo.InvariantCulture));
        Controller = new MeshController((options ?? new ManagerOptions()) with { TimeProvider = Clock }, _log.CreateLogger("MeshController"));
        foreach (var c in names)
        {
            Add(c);
        }

        // links: "ab bc" = links reported up by both ends (0.5 ms)
        Report(links);
    }

    public MeshController Controller { get; }

    public FakeTimeProvider Clock { get; }

    public Dictionary<char, FakeNode> Nodes { get; } = [];

    public TestLog Log => _log;

    public FakeNode this[char name] => Nodes[name];

    public static PubKey Key(char c) => PubKey.Parse("02" + new string(c, 64));

    public FakeNode Add(char name)
    {
        var node = new FakeNode(Key(name));
        Nodes[name] = node;
        Controller.NodeConnected(node.Key, "127.0.0.1:" + (1000 + name), node);
        return node;
    }

    /// <summary>Every node named in <paramref name="links"/> ("ab bc") reports exactly those of its links, up, 0.5 ms.</summary>
    public void Report(string links)
    {
        var reports = new Dictionary<char, List<LinkState>>();
        foreach (var pair in links.Split(' ', StringSplitOptions.RemoveEmptyEntries))
        {
            foreach (var (x, y) in new[] { (pair[0], pair[1]), (pair[1], pair[0]) })
            {
                if (!reports.TryGetValue(x, out var list))
                {
                    reports[x] = list = [];
                }

                list.Add(new LinkState { Peer = Key(y).ToString(), Up = true, RttMicros = 500 });
            }
        }

        foreach (var (n, list) in reports)
        {
            Controller.ReportLinks(Key(n), new LinkReportMessage { Links = list });
        }
    }

    /// <summary>Node <paramref name="from"/> reports these links only (peer, rtt µs, up).</summary>
    public void ReportOf(char from, params (char Peer, long RttMicros, bool Up)[] links) =>
        Controller.ReportLinks(Key(from), new LinkReportMessage { Links = [.. links.Select(l => new LinkState { Peer = Key(l.Peer).ToString(), Up = l.Up, RttMicros = l.RttMicros })] });

    /// <summary>Follows the labels hop by hop from an end's session route; returns the node names visited.</summary>
    public string Walk(ulong session, char from)
    {
        var byKey = Nodes.ToDictionary(n => n.Value.Key.ToString(), n => n.Key);
        var s = Nodes[from].Sessions[session];
        var visited = new List<char> { from };
        var prev = Nodes[from].Key.ToString();
        var link = s.OutLink;
        var label = s.OutRoute;
        for (var hops = 0; hops < 16; hops++)
        {
            var name = byKey[link];
            var node = Nodes[name];
            visited.Add(name);
            if (node.Rules.TryGetValue((prev, label), out var rule))
            {
                prev = node.Key.ToString();
                link = rule.OutLink;
                label = rule.OutRoute;
                continue;
            }

            // must be the other end, expecting exactly this label on this link
            var end = node.Sessions[session];
            Assert.Equal(prev, end.InLink);
            Assert.Equal(label, end.InRoute);
            return new string([.. visited]);
        }

        throw new InvalidOperationException("loop");
    }

    /// <summary>The node names of a path of keys.</summary>
    public string Names(IEnumerable<string> path) => new([.. path.Select(k => Nodes.Single(n => n.Value.Key.ToString() == k).Key)]);

    /// <inheritdoc cref="Names(IEnumerable{string})"/>
    public string Names(IEnumerable<PubKey> path) => Names(path.Select(p => p.ToString()));

    public async ValueTask DisposeAsync()
    {
        await Controller.DisposeAsync();
        _log.Dispose();
    }
}
