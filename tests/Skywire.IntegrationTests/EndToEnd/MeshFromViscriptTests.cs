using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Text;
using Skywire.Core.Crypto;

namespace Skywire.IntegrationTests.EndToEnd;

/// <summary>
/// Issue 13.3's "done when", the way an operator does it: viscript starts the repository's samples/mesh/mesh.yaml (a
/// manager, four nodes, a socks-server and a socks-client, all <c>autostart</c> at once, in no order), and the mesh comes
/// up by itself: a SOCKS5 connection through the entry reaches a TCP echo server behind the exit. Then the manager and
/// then the exit's node are killed with SIGKILL; viscript restarts them (<c>restart: on-failure</c>) and the mesh heals
/// without a command: a new SOCKS5 connection works each time. Only the ports (free ones), the manager key and the path of
/// the built skywire are changed in the file.
/// </summary>
[Trait("Category", "E2E")]
public sealed partial class MeshFromViscriptTests() : ExecutableTestBase("skywire-viscript-mesh-")
{
    private static readonly TimeSpan Limit = TimeSpan.FromSeconds(120);

    [Fact]
    public async Task SampleMesh_AllAppsAtOnce_ComesUp_AndHealsAfterManagerAndNodeKills()
    {
        var root = SkywireProcess.Executable;
        while (!File.Exists(Path.Combine(root, "Skywire.slnx")))
        {
            root = Path.GetDirectoryName(root)!;
        }

        var configuration = Path.GetFileName(Path.GetDirectoryName(Path.GetDirectoryName(SkywireProcess.Executable)))!;
        var viscript = Path.Combine(root, "src", "Viscript", "bin", configuration, "net10.0", "viscript.dll");
        Assert.True(File.Exists(viscript), "build viscript first: " + viscript);

        string managerKey;
        using (var key = KeyFile.LoadOrCreate(FilePath("manager.json")))
        {
            managerKey = key.Public.ToString();
        }

        var yaml = await File.ReadAllTextAsync(Path.Combine(root, "samples", "mesh", "mesh.yaml"));
        yaml = yaml.Replace("MANAGER_KEY", managerKey, StringComparison.Ordinal)
            .Replace("../src/Skywire/bin/Release/net10.0/skywire", Path.ChangeExtension(SkywireProcess.Executable, null), StringComparison.Ordinal);
        var originals = new[] { "5999", "7010", "7011", "7012", "7013", "1080" };
        var free = FreePorts(originals.Length);
        for (var i = 0; i < originals.Length; i++)
        {
            yaml = yaml.Replace("127.0.0.1:" + originals[i], "127.0.0.1:" + free[i], StringComparison.Ordinal);
        }

        Assert.DoesNotContain("MANAGER_KEY", yaml, StringComparison.Ordinal);
        await File.WriteAllTextAsync(FilePath("mesh.yaml"), yaml);
        var socksAt = IPEndPoint.Parse(yaml.Split('\n').Single(l => l.Contains("[app, socks-client,", StringComparison.Ordinal)).Split("--listen, ")[1].TrimEnd(']', ' ', '\r'));

        using var echo = new TcpListener(IPAddress.Loopback, 0);
        echo.Start();
        using var stopEcho = new CancellationTokenSource();
        var echoLoop = EchoAsync(echo, stopEcho.Token);

        var info = new ProcessStartInfo("dotnet") { RedirectStandardInput = true, RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var a in new[] { viscript, "--headless", "--config", FilePath("mesh.yaml"), "--signal", "127.0.0.1:0", "--control", "127.0.0.1:0" })
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
            // 1. Everything was started at once: the mesh comes up by itself.
            await FetchThroughMeshAsync(socksAt, (IPEndPoint)echo.LocalEndpoint, "first", output);

            // 2. The manager dies: viscript restarts it, the nodes register again, a new connection works.
            var manager = ChildRunning(" manager ");
            using (var p = Process.GetProcessById(manager))
            {
                p.Kill();
            }

            await WaitUntilAsync(() => ChildRunningOrZero(" manager ") is not 0 and var pid && pid != manager, "viscript restarts the manager", output);
            await FetchThroughMeshAsync(socksAt, (IPEndPoint)echo.LocalEndpoint, "after the manager restart", output);

            // 3. The exit's node dies: viscript restarts it, the socks-server registers with it again, the route is rebuilt.
            var nodeD = ChildRunning("node-d.json");
            using (var p = Process.GetProcessById(nodeD))
            {
                p.Kill();
            }

            await WaitUntilAsync(() => ChildRunningOrZero("node-d.json") is not 0 and var pid && pid != nodeD, "viscript restarts node d", output);
            await FetchThroughMeshAsync(socksAt, (IPEndPoint)echo.LocalEndpoint, "after node d's restart", output);
        }
        finally
        {
            // viscript stops what it started (its REPL's quit), then the daemon is gone; a daemon that hangs is killed.
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
    }

    /// <summary>One SOCKS5 CONNECT through the entry to the echo server, retried until it works (the mesh heals meanwhile).</summary>
    private static async Task FetchThroughMeshAsync(IPEndPoint socks, IPEndPoint target, string what, StringBuilder output)
    {
        var deadline = DateTime.UtcNow + Limit;
        Exception? last = null;
        while (DateTime.UtcNow < deadline)
        {
            try
            {
                using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(20));
                using var client = new TcpClient();
                await client.ConnectAsync(socks, timeout.Token);
                var stream = client.GetStream();
                await stream.WriteAsync(new byte[] { 5, 1, 0 }, timeout.Token);
                var choice = new byte[2];
                await stream.ReadExactlyAsync(choice, timeout.Token);
                Assert.Equal(new byte[] { 5, 0 }, choice);
                var request = new byte[10];
                request[0] = 5;
                request[1] = 1;
                request[3] = 1;
                target.Address.GetAddressBytes().CopyTo(request, 4);
                request[8] = (byte)(target.Port >> 8);
                request[9] = (byte)target.Port;
                await stream.WriteAsync(request, timeout.Token);
                var reply = new byte[10];
                await stream.ReadExactlyAsync(reply, timeout.Token);
                if (reply[1] != 0)
                {
                    throw new IOException($"SOCKS5 reply {reply[1]}");
                }

                var payload = Encoding.ASCII.GetBytes("through the mesh: " + what);
                await stream.WriteAsync(payload, timeout.Token);
                var back = new byte[payload.Length];
                await stream.ReadExactlyAsync(back, timeout.Token);
                Assert.Equal(payload, back);
                return;
            }
            catch (Exception ex) when (ex is IOException or SocketException or OperationCanceledException or EndOfStreamException)
            {
                last = ex;
            }

            await Task.Delay(500);
        }

        lock (output)
        {
            Assert.Fail($"no SOCKS5 connection through the mesh {what} within {Limit}: {last?.Message}\n{output}");
        }
    }

    private static async Task EchoAsync(TcpListener listener, CancellationToken cancellationToken)
    {
        var connections = new List<Task>();
        try
        {
            while (true)
            {
                var socket = await listener.AcceptSocketAsync(cancellationToken);
                connections.Add(Task.Run(async () =>
                {
                    using (socket)
                    {
                        var buffer = new byte[4096];
                        try
                        {
                            int n;
                            while ((n = await socket.ReceiveAsync(buffer, cancellationToken)) > 0)
                            {
                                await socket.SendAsync(buffer.AsMemory(0, n), cancellationToken);
                            }
                        }
                        catch (Exception ex) when (ex is SocketException or OperationCanceledException)
                        {
                        }
                    }
                }, CancellationToken.None));
            }
        }
        catch (Exception ex) when (ex is SocketException or OperationCanceledException or ObjectDisposedException)
        {
        }

        await Task.WhenAll(connections);
    }

    private async Task WaitUntilAsync(Func<bool> condition, string what, StringBuilder output)
    {
        var deadline = DateTime.UtcNow + Limit;
        while (!condition())
        {
            if (DateTime.UtcNow > deadline)
            {
                lock (output)
                {
                    Assert.Fail($"{what}: not within {Limit}\n{output}");
                }
            }

            await Task.Delay(200);
        }
    }

    /// <summary>The pid of the skywire process viscript runs in this test's folder whose command line contains <paramref name="marker"/>.</summary>
    private int ChildRunning(string marker, string program = "skywire") => ChildRunningOrZero(marker, program) is not 0 and var pid ? pid : throw new InvalidOperationException($"no process with '{marker}' in {Dir}");

    private int ChildRunningOrZero(string marker, string program = "skywire")
    {
        foreach (var proc in Directory.EnumerateDirectories("/proc"))
        {
            if (!int.TryParse(Path.GetFileName(proc), out var pid))
            {
                continue;
            }

            try
            {
                var cmdline = File.ReadAllText(Path.Combine(proc, "cmdline")).Replace('\0', ' ');
                var cwd = new DirectoryInfo(Path.Combine(proc, "cwd")).ResolveLinkTarget(false)?.FullName;
                if (cwd == Dir && cmdline.Contains(marker, StringComparison.Ordinal) && cmdline.Contains(program, StringComparison.Ordinal)
                    && !File.ReadAllText(Path.Combine(proc, "stat")).Split(") ")[1].StartsWith('Z'))
                {
                    return pid;
                }
            }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
            {
                // Exited while we looked.
            }
        }

        return 0;
    }

    /// <summary>
    /// <paramref name="count"/> different free loopback ports: all are bound at once before any is released (one at a
    /// time, the OS may hand out the same port twice, and two etcd members then fight over one).
    /// </summary>
    private static int[] FreePorts(int count)
    {
        var sockets = new List<Socket>();
        try
        {
            for (var i = 0; i < count; i++)
            {
                var s = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
                sockets.Add(s);
                s.Bind(new IPEndPoint(IPAddress.Loopback, 0));
            }

            return [.. sockets.Select(s => ((IPEndPoint)s.LocalEndPoint!).Port)];
        }
        finally
        {
            foreach (var s in sockets)
            {
                s.Dispose();
            }
        }
    }
}
