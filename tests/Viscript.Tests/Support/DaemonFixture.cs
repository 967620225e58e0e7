using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text.Json;
using Viscript.Core.Control;
using Viscript.Daemon;

namespace Viscript.Tests.Support;

/// <summary>An in-process daemon (real signal server and Kestrel on loopback port 0) with an HTTP client.</summary>
public sealed class InProcessDaemon : IAsyncDisposable
{
    public static readonly JsonSerializerOptions Json = new(JsonSerializerDefaults.Web);

    private InProcessDaemon(DaemonHost host, TempDir dir, string? token)
    {
        Host = host;
        Dir = dir;
        Http = new HttpClient { BaseAddress = new Uri(host.ControlUrl + "/"), Timeout = TimeSpan.FromSeconds(60) };
        if (token is not null)
        {
            Http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", token);
        }
    }

    public DaemonHost Host { get; }

    public TempDir Dir { get; }

    public HttpClient Http { get; }

    public static async Task<InProcessDaemon> StartAsync(string yaml, string? token = null, TimeSpan? shutdownTimeout = null)
    {
        var dir = new TempDir();
        var config = dir.Write("config.yaml", yaml);
        var host = await DaemonHost.StartAsync(new DaemonOptions
        {
            ConfigPath = config,
            Signal = new IPEndPoint(IPAddress.Loopback, 0),
            Control = new IPEndPoint(IPAddress.Loopback, 0),
            Token = token,
            ShutdownTimeout = shutdownTimeout ?? TimeSpan.FromSeconds(20),
        });
        return new InProcessDaemon(host, dir, token);
    }

    public async Task<(HttpStatusCode Status, CommandResponse? Ok, ProblemBody? Problem)> CommandAsync(params string[] args)
    {
        using var response = await Http.PostAsJsonAsync("api/command", new CommandRequest(null, args), Json);
        if (response.IsSuccessStatusCode)
        {
            return (response.StatusCode, await response.Content.ReadFromJsonAsync<CommandResponse>(Json), null);
        }
        Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);
        return (response.StatusCode, null, await response.Content.ReadFromJsonAsync<ProblemBody>(Json));
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
        Http.Dispose();
        await Host.DisposeAsync();
        Dir.Dispose();
    }
}
