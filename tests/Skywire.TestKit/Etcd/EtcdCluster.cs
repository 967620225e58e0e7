using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Security.Cryptography;

namespace Skywire.TestKit.Etcd;

/// <summary>
/// A real etcd cluster for a test (Debian's etcd-server; .ci/run installs it): N members on loopback ports the OS
/// chose, each with its own data folder under a temporary folder, started and stopped by their own pids. Members can be
/// killed (SIGKILL) and started again with the same data, as an operator would.
/// </summary>
public sealed class EtcdCluster : IAsyncDisposable
{
    private readonly string _root;
    private readonly Member[] _members;
    private readonly Action<string>? _output;

    private EtcdCluster(string root, Member[] members, Action<string>? output)
    {
        _root = root;
        _members = members;
        _output = output;
    }

    /// <summary>The etcd executable (etcd-server's /usr/bin/etcd).</summary>
    public static string Executable => File.Exists("/usr/bin/etcd") ? "/usr/bin/etcd" : "etcd";

    /// <summary>Whether the etcd executable is installed.</summary>
    public static bool IsInstalled => File.Exists("/usr/bin/etcd") || (Environment.GetEnvironmentVariable("PATH") ?? "").Split(':').Any(p => File.Exists(Path.Combine(p, "etcd")));

    /// <summary>Number of members.</summary>
    public int Count => _members.Length;

    /// <summary>Client URLs of every member.</summary>
    public IReadOnlyList<Uri> ClientUrls => [.. _members.Select(m => m.ClientUrl)];

    /// <summary>The <c>etcd://…</c> address the manager's --store takes, with a prefix of its own.</summary>
    public string StoreAddress(string prefix) => "etcd://" + string.Join(",", _members.Select(m => $"127.0.0.1:{m.ClientUrl.Port}")) + prefix;

    /// <summary>Starts <paramref name="members"/> members and waits until the cluster answers.</summary>
    public static async Task<EtcdCluster> StartAsync(int members, Action<string>? output = null, CancellationToken cancellationToken = default)
    {
        if (!IsInstalled)
        {
            throw new InvalidOperationException("etcd is not installed (Debian package etcd-server; .ci/run installs it)");
        }

        var root = Directory.CreateTempSubdirectory("skywire-etcd-").FullName;
        var token = "t" + Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(6));
        var list = new Member[members];
        for (var i = 0; i < members; i++)
        {
            list[i] = new Member($"m{i + 1}", Path.Combine(root, $"m{i + 1}.etcd"), new Uri($"http://127.0.0.1:{FreePort()}"), new Uri($"http://127.0.0.1:{FreePort()}"));
        }

        var initial = string.Join(",", list.Select(m => $"{m.Name}={m.PeerUrl.GetLeftPart(UriPartial.Authority)}"));
        foreach (var m in list)
        {
            var client = m.ClientUrl.GetLeftPart(UriPartial.Authority);
            var peer = m.PeerUrl.GetLeftPart(UriPartial.Authority);
            m.Arguments = $"--name {m.Name} --data-dir {m.DataDir} --listen-client-urls {client} --advertise-client-urls {client} " +
                $"--listen-peer-urls {peer} --initial-advertise-peer-urls {peer} --initial-cluster {initial} " +
                $"--initial-cluster-state new --initial-cluster-token {token} --heartbeat-interval 100 --election-timeout 1000 --log-level warn";
        }

        var cluster = new EtcdCluster(root, list, output);
        try
        {
            foreach (var m in list)
            {
                cluster.Launch(m);
            }

            await cluster.WaitHealthyAsync(cancellationToken);
            return cluster;
        }
        catch
        {
            await cluster.DisposeAsync();
            throw;
        }
    }

    /// <summary>Kills member <paramref name="index"/> (SIGKILL) and waits for it to exit.</summary>
    public async Task KillAsync(int index)
    {
        var m = _members[index];
        if (m.Process is { HasExited: false } p)
        {
            p.Kill();
            await p.WaitForExitAsync();
        }

        m.Process?.Dispose();
        m.Process = null;
    }

    /// <summary>Starts member <paramref name="index"/> again on its data folder (its ports and name unchanged).</summary>
    public void Restart(int index)
    {
        var m = _members[index];
        if (m.Process is { HasExited: false })
        {
            throw new InvalidOperationException($"member {m.Name} is running");
        }

        Launch(m);
    }

    /// <summary>Waits until every running member answers its health endpoint.</summary>
    public async Task WaitHealthyAsync(CancellationToken cancellationToken = default)
    {
        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(2) };
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(60);
        foreach (var m in _members.Where(m => m.Process is not null))
        {
            while (true)
            {
                try
                {
                    using var response = await http.GetAsync(new Uri(m.ClientUrl, "/health"), cancellationToken);
                    var body = await response.Content.ReadAsStringAsync(cancellationToken);
                    if (response.IsSuccessStatusCode && body.Contains("\"true\"", StringComparison.Ordinal))
                    {
                        break;
                    }
                }
                catch (Exception ex) when (ex is HttpRequestException or TaskCanceledException)
                {
                }

                if (m.Process is { HasExited: true })
                {
                    throw new InvalidOperationException($"etcd member {m.Name} exited with {m.Process.ExitCode}");
                }

                if (DateTime.UtcNow > deadline)
                {
                    throw new TimeoutException($"etcd member {m.Name} not healthy within 60 s");
                }

                await Task.Delay(100, cancellationToken);
            }
        }
    }

    private void Launch(Member m)
    {
        var info = new ProcessStartInfo(Executable, m.Arguments)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        var process = Process.Start(info) ?? throw new InvalidOperationException("etcd did not start");
        process.OutputDataReceived += (_, e) => Write(m, e.Data);
        process.ErrorDataReceived += (_, e) => Write(m, e.Data);
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        m.Process = process;
    }

    private void Write(Member m, string? line)
    {
        if (line is null || _output is null)
        {
            return;
        }

        try
        {
            _output($"[etcd {m.Name}] {line}");
        }
        catch (InvalidOperationException)
        {
            // The test ended: its output is closed.
        }
    }

    private static int FreePort()
    {
        using var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        socket.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        return ((IPEndPoint)socket.LocalEndPoint!).Port;
    }

    /// <inheritdoc />
    public async ValueTask DisposeAsync()
    {
        for (var i = 0; i < _members.Length; i++)
        {
            await KillAsync(i);
        }

        try
        {
            Directory.Delete(_root, recursive: true);
        }
        catch (IOException)
        {
        }
    }

    private sealed class Member(string name, string dataDir, Uri clientUrl, Uri peerUrl)
    {
        public string Name { get; } = name;

        public string DataDir { get; } = dataDir;

        public Uri ClientUrl { get; } = clientUrl;

        public Uri PeerUrl { get; } = peerUrl;

        public string Arguments { get; set; } = "";

        public Process? Process { get; set; }
    }
}
