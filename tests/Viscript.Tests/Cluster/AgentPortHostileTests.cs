using System.Buffers.Binary;
using System.Net.Security;
using System.Net.Sockets;
using System.Security.Authentication;
using Viscript.Core.Cluster;
using Viscript.Tests.Support;

namespace Viscript.Tests.Cluster;

/// <summary>Hostile clients on a primary's agent port are closed; the real agent keeps working.</summary>
[Trait("Category", "Cluster")]
public sealed class AgentPortHostileTests
{
    private static readonly TimeSpan Deadline = TimeSpan.FromSeconds(60);

    /// <summary>Reads until the server closes; true when it did within the deadline (EOF or reset).</summary>
    private static async Task<bool> ClosedByServerAsync(Stream stream)
    {
        using var cts = new CancellationTokenSource(Deadline);
        var buffer = new byte[4096];
        try
        {
            while (await stream.ReadAsync(buffer, cts.Token) > 0)
            {
            }
            return true;
        }
        catch (Exception ex) when (ex is IOException or AuthenticationException or ObjectDisposedException)
        {
            return true;
        }
        catch (OperationCanceledException)
        {
            return false;
        }
    }

    private static async Task AgentStillServesAsync(ClusterFixture c)
    {
        var ping = await c.CommandAsync("ping", "b:1");
        Assert.True(ping.Ok is not null, ping.Problem?.Detail);
        Assert.Equal(RemoteHost.HostState.Connected, ((RemoteHost)c.Primary.Host.Hosts.Resolve("b")).State);
    }

    private static async Task<ClusterFixture> StartWithAppAsync()
    {
        var c = await ClusterFixture.StartAsync();
        using var sub = c.Primary.Host.Events.Subscribe();
        await c.CommandAsync("s", "b:t");
        await InProcessDaemon.WaitAsync(sub, e => e is { Kind: "registered", Host: "b", Id: 1 });
        return c;
    }

    [Fact]
    public async Task RandomBytes_Closed()
    {
        await using var c = await StartWithAppAsync();
        using var tcp = new TcpClient();
        await tcp.ConnectAsync(c.Primary.Host.AgentsEndPoint!);
        var stream = tcp.GetStream();
        var junk = new byte[64 * 1024];
        new Random(16).NextBytes(junk);
        try
        {
            await stream.WriteAsync(junk);
        }
        catch (IOException)
        {
            // Closed while we were still writing: that is the point.
        }
        Assert.True(await ClosedByServerAsync(stream));
        await AgentStillServesAsync(c);
    }

    [Fact]
    public async Task UnlistedKey_OversizedHello_ClosedBeforeReadingIt()
    {
        await using var c = await StartWithAppAsync();
        using var stranger = ClusterKey.LoadOrCreate(Path.Combine(c.Keys.Path, "stranger.key"));
        using var tcp = new TcpClient();
        await tcp.ConnectAsync(c.Primary.Host.AgentsEndPoint!);
        await using var ssl = new SslStream(tcp.GetStream());
        await ssl.AuthenticateAsClientAsync(new SslClientAuthenticationOptions
        {
            TargetHost = "viscript",
            ClientCertificates = [stranger.Certificate],
            EnabledSslProtocols = SslProtocols.Tls13,
            // The stranger pins the real primary key: it is the client that is hostile here.
            RemoteCertificateValidationCallback = (_, cert, _, _) => cert is not null && ClusterKey.Fingerprint(cert) == c.PrimaryKey,
        });
        // A frame header announcing 1 GiB: refused from the header alone (the hello limit is 16 KiB).
        var header = new byte[5];
        BinaryPrimitives.WriteUInt32BigEndian(header, 1u << 30);
        header[4] = (byte)AgentOp.Hello;
        await ssl.WriteAsync(header);
        await ssl.FlushAsync();
        Assert.True(await ClosedByServerAsync(ssl));
        Assert.Single(c.Primary.Host.Hosts.Remotes);
        await AgentStillServesAsync(c);
    }

    [Fact]
    public async Task SlowDrip_ClosedAtTheHandshakeDeadline()
    {
        await using var c = await StartWithAppAsync();
        using var tcp = new TcpClient();
        await tcp.ConnectAsync(c.Primary.Host.AgentsEndPoint!);
        var stream = tcp.GetStream();
        // One byte of a TLS record, then nothing: the handshake deadline (10 s) closes it.
        await stream.WriteAsync(new byte[] { 0x16 });
        Assert.True(await ClosedByServerAsync(stream));
        await AgentStillServesAsync(c);
    }
}
