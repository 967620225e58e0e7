using System.Net;
using System.Text;
using System.Text.RegularExpressions;
using Microsoft.Extensions.Logging.Abstractions;
using Skywire.Core.Control;
using Skywire.Core.Channels;
using Skywire.Core.Crypto;
using Skywire.Core.Messenger;
using Skywire.Protocol;
using Skywire.Protocol.Control;

namespace Skywire.Demo;

/// <summary>
/// <c>skywire demo</c>: a whole local mesh under a headless viscript, brought up step by step through viscript's
/// control API (every component is a viscript app with a sequence id): a messenger, a manager, N nodes linked as a
/// chain (so the only route from the first to the last node crosses every node), a socks-server beside the last
/// node, a socks-client beside the first, and a chat listener on the messenger. Then a page is fetched through the
/// SOCKS proxy across the chain. Interactive: prints a summary and runs until Ctrl+C. <c>--check</c>: verifies the
/// bytes, stops everything and returns 0 or 1.
/// </summary>
internal sealed partial class DemoRunner : IAsyncDisposable
{
    /// <summary>Exit codes.</summary>
    public const int Ok = 0, Failed = 1, Usage = 2, Interrupted = 130;

    private const int StepCount = 11;
    private const int MeteringSteps = 1;

    private readonly DemoOptions _options;
    private readonly TextWriter _out;
    private readonly TextWriter _err;
    private readonly DemoProgress _progress;
    private readonly List<Component> _components = [];
    private readonly List<DemoNode> _nodes = [];
    private string _dir = "";
    private string _logs = "";
    private ViscriptChild? _viscript;
    private string _viscriptPath = "";
    private IPEndPoint _managerEndPoint = new(IPAddress.Loopback, 0);
    private IPEndPoint _messengerEndPoint = new(IPAddress.Loopback, 0);
    private IPEndPoint _socksEndPoint = new(IPAddress.Loopback, 0);
    private PubKey _managerKey;
    private PubKey _messengerKey;
    private KeyPair? _operator;
    private DemoWebServer? _web;
    private RouteInfo? _route;
    private List<LinkInfo> _links = [];

    public DemoRunner(DemoOptions options, TextWriter output, TextWriter error, bool interactive)
    {
        _options = options;
        _out = output;
        _err = error;
        _progress = new DemoProgress(output, interactive, StepCount + (options.Metering ? MeteringSteps : 0) + (options.Vpn ? VpnSteps : 0));
    }

    private sealed record Component(ulong Id, string App, string Role, int? Pid);

    private sealed record DemoNode(string Label, string KeyFile, string TokenFile, PubKey Key)
    {
        public ulong Id { get; set; }
        public IPEndPoint Links { get; set; } = new(IPAddress.Loopback, 0);
        public IPEndPoint Apps { get; set; } = new(IPAddress.Loopback, 0);
        public string Short => Key.ToString()[..12];
    }

    /// <summary>Runs the demo; the exit code of the command.</summary>
    public async Task<int> RunAsync(CancellationToken cancellationToken)
    {
        var temporary = _options.Directory is null && _options.Check;
        _dir = Path.GetFullPath(_options.Directory
            ?? (_options.Check
                ? Path.Combine(Path.GetTempPath(), "skywire-demo-" + Convert.ToHexStringLower(System.Security.Cryptography.RandomNumberGenerator.GetBytes(4)))
                : Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".skywire", "demo")));
        _logs = Path.Combine(_dir, "logs");
        using var dirLock = DemoLock.TryAcquire(_dir, out var holder);
        if (dirLock is null)
        {
            await _err.WriteLineAsync($"error: another skywire demo (pid {holder}) is using {_dir}; stop it (Ctrl+C in its terminal) or give this one its own --dir");
            return Failed;
        }

        var ok = false;
        try
        {
            await BringUpAsync(cancellationToken);
            if (_options.Check)
            {
                ok = true;
            }
            else
            {
                PrintSummary();
                await WaitForStopAsync(cancellationToken);
                ok = true;
            }
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            await _err.WriteLineAsync($"interrupted during: {_progress.Current}");
        }
        catch (DemoStepException ex)
        {
            await ReportFailureAsync(ex.Message);
        }
        catch (Exception ex) when (ex is ControlException or MessengerException or IOException or HttpRequestException or Viscript.Core.Control.ViscriptApiException
            or System.Net.Sockets.SocketException or KeyFileException or UnauthorizedAccessException or TimeoutException)
        {
            await ReportFailureAsync(ex.Message);
        }
        finally
        {
            await StopAllAsync();
        }

        if (_options.Check)
        {
            await _out.WriteLineAsync(ok
                ? $"check passed: {_options.CheckBytes} bytes fetched through the SOCKS proxy across {(_route?.Path.Count ?? 1) - 1} hops, byte-exact{(_options.Vpn ? $"; through the VPN: {_vpnResult}" : "")}; everything stopped ({_progress.Elapsed:0.0} s)"
                : $"check FAILED; logs kept in {_logs}");
            if (ok && temporary)
            {
                TryDelete(_dir);
            }
        }

        return ok ? Ok : cancellationToken.IsCancellationRequested ? Interrupted : Failed;
    }

    private async Task ReportFailureAsync(string message)
    {
        await _err.WriteLineAsync($"error: step '{_progress.Current}' failed: {message}");
        await _err.WriteLineAsync($"  logs: {_logs} (viscript.log is the daemon's own output; <app>-<id>.log one per app)");
    }

    private async Task BringUpAsync(CancellationToken cancellationToken)
    {
        await _progress.StepAsync("prepare keys and viscript config", _ => Task.FromResult(Prepare()), cancellationToken);
        await _progress.StepAsync(_options.Check ? "start viscript (headless)" : "start viscript (with its GUI)", StartViscriptAsync, cancellationToken);
        await _progress.StepAsync("start messenger", StartMessengerAsync, cancellationToken);
        await _progress.StepAsync("start manager", StartManagerAsync, cancellationToken);
        await _progress.StepAsync($"start {_options.Nodes} nodes", StartNodesAsync, cancellationToken);
        await _progress.StepAsync("link the nodes as a chain", LinkChainAsync, cancellationToken);
        await _progress.StepAsync($"start socks-server beside node {_nodes[^1].Label}", StartSocksServerAsync, cancellationToken);
        await _progress.StepAsync($"start socks-client beside node {_nodes[0].Label}", StartSocksClientAsync, cancellationToken);
        await _progress.StepAsync("chat through the messenger", ChatAsync, cancellationToken);
        await _progress.StepAsync("fetch a page through the SOCKS proxy", FetchAsync, cancellationToken);
        await _progress.StepAsync("read the route in use from the manager", ReadRouteAsync, cancellationToken);
        if (_options.Metering)
        {
            await _progress.StepAsync("read the ledger: receipts of every hop, settled", ReadLedgerAsync, cancellationToken);
        }

        if (_options.Vpn)
        {
            await BringUpVpnAsync(cancellationToken);
        }
    }

    private Task<T> Bounded<T>(Func<CancellationToken, Task<T>> run, string what, CancellationToken cancellationToken) =>
        BoundedAsync(run, what, _options.StepTimeout, cancellationToken);

    private static async Task<T> BoundedAsync<T>(Func<CancellationToken, Task<T>> run, string what, TimeSpan timeout, CancellationToken cancellationToken)
    {
        using var deadline = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        deadline.CancelAfter(timeout);
        try
        {
            return await run(deadline.Token);
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            throw new DemoStepException($"timed out after {timeout.TotalSeconds:0} s waiting for {what}");
        }
    }

    // ---- step 1: keys, tokens and the viscript config ----

    private string Prepare()
    {
        if (_options.Nodes is < 3 or > 26)
        {
            throw new DemoStepException("--nodes must be 3 to 26");
        }

        Directory.CreateDirectory(_dir);
        if (Directory.Exists(_logs))
        {
            Directory.Delete(_logs, recursive: true);
        }

        Directory.CreateDirectory(_logs);
        DemoTopology.ClearAddress(_dir);
        var keys = Path.Combine(_dir, "keys");
        using (var manager = KeyFile.LoadOrCreate(Path.Combine(keys, "manager.json")))
        {
            _managerKey = manager.Public;
        }

        using (var messenger = KeyFile.LoadOrCreate(Path.Combine(keys, "messenger.json")))
        {
            _messengerKey = messenger.Public;
        }

        _operator = KeyFile.LoadOrCreate(Path.Combine(keys, "operator.json"));
        for (var i = 0; i < _options.Nodes; i++)
        {
            var label = ((char)('A' + i)).ToString();
            var keyFile = Path.Combine(keys, $"node-{label.ToLowerInvariant()}.json");
            using var key = KeyFile.LoadOrCreate(keyFile);
            _nodes.Add(new DemoNode(label, keyFile, Path.Combine(_dir, $"node-{label.ToLowerInvariant()}", "app-token"), key.Public));
        }

        _viscriptPath = ViscriptChild.Locate(_options.Viscript, out var tried)
            ?? throw new DemoStepException("viscript not found; tried " + string.Join(", ", tried) + " (build it: dotnet build -c Release, or give --viscript PATH)");
        File.WriteAllText(Path.Combine(_dir, "viscript.yaml"), DemoConfig.Render(SkywireCommand()));
        if (_options.Metering)
        {
            PrepareLedger();
        }

        if (_options.Vpn)
        {
            PrepareVpn();
        }

        return _dir;
    }

    /// <summary>How to run this very skywire: the apphost, or the dotnet host plus skywire.dll.</summary>
    private static (string Path, IReadOnlyList<string> Prefix) SkywireCommand()
    {
        var self = Environment.ProcessPath ?? "dotnet";
        return Path.GetFileNameWithoutExtension(self) == "dotnet"
            ? (self, [typeof(DemoRunner).Assembly.Location])
            : (self, []);
    }

    // ---- step 2: viscript ----

    /// <summary>One word for viscript's command-line splitter (single quotes; a quote inside is closed, double-quoted, reopened).</summary>
    private static string QuoteForViscript(string word) => "'" + word.Replace("'", "'\"'\"'", StringComparison.Ordinal) + "'";

    private async Task<string> StartViscriptAsync(CancellationToken cancellationToken)
    {
        // Interactive: the GUI, its topology view fed by `skywire demo topology`, which waits for the manager (started
        // later, on a port the OS picks). --check stays headless: nobody looks at a page there.
        var (skywire, prefix) = SkywireCommand();
        IReadOnlyList<string> mode = _options.Check
            ? ["--headless"]
            : ["--gui", "--topology-command", string.Join(' ', ((string[])[skywire, .. prefix, "demo", "topology", "--dir", _dir]).Select(QuoteForViscript))];
        _viscript = await ViscriptChild.StartAsync(_viscriptPath, mode, Path.Combine(_dir, "viscript.yaml"), _logs, Path.Combine(_logs, "viscript.log"),
            _options.StepTimeout, cancellationToken);
        return $"pid {_viscript.Pid}, control {_viscript.ControlUrl}";
    }

    private async Task<ulong> StartAppAsync(string app, string role, IReadOnlyList<string> args, CancellationToken cancellationToken)
    {
        var info = await _viscript!.StartAppAsync(app, args, cancellationToken);
        lock (_components)
        {
            _components.Add(new Component(info.Id, app, role, info.Pid));
        }

        return info.Id;
    }

    // ---- steps 3 and 4: messenger and manager ----

    private async Task<string> StartMessengerAsync(CancellationToken cancellationToken)
    {
        var id = await StartAppAsync(DemoConfig.Messenger, "messenger", ["--listen", "127.0.0.1:0", "--key", Path.Combine(_dir, "keys", "messenger.json")], cancellationToken);
        var match = await Bounded(ct => _viscript!.WaitForLineAsync(id, MessengerReady(), ct), "the messenger to listen", cancellationToken);
        _messengerEndPoint = IPEndPoint.Parse(match.Groups["ep"].Value);
        return $"id {id}, {_messengerEndPoint}";
    }

    private async Task<string> StartManagerAsync(CancellationToken cancellationToken)
    {
        var id = await StartAppAsync(DemoConfig.Manager, "manager",
            ["--listen", "127.0.0.1:0", "--key", Path.Combine(_dir, "keys", "manager.json"), "--admin", _operator!.Public.ToString(), "--rule-ttl", "60", .. MeteringArgs()], cancellationToken);
        var match = await Bounded(ct => _viscript!.WaitForLineAsync(id, ManagerReady(), ct), "the manager to listen", cancellationToken);
        _managerEndPoint = IPEndPoint.Parse(match.Groups["ep"].Value);
        DemoTopology.WriteAddress(_dir, $"{_managerKey}@{_managerEndPoint}");
        return $"id {id}, {_managerEndPoint}";
    }

    // ---- step 5: nodes (started together; each waits for its registration line) ----

    private async Task<string> StartNodesAsync(CancellationToken cancellationToken)
    {
        var manager = $"{_managerKey}@{_managerEndPoint}";
        foreach (var node in _nodes)
        {
            node.Id = await StartAppAsync(DemoConfig.Node, $"node {node.Label}",
                ["--manager", manager, "--key", node.KeyFile, "--app-token-file", node.TokenFile, "--listen", "127.0.0.1:0", "--apps", "127.0.0.1:0"], cancellationToken);
        }

        await Bounded(async ct =>
        {
            await Task.WhenAll(_nodes.Select(async node =>
            {
                var match = await _viscript!.WaitForLineAsync(node.Id, NodeReady(), ct);
                node.Links = IPEndPoint.Parse(match.Groups["links"].Value);
                node.Apps = IPEndPoint.Parse(match.Groups["apps"].Value);
            }));
            return true;
        }, "the nodes to register with the manager", cancellationToken);

        // The manager's view, not only the nodes' word.
        await Bounded(async ct =>
        {
            await using var cli = await ConnectCliAsync(ct);
            while (true)
            {
                var nodes = await ManagerQueries.ListNodesAsync(cli, ct);
                if (_nodes.All(n => nodes.Any(x => x.Online && x.Key == n.Key.ToString())))
                {
                    return true;
                }

                await Task.Delay(200, ct);
            }
        }, "the manager to list every node online", cancellationToken);
        return "ids " + string.Join(", ", _nodes.Select(n => $"{n.Label}={n.Id}"));
    }

    private async Task<FrameConnection> ConnectCliAsync(CancellationToken cancellationToken)
    {
        var (connection, _) = await ControlClient.ConnectAsync(new ManagerAddress(_managerEndPoint, _managerKey), _operator!, "cli", null,
            (_, _, _) => throw new ControlException(ControlErrorCode.Forbidden, "the demo serves no requests"), NullLogger.Instance, TimeSpan.FromSeconds(30), cancellationToken);
        return connection;
    }

    // ---- step 6: links A-B, B-C, ... ----

    private async Task<string> LinkChainAsync(CancellationToken cancellationToken)
    {
        var pairs = _nodes.Zip(_nodes.Skip(1)).ToList();
        return await Bounded(async ct =>
        {
            await using var cli = await ConnectCliAsync(ct);
            foreach (var (a, b) in pairs)
            {
                await cli.RequestAsync((byte)ControlOpcode.LinkNodes, new NodePairMessage { A = a.Key.ToString(), B = b.Key.ToString() },
                    ControlJsonContext.Default.NodePairMessage, ControlJsonContext.Default.OkMessage, ct);
            }

            while (true)
            {
                var links = await ManagerQueries.ListLinksAsync(cli, ct);
                var up = pairs.Select(p => links.FirstOrDefault(l => l.Up && IsPair(l, p.First, p.Second))).ToList();
                if (up.All(l => l is not null))
                {
                    _links = up!;
                    return string.Join(", ", pairs.Select(p => $"{p.First.Label}-{p.Second.Label}")) + " up";
                }

                await Task.Delay(200, ct);
            }
        }, "the links to come up", cancellationToken);
    }

    private static bool IsPair(LinkInfo link, DemoNode a, DemoNode b) =>
        (link.From == a.Key.ToString() && link.To == b.Key.ToString()) || (link.From == b.Key.ToString() && link.To == a.Key.ToString());

    // ---- steps 7 and 8: the SOCKS pair ----

    private const string ExitName = "demo-exit";
    private const string ProxyName = "demo-proxy";

    private async Task<string> StartSocksServerAsync(CancellationToken cancellationToken)
    {
        var exit = _nodes[^1];

        // --allow-loopback: the demo's page is on this host's loopback (every node is); a real exit leaves it off.
        var id = await StartAppAsync(DemoConfig.SocksServer, $"socks-server beside {exit.Label}",
            ["--node-apps", exit.Apps.ToString(), "--token-file", exit.TokenFile, "--name", ExitName, "--allow-loopback"], cancellationToken);
        await Bounded(ct => _viscript!.WaitForLineAsync(id, SocksServerReady(), ct), "socks-server to register with its node", cancellationToken);
        return $"id {id}, {exit.Short}/{ExitName}";
    }

    private async Task<string> StartSocksClientAsync(CancellationToken cancellationToken)
    {
        var entry = _nodes[0];
        var listen = new IPEndPoint(IPAddress.Loopback, _options.SocksPort).ToString();
        var id = await StartAppAsync(DemoConfig.SocksClient, $"socks-client beside {entry.Label}",
            ["--node-apps", entry.Apps.ToString(), "--token-file", entry.TokenFile, "--name", ProxyName, "--server", $"{_nodes[^1].Key}/{ExitName}", "--listen", listen], cancellationToken);
        var match = await Bounded(ct => _viscript!.WaitForLineAsync(id, SocksClientReady(), ct), "socks-client to listen", cancellationToken);
        _socksEndPoint = IPEndPoint.Parse(match.Groups["ep"].Value);
        return $"id {id}, SOCKS5 on {_socksEndPoint}";
    }

    // ---- step 9: a chat listener under viscript receives a message the demo sends through the messenger ----

    private async Task<string> ChatAsync(CancellationToken cancellationToken)
    {
        var chatKeyFile = Path.Combine(_dir, "keys", "chat.json");
        PubKey chatKey;
        using (var key = KeyFile.LoadOrCreate(chatKeyFile))
        {
            chatKey = key.Public;
        }

        var id = await StartAppAsync(DemoConfig.Chat, "chat listener",
            ["--messenger", $"{_messengerKey}@{_messengerEndPoint}", "--key", chatKeyFile, "listen"], cancellationToken);
        await Bounded(ct => _viscript!.WaitForLineAsync(id, ChatListening(), ct), "the chat listener to connect", cancellationToken);
        var text = "hello from skywire demo " + Convert.ToHexStringLower(System.Security.Cryptography.RandomNumberGenerator.GetBytes(4));
        await Bounded(async ct =>
        {
            await using var client = await MessengerClient.ConnectAsync(
                new MessengerClientOptions { EndPoint = _messengerEndPoint, MessengerKey = _messengerKey, Agent = "skywire-demo" }, _operator!, null, ct);
            await client.SendAsync(chatKey, Encoding.UTF8.GetBytes(text), ct);
            await client.PingAsync(ct);
            return true;
        }, "the messenger to take a message", cancellationToken);
        await Bounded(ct => _viscript!.WaitForLineAsync(id, new Regex($"^{_operator!.Public} {Regex.Escape(text)}$"), ct), "the chat listener to print the message", cancellationToken);
        return $"id {id}, \"{text}\" relayed end-to-end encrypted";
    }

    // ---- step 10: the page, through socks-client -> A -> ... -> last node -> socks-server -> local HTTP ----

    private async Task<string> FetchAsync(CancellationToken cancellationToken)
    {
        _web = await DemoWebServer.StartAsync("", cancellationToken);
        _web.Page = PageText();
        return await Bounded(async ct =>
        {
            var page = await SocksFetch.GetAsync(_socksEndPoint, _web.EndPoint, "/", ct);
            if (page.Status != 200 || Encoding.UTF8.GetString(page.Body) != _web.Page)
            {
                throw new DemoStepException($"the page came back wrong (HTTP {page.Status}, {page.Body.Length} bytes)");
            }

            if (!_options.Check)
            {
                return $"HTTP 200, {page.Body.Length} bytes";
            }

            var bytes = await SocksFetch.GetAsync(_socksEndPoint, _web.EndPoint, $"/bytes/{_options.CheckBytes}", ct);
            var expected = _web.Expected(_options.CheckBytes);
            if (bytes.Status != 200 || !bytes.Body.AsSpan().SequenceEqual(expected))
            {
                var firstDiff = bytes.Body.AsSpan().CommonPrefixLength(expected);
                throw new DemoStepException($"HTTP {bytes.Status}: {bytes.Body.Length} bytes, expected {expected.Length}; first difference at byte {firstDiff}");
            }

            return $"page and {bytes.Body.Length} random bytes, byte-exact";
        }, "the page through the proxy", cancellationToken);
    }

    private string PageText() =>
        $"Hello from the Skywire demo.\nThis page was served on {_web!.EndPoint} and reached you through socks-client -> node "
        + string.Join(" -> node ", _nodes.Select(n => n.Label)) + " -> socks-server.\n";

    // ---- step 11: the route the manager installed for that session ----

    private async Task<string> ReadRouteAsync(CancellationToken cancellationToken)
    {
        var from = _nodes[0].Key.ToString();
        var to = _nodes[^1].Key.ToString();
        _route = await Bounded(async ct =>
        {
            await using var cli = await ConnectCliAsync(ct);
            var routes = await ManagerQueries.ListRoutesAsync(cli, ct);
            return routes.LastOrDefault(r => (r.From == from && r.To == to) || (r.From == to && r.To == from))
                ?? throw new DemoStepException($"the manager lists no route between {_nodes[0].Label} and {_nodes[^1].Label} ({routes.Count} routes)");
        }, "the route list", cancellationToken);
        var hops = _route.Path.Count - 1;
        if (hops < 2)
        {
            throw new DemoStepException($"the route has {hops} hop(s); the chain should force at least 2");
        }

        return $"{hops} hops: {PathText(_route)}";
    }

    private string PathText(RouteInfo route) =>
        string.Join(" > ", route.Path.Select(k => _nodes.FirstOrDefault(n => n.Key.ToString() == k)?.Label ?? k[..12]));

    // ---- run and stop ----

    private async Task WaitForStopAsync(CancellationToken cancellationToken)
    {
        var exited = _viscript!.ExitedAsync();
        var stop = Task.Delay(Timeout.Infinite, cancellationToken);
        if (await Task.WhenAny(exited, stop) == exited)
        {
            throw new DemoStepException("viscript exited on its own");
        }

        await _out.WriteLineAsync();
        await _out.WriteLineAsync("stopping...");
    }

    private async Task StopAllAsync()
    {
        if (_web is not null)
        {
            await _web.DisposeAsync();
            _web = null;
        }

        if (_viscript is null)
        {
            return;
        }

        await StopNodesFirstAsync();
        var code = await _viscript.StopAsync(TimeSpan.FromSeconds(60));
        await _viscript.DisposeAsync();
        _viscript = null;
        await _out.WriteLineAsync(code is { } c
            ? $"viscript stopped its {_components.Count} apps and exited ({c})"
            : "viscript did not stop in time: killed its process tree");
        await StopVpnAsync();
    }

    public async ValueTask DisposeAsync()
    {
        if (_web is not null)
        {
            await _web.DisposeAsync();
            _web = null;
        }

        if (_viscript is not null)
        {
            await _viscript.DisposeAsync();
            _viscript = null;
        }

        _operator?.Dispose();
    }

    private static void TryDelete(string dir)
    {
        try
        {
            Directory.Delete(dir, recursive: true);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            // A leftover temp folder is harmless.
        }
    }

    [GeneratedRegex(@"messenger [0-9a-f]{66} listening on (?<ep>\S+)")]
    private static partial Regex MessengerReady();

    [GeneratedRegex(@"manager [0-9a-f]{66} listening on (?<ep>\S+)")]
    private static partial Regex ManagerReady();

    [GeneratedRegex(@"node [0-9a-f]{66} links (?<links>\S+) apps (?<apps>\S+)")]
    private static partial Regex NodeReady();

    [GeneratedRegex(@"socks-server ready as \S+")]
    private static partial Regex SocksServerReady();

    [GeneratedRegex(@"socks-client listening on (?<ep>[^,\s]+), exit \S+")]
    private static partial Regex SocksClientReady();

    [GeneratedRegex(@"^listening as [0-9a-f]{66}")]
    private static partial Regex ChatListening();
}
