using System.Diagnostics;
using System.Net;
using System.Text.RegularExpressions;
using Microsoft.Extensions.Logging;

namespace Skywire.Apps.Vpn;

/// <summary>
/// Changes to the host's network made through iproute2 (<c>ip</c>), nftables (<c>nft</c>) and /proc/sys, each with
/// its undo recorded: <see cref="Dispose"/> undoes them in reverse order, so nothing is left behind on exit
/// (routes and addresses on the TUN device go with the device itself). Commands get argument lists, never a shell.
/// </summary>
public sealed partial class HostNetwork : IDisposable
{
    private static readonly TimeSpan CommandLimit = TimeSpan.FromSeconds(30);
    private readonly Stack<(string What, Action Undo)> _undo = new();
    private readonly ILogger _logger;
    private readonly Lock _sync = new();

    /// <param name="logger">Where failures of undo steps are reported.</param>
    public HostNetwork(ILogger logger)
    {
        _logger = logger;
    }

    /// <summary>Runs a command; returns its standard output.</summary>
    /// <exception cref="IOException">It could not start, exited non-zero (with its stderr) or ran too long.</exception>
    public static string Run(string file, IEnumerable<string> args, string? stdin = null)
    {
        var info = new ProcessStartInfo(file)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = stdin is not null,
            UseShellExecute = false,
        };
        foreach (var a in args)
        {
            info.ArgumentList.Add(a);
        }

        Process process;
        try
        {
            process = Process.Start(info) ?? throw new IOException($"{file} did not start");
        }
        catch (System.ComponentModel.Win32Exception ex)
        {
            throw new IOException($"cannot run {file}: {ex.Message} (the VPN needs iproute2 and nftables)", ex);
        }

        using (process)
        {
            if (stdin is not null)
            {
                process.StandardInput.Write(stdin);
                process.StandardInput.Close();
            }

            var stdout = process.StandardOutput.ReadToEndAsync();
            var stderr = process.StandardError.ReadToEndAsync();
            if (!process.WaitForExit(CommandLimit))
            {
                process.Kill();
                throw new IOException($"{file} {string.Join(' ', info.ArgumentList)} did not finish in {CommandLimit.TotalSeconds} s");
            }

            process.WaitForExit();
            if (process.ExitCode != 0)
            {
                throw new IOException($"{file} {string.Join(' ', info.ArgumentList)} failed: {stderr.Result.Trim()}");
            }

            return stdout.Result;
        }
    }

    /// <summary>Runs <c>ip ARGS</c>.</summary>
    public static string Ip(params string[] args) => Run("ip", args);

    /// <summary>Sets the device's address, MTU and brings it up (IPv6 off on it: the tunnel carries IPv4 only, for now).</summary>
    public static void ConfigureDevice(string device, IPAddress address, int prefixLength, int mtu)
    {
        try
        {
            File.WriteAllText($"/proc/sys/net/ipv6/conf/{device}/disable_ipv6", "1");
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            // No IPv6 on this host: nothing to turn off.
        }

        Ip("addr", "add", $"{address}/{prefixLength}", "dev", device);
        Ip("link", "set", "dev", device, "mtu", mtu.ToString(System.Globalization.CultureInfo.InvariantCulture), "up");
    }

    /// <summary>
    /// Adds a route and records its removal (unless <paramref name="goesWithDevice"/>: a route through a TUN device the
    /// app closes disappears with the device).
    /// </summary>
    public void AddRoute(IPNetwork destination, string device, IPAddress? via = null, bool goesWithDevice = false)
    {
        var args = new List<string> { "route", "add", destination.ToString() };
        if (via is not null)
        {
            args.AddRange(["via", via.ToString()]);
        }

        args.AddRange(["dev", device]);
        Run("ip", args);
        if (goesWithDevice)
        {
            return;
        }

        Push($"route {destination}", () => Ip("route", "del", destination.ToString(), "dev", device));
    }

    /// <summary>
    /// Keeps <paramref name="address"/> on the route it has now (a host route through the same gateway and device), so
    /// a default route into the tunnel does not capture the mesh's own underlay traffic. Loopback and addresses already
    /// inside <paramref name="tunnelDevice"/>'s routes are skipped. Returns false when skipped.
    /// </summary>
    public bool PinRoute(IPAddress address, string tunnelDevice)
    {
        ArgumentNullException.ThrowIfNull(address);
        if (IPAddress.IsLoopback(address) || address.AddressFamily != System.Net.Sockets.AddressFamily.InterNetwork)
        {
            return false;
        }

        var route = Ip("-4", "route", "get", address.ToString());
        var match = RouteGet().Match(route);
        if (!match.Success || match.Groups["dev"].Value == tunnelDevice || match.Groups["dev"].Value == "lo")
        {
            return false;
        }

        var via = match.Groups["via"].Success ? IPAddress.Parse(match.Groups["via"].Value) : null;
        AddRoute(new IPNetwork(address, 32), match.Groups["dev"].Value, via);
        return true;
    }

    /// <summary>Turns IPv4 forwarding on (if off) and records putting it back.</summary>
    public void EnableForwarding()
    {
        const string path = "/proc/sys/net/ipv4/ip_forward";
        var before = File.ReadAllText(path).Trim();
        if (before != "1")
        {
            File.WriteAllText(path, "1");
            Push("ip_forward", () => File.WriteAllText(path, before));
        }
    }

    /// <summary>
    /// Creates the nftables table <paramref name="table"/> (family ip) from <paramref name="body"/> and records
    /// deleting it. A table of that name left by a crashed run is replaced.
    /// </summary>
    public void AddNftTable(string table, string body, string family = "ip")
    {
        try
        {
            Run("nft", ["delete", "table", family, table]);
        }
        catch (IOException)
        {
            // None left over: the usual case.
        }

        Run("nft", ["-f", "-"], $"table {family} {table} {{\n{body}\n}}\n");
        Push($"nft table {family} {table}", () => Run("nft", ["delete", "table", family, table]));
    }

    /// <summary>
    /// Points the host's resolver at <paramref name="dns"/> by rewriting <paramref name="path"/> in place (a bind
    /// mount, e.g. <c>ip netns exec</c>'s, stays valid) and records putting the old content back. Returns why it was
    /// not applied, or null: a symlinked file is managed by something else (systemd-resolved, resolvconf) and left alone.
    /// </summary>
    public string? ApplyResolver(IPAddress dns, string path = "/etc/resolv.conf")
    {
        ArgumentNullException.ThrowIfNull(dns);
        var info = new FileInfo(path);
        if (info.LinkTarget is not null)
        {
            return $"{path} is a symlink to {info.LinkTarget} (managed by another resolver service)";
        }

        var before = info.Exists ? File.ReadAllText(path) : null;
        File.WriteAllText(path, $"# written by skywire vpn-client: the resolver its vpn-server pushed; put back when it exits\nnameserver {dns}\n");
        Push(path, () =>
        {
            if (before is null)
            {
                File.Delete(path);
            }
            else
            {
                File.WriteAllText(path, before);
            }
        });
        return null;
    }

    /// <summary>Records an undo step (run in reverse order by <see cref="Dispose"/>).</summary>
    public void Push(string what, Action undo)
    {
        lock (_sync)
        {
            _undo.Push((what, undo));
        }
    }

    /// <summary>Undoes every recorded change, newest first; a failing step is logged and the rest still run.</summary>
    public void Dispose()
    {
        while (true)
        {
            (string What, Action Undo) step;
            lock (_sync)
            {
                if (!_undo.TryPop(out step))
                {
                    return;
                }
            }

            try
            {
                step.Undo();
            }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
            {
                VpnLog.UndoFailed(_logger, step.What, ex.Message);
            }
        }
    }

    [GeneratedRegex(@"^\S+\s+(?:via (?<via>[0-9.]+)\s+)?dev (?<dev>\S+)")]
    private static partial Regex RouteGet();
}
