using System.Net;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Connections;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using OpenTelemetry.Metrics;
using OpenTelemetry.Resources;
using Skywire.Core.Channels;
using Skywire.Hosting;

namespace Skywire.Metrics;

/// <summary>
/// <c>GET /metrics</c> in the Prometheus text format (issue 18.2, docs/operations.md "Metrics"): the OpenTelemetry SDK
/// reads the named <see cref="System.Diagnostics.Metrics.Meter"/>s and its Prometheus exporter writes them, on a
/// Kestrel listener of its own (<c>--metrics</c>; loopback unless the operator names another address). OpenTelemetry
/// rather than prometheus-net: the components already publish <c>System.Diagnostics.Metrics</c> meters (read by
/// <c>dotnet-counters</c> too), and OpenTelemetry's exporter follows the OpenTelemetry-to-Prometheus naming rules
/// (units as suffixes, <c>_total</c> on counters), so the names are predictable from the instruments.
/// </summary>
internal sealed class MetricsEndpoint : IAsyncDisposable
{
    private readonly WebApplication _app;

    private MetricsEndpoint(WebApplication app, IPEndPoint endPoint)
    {
        _app = app;
        EndPoint = endPoint;
    }

    /// <summary>The bound address (the port read back when 0 was asked).</summary>
    public IPEndPoint EndPoint { get; }

    /// <summary>The scrape URL.</summary>
    public Uri Url => new($"http://{EndPoint}/metrics");

    /// <summary>Binds <paramref name="listen"/> and serves the meters named; <paramref name="service"/> is target_info's service_name.</summary>
    /// <exception cref="ListenerBindException">The address cannot be bound (in use, not on this host).</exception>
    public static async Task<MetricsEndpoint> StartAsync(IPEndPoint listen, string service, IReadOnlyCollection<string> meters, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(listen);
        ArgumentNullException.ThrowIfNull(meters);
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        // Caps, deadlines and an accept loop that survives descriptor exhaustion (issue 12.3).
        GuardedKestrelTransport.Use(builder);
        builder.WebHost.ConfigureKestrel(k => k.Listen(listen));
        builder.Services.AddOpenTelemetry().ConfigureResource(r => r.AddService(service)).WithMetrics(m => m
            .AddMeter([.. meters])
            // Every scrape reads the state of that moment (the exporter's default caches a scrape for 300 ms).
            .AddPrometheusExporter(o => o.ScrapeResponseCacheDurationMilliseconds = 0));
        var app = builder.Build();
        app.MapPrometheusScrapingEndpoint("/metrics");
        app.MapGet("/", () => Results.Text("Skywire metrics: GET /metrics (Prometheus text format)\n", "text/plain; charset=utf-8"));
        try
        {
            await app.StartAsync(cancellationToken);
        }
        catch (IOException ex) when (ex.InnerException is AddressInUseException or System.Net.Sockets.SocketException)
        {
            await app.DisposeAsync();
            var error = ex.InnerException as System.Net.Sockets.SocketException
                ?? new System.Net.Sockets.SocketException((int)System.Net.Sockets.SocketError.AddressAlreadyInUse);
            throw new ListenerBindException("metrics endpoint (HTTP, --metrics)", listen, error);
        }

        var address = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First();
        var bound = new IPEndPoint(listen.Address, new Uri(address).Port);
        // One scrape now loads what a scrape runs: later, under a flood near the descriptor limit, nothing is left to load.
        await GuardedKestrelTransport.WarmUpAsync(bound, "/metrics", cancellationToken);
        return new MetricsEndpoint(app, bound);
    }

    /// <summary>Parses <c>--metrics</c>: <c>PORT</c> (on 127.0.0.1) or <c>ip:port</c>.</summary>
    public static bool TryParse(string text, out IPEndPoint endPoint)
    {
        ArgumentNullException.ThrowIfNull(text);
        if (ushort.TryParse(text, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out var port))
        {
            endPoint = new IPEndPoint(IPAddress.Loopback, port);
            return true;
        }

        if (IPEndPoint.TryParse(text, out var parsed) && text.Contains(':', StringComparison.Ordinal))
        {
            endPoint = parsed;
            return true;
        }

        endPoint = new IPEndPoint(IPAddress.Loopback, 0);
        return false;
    }

    /// <inheritdoc />
    public async ValueTask DisposeAsync()
    {
        await _app.StopAsync(CancellationToken.None);
        await _app.DisposeAsync();
    }
}
