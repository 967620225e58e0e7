using System.Diagnostics;
using System.Security.Cryptography;

namespace Skywire.TestKit.Netns;

/// <summary>
/// Network namespaces made for one test: a hub namespace with a bridge, and one namespace per host joined to it by a
/// veth pair, addressed 10.77.x.y/24 (only inside these namespaces). Everything is deleted on dispose.
/// Namespaces are named PREFIX-test-TAG-NAME and interfaces PREFIXTAG..., so leftovers show whose they are.
/// </summary>
public sealed class NetworkNamespaces : IDisposable
{
    private readonly List<string> _namespaces = [];
    private readonly string _prefix;
    private readonly string _short;
    private readonly string _hub;
    private readonly int _subnet;
    private int _next = 1;

    /// <param name="prefix">Two letters naming the test suite ("sw" Skywire, "vs" Viscript).</param>
    public NetworkNamespaces(string prefix = "sw")
    {
        var tag = Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(3));
        _short = prefix;
        _prefix = prefix + "-test-" + tag;
        _subnet = RandomNumberGenerator.GetInt32(1, 250);
        _hub = Add("hub");
        Run("ip", "netns", "exec", _hub, "ip", "link", "add", "br0", "type", "bridge");
        Run("ip", "netns", "exec", _hub, "ip", "link", "set", "br0", "up");
        Tag = tag;
    }

    public string Tag { get; }

    /// <summary>Whether this machine can run the test (root, iproute2).</summary>
    public static string? Unsupported()
    {
        if (!OperatingSystem.IsLinux())
        {
            return "network namespaces need Linux";
        }

        if (Environment.UserName != "root" && Environment.GetEnvironmentVariable("USER") != "root")
        {
            return "network namespaces need root";
        }

        return File.Exists("/usr/sbin/ip") || File.Exists("/sbin/ip") || File.Exists("/usr/bin/ip") ? null : "iproute2 (ip) is not installed";
    }

    private string Add(string name)
    {
        var ns = $"{_prefix}-{name}";
        Run("ip", "netns", "add", ns);
        _namespaces.Add(ns);
        Run("ip", "netns", "exec", ns, "ip", "link", "set", "lo", "up");
        return ns;
    }

    /// <summary>Creates a host namespace on the bridge; returns its name and IPv4 address.</summary>
    public (string Namespace, string Address) AddHost(string name)
    {
        var ns = Add(name);
        var index = _next++;
        var inner = $"{_short}{Tag}{index}";
        var outer = $"{_short}{Tag}{index}h";
        Run("ip", "link", "add", inner, "type", "veth", "peer", "name", outer);
        Run("ip", "link", "set", inner, "netns", ns);
        Run("ip", "link", "set", outer, "netns", _hub);
        Run("ip", "netns", "exec", _hub, "ip", "link", "set", outer, "master", "br0");
        Run("ip", "netns", "exec", _hub, "ip", "link", "set", outer, "up");
        var address = $"10.77.{_subnet}.{index}";
        Run("ip", "netns", "exec", ns, "ip", "addr", "add", address + "/24", "dev", inner);
        Run("ip", "netns", "exec", ns, "ip", "link", "set", inner, "up");
        return (ns, address);
    }

    /// <summary>Creates a namespace with only its loopback up (no link anywhere); deleted on dispose. Returns its name.</summary>
    public string AddEmpty(string name) => Add(name);

    /// <summary>Runs <paramref name="command"/> inside namespace <paramref name="ns"/>; throws with its stderr if it fails.</summary>
    public static void Exec(string ns, params string[] command) => Run(["ip", "netns", "exec", ns, .. command]);

    /// <summary>
    /// Calls <paramref name="create"/> on a thread that joined namespace <paramref name="ns"/> (setns: a network
    /// namespace is per thread on Linux), so the sockets it opens live there for good, whichever thread uses them after.
    /// </summary>
    public static T InNamespace<T>(string ns, Func<T> create)
    {
        ArgumentNullException.ThrowIfNull(create);
        T result = default!;
        Exception? failure = null;
        var thread = new Thread(() =>
        {
            try
            {
                using var handle = File.OpenHandle(Path.Combine("/var/run/netns", ns));
                if (SetNs((int)handle.DangerousGetHandle(), CloneNewNet) != 0)
                {
                    throw new InvalidOperationException($"setns({ns}) failed: errno {System.Runtime.InteropServices.Marshal.GetLastPInvokeError()}");
                }

                result = create();
            }
            catch (Exception ex)
            {
                failure = ex;
            }
        });
        thread.Start();
        thread.Join();
        return failure is null ? result : throw new InvalidOperationException($"in namespace {ns}: {failure.Message}", failure);
    }

    private const int CloneNewNet = 0x40000000;

    [System.Runtime.InteropServices.DllImport("libc", EntryPoint = "setns", SetLastError = true)]
    private static extern int SetNs(int fd, int nstype);

    /// <summary>Takes a host's link down or up (a cut network, without closing any socket).</summary>
    public void SetLink(string ns, int index, bool up) => Run("ip", "netns", "exec", ns, "ip", "link", "set", $"{_short}{Tag}{index}", up ? "up" : "down");

    /// <summary>
    /// Creates a namespace reachable only through <paramref name="gateway"/> (a veth pair between the two, subnet
    /// 10.78.x.0/24 with the gateway at .1): a host "behind" an exit. Returns its name and address.
    /// </summary>
    public (string Namespace, string Address, string Subnet) AddBehind(string gateway, string name)
    {
        var ns = Add(name);
        var index = _next++;
        var inner = $"{_short}{Tag}{index}";
        var outer = $"{_short}{Tag}{index}g";
        Run("ip", "link", "add", inner, "type", "veth", "peer", "name", outer);
        Run("ip", "link", "set", inner, "netns", ns);
        Run("ip", "link", "set", outer, "netns", gateway);
        var subnet = $"10.78.{_subnet}";
        Run("ip", "netns", "exec", gateway, "ip", "addr", "add", subnet + ".1/24", "dev", outer);
        Run("ip", "netns", "exec", gateway, "ip", "link", "set", outer, "up");
        Run("ip", "netns", "exec", ns, "ip", "addr", "add", subnet + ".2/24", "dev", inner);
        Run("ip", "netns", "exec", ns, "ip", "link", "set", inner, "up");
        return (ns, subnet + ".2", subnet + ".0/24");
    }

    private static void Run(params string[] args)
    {
        var info = new ProcessStartInfo(args[0]) { RedirectStandardError = true, RedirectStandardOutput = true, UseShellExecute = false };
        foreach (var a in args.Skip(1))
        {
            info.ArgumentList.Add(a);
        }

        using var p = Process.Start(info)!;
        var err = p.StandardError.ReadToEnd();
        p.WaitForExit();
        if (p.ExitCode != 0)
        {
            throw new InvalidOperationException($"{string.Join(' ', args)} failed: {err}");
        }
    }

    public void Dispose()
    {
        // Deleting a namespace deletes its veth ends (and so their peers).
        foreach (var ns in Enumerable.Reverse(_namespaces))
        {
            try
            {
                Run("ip", "netns", "del", ns);
            }
            catch (InvalidOperationException)
            {
            }
        }
    }
}
