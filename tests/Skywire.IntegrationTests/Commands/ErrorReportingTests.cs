using System.Net;
using System.Net.Sockets;
using Skywire.Core.Crypto;
using Skywire.IntegrationTests.EndToEnd;

namespace Skywire.IntegrationTests.Commands;

/// <summary>
/// Issue 18.4 through the executable: an address in use names the listener and the address, no key file is left by
/// a command that fails, and a usage error exits 2 with the error alone (not the whole help text).
/// </summary>
public sealed class ErrorReportingTests : IDisposable
{
    private static readonly TimeSpan Limit = TimeSpan.FromSeconds(60);
    private readonly string _dir = Directory.CreateTempSubdirectory("skywire-errors-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private static async Task<(int Code, string Out, string Err)> RunAsync(params string[] args)
    {
        await using var p = SkywireProcess.Start(null, args);
        var code = await p.WaitForExitAsync(Limit);
        return (code, p.StdoutText, p.Stderr);
    }

    private static TcpListener OccupyTcp()
    {
        var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return listener;
    }

    [Fact]
    public async Task Manager_PortInUse_NamesTheListenerAndAddress_AndWritesNoKey()
    {
        using var busy = new DisposableListener(OccupyTcp());
        var key = Path.Combine(_dir, "manager.json");
        var result = await RunAsync("manager", "--listen", busy.EndPoint.ToString(), "--key", key);
        Assert.Equal(1, result.Code);
        Assert.Contains($"manager control listener (TCP, --listen) cannot listen on {busy.EndPoint}: address already in use", result.Err, StringComparison.Ordinal);
        Assert.False(File.Exists(key), "a manager that could not start left a key file");
    }

    /// <summary>
    /// Issue 17: metering is for one manager (docs/architecture.md "What stays out of the store"), so a manager given
    /// a ledger and a shared etcd store is refused before it touches either, with the reason.
    /// </summary>
    [Fact]
    public async Task Manager_LedgerWithSharedEtcdStore_IsRefused_BeforeTouchingEither()
    {
        var key = Path.Combine(_dir, "manager.json");
        var ledger = Path.Combine(_dir, "ledger");
        var result = await RunAsync("manager", "--listen", "127.0.0.1:0", "--key", key, "--ledger", ledger, "--store", "etcd://127.0.0.1:1");
        Assert.Equal(2, result.Code);
        Assert.Contains("error: --ledger meters a mesh with one manager and cannot be combined with --store etcd://", result.Err, StringComparison.Ordinal);
        Assert.False(File.Exists(key), "a manager that was refused left a key file");
        Assert.False(Directory.Exists(ledger), "a manager that was refused made its ledger");
    }

    [Fact]
    public async Task Node_AppApiPortInUse_NamesTheListener_BeforeTalkingToTheManager_AndWritesNoKey()
    {
        using var busy = new DisposableListener(OccupyTcp());
        var key = Path.Combine(_dir, "node.json");
        using var manager = KeyPair.Generate();
        // The manager address is a closed port: the bind error must come first, not "cannot register".
        var result = await RunAsync("node", "--manager", $"{manager.Public}@127.0.0.1:1", "--key", key, "--app-token-file", Path.Combine(_dir, "node.token"),
            "--listen", "127.0.0.1:0", "--apps", busy.EndPoint.ToString());
        Assert.Equal(1, result.Code);
        Assert.Contains($"app API (TCP) cannot listen on {busy.EndPoint}: address already in use", result.Err, StringComparison.Ordinal);
        Assert.Contains("--apps", result.Err, StringComparison.Ordinal);
        Assert.DoesNotContain("register", result.Err, StringComparison.Ordinal);
        Assert.False(File.Exists(key), "a node that could not start left a key file");
    }

    [Fact]
    public async Task Node_LinkPortInUse_NamesTheUdpListener()
    {
        using var udp = new UdpClient(new IPEndPoint(IPAddress.Loopback, 0));
        var busy = (IPEndPoint)udp.Client.LocalEndPoint!;
        var key = Path.Combine(_dir, "node.json");
        using var manager = KeyPair.Generate();
        var result = await RunAsync("node", "--manager", $"{manager.Public}@127.0.0.1:1", "--key", key, "--app-token-file", Path.Combine(_dir, "node.token"), "--listen", busy.ToString());
        Assert.Equal(1, result.Code);
        Assert.Contains($"links (UDP) cannot listen on {busy}: address already in use", result.Err, StringComparison.Ordinal);
        Assert.Contains("--listen", result.Err, StringComparison.Ordinal);
        Assert.False(File.Exists(key));
    }

    [Fact]
    public async Task Messenger_PortInUse_NamesTheListener_AndWritesNoKey()
    {
        using var busy = new DisposableListener(OccupyTcp());
        var key = Path.Combine(_dir, "messenger.json");
        var result = await RunAsync("messenger", "--listen", busy.EndPoint.ToString(), "--key", key);
        Assert.Equal(1, result.Code);
        Assert.Contains($"messenger listener (TCP, --listen) cannot listen on {busy.EndPoint}: address already in use", result.Err, StringComparison.Ordinal);
        Assert.False(File.Exists(key));
    }

    [Fact]
    public async Task SocksClient_PortInUse_IsReportedBeforeTheNodeIsAsked()
    {
        using var busy = new DisposableListener(OccupyTcp());
        var token = Path.Combine(_dir, "token");
        await File.WriteAllTextAsync(token, "not-a-real-token", TestContext.Current.CancellationToken);
        // --node-apps is a closed port: were the node asked first, the error would be "cannot connect".
        var result = await RunAsync("app", "socks-client", "--node-apps", "127.0.0.1:1", "--token-file", token, "--listen", busy.EndPoint.ToString());
        Assert.Equal(1, result.Code);
        Assert.Contains($"SOCKS listener (TCP, --listen) cannot listen on {busy.EndPoint}: address already in use", result.Err, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Chat_MessengerUnreachable_ExitsUnavailable_AndWritesNoKey()
    {
        using var messenger = KeyPair.Generate();
        var key = Path.Combine(_dir, "you.json");
        var result = await RunAsync("chat", "--messenger", $"{messenger.Public}@127.0.0.1:1", "--key", key, "send", messenger.Public.ToString(), "hi");
        Assert.Equal(6, result.Code);
        Assert.False(File.Exists(key), "a chat that never reached the messenger left a key file");
    }

    [Theory]
    [InlineData("manager --key k.json --no-such-option", "skywire manager")]
    [InlineData("node --key k.json", "skywire node")]
    [InlineData("app socks-client --token-file t --rate", "skywire app socks-client")]
    public async Task UsageError_ExitsTwo_WithTheErrorAndAPointerToHelp_NotTheWholeHelp(string args, string command)
    {
        var result = await RunAsync(args.Split(' '));
        Assert.Equal(2, result.Code);
        var lines = result.Err.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        Assert.StartsWith("error: ", lines[0], StringComparison.Ordinal);
        Assert.Equal($"Run '{command} --help' for the options.", lines[^1]);
        Assert.DoesNotContain("Options:", result.Err + result.Out, StringComparison.Ordinal);
    }

    private sealed class DisposableListener(TcpListener listener) : IDisposable
    {
        public IPEndPoint EndPoint => (IPEndPoint)listener.LocalEndpoint;

        public void Dispose() => listener.Dispose();
    }
}
