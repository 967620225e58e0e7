using System.Diagnostics;
using System.Net;
using System.Text.RegularExpressions;
using Microsoft.Extensions.Logging;

namespace Skywire.Apps.Vpn;

/// <summary>
/// Changes to the host's network made through iproute2 (<c>ip</c>), nftables (<c>nft</c>) and /proc/sys, each with
/// its undo recorded: <see cref="Dispose"/> undoes them in reverse order, so nothing is left behind on exit
/// (routes and addresses on the TUN device go with the device itself). Commands get argument lists, never a shell.
/// With a network namespace every change is made inside it (<c>ip -n</c>, <c>ip netns exec</c>).
/// </summary>
public sealed partial class HostNetwork : IDisposable
{
    private static readonly TimeSpan CommandLimit = TimeSpan.FromSeconds(30);
    private readonly Stack<(string What, Action Undo)> _undo = new();
    private readonly ILogger _logger;
    private readonly Lock _sync = new();

    private readonly string? _namespace;

    /// <param name="logger">Where failures of undo steps are reported.</param>
    /// <param name="networkNamespace">A named network namespace (<c>ip netns</c>) to make the changes in; null: this process's.</param>
    public HostNetwork(ILogger logger, string? networkNamespace = null)
    {
        _logger = logger;
        _namespace = networkNamespace;
    }

    /// <summary>The named network namespace the changes are made in, or null.</summary>
    public string? Namespace => _namespace;

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

    /// <summary>Runs <c>ip ARGS</c> (in the namespace, if any).</summary>
    public string Ip(params string[] args) => Run("ip", _namespace is null ? args : ["-n", _namespace, .. args]);

    /// <summary>Runs <c>nft ARGS</c> (in the namespace, if any).</summary>
    private string Nft(string[] args, string? stdin = null) =>
        _namespace is null ? Run("nft", args, stdin) : Run("ip", ["netns", "exec", _namespace, "nft", .. args], stdin);

    /// <summary>Writes a /proc/sys knob (in the namespace, if any: /proc/sys/net is per namespace).</summary>
    private void WriteSysctl(string path, string value)
    {
        if (_namespace is null)
        {
            File.WriteAllText(path, value);
        }
        else
        {
            Run("ip", ["netns", "exec", _namespace, "tee", path], value);
        }
    }

    /// <summary>Moves <paramref name="device"/> into the namespace (no-op without one); it stays tied to this process's descriptor.</summary>
    public void TakeIntoNamespace(string device)
    {
        if (_namespace is not null)
        {
            Run("ip", ["link", "set", "dev", device, "netns", _namespace]);
        }
    }

    /// <summary>Whether this host has an IPv6 stack.</summary>
    public static bool HasIPv6 => Directory.Exists("/proc/sys/net/ipv6");

    /// <summary>Changes the device's MTU (the path changed while the tunnel is up).</summary>
    public void SetMtu(string device, int mtu) =>
        Ip("link", "set", "dev", device, "mtu", mtu.ToString(System.Globalization.CultureInfo.InvariantCulture));

    /// <summary>
    /// Sets the device's addresses and MTU and brings it up. With <paramref name="ipv6"/> the device carries IPv6 (with
    /// <paramref name="address6"/> if given, no duplicate address detection, no link-local address: nothing but
    /// tunnel traffic leaves through it); otherwise IPv6 is turned off on it.
    /// </summary>
    public void ConfigureDevice(string device, IPAddress address, int prefixLength, int mtu, bool ipv6 = false, IPAddress? address6 = null, int prefixLength6 = 0)
    {
        if (ipv6)
        {
            TrySysctl($"/proc/sys/net/ipv6/conf/{device}/addr_gen_mode", "1");
        }

        TrySysctl($"/proc/sys/net/ipv6/conf/{device}/disable_ipv6", ipv6 ? "0" : "1");
        Ip("link", "set", "dev", device, "mtu", mtu.ToString(System.Globalization.CultureInfo.InvariantCulture));
        Ip("addr", "replace", $"{address}/{prefixLength}", "dev", device);
        if (ipv6 && address6 is not null)
        {
            Ip("-6", "addr", "replace", $"{address6}/{prefixLength6}", "dev", device, "nodad");
        }

        Ip("link", "set", "dev", device, "up");

        void TrySysctl(string path, string value)
        {
            try
            {
                WriteSysctl(path, value);
            }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
            {
                // No IPv6 on this host (or no such knob on this kernel): nothing to set.
            }
        }
    }

    /// <summary>
    /// Adds a route and records its removal (unless <paramref name="goesWithDevice"/>: a route through a TUN device the
    /// app closes disappears with the device).
    /// </summary>
    public void AddRoute(IPNetwork destination, string device, IPAddress? via = null, bool goesWithDevice = false)
    {
        var family = destination.BaseAddress.AddressFamily == System.Net.Sockets.AddressFamily.InterNetworkV6 ? "-6" : "-4";
        var args = new List<string> { family, "route", "add", destination.ToString() };
        if (via is not null)
        {
            args.AddRange(["via", via.ToString()]);
        }

        args.AddRange(["dev", device]);
        Ip([.. args]); // in the tunnel's namespace with --netns, like every other change

        if (goesWithDevice)
        {
            return;
        }

        Push($"route {destination}", () => Ip(family, "route", "del", destination.ToString(), "dev", device));
    }

    /// <summary>
    /// Keeps <paramref name="address"/> on the route it has now (a host route through the same gateway and device), so
    /// a default route into the tunnel does not capture the mesh's own underlay traffic. Loopback and addresses already
    /// inside <paramref name="tunnelDevice"/>'s routes are skipped. Returns false when skipped.
    /// </summary>
    public bool PinRoute(IPAddress address, string tunnelDevice)
    {
        ArgumentNullException.ThrowIfNull(address);
        var v6 = address.AddressFamily == System.Net.Sockets.AddressFamily.InterNetworkV6;
        if (IPAddress.IsLoopback(address) || (v6 && (address.IsIPv6LinkLocal || !HasIPv6)))
        {
            return false;
        }

        string answer;
        try
        {
            answer = Ip(v6 ? "-6" : "-4", "route", "get", address.ToString());
        }
        catch (IOException)
        {
            // No route to it at all (e.g. inside a namespace that has only the tunnel): nothing to keep outside.
            return false;
        }

        if (ParseRouteGet(answer) is not { } found || found.Device == tunnelDevice || found.Device == "lo")
        {
            return false;
        }

        AddRoute(new IPNetwork(address, v6 ? 128 : 32), found.Device, found.Via);
        return true;
    }

    /// <summary>
    /// The IP MTU toward <paramref name="address"/> in this process's namespace (where the node's links are): the
    /// route's MTU if it has one (also a learned path MTU), else its interface's; null when there is no route.
    /// </summary>
    public static int? MtuToward(IPAddress address)
    {
        ArgumentNullException.ThrowIfNull(address);
        try
        {
            var route = Run("ip", [address.AddressFamily == System.Net.Sockets.AddressFamily.InterNetworkV6 ? "-6" : "-4", "route", "get", address.ToString()]);
            if (MtuField().Match(route) is { Success: true } onRoute)
            {
                return int.Parse(onRoute.Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture);
            }

            return ParseRouteGet(route) is { } found && MtuField().Match(Run("ip", ["-o", "link", "show", "dev", found.Device])) is { Success: true } onLink
                ? int.Parse(onLink.Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture)
                : null;
        }
        catch (IOException)
        {
            return null;
        }
    }

    /// <summary>The device and gateway of <c>ip route get</c>'s answer (IPv4 or IPv6), or null when it has none.</summary>
    public static (string Device, IPAddress? Via)? ParseRouteGet(string output)
    {
        var match = RouteGet().Match(output);
        return match.Success
            ? (match.Groups["dev"].Value, match.Groups["via"].Success ? IPAddress.Parse(match.Groups["via"].Value) : null)
            : null;
    }

    /// <summary>IPv4 forwarding's switch.</summary>
    public const string IPv4Forwarding = "/proc/sys/net/ipv4/ip_forward";

    /// <summary>IPv6 forwarding's switch (all interfaces).</summary>
    public const string IPv6Forwarding = "/proc/sys/net/ipv6/conf/all/forwarding";

    /// <summary>Turns forwarding on at <paramref name="path"/> (if off) and records putting it back.</summary>
    public void EnableForwarding(string path = IPv4Forwarding)
    {
        var before = _namespace is null ? File.ReadAllText(path).Trim() : Run("ip", ["netns", "exec", _namespace, "cat", path]).Trim();
        if (before != "1")
        {
            WriteSysctl(path, "1");
            Push(path, () => WriteSysctl(path, before));
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
            Nft(["delete", "table", family, table]);
        }
        catch (IOException)
        {
            // None left over: the usual case.
        }

        Nft(["-f", "-"], $"table {family} {table} {{\n{body}\n}}\n");
        Push($"nft table {family} {table}", () => Nft(["delete", "table", family, table]));
    }

    /// <summary>
    /// Points the host's resolver at <paramref name="dns"/> (in this order) by rewriting <paramref name="path"/> in place (a bind
    /// mount, e.g. <c>ip netns exec</c>'s, stays valid) and records putting the old content back. Returns why it was
    /// not applied, or null: a symlinked file is managed by something else (systemd-resolved, resolvconf) and left alone.
    /// </summary>
    public string? ApplyResolver(IReadOnlyList<IPAddress> dns, string path = "/etc/resolv.conf")
    {
        ArgumentNullException.ThrowIfNull(dns);
        var info = new FileInfo(path);
        if (info.LinkTarget is not null)
        {
            return $"{path} is a symlink to {info.LinkTarget} (managed by another resolver service)";
        }

        if (Path.GetDirectoryName(Path.GetFullPath(path)) is { } folder && !Directory.Exists(folder))
        {
            // /etc/netns/NAME for a namespace: made here, removed again at exit.
            Directory.CreateDirectory(folder);
            Push(folder, () => Directory.Delete(folder));
        }

        var before = info.Exists ? File.ReadAllText(path) : null;
        File.WriteAllText(path, "# written by skywire vpn-client: the resolvers its vpn-server pushed; put back when it exits\n"
            + string.Concat(dns.Select(d => $"nameserver {d}\n")));
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

    [GeneratedRegex(@"\bmtu (\d+)")]
    private static partial Regex MtuField();

    [GeneratedRegex(@"^\S+\s+(?:from \S+\s+)?(?:via (?<via>[0-9A-Fa-f.:]+)\s+)?dev (?<dev>\S+)")]
    private static partial Regex RouteGet();
}
