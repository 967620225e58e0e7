using System.Buffers.Binary;
using System.Net;
using System.Security.Cryptography;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Skywire.Hosting;

namespace Skywire.Demo;

/// <summary>
/// The page the demo fetches through the mesh: Kestrel on 127.0.0.1:0. <c>GET /</c> answers a short text page;
/// <c>GET /bytes/N</c> answers N bytes of a pattern derived from a per-run seed, so a fetch can be checked byte for
/// byte (<see cref="Expected"/>).
/// </summary>
internal sealed class DemoWebServer : IAsyncDisposable
{
    /// <summary>Largest body served by /bytes/N.</summary>
    public const int MaxBytes = 64 << 20;

    private readonly byte[] _seed = RandomNumberGenerator.GetBytes(16);
    private readonly WebApplication _app;
    private int _served;

    private DemoWebServer(WebApplication app, IPEndPoint endPoint)
    {
        _app = app;
        EndPoint = endPoint;
    }

    /// <summary>Starts the server on a free port of <paramref name="address"/> (default loopback).</summary>
    public static async Task<DemoWebServer> StartAsync(string page, CancellationToken cancellationToken, IPAddress? address = null)
    {
        var bind = address ?? IPAddress.Loopback;
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        // Caps, deadlines and an accept loop that survives descriptor exhaustion (issue 12.3).
        GuardedKestrelTransport.Use(builder);
        builder.WebHost.ConfigureKestrel(k => k.Listen(bind, 0));
        var app = builder.Build();
        DemoWebServer? server = null;
        app.MapGet("/", () =>
        {
            Interlocked.Increment(ref server!._served);
            return Results.Text(server.Page, "text/plain; charset=utf-8");
        });
        app.MapGet("/bytes/{n:int}", (int n) =>
        {
            if (n is < 0 or > MaxBytes)
            {
                return Results.NotFound();
            }
            Interlocked.Increment(ref server!._served);
            return Results.Bytes(server.Expected(n), "application/octet-stream");
        });
        await app.StartAsync(cancellationToken);
        var listening = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First();
        var uri = new Uri(listening);
        server = new DemoWebServer(app, new IPEndPoint(bind, uri.Port)) { Page = page };
        return server;
    }

    public IPEndPoint EndPoint { get; }

    /// <summary>Text of <c>GET /</c>.</summary>
    public string Page { get; set; } = "";

    /// <summary>Requests answered so far.</summary>
    public int Served => Volatile.Read(ref _served);

    /// <summary>The body <c>GET /bytes/N</c> answers.</summary>
    public byte[] Expected(int length)
    {
        var body = new byte[length];
        Span<byte> block = stackalloc byte[32];
        Span<byte> input = stackalloc byte[20];
        _seed.CopyTo(input);
        for (var offset = 0; offset < length; offset += block.Length)
        {
            BinaryPrimitives.WriteInt32BigEndian(input[16..], offset / block.Length);
            SHA256.HashData(input, block);
            block[..Math.Min(block.Length, length - offset)].CopyTo(body.AsSpan(offset));
        }

        return body;
    }

    public async ValueTask DisposeAsync()
    {
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(5));
        try
        {
            await _app.StopAsync(cts.Token);
        }
        catch (OperationCanceledException)
        {
            // A fetch still running after 5 s is cut: the demo is stopping.
        }
        await _app.DisposeAsync();
    }
}
