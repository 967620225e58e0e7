using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Text;
using Skywire.Core.Crypto;
using Skywire.TestKit.Etcd;

namespace Skywire.IntegrationTests.EndToEnd;

/// <summary>
/// Issue 17's "done when", the way docs/operations.md "Several managers (etcd)" does it: viscript starts
/// samples/mesh/etcd-mesh.yaml (3 etcd members, 2 managers sharing the cluster key, 4 nodes spread over them, a SOCKS5
/// entry and exit), a SOCKS5 connection reaches an echo server; then manager 1 is killed (SIGKILL) and an etcd member
/// too, and new connections keep working. Only ports (free ones), the cluster key and the skywire path are changed.
/// </summary>
public sealed partial class MeshFromViscriptTests
{
    [Fact]
    public async Task EtcdSampleMesh_TwoManagers_ComesUp_AndKeepsServingWhenAManagerAndAnEtcdMemberDie()
    {
        Assert.True(EtcdCluster.IsInstalled, "etcd is not installed (Debian package etcd-server; .ci/run installs it)");
        var root = SkywireProcess.Executable;
        while (!File.Exists(Path.Combine(root, "Skywire.slnx")))
        {
            root = Path.GetDirectoryName(root)!;
        }

        var configuration = Path.GetFileName(Path.GetDirectoryName(Path.GetDirectoryName(SkywireProcess.Executable)))!;
        var viscript = Path.Combine(root, "src", "Viscript", "bin", configuration, "net10.0", "viscript.dll");
        Assert.True(File.Exists(viscript), "build viscript first: " + viscript);

        string clusterKey;
        using (var key = KeyFile.LoadOrCreate(FilePath("cluster.json")))
        {
            clusterKey = key.Public.ToString();
        }

        var yaml = await File.ReadAllTextAsync(Path.Combine(root, "samples", "mesh", "etcd-mesh.yaml"));
        yaml = yaml.Replace("CLUSTER_KEY", clusterKey, StringComparison.Ordinal)
            .Replace("../src/Skywire/bin/Release/net10.0/skywire", Path.ChangeExtension(SkywireProcess.Executable, null), StringComparison.Ordinal)
            .Replace("path: etcd\n", $"path: {EtcdCluster.Executable}\n", StringComparison.Ordinal);
        // Every fixed port of the sample becomes a different free one, in one pass (a free port never meets a later
        // replacement).
        var originals = new[] { "2379", "2380", "22379", "22380", "32379", "32380", "5999", "6999", "7010", "7011", "7012", "7013", "1080" };
        var free = FreePorts(originals.Length);
        var map = originals.Select((p, i) => (p, i)).ToDictionary(x => x.p, x => free[x.i].ToString(System.Globalization.CultureInfo.InvariantCulture));
        yaml = System.Text.RegularExpressions.Regex.Replace(yaml, @"127\.0\.0\.1:(\d+)(?=[""\],\n])", m => map.TryGetValue(m.Groups[1].Value, out var port) ? "127.0.0.1:" + port : m.Value);
        var manager1 = "--listen 127.0.0.1:" + map["5999"] + " ";

        Assert.DoesNotContain("CLUSTER_KEY", yaml, StringComparison.Ordinal);
        Assert.DoesNotContain(":5999", yaml, StringComparison.Ordinal);
        Assert.DoesNotContain(":2379", yaml, StringComparison.Ordinal);
        await File.WriteAllTextAsync(FilePath("etcd-mesh.yaml"), yaml);
        var socksAt = IPEndPoint.Parse(yaml.Split('\n').Single(l => l.Contains("[app, socks-client,", StringComparison.Ordinal)).Split("--listen, ")[1].TrimEnd(']', ' ', '\r'));

        using var echo = new TcpListener(IPAddress.Loopback, 0);
        echo.Start();
        using var stopEcho = new CancellationTokenSource();
        var echoLoop = EchoAsync(echo, stopEcho.Token);

        var info = new ProcessStartInfo("dotnet") { RedirectStandardInput = true, RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var a in new[] { viscript, "--headless", "--config", FilePath("etcd-mesh.yaml"), "--signal", "127.0.0.1:0", "--control", "127.0.0.1:0" })
        {
            info.ArgumentList.Add(a);
        }

        info.Environment["XDG_RUNTIME_DIR"] = Directory.CreateDirectory(FilePath("xdg")).FullName;
        info.Environment.Remove("VISCRIPT_CONTROL");
        info.Environment.Remove("VISCRIPT_TOKEN");
        info.Environment.Remove("VISCRIPT_TOKEN_FILE");
        using var daemon = Process.Start(info)!;
        var output = new StringBuilder();
        daemon.OutputDataReceived += (_, e) => { lock (output) { output.AppendLine(e.Data); } };
        daemon.ErrorDataReceived += (_, e) => { lock (output) { output.AppendLine(e.Data); } };
        daemon.BeginOutputReadLine();
        daemon.BeginErrorReadLine();
        try
        {
            // 1. Everything at once: etcd forms its cluster, the managers and nodes find it, the mesh comes up.
            await FetchThroughMeshAsync(socksAt, (IPEndPoint)echo.LocalEndpoint, "first", output);

            // 2. Manager 1 dies (SIGKILL): its nodes go to manager 2, new connections keep working.
            var manager = ChildRunning(manager1);
            using (var p = Process.GetProcessById(manager))
            {
                p.Kill();
            }

            await FetchThroughMeshAsync(socksAt, (IPEndPoint)echo.LocalEndpoint, "after manager 1 died", output);

            // 3. One etcd member of three dies: nothing visible changes.
            var member = ChildRunning("etcd-2.data", "etcd");
            using (var p = Process.GetProcessById(member))
            {
                p.Kill();
            }

            await FetchThroughMeshAsync(socksAt, (IPEndPoint)echo.LocalEndpoint, "after an etcd member died", output);
        }
        finally
        {
            try
            {
                await daemon.StandardInput.WriteLineAsync("quit");
                await daemon.StandardInput.FlushAsync();
                await daemon.WaitForExitAsync().WaitAsync(TimeSpan.FromSeconds(60));
            }
            catch (Exception ex) when (ex is TimeoutException or IOException)
            {
                daemon.Kill(entireProcessTree: true);
            }

            await stopEcho.CancelAsync();
            echo.Stop();
            await echoLoop;
        }

        Assert.Equal(0, ChildRunningOrZero("skywire"));
        Assert.Equal(0, ChildRunningOrZero(".data", "etcd"));
    }
}
