using System.Net;
using System.Net.Http.Json;
using System.Net.Sockets;
using Viscript.Core;
using Viscript.Core.Control;
using Viscript.Daemon;
using Viscript.Daemon.Listening;
using Viscript.Tests.Support;

namespace Viscript.Tests.Issues;

/// <summary>
/// Issue 12.4 (no local privilege escalation) and 11.7 (no secret in ToString, no token in the URL query), in process:
/// the control API is authenticated by default, with the token in an owner-only file.
/// </summary>
[System.Runtime.Versioning.UnsupportedOSPlatform("windows")]
public sealed class Issue12ControlAuthTests
{
    private static string Config() => TestConfigs.Build(TestConfigs.App("t", "sleep"));

    private static HttpClient Anonymous(InProcessDaemon d) => new() { BaseAddress = d.Http.BaseAddress, Timeout = TimeSpan.FromSeconds(60) };

    [Fact]
    public async Task DefaultDaemon_RefusesAnonymousCommands_AndKeepsItsTokenInAnOwnerOnlyFile()
    {
        await using var d = await InProcessDaemon.StartAsync(Config());
        using var anonymous = Anonymous(d);

        // The privilege escalation of issue 12.4: any local user could start any app with any arguments.
        using var start = await anonymous.PostAsJsonAsync("api/command", new CommandRequest("s t args pwned", null), InProcessDaemon.Json);
        Assert.Equal(HttpStatusCode.Unauthorized, start.StatusCode);
        Assert.Equal((int)ErrorCode.Unauthorized, (await start.Content.ReadFromJsonAsync<ProblemBody>(InProcessDaemon.Json))!.Code);
        using var viaProcesses = await anonymous.PostAsJsonAsync("api/processes", new StartRequest("t", null), InProcessDaemon.Json);
        Assert.Equal(HttpStatusCode.Unauthorized, viaProcesses.StatusCode);
        Assert.Empty(d.Host.Supervisor.List());

        // The token: generated, 43 characters of CSPRNG output, in a 0600 file of a 0700 folder named after the address.
        var file = ControlToken.DefaultPath(d.Host.ControlEndPoint, d.RuntimeDirectory);
        Assert.Equal(file, d.Host.TokenFile);
        Assert.Equal(d.Token, ControlToken.Read(file));
        Assert.Equal(43, d.Token!.Length);
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(file));
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute, File.GetUnixFileMode(Path.GetDirectoryName(file)!));
        Assert.Empty(Directory.GetFiles(Path.GetDirectoryName(file)!, "*.tmp"));

        // The owner's client, with the token, is served.
        Assert.Equal(["t"], (await d.Client.AppsAsync()).Select(a => a.Name));
        await d.Host.DisposeAsync();
        Assert.False(File.Exists(file), "the generated token file is removed on exit");
    }

    [Fact]
    public async Task TokenInTheUrlQuery_IsNeverAccepted()
    {
        // The page itself (server-rendered data only for a signed-in browser) is checked in Viscript.GuiTests.
        await using var d = await InProcessDaemon.StartAsync(Config());
        using var anonymous = Anonymous(d);
        using var api = await anonymous.GetAsync($"api/processes?token={d.Token}");
        Assert.Equal(HttpStatusCode.Unauthorized, api.StatusCode);
        using var command = await anonymous.PostAsJsonAsync($"api/command?token={d.Token}", new CommandRequest("la", null), InProcessDaemon.Json);
        Assert.Equal(HttpStatusCode.Unauthorized, command.StatusCode);
    }

    [Fact]
    public async Task Session_ExchangesTheToken_ForAnHttpOnlyStrictCookie_ThatIsNotTheToken()
    {
        await using var d = await InProcessDaemon.StartAsync(Config());
        using var signIn = await d.Http.PostAsync("api/session", null);
        Assert.Equal(HttpStatusCode.NoContent, signIn.StatusCode);
        var cookie = Assert.Single(signIn.Headers.GetValues("Set-Cookie"));
        var port = d.Host.ControlEndPoint.Port;
        Assert.StartsWith($"viscript-session-{port}=", cookie, StringComparison.Ordinal);
        Assert.Contains("httponly", cookie, StringComparison.OrdinalIgnoreCase);
        Assert.Contains("samesite=strict", cookie, StringComparison.OrdinalIgnoreCase);
        var value = cookie[(cookie.IndexOf('=', StringComparison.Ordinal) + 1)..cookie.IndexOf(';', StringComparison.Ordinal)];
        Assert.NotEqual(d.Token, value);
        Assert.DoesNotContain(d.Token!, cookie, StringComparison.Ordinal);

        using var anonymous = Anonymous(d);
        using (var withCookie = new HttpRequestMessage(HttpMethod.Get, "api/processes"))
        {
            withCookie.Headers.Add("Cookie", $"viscript-session-{port}={value}");
            Assert.Equal(HttpStatusCode.OK, (await anonymous.SendAsync(withCookie)).StatusCode);
        }
        using (var forged = new HttpRequestMessage(HttpMethod.Get, "api/processes"))
        {
            forged.Headers.Add("Cookie", $"viscript-session-{port}={d.Token}");
            Assert.Equal(HttpStatusCode.Unauthorized, (await anonymous.SendAsync(forged)).StatusCode);
        }
        // Signing in needs the token itself.
        Assert.Equal(HttpStatusCode.Unauthorized, (await anonymous.PostAsync("api/session", null)).StatusCode);
        using var signOut = await d.Http.DeleteAsync("api/session");
        Assert.Contains("expires=", Assert.Single(signOut.Headers.GetValues("Set-Cookie")), StringComparison.OrdinalIgnoreCase);
    }

    [Fact]
    public async Task NoAuth_IsAnExplicitLoopbackOnlyOptIn()
    {
        await using (var d = await InProcessDaemon.StartAsync(Config(), configure: o => o with { NoAuth = true }))
        {
            using var anonymous = Anonymous(d);
            Assert.Equal(HttpStatusCode.OK, (await anonymous.GetAsync("api/processes")).StatusCode);
            Assert.Null(d.Host.TokenFile);
            Assert.Contains(d.Log.Entries, e => e.EventId.Id == 4101 && e.Message.Contains("every local user", StringComparison.Ordinal));
        }
        using var dir = new TempDir();
        var ex = await Assert.ThrowsAsync<ViscriptException>(() => DaemonHost.StartAsync(new DaemonOptions
        {
            ConfigPath = dir.Write("config.yaml", "apps:\n"),
            Signal = new IPEndPoint(IPAddress.Loopback, 0),
            Control = new IPEndPoint(IPAddress.Any, 0),
            Token = "t0ken",
            NoAuth = true,
        }));
        Assert.Equal(ErrorCode.Usage, ex.Code);
    }

    [Fact]
    public async Task TokenFile_IsReadWhenPresent_CreatedOwnerOnlyWhenNot()
    {
        using var dir = new TempDir();
        var file = Path.Combine(dir.Path, "keys", "control.token");
        string first;
        await using (var d = await InProcessDaemon.StartAsync(Config(), configure: o => o with { TokenFile = file }))
        {
            first = ControlToken.Read(file);
            Assert.Equal(first, d.Token);
            Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(file));
        }
        Assert.True(File.Exists(file), "an operator's token file stays");
        await using (var d = await InProcessDaemon.StartAsync(Config(), configure: o => o with { TokenFile = file }))
        {
            Assert.Equal(first, d.Token);
        }
    }

    [Fact]
    public void Secrets_NeverAppearInToString()
    {
        const string Secret = "do-not-print-7f3a";
        var options = new DaemonOptions { Token = Secret, TokenFile = "/x/t" };
        Assert.DoesNotContain(Secret, options.ToString(), StringComparison.Ordinal);
        Assert.Contains("Token = ***", options.ToString(), StringComparison.Ordinal);
        Assert.Contains("TokenFile = /x/t", options.ToString(), StringComparison.Ordinal);
        Assert.DoesNotContain(Secret, (options with { Headless = false }).ToString(), StringComparison.Ordinal);
        var client = new ViscriptClientOptions { BaseAddress = new Uri("http://127.0.0.1:1/"), Token = Secret };
        Assert.DoesNotContain(Secret, client.ToString(), StringComparison.Ordinal);
    }
}

/// <summary>Issue 12.3 for the control listener, in process: per-source caps, idle and slow-drip deadlines.</summary>
public sealed class Issue12ControlListenerTests
{
    private static readonly TimeSpan Limit = TimeSpan.FromSeconds(30);

    private static async Task<Socket> ConnectFromAsync(IPAddress source, IPEndPoint server)
    {
        var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        socket.Bind(new IPEndPoint(source, 0));
        await socket.ConnectAsync(server);
        return socket;
    }

    /// <summary>Completes with true when the server closed the connection (EOF or reset) within <see cref="Limit"/>.</summary>
    private static async Task<bool> ClosedByServerAsync(Socket socket)
    {
        var buffer = new byte[256];
        using var cts = new CancellationTokenSource(Limit);
        try
        {
            while (true)
            {
                if (await socket.ReceiveAsync(buffer, SocketFlags.None, cts.Token) == 0)
                {
                    return true;
                }
            }
        }
        catch (SocketException)
        {
            return true;
        }
        catch (OperationCanceledException)
        {
            return false;
        }
    }

    [Fact]
    public async Task PerSourceCap_ClosesTheExtraConnections_AndOtherSourcesAreStillServed()
    {
        await using var d = await InProcessDaemon.StartAsync(TestConfigs.Build(),
            configure: o => o with { Listener = new ControlListenerOptions { MaxConnections = 32, MaxConnectionsPerSource = 4 } });
        var server = d.Host.ControlEndPoint;
        var flood = new List<Socket>();
        var refusedAtConnect = 0;
        try
        {
            for (var i = 0; i < 12; i++)
            {
                try
                {
                    flood.Add(await ConnectFromAsync(IPAddress.Parse("127.0.0.2"), server));
                }
                catch (SocketException ex) when (ex.SocketErrorCode == SocketError.ConnectionReset)
                {
                    refusedAtConnect++; // reset so fast that the handshake saw it
                }
            }
            // Beyond the cap of 4 the daemon closes them without reading a byte.
            var closed = await Task.WhenAll(flood.Skip(4).Select(ClosedByServerAsync));
            Assert.All(closed, Assert.True);
            Assert.Equal(8, closed.Length + refusedAtConnect);
            Assert.Equal(4, OpenCount(flood));

            // Another source (the owner's cli on 127.0.0.1) is served while the flood holds its share.
            Assert.Empty(await d.Client.ProcessesAsync());
        }
        finally
        {
            flood.ForEach(s => s.Dispose());
        }
    }

    /// <summary>Sockets the server has not closed: a closed one polls readable with nothing to read.</summary>
    private static int OpenCount(List<Socket> sockets) => sockets.Count(s => !(s.Poll(0, SelectMode.SelectRead) && s.Available == 0));

    [Fact]
    public async Task IdleAndSlowDripConnections_AreClosedAtTheirDeadlines()
    {
        await using var d = await InProcessDaemon.StartAsync(TestConfigs.Build(),
            configure: o => o with { Listener = new ControlListenerOptions { KeepAliveTimeout = TimeSpan.FromSeconds(2), RequestHeadersTimeout = TimeSpan.FromSeconds(2) } });
        var server = d.Host.ControlEndPoint;
        using var idle = await ConnectFromAsync(IPAddress.Loopback, server);
        using var drip = await ConnectFromAsync(IPAddress.Loopback, server);
        var dripping = Task.Run(async () =>
        {
            // A request head one byte at a time, every 300 ms: it would take minutes to finish.
            var head = "GET /api/info HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: "u8.ToArray().Concat(Enumerable.Repeat((byte)'a', 400)).ToArray();
            try
            {
                foreach (var b in head)
                {
                    await drip.SendAsync(new[] { b }, SocketFlags.None);
                    await Task.Delay(300);
                }
                return false;
            }
            catch (SocketException)
            {
                return true;
            }
        });
        Assert.True(await ClosedByServerAsync(idle), "an idle connection outlived the keep-alive deadline");
        Assert.True(await ClosedByServerAsync(drip), "a slow-drip request head outlived the request-head deadline");
        Assert.True(await dripping.WaitAsync(Limit), "the dripping client could keep sending");
        Assert.Empty(await d.Client.ProcessesAsync());
    }
}
