using System.Diagnostics;
using System.Text.RegularExpressions;
using Skywire.IntegrationTests.EndToEnd;
using Skywire.TestKit.Netns;

namespace Skywire.IntegrationTests.Vpn;

/// <summary>
/// `skywire demo --check --vpn` through the built executable (root): after the SOCKS steps, a vpn-server beside the
/// last node and a vpn-client beside the first with its tunnel in a namespace the demo makes; a ping and a page (and
/// 1 MiB byte for byte) from that namespace through the tunnel across the chain; then no process, device or
/// namespace left behind.
/// </summary>
[Trait("Category", "E2E")]
public sealed partial class DemoVpnTests : IDisposable
{
    private readonly string _dir = Path.Combine(Path.GetTempPath(), "skywire-demo-vpn-test-" + Guid.NewGuid().ToString("n")[..12]);
    private string? _namespace;

    [Fact]
    public async Task DemoCheckVpn_PingAndPageThroughTheTunnel_NothingLeftBehind()
    {
        if (NetworkNamespaces.Unsupported() is { } reason)
        {
            Assert.Skip(reason);
        }

        foreach (var tool in new[] { "nft", "ping", "curl" })
        {
            if (!new[] { "/usr/sbin", "/usr/bin", "/sbin", "/bin" }.Any(d => File.Exists(Path.Combine(d, tool))))
            {
                Assert.Skip($"{tool} is not installed (.ci/run installs it)");
            }
        }

        await using var demo = SkywireProcess.Start(null, ["demo", "--check", "--vpn", "--dir", _dir, "--step-timeout", "150"]);
        var code = await demo.WaitForExitAsync(TimeSpan.FromMinutes(12));
        var stdout = demo.StdoutText;
        _namespace = NamespaceLine().Match(stdout) is { Success: true } m ? m.Groups[1].Value : null;
        Assert.True(code == 0, $"exit {code}\nstdout:\n{stdout}\nstderr:\n{demo.Stderr}");

        Assert.Equal(14, stdout.Split('\n').Count(l => l.Contains(" ... ok (", StringComparison.Ordinal)));
        Assert.Contains("3 hops: A > B > C > D", stdout, StringComparison.Ordinal);
        Assert.Matches(@"through the VPN: ping 10\.66\.77\.1 (rtt [0-9.]+ ms|answered); page \d+ bytes and 1048576 random bytes, byte-exact", stdout);
        Assert.Contains("viscript stopped its 11 apps and exited (0)", stdout, StringComparison.Ordinal);
        Assert.NotNull(_namespace);
        Assert.Contains($"vpn: both tunnel devices gone, namespace {_namespace} deleted", stdout, StringComparison.Ordinal);

        // Checked from outside too: the namespace, the server's device and every process are gone.
        Assert.DoesNotContain(_namespace, await RunAsync("ip", "netns", "list"), StringComparison.Ordinal);
        Assert.DoesNotContain("skydemo-s", await RunAsync("ip", "-o", "link", "show"), StringComparison.Ordinal);
        Assert.Empty(ProcessesMentioning(_dir));
    }

    [GeneratedRegex(@"in namespace (skydemo-[0-9a-f]{6})")]
    private static partial Regex NamespaceLine();

    private static async Task<string> RunAsync(string file, params string[] args)
    {
        var info = new ProcessStartInfo(file) { RedirectStandardOutput = true, UseShellExecute = false };
        foreach (var a in args)
        {
            info.ArgumentList.Add(a);
        }

        using var p = Process.Start(info)!;
        var output = await p.StandardOutput.ReadToEndAsync();
        await p.WaitForExitAsync();
        return output;
    }

    private static List<string> ProcessesMentioning(string text)
    {
        var found = new List<string>();
        foreach (var proc in Directory.EnumerateDirectories("/proc"))
        {
            if (!int.TryParse(Path.GetFileName(proc), out var pid) || pid == Environment.ProcessId)
            {
                continue;
            }

            try
            {
                var cmdline = File.ReadAllText(Path.Combine(proc, "cmdline")).Replace('\0', ' ');
                if (cmdline.Contains(text, StringComparison.Ordinal))
                {
                    found.Add($"{pid}: {cmdline}");
                }
            }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
            {
                // Exited while we looked.
            }
        }

        return found;
    }

    public void Dispose()
    {
        // Only if the demo failed to remove it: the namespace it made for this run.
        if (_namespace is not null && File.Exists(Path.Combine("/var/run/netns", _namespace)))
        {
            using var p = Process.Start("ip", ["netns", "del", _namespace]);
            p.WaitForExit();
        }

        try
        {
            Directory.Delete(_dir, recursive: true);
        }
        catch (DirectoryNotFoundException)
        {
        }
    }
}
