using System.Net;
using System.Net.Http.Headers;
using System.Text.Json;
using Skywire.TestKit.Logging;
using Viscript.Core.Control;
using Viscript.Daemon;

namespace Viscript.Tests.Support;

/// <summary>
/// An in-process daemon (real signal server and Kestrel on loopback port 0) with the typed control client, a raw
/// HTTP client for wire-level checks, and a <see cref="TestLog"/> that fails the test on an unexpected error log.
/// The control token is the daemon's own default (generated, written to a token folder of this test).
/// </summary>
public sealed class InProcessDaemon : IAsyncDisposable
{
    public static readonly JsonSerializerOptions Json = new(JsonSerializerDefaults.Web);

    private InProcessDaemon(DaemonHost host, TempDir dir, TestLog log)
    {
        Host = host;
        Dir = dir;
        Log = log;
        Token = host.Options.Token;
        Client = ViscriptClient.Create(new Uri(host.ControlUrl + "/"), Token, TimeSpan.FromSeconds(60));
        Http = new HttpClient { BaseAddress = new Uri(host.ControlUrl + "/"), Timeout = TimeSpan.FromSeconds(60) };
        if (Token is not null)
        {
            Http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", Token);
        }
    }

    public DaemonHost Host { get; }

    public TempDir Dir { get; }

    /// <summary>The daemon's log; declare provoked errors with <see cref="TestLog.ExpectError(int)"/>.</summary>
    public TestLog Log { get; }

    /// <summary>The token in force (null with NoAuth).</summary>
    public string? Token { get; }

    /// <summary>The typed control API client (what viscript cli and the demo use).</summary>
    public ViscriptClient Client { get; }

    /// <summary>Raw HTTP with the bearer token, for checks of the wire format itself.</summary>
    public HttpClient Http { get; }

    /// <summary>Folder of the default token file.</summary>
    public string RuntimeDirectory => Path.Combine(Dir.Path, "run");

    public static async Task<InProcessDaemon> StartAsync(string yaml, string? token = null, TimeSpan? shutdownTimeout = null,
        Func<DaemonOptions, DaemonOptions>? configure = null)
    {
        var dir = new TempDir();
        var log = new TestLog(TestContext.Current.TestOutputHelper is { } output ? output.WriteLine : null);
        var config = dir.Write("config.yaml", yaml);
        var options = new DaemonOptions
        {
            ConfigPath = config,
            Signal = new IPEndPoint(IPAddress.Loopback, 0),
            Control = new IPEndPoint(IPAddress.Loopback, 0),
            Token = token,
            RuntimeDirectory = Path.Combine(dir.Path, "run"),
            ShutdownTimeout = shutdownTimeout ?? TimeSpan.FromSeconds(20),
            LoggerFactory = log,
        };
        var host = await DaemonHost.StartAsync(configure?.Invoke(options) ?? options);
        return new InProcessDaemon(host, dir, log);
    }

    /// <summary><c>POST /api/command</c> through the typed client: the answer, or the daemon's problem.</summary>
    public async Task<(HttpStatusCode Status, CommandResponse? Ok, ProblemBody? Problem)> CommandAsync(params string[] args)
    {
        try
        {
            return (HttpStatusCode.OK, await Client.CommandAsync(args), null);
        }
        catch (ViscriptApiException ex) when (ex.Problem is not null)
        {
            return (ex.Status!.Value, null, ex.Problem);
        }
    }

    /// <summary>Waits for a daemon event (subscribe before triggering it).</summary>
    public static async Task<ProcessEvent> WaitAsync(EventHub.Subscription sub, Func<ProcessEvent, bool> match, int seconds = 90)
    {
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(seconds));
        await foreach (var e in sub.Reader.ReadAllAsync(cts.Token))
        {
            if (match(e))
            {
                return e;
            }
        }
        throw new TimeoutException();
    }

    public async ValueTask DisposeAsync()
    {
        Client.Dispose();
        Http.Dispose();
        await Host.DisposeAsync();
        Dir.Dispose();
        // Last: fails the test on an error the daemon logged that the test did not expect.
        Log.Dispose();
    }
}
