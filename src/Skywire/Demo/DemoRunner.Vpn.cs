using System.Diagnostics;
using System.Net;
using System.Security.Cryptography;
using System.Text.RegularExpressions;

namespace Skywire.Demo;

/// <summary>
/// <c>skywire demo --vpn</c> (docs/vpn.md "In the demo"): a vpn-server beside the last node (no NAT: the page it
/// serves is on its own tunnel address) and a vpn-client beside the first node whose tunnel the demo puts into a network
/// namespace of its own (<c>--netns</c>), so that what is pinged and fetched from that namespace crosses the tunnel and
/// the whole chain, never the host's loopback. The namespace is deleted when the demo stops; the apps remove their
/// devices themselves when viscript stops them.
/// </summary>
internal sealed partial class DemoRunner
{
    private const int VpnSteps = 3;
    private const string VpnServerName = "demo-vpn";
    private const string VpnClientName = "demo-vpn-client";

    /// <summary>The demo's VPN subnet; the server (and its page) is on the first address.</summary>
    private static readonly IPNetwork VpnSubnet = IPNetwork.Parse("10.66.77.0/24");
    private static readonly IPAddress VpnGateway = IPAddress.Parse("10.66.77.1");

    private static readonly string[] ToolFolders = ["/usr/sbin", "/usr/bin", "/sbin", "/bin"];

    private string _vpnNamespace = "";
    private bool _vpnNamespaceMade;
    private DemoWebServer? _vpnWeb;
    private string _vpnServerDevice = "";
    private string _vpnClientDevice = "";
    private string _vpnClientAddress = "";
    private string _vpnResult = "";

    private void PrepareVpn()
    {
        if (!OperatingSystem.IsLinux())
        {
            throw new DemoStepException("--vpn needs Linux (TUN devices and network namespaces)");
        }

        if (Environment.UserName != "root")
        {
            throw new DemoStepException("--vpn needs root (TUN devices, a network namespace): run it with sudo");
        }

        foreach (var (tool, package) in new[] { ("ip", "iproute2"), ("nft", "nftables"), ("ping", "iputils-ping"), ("curl", "curl") })
        {
            if (Which(tool) is null)
            {
                throw new DemoStepException($"--vpn needs {tool} (apt-get install {package})");
            }
        }

        _vpnNamespace = "skydemo-" + Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(3));
    }

    private async Task BringUpVpnAsync(CancellationToken cancellationToken)
    {
        await _progress.StepAsync($"start vpn-server beside node {_nodes[^1].Label}", StartVpnServerAsync, cancellationToken);
        await _progress.StepAsync($"start vpn-client beside node {_nodes[0].Label}, its tunnel in namespace {_vpnNamespace}", StartVpnClientAsync, cancellationToken);
        await _progress.StepAsync("ping and fetch a page through the tunnel", VpnTrafficAsync, cancellationToken);
    }

    private async Task<string> StartVpnServerAsync(CancellationToken cancellationToken)
    {
        var exit = _nodes[^1];
        var id = await StartAppAsync(DemoConfig.VpnServer, $"vpn-server beside {exit.Label}",
            ["--node-apps", exit.Apps.ToString(), "--token-file", exit.TokenFile, "--name", VpnServerName, "--subnet", VpnSubnet.ToString(), "--no-nat",
                "--tun", "skydemo-s%d"], cancellationToken);
        var match = await Bounded(ct => _viscript!.WaitForLineAsync(id, VpnServerReady(), ct), "vpn-server to set up its device and register", cancellationToken);
        _vpnServerDevice = match.Groups["dev"].Value;
        _vpnWeb = await DemoWebServer.StartAsync("", cancellationToken, VpnGateway);
        _vpnWeb.Page = $"Hello through the Skywire VPN.\nThis page is served on the vpn-server's tunnel address {_vpnWeb.EndPoint}; you reached it from namespace "
            + $"{_vpnNamespace} through vpn-client -> node " + string.Join(" -> node ", _nodes.Select(n => n.Label)) + " -> vpn-server.\n";
        return $"id {id}, device {_vpnServerDevice} ({VpnGateway}), a page on {_vpnWeb.EndPoint}";
    }

    private async Task<string> StartVpnClientAsync(CancellationToken cancellationToken)
    {
        await ToolAsync("ip", ["netns", "add", _vpnNamespace], cancellationToken);
        _vpnNamespaceMade = true;
        await ToolAsync("ip", ["-n", _vpnNamespace, "link", "set", "lo", "up"], cancellationToken);
        var entry = _nodes[0];
        var id = await StartAppAsync(DemoConfig.VpnClient, $"vpn-client beside {entry.Label}",
            ["--node-apps", entry.Apps.ToString(), "--token-file", entry.TokenFile, "--name", VpnClientName, "--server", $"{_nodes[^1].Key}/{VpnServerName}",
                "--netns", _vpnNamespace, "--tun", "skydemo-c%d"], cancellationToken);
        var match = await Bounded(ct => _viscript!.WaitForLineAsync(id, VpnClientUp(), ct), "the tunnel to come up", cancellationToken);
        _vpnClientDevice = match.Groups["dev"].Value;
        _vpnClientAddress = match.Groups["address"].Value;
        return $"id {id}, device {_vpnClientDevice} in {_vpnNamespace}, address {_vpnClientAddress}, mtu {match.Groups["mtu"].Value}";
    }

    private async Task<string> VpnTrafficAsync(CancellationToken cancellationToken)
    {
        var url = $"http://{_vpnWeb!.EndPoint}";
        _vpnResult = await Bounded(async ct =>
        {
            // The first packets may meet a route still being set up: ping until one answers, then measure.
            while ((await ToolAsync("ip", ["netns", "exec", _vpnNamespace, "ping", "-c", "1", "-W", "2", VpnGateway.ToString()], ct, check: false)).Code != 0)
            {
                await Task.Delay(250, ct);
            }

            var ping = await ToolAsync("ip", ["netns", "exec", _vpnNamespace, "ping", "-c", "3", "-i", "0.2", "-W", "5", VpnGateway.ToString()], ct);
            var rtt = PingRtt().Match(ping.Out) is { Success: true } m ? $"rtt {m.Groups["avg"].Value} ms" : "answered";
            var page = await ToolAsync("ip", ["netns", "exec", _vpnNamespace, "curl", "-sS", "--max-time", "30", url + "/"], ct);
            if (page.Out != _vpnWeb.Page)
            {
                throw new DemoStepException($"the page through the tunnel came back wrong ({page.Out.Length} characters)");
            }

            var text = $"ping {VpnGateway} {rtt}; page {page.Out.Length} bytes";
            if (_options.Check)
            {
                var file = Path.Combine(_dir, "vpn-bytes.bin");
                await ToolAsync("ip", ["netns", "exec", _vpnNamespace, "curl", "-sS", "--max-time", "120", "-o", file, $"{url}/bytes/{_options.CheckBytes}"], ct);
                var got = await File.ReadAllBytesAsync(file, ct);
                File.Delete(file);
                if (!got.AsSpan().SequenceEqual(_vpnWeb.Expected(_options.CheckBytes)))
                {
                    throw new DemoStepException($"{got.Length} bytes through the tunnel, expected {_options.CheckBytes} (or they differ)");
                }

                text += $" and {got.Length} random bytes, byte-exact";
            }

            return text;
        }, "ping and curl through the tunnel", cancellationToken);
        return $"{_vpnResult}, from namespace {_vpnNamespace} through the tunnel across the chain";
    }

    /// <summary>After viscript stopped the apps (each removed its device): the page, then the namespace.</summary>
    private async Task StopVpnAsync()
    {
        if (_vpnWeb is not null)
        {
            await _vpnWeb.DisposeAsync();
            _vpnWeb = null;
        }

        if (!_vpnNamespaceMade)
        {
            return;
        }

        _vpnNamespaceMade = false;
        using var limit = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        var left = (await ToolAsync("ip", ["-n", _vpnNamespace, "-o", "link", "show"], limit.Token, check: false)).Out
            .Split('\n', StringSplitOptions.RemoveEmptyEntries).Count(l => !l.Contains(": lo:", StringComparison.Ordinal));
        var deleted = (await ToolAsync("ip", ["netns", "del", _vpnNamespace], limit.Token, check: false)).Code == 0;
        var serverDevice = _vpnServerDevice.Length > 0 && (await ToolAsync("ip", ["link", "show", "dev", _vpnServerDevice], limit.Token, check: false)).Code == 0;
        await _out.WriteLineAsync(deleted && left == 0 && !serverDevice
            ? $"vpn: both tunnel devices gone, namespace {_vpnNamespace} deleted"
            : $"vpn: WARNING: {(deleted ? "" : $"namespace {_vpnNamespace} not deleted (ip netns del {_vpnNamespace}); ")}"
                + $"{left} device(s) were left in it; server device {_vpnServerDevice} {(serverDevice ? "still there" : "gone")}");
    }

    private void PrintVpnSummary(TextWriter o)
    {
        if (!_options.Vpn || _vpnWeb is null)
        {
            return;
        }

        o.WriteLine($"VPN: vpn-client beside {_nodes[0].Label} has its tunnel {_vpnClientDevice} ({_vpnClientAddress}) in network namespace {_vpnNamespace};");
        o.WriteLine($"  vpn-server beside {_nodes[^1].Label} is on {_vpnServerDevice} ({VpnGateway}). {_vpnResult}. Try (as root):");
        o.WriteLine($"  ip netns exec {_vpnNamespace} ping {VpnGateway}");
        o.WriteLine($"  ip netns exec {_vpnNamespace} curl http://{_vpnWeb.EndPoint}/");
        o.WriteLine("  (both devices and the namespace are removed when the demo stops)");
        o.WriteLine();
    }

    private static async Task<(int Code, string Out, string Err)> ToolAsync(string file, IReadOnlyList<string> args, CancellationToken cancellationToken, bool check = true)
    {
        var info = new ProcessStartInfo(file) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var a in args)
        {
            info.ArgumentList.Add(a);
        }

        using var process = Process.Start(info) ?? throw new DemoStepException($"{file} did not start");
        var stdout = process.StandardOutput.ReadToEndAsync(cancellationToken);
        var stderr = process.StandardError.ReadToEndAsync(cancellationToken);
        try
        {
            await process.WaitForExitAsync(cancellationToken);
        }
        catch (OperationCanceledException)
        {
            process.Kill(entireProcessTree: true);
            throw;
        }

        var result = (process.ExitCode, await stdout, await stderr);
        return check && result.ExitCode != 0
            ? throw new DemoStepException($"{file} {string.Join(' ', args)} failed ({result.ExitCode}): {result.Item3.Trim()}")
            : result;
    }

    private static string? Which(string tool) =>
        ToolFolders.Concat((Environment.GetEnvironmentVariable("PATH") ?? "").Split(':', StringSplitOptions.RemoveEmptyEntries))
            .Select(dir => Path.Combine(dir, tool)).FirstOrDefault(File.Exists);

    [GeneratedRegex(@"vpn-server ready as \S+ on (?<dev>\S+),")]
    private static partial Regex VpnServerReady();

    [GeneratedRegex(@"vpn-client up: device (?<dev>\S+) address (?<address>\S+) gateway \S+ mtu (?<mtu>\d+)")]
    private static partial Regex VpnClientUp();

    [GeneratedRegex(@"= [0-9.]+/(?<avg>[0-9.]+)/")]
    private static partial Regex PingRtt();
}
