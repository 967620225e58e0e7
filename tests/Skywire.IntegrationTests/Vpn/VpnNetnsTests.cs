using System.Diagnostics;
using System.Globalization;
using System.Security.Cryptography;
using System.Text.RegularExpressions;
using Skywire.Apps.Vpn;
using Skywire.IntegrationTests.EndToEnd;
using Skywire.TestKit.Netns;

namespace Skywire.IntegrationTests.Vpn;

/// <summary>
/// The built `skywire` executables in network namespaces made by the test (root): a manager, four nodes in a chain
/// (a - b - c - d), a vpn-server beside d with NAT and a vpn-client beside a. A web server in a namespace reachable
/// only behind d is pinged and fetched (a page, and a large file byte for byte) through the tunnel across 3 hops, over
/// IPv4 and IPv6; a node off the allow-list is refused; a restarted client gets its addresses back; the kill switch
/// blocks IPv4 and IPv6 outside the tunnel; --all routes both families with the mesh's peers excluded; with --netns the
/// tunnel, its routes and table are in a namespace of their own and a's tables untouched; SIGTERM leaves no device,
/// route, nftables table or forwarding change behind.
/// </summary>
[Trait("Category", "E2E")]
public sealed partial class VpnNetnsTests() : ExecutableTestBase("skywire-vpn-")
{
    private static readonly TimeSpan Limit = TimeSpan.FromSeconds(90);

    [Fact]
    public async Task Vpn_ThreeHops_PingCurlBulk_AllowList_Restart_Teardown()
    {
        if (NetworkNamespaces.Unsupported() is { } reason)
        {
            Assert.Skip(reason);
        }

        foreach (var tool in new[] { "nft", "ping", "curl", "python3" })
        {
            if (Which(tool) is null)
            {
                Assert.Skip($"{tool} is not installed (.ci/run installs it)");
            }
        }

        using var net = new NetworkNamespaces();
        var (mns, maddr) = net.AddHost("m");
        var hosts = new[] { net.AddHost("a"), net.AddHost("b"), net.AddHost("c"), net.AddHost("d") };
        var (wns, waddr, wsubnet) = net.AddBehind(hosts[3].Namespace, "w");

        // IPv6 beside IPv4: the web namespace behind d, and a's and d's underlay (only to check the kill switch for IPv6).
        const string waddr6 = "fd78:9::2", wsubnet6 = "fd78:9::/64", aUnder6 = "fd77:1::a", dUnder6 = "fd77:1::d";
        var wIf = await InterfaceAsync(wns, wsubnet);
        var dIf = await InterfaceAsync(hosts[3].Namespace, wsubnet);
        await IpAsync(hosts[3].Namespace, "-6", "addr", "add", "fd78:9::1/64", "dev", dIf, "nodad");
        await IpAsync(wns, "-6", "addr", "add", waddr6 + "/64", "dev", wIf, "nodad");
        await IpAsync(wns, "-6", "route", "add", "default", "via", "fd78:9::1");
        var underlaySubnet = hosts[0].Address[..hosts[0].Address.LastIndexOf('.')] + ".0/24";
        await IpAsync(hosts[0].Namespace, "-6", "addr", "add", aUnder6 + "/64", "dev", await InterfaceAsync(hosts[0].Namespace, underlaySubnet), "nodad");
        await IpAsync(hosts[3].Namespace, "-6", "addr", "add", dUnder6 + "/64", "dev", await InterfaceAsync(hosts[3].Namespace, underlaySubnet), "nodad");

        // a's link is narrower than the 1500 bytes the mesh's UDP payload limit fits: the tunnel MTU must follow it
        // (a full-size tunnel packet would otherwise be fragmented on the way out and dropped on the way in).
        const int linkMtu = 1400;
        await IpAsync(hosts[0].Namespace, "link", "set", "dev", await InterfaceAsync(hosts[0].Namespace, underlaySubnet), "mtu", linkMtu.ToString(CultureInfo.InvariantCulture));

        var keygen = await RunAsync(null, "keygen", "--out", FilePath("manager.json"));
        var managerKey = keygen.Out.Split('\n')[0].Trim();
        var processes = new List<SkywireProcess>();
        Process? web = null;
        try
        {
            var manager = Start(processes, mns, "manager", "--listen", maddr + ":0", "--key", FilePath("manager.json"));
            var port = ManagerLine().Match(await manager.WaitForLineAsync("listening on", Limit)).Groups[1].Value;
            var managerAt = $"{managerKey}@{maddr}:{port}";
            var nodes = new List<(string Ns, string Key, string Apps, string Token)>();
            foreach (var (ns, addr) in hosts)
            {
                var name = ns[^1..];
                var node = Start(processes, ns, "node", "--manager", managerAt, "--listen", addr + ":0", "--apps", "127.0.0.1:0",
                    "--app-token-file", FilePath(name + ".token"), "--key", FilePath(name + ".json"));
                var m = NodeLine().Match(await node.WaitForLineAsync("apps 127.0.0.1", Limit));
                nodes.Add((ns, m.Groups[1].Value, "127.0.0.1:" + m.Groups[2].Value, FilePath(name + ".token")));
            }

            string[] Cli(params string[] args) => ["cli", "--manager", managerAt, "--key", FilePath("manager.json"), .. args];
            for (var i = 0; i < 3; i++)
            {
                Assert.Equal(0, (await RunAsync(mns, Cli("link", nodes[i].Key, nodes[i + 1].Key))).Code);
            }

            await WaitForAsync(async () => (await RunAsync(mns, Cli("links"))).Out.Split('\n').Count(l => l.Contains(" up ", StringComparison.Ordinal)) >= 6, "links up");

            // The page and a large file, served only behind d.
            var content = Directory.CreateDirectory(FilePath("www")).FullName;
            await File.WriteAllTextAsync(Path.Combine(content, "index.html"), "hello through the vpn\n");
            var bulk = RandomNumberGenerator.GetBytes(8 * 1024 * 1024 + 13);
            await File.WriteAllBytesAsync(Path.Combine(content, "bulk.bin"), bulk);
            web = StartTool(wns, "python3", "-u", "-m", "http.server", "--bind", "::", "0", "--directory", content);
            web.ErrorDataReceived += (_, _) => { };
            web.BeginErrorReadLine();
            var webPort = await ReadServingPortAsync(web);
            var url = $"http://{waddr}:{webPort}";
            var url6 = $"http://[{waddr6}]:{webPort}";

            // Before the tunnel, a cannot reach the web namespace at all.
            Assert.NotEqual(0, (await ToolAsync(hosts[0].Namespace, "ping", "-c", "1", "-W", "1", waddr)).Code);
            Assert.NotEqual(0, (await ToolAsync(hosts[0].Namespace, "ping", "-6", "-c", "1", "-W", "1", waddr6)).Code);

            var d = nodes[3];
            // The web host doubles as the resolver the server pushes (only its address is checked, not a lookup).
            var server = Start(processes, d.Ns, "app", "vpn-server", "--node-apps", d.Apps, "--token-file", d.Token, "--allow", nodes[0].Key, "--tun", "skysrv%d",
                "--dns", waddr, "--dns", waddr6);
            await server.WaitForLineAsync("vpn-server ready", Limit);
            Assert.Contains("skywire_vpn_skysrv", (await ToolAsync(d.Ns, "nft", "list", "tables")).Out, StringComparison.Ordinal);

            // b is not on the allow-list: refused, exit 1, and its TUN device is gone again.
            var refused = await RunAsync(nodes[1].Ns, "app", "vpn-client", "--node-apps", nodes[1].Apps, "--token-file", nodes[1].Token,
                "--server", $"{d.Key}/vpn-server", "--tun", "skyb0");
            Assert.Equal(1, refused.Code);
            Assert.Contains("allow-list", refused.Err, StringComparison.Ordinal);
            Assert.DoesNotContain("skyb0", (await ToolAsync(nodes[1].Ns, "ip", "link")).Out, StringComparison.Ordinal);

            // a picks the vpn-server from the app tracker.
            string[] clientArgs = ["app", "vpn-client", "--node-apps", nodes[0].Apps, "--token-file", nodes[0].Token, "--tun", "skycli0"];
            string[] routes = ["--route", wsubnet, "--route", wsubnet6];
            var client = Start(processes, nodes[0].Ns, [.. clientArgs, .. routes]);
            var first = UpLine().Match(await client.WaitForLineAsync("vpn-client up:", Limit));
            Assert.True(first.Success, client.Stderr);
            var address = first.Groups["address"].Value;
            Assert.StartsWith("10.66.0.", address, StringComparison.Ordinal);
            var address6 = first.Groups["address6"].Value;
            Assert.StartsWith("fd66:736b:7977::", address6, StringComparison.Ordinal);
            var mtu = int.Parse(first.Groups["mtu"].Value, CultureInfo.InvariantCulture);
            Assert.Equal(linkMtu - 28 - PathMtu.Overhead, mtu);

            // ping and curl across a > b > c > d, then out of d by NAT.
            await WaitForAsync(async () => (await ToolAsync(hosts[0].Namespace, "ping", "-c", "1", "-W", "2", waddr)).Code == 0, "ping through the tunnel");
            var ping = await ToolAsync(hosts[0].Namespace, "ping", "-c", "5", "-i", "0.2", "-W", "5", waddr);
            Assert.True(ping.Code == 0, ping.Out + ping.Err);
            var page = await ToolAsync(hosts[0].Namespace, "curl", "-sS", "--max-time", "30", url + "/index.html");
            Assert.Equal("hello through the vpn\n", page.Out);
            var fetched = FilePath("fetched.bin");
            var curl = await ToolAsync(hosts[0].Namespace, "curl", "-sS", "--max-time", "120", "-o", fetched, url + "/bulk.bin");
            Assert.True(curl.Code == 0, curl.Err);
            Assert.Equal(SHA256.HashData(bulk), SHA256.HashData(await File.ReadAllBytesAsync(fetched)));

            // The same over IPv6 (NAT66 out of d): ping, the page, and the large file byte for byte.
            await WaitForAsync(async () => (await ToolAsync(hosts[0].Namespace, "ping", "-6", "-c", "1", "-W", "2", waddr6)).Code == 0, "ping over IPv6 through the tunnel");
            Assert.Equal("hello through the vpn\n", (await ToolAsync(hosts[0].Namespace, "curl", "-sS", "--max-time", "30", url6 + "/index.html")).Out);
            File.Delete(fetched);
            curl = await ToolAsync(hosts[0].Namespace, "curl", "-sS", "--max-time", "120", "-o", fetched, url6 + "/bulk.bin");
            Assert.True(curl.Code == 0, curl.Err);
            Assert.Equal(SHA256.HashData(bulk), SHA256.HashData(await File.ReadAllBytesAsync(fetched)));
            var meshRoutes = (await RunAsync(mns, Cli("routes"))).Out;
            Assert.Contains($"{nodes[0].Key[..12]} > {nodes[1].Key[..12]} > {nodes[2].Key[..12]} > {nodes[3].Key[..12]}", meshRoutes, StringComparison.Ordinal);

            // Full-size packets (don't fragment) cross both ways, IPv4 and IPv6, and a's stack fragments nothing on
            // the narrow link; one byte more is refused at the tunnel (message too long), not lost on the way.
            var fragments = await FragmentsCreatedAsync(hosts[0].Namespace);
            var full = await ToolAsync(hosts[0].Namespace, "ping", "-M", "do", "-s", (mtu - 28).ToString(CultureInfo.InvariantCulture), "-c", "3", "-i", "0.2", "-W", "5", waddr);
            Assert.True(full.Code == 0, full.Out + full.Err);
            var full6 = await ToolAsync(hosts[0].Namespace, "ping", "-6", "-M", "do", "-s", (mtu - 48).ToString(CultureInfo.InvariantCulture), "-c", "3", "-i", "0.2", "-W", "5", waddr6);
            Assert.True(full6.Code == 0, full6.Out + full6.Err);
            Assert.Equal(fragments, await FragmentsCreatedAsync(hosts[0].Namespace));
            var over = await ToolAsync(hosts[0].Namespace, "ping", "-M", "do", "-s", (mtu - 27).ToString(CultureInfo.InvariantCulture), "-c", "1", "-W", "2", waddr);
            Assert.NotEqual(0, over.Code);
            Assert.Contains("too long", over.Out + over.Err, StringComparison.OrdinalIgnoreCase);

            // The link gets narrower while the tunnel is up: at the next recheck (15 s) the tunnel MTU follows it, and
            // full-size don't-fragment pings at the new size cross with nothing fragmented on the way.
            const int narrower = 1300;
            var aLink = await InterfaceAsync(hosts[0].Namespace, underlaySubnet);
            await IpAsync(hosts[0].Namespace, "link", "set", "dev", aLink, "mtu", narrower.ToString(CultureInfo.InvariantCulture));
            var mtu2 = narrower - 28 - PathMtu.Overhead;
            await WaitForAsync(async () => (await ToolAsync(hosts[0].Namespace, "ip", "link", "show", "dev", "skycli0")).Out.Contains($" mtu {mtu2} ", StringComparison.Ordinal),
                "the tunnel MTU following the narrower link");
            fragments = await FragmentsCreatedAsync(hosts[0].Namespace);
            var smaller = await ToolAsync(hosts[0].Namespace, "ping", "-M", "do", "-s", (mtu2 - 28).ToString(CultureInfo.InvariantCulture), "-c", "3", "-i", "0.2", "-W", "5", waddr);
            Assert.True(smaller.Code == 0, smaller.Out + smaller.Err);
            Assert.Equal(fragments, await FragmentsCreatedAsync(hosts[0].Namespace));
            Assert.Equal("hello through the vpn\n", (await ToolAsync(hosts[0].Namespace, "curl", "-sS", "--max-time", "30", url + "/index.html")).Out);
            await IpAsync(hosts[0].Namespace, "link", "set", "dev", aLink, "mtu", linkMtu.ToString(CultureInfo.InvariantCulture));

            // SIGTERM: the client's device and routes are gone; a new client gets the same address and works.
            await TerminateAsync(client);
            Assert.DoesNotContain("skycli0", (await ToolAsync(hosts[0].Namespace, "ip", "link")).Out, StringComparison.Ordinal);
            Assert.DoesNotContain(wsubnet.Split('/')[0], (await ToolAsync(hosts[0].Namespace, "ip", "route")).Out, StringComparison.Ordinal);
            Assert.DoesNotContain("fd78:9::", (await ToolAsync(hosts[0].Namespace, "ip", "-6", "route")).Out, StringComparison.Ordinal);
            // The restarted client with the kill switch and the pushed resolver. `ip netns exec` bind-mounts
            // /etc/netns/NS/resolv.conf over /etc/resolv.conf when it exists: the client rewrites that file, never the host's.
            var dAddress = hosts[3].Address;
            Assert.Equal(0, (await ToolAsync(hosts[0].Namespace, "ping", "-c", "1", "-W", "2", dAddress)).Code);
            Assert.Equal(0, (await ToolAsync(hosts[0].Namespace, "ping", "-6", "-c", "1", "-W", "2", dUnder6)).Code);
            var resolvDir = Directory.CreateDirectory(Path.Combine("/etc/netns", hosts[0].Namespace)).FullName;
            var resolv = Path.Combine(resolvDir, "resolv.conf");
            await File.WriteAllTextAsync(resolv, "nameserver 192.0.2.53\n");
            try
            {
                client = Start(processes, nodes[0].Ns, [.. clientArgs, .. routes, "--kill-switch", "--dns"]);
                var second = UpLine().Match(await client.WaitForLineAsync("vpn-client up:", Limit));
                Assert.Equal(address, second.Groups["address"].Value);
                Assert.Equal(address6, second.Groups["address6"].Value);
                await WaitForAsync(async () => (await ToolAsync(hosts[0].Namespace, "curl", "-sS", "--max-time", "5", url + "/index.html")).Code == 0, "curl after the restart");
                Assert.Contains($"nameserver {waddr}\nnameserver {waddr6}\n", await File.ReadAllTextAsync(resolv), StringComparison.Ordinal);

                // Kill switch: d's underlay addresses (not ones the node talks to) are unreachable outside the tunnel,
                // IPv4 and IPv6; the tunnel works for both.
                Assert.NotEqual(0, (await ToolAsync(hosts[0].Namespace, "ping", "-c", "1", "-W", "1", dAddress)).Code);
                Assert.NotEqual(0, (await ToolAsync(hosts[0].Namespace, "ping", "-6", "-c", "1", "-W", "1", dUnder6)).Code);
                Assert.Equal(0, (await ToolAsync(hosts[0].Namespace, "ping", "-c", "1", "-W", "5", waddr)).Code);
                Assert.Equal(0, (await ToolAsync(hosts[0].Namespace, "ping", "-6", "-c", "1", "-W", "5", waddr6)).Code);
                var guard = (await ToolAsync(hosts[0].Namespace, "nft", "list", "table", "inet", "skywire_vpnc_skycli0")).Out;
                Assert.Contains("maxseg size set rt mtu", guard, StringComparison.Ordinal);
                Assert.Contains("policy drop", guard, StringComparison.Ordinal);

                // SIGTERM lifts it and puts the resolver back.
                await TerminateAsync(client);
                Assert.Equal("nameserver 192.0.2.53\n", await File.ReadAllTextAsync(resolv));
                Assert.DoesNotContain("skywire_vpnc", (await ToolAsync(hosts[0].Namespace, "nft", "list", "tables")).Out, StringComparison.Ordinal);
                Assert.Equal(0, (await ToolAsync(hosts[0].Namespace, "ping", "-c", "1", "-W", "2", dAddress)).Code);
                Assert.Equal(0, (await ToolAsync(hosts[0].Namespace, "ping", "-6", "-c", "1", "-W", "2", dUnder6)).Code);
            }
            finally
            {
                Directory.Delete(resolvDir, recursive: true);
            }

            // --all: both families into the tunnel without a route per subnet; the mesh's own peers (b, its link peer,
            // and the manager) keep their routes outside it.
            client = Start(processes, nodes[0].Ns, [.. clientArgs, "--all"]);
            await client.WaitForLineAsync("vpn-client up:", Limit);
            var table4 = (await ToolAsync(hosts[0].Namespace, "ip", "route")).Out;
            var table6 = (await ToolAsync(hosts[0].Namespace, "ip", "-6", "route")).Out;
            Assert.Contains("0.0.0.0/1 dev skycli0", table4, StringComparison.Ordinal);
            Assert.Contains("128.0.0.0/1 dev skycli0", table4, StringComparison.Ordinal);
            Assert.Contains("::/1 dev skycli0", table6, StringComparison.Ordinal);
            Assert.Contains("8000::/1 dev skycli0", table6, StringComparison.Ordinal);
            foreach (var peer in new[] { hosts[1].Address, maddr })
            {
                Assert.DoesNotContain("skycli0", (await ToolAsync(hosts[0].Namespace, "ip", "route", "get", peer)).Out, StringComparison.Ordinal);
            }

            Assert.Contains("skycli0", (await ToolAsync(hosts[0].Namespace, "ip", "route", "get", waddr)).Out, StringComparison.Ordinal);
            await WaitForAsync(async () => (await ToolAsync(hosts[0].Namespace, "curl", "-sS", "--max-time", "5", url6 + "/index.html")).Code == 0, "IPv6 curl with --all");
            Assert.Equal("hello through the vpn\n", (await ToolAsync(hosts[0].Namespace, "curl", "-sS", "--max-time", "30", url + "/index.html")).Out);
            await TerminateAsync(client);
            Assert.DoesNotContain(hosts[1].Address + " ", (await ToolAsync(hosts[0].Namespace, "ip", "route")).Out, StringComparison.Ordinal);

            // --netns: the tunnel in a namespace of its own (only its loopback besides the tunnel). The client and its
            // node stay in a's namespace; the device, its routes (--route, and --all's halves) and the client's
            // nftables table go into the tunnel's namespace, a's tables stay as they were, and SIGTERM takes them away.
            var tunnelNs = net.AddEmpty("t");
            var aRoutes = await RoutesAsync(hosts[0].Namespace);
            foreach (var choice in new[] { routes, ["--all"] })
            {
                client = Start(processes, nodes[0].Ns, [.. clientArgs, .. choice, "--netns", tunnelNs]);
                await client.WaitForLineAsync("vpn-client up:", Limit);
                var inside = await RoutesAsync(tunnelNs);
                string[] expected = choice[0] == "--all"
                    ? ["0.0.0.0/1 dev skycli0", "128.0.0.0/1 dev skycli0", "::/1 dev skycli0", "8000::/1 dev skycli0"]
                    : [$"{wsubnet} dev skycli0", $"{wsubnet6} dev skycli0"];
                foreach (var route in expected)
                {
                    Assert.Contains(route, inside, StringComparison.Ordinal);
                }

                Assert.Equal(aRoutes, await RoutesAsync(hosts[0].Namespace));
                Assert.DoesNotContain("skycli0", (await ToolAsync(hosts[0].Namespace, "ip", "link")).Out, StringComparison.Ordinal);
                Assert.DoesNotContain("skywire_vpnc", (await ToolAsync(hosts[0].Namespace, "nft", "list", "tables")).Out, StringComparison.Ordinal);
                Assert.Contains("skywire_vpnc_skycli0", (await ToolAsync(tunnelNs, "nft", "list", "tables")).Out, StringComparison.Ordinal);
                await WaitForAsync(async () => (await ToolAsync(tunnelNs, "curl", "-sS", "--max-time", "5", url + "/index.html")).Out == "hello through the vpn\n",
                    $"curl from the tunnel's namespace ({choice[0]})");
                Assert.Equal("hello through the vpn\n", (await ToolAsync(tunnelNs, "curl", "-sS", "--max-time", "30", url6 + "/index.html")).Out);

                await TerminateAsync(client);
                Assert.DoesNotContain("skycli0", (await ToolAsync(tunnelNs, "ip", "link")).Out, StringComparison.Ordinal);
                Assert.DoesNotContain("skycli0", await RoutesAsync(tunnelNs), StringComparison.Ordinal);
                Assert.DoesNotContain("skywire_vpnc", (await ToolAsync(tunnelNs, "nft", "list", "tables")).Out, StringComparison.Ordinal);
                Assert.Equal(aRoutes, await RoutesAsync(hosts[0].Namespace));
            }

            client = Start(processes, nodes[0].Ns, [.. clientArgs, .. routes]);
            await client.WaitForLineAsync("vpn-client up:", Limit);

            // SIGTERM on both: nothing left behind.
            await TerminateAsync(client);
            await TerminateAsync(server);
            Assert.DoesNotContain("skysrv", (await ToolAsync(d.Ns, "ip", "link")).Out, StringComparison.Ordinal);
            Assert.DoesNotContain("skywire_vpn", (await ToolAsync(d.Ns, "nft", "list", "tables")).Out, StringComparison.Ordinal);
            Assert.Equal("0", (await ToolAsync(d.Ns, "cat", "/proc/sys/net/ipv4/ip_forward")).Out.Trim());
            Assert.Equal("0", (await ToolAsync(d.Ns, "cat", "/proc/sys/net/ipv6/conf/all/forwarding")).Out.Trim());
            Assert.DoesNotContain("skycli", (await ToolAsync(hosts[0].Namespace, "ip", "link")).Out, StringComparison.Ordinal);
            Assert.DoesNotContain("skywire_vpnc", (await ToolAsync(hosts[0].Namespace, "nft", "list", "tables")).Out, StringComparison.Ordinal);
        }
        finally
        {
            if (web is not null)
            {
                web.Kill(entireProcessTree: true);
                await web.WaitForExitAsync();
                web.Dispose();
            }

            foreach (var p in processes)
            {
                await p.DisposeAsync();
            }
        }
    }

    [GeneratedRegex(@"address (?<address>[0-9.]+)/\d+ gateway (?<gateway>[0-9.]+) mtu (?<mtu>\d+)(?:.* address6 (?<address6>[0-9a-f:]+)/\d+)?")]
    private static partial Regex UpLine();

    [GeneratedRegex(@"port (\d+)")]
    private static partial Regex ServingLine();

    /// <summary>IP fragments the namespace's stack made so far (IPv4 FragCreates + IPv6 Ip6FragCreates).</summary>
    private static async Task<long> FragmentsCreatedAsync(string ns)
    {
        var v4 = (await ToolAsync(ns, "cat", "/proc/net/snmp")).Out.Split('\n').Where(l => l.StartsWith("Ip: ", StringComparison.Ordinal)).ToList();
        var index = Array.IndexOf(v4[0].Split(' '), "FragCreates");
        var v6 = (await ToolAsync(ns, "cat", "/proc/net/snmp6")).Out.Split('\n').Single(l => l.StartsWith("Ip6FragCreates", StringComparison.Ordinal));
        return long.Parse(v4[1].Split(' ')[index], CultureInfo.InvariantCulture)
            + long.Parse(v6.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1], CultureInfo.InvariantCulture);
    }

    /// <summary>The IPv4 and IPv6 route tables of <paramref name="ns"/> (main table), as `ip route` prints them.</summary>
    private static async Task<string> RoutesAsync(string ns) =>
        (await ToolAsync(ns, "ip", "route")).Out + (await ToolAsync(ns, "ip", "-6", "route")).Out;

    /// <summary>The interface of <paramref name="ns"/> with an IPv4 address in <paramref name="subnet"/>.</summary>
    private static async Task<string> InterfaceAsync(string ns, string subnet)
    {
        var shown = await ToolAsync(ns, "ip", "-o", "-4", "addr", "show", "to", subnet);
        var name = shown.Out.Split(' ', StringSplitOptions.RemoveEmptyEntries).ElementAtOrDefault(1);
        return name ?? throw new InvalidOperationException($"no interface in {subnet} in {ns}: {shown.Out}{shown.Err}");
    }

    private static async Task IpAsync(string ns, params string[] args)
    {
        var result = await ToolAsync(ns, ["ip", .. args]);
        Assert.True(result.Code == 0, $"ip {string.Join(' ', args)} in {ns}: {result.Err}");
    }

    private static SkywireProcess Start(List<SkywireProcess> processes, string? ns, params string[] args)
    {
        var p = SkywireProcess.Start(ns, args);
        processes.Add(p);
        return p;
    }

    private static async Task<(int Code, string Out, string Err)> RunAsync(string? ns, params string[] args)
    {
        await using var p = SkywireProcess.Start(ns, args);
        var code = await p.WaitForExitAsync(Limit);
        return (code, p.StdoutText, p.Stderr);
    }

    /// <summary>SIGTERM (as systemd or Ctrl+C would), then the process must exit 0 by itself.</summary>
    private static async Task TerminateAsync(SkywireProcess process)
    {
        Assert.Equal(0, (await ToolAsync(null, "kill", "-TERM", process.Id.ToString(System.Globalization.CultureInfo.InvariantCulture))).Code);
        Assert.True(await process.WaitForExitAsync(Limit) == 0, process.Stderr);
    }

    private static async Task WaitForAsync(Func<Task<bool>> condition, string what)
    {
        var deadline = DateTime.UtcNow + Limit;
        while (!await condition())
        {
            Assert.True(DateTime.UtcNow < deadline, what + " did not happen in time");
            await Task.Delay(250);
        }
    }

    private static string? Which(string tool) =>
        new[] { "/usr/sbin", "/usr/bin", "/sbin", "/bin" }.Concat((Environment.GetEnvironmentVariable("PATH") ?? "").Split(':'))
            .Select(dir => Path.Combine(dir, tool)).FirstOrDefault(File.Exists);

    private static Process StartTool(string? ns, params string[] args)
    {
        var info = new ProcessStartInfo(ns is null ? args[0] : "ip") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var a in ns is null ? args.Skip(1) : ["netns", "exec", ns, .. args])
        {
            info.ArgumentList.Add(a);
        }

        return Process.Start(info) ?? throw new InvalidOperationException("could not start " + args[0]);
    }

    private static async Task<(int Code, string Out, string Err)> ToolAsync(string? ns, params string[] args)
    {
        using var p = StartTool(ns, args);
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        using var limit = new CancellationTokenSource(Limit);
        try
        {
            await p.WaitForExitAsync(limit.Token);
        }
        catch (OperationCanceledException)
        {
            p.Kill(entireProcessTree: true);
            throw new TimeoutException($"{string.Join(' ', args)} did not finish");
        }

        return (p.ExitCode, await stdout, await stderr);
    }

    private static async Task<string> ReadServingPortAsync(Process web)
    {
        using var limit = new CancellationTokenSource(Limit);
        while (await web.StandardOutput.ReadLineAsync(limit.Token) is { } line)
        {
            if (ServingLine().Match(line) is { Success: true } m)
            {
                return m.Groups[1].Value;
            }
        }

        throw new InvalidOperationException("the web server (python3 -m http.server) did not start");
    }
}
