using System.Net;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Skywire.Apps.Chat;
using Skywire.Core.Channels;
using Skywire.Hosting;

namespace Skywire.Chat;

/// <summary>
/// The Sky-Messenger page (<c>skywire chat web</c>, docs/messenger.md "Sky-Messenger in the browser"): Kestrel on a
/// loopback address serving the embedded page and a small JSON API over a <see cref="ChatService"/>.
/// Every <c>/api</c> call needs the session cookie, which <c>POST /api/session</c> with <c>Authorization: Bearer TOKEN</c>
/// sets (HttpOnly, SameSite=Strict, value HMAC-SHA256 of the token, never the token); the page gets the token from the
/// sign-in link's fragment (never sent to a server), removes it from the address bar and trades it at once. Requests
/// from another origin, and on a loopback listener with a non-loopback Host (DNS rebinding), are refused.
/// </summary>
internal sealed class ChatWebServer : IAsyncDisposable
{
    private readonly WebApplication _app;

    private ChatWebServer(WebApplication app, IPEndPoint endPoint)
    {
        _app = app;
        EndPoint = endPoint;
    }

    /// <summary>The bound address.</summary>
    public IPEndPoint EndPoint { get; }

    /// <summary>Starts serving <paramref name="chat"/> on <paramref name="listen"/> (port 0: any free port).</summary>
    /// <exception cref="IOException">The address cannot be bound.</exception>
    public static async Task<ChatWebServer> StartAsync(IPEndPoint listen, string token, ChatService chat, ILoggerFactory? loggerFactory, CancellationToken cancellationToken)
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        if (loggerFactory is not null)
        {
            builder.Services.AddSingleton(loggerFactory);
        }

        // Caps (256 connections), deadlines and an accept loop that survives descriptor exhaustion (issue 12.3).
        GuardedKestrelTransport.Use(builder, new ListenerLimits { MaxConnections = 256, MaxConnectionsPerSource = 256 }, loggerFactory);
        builder.WebHost.ConfigureKestrel(k =>
        {
            k.Listen(listen);
            k.Limits.MaxRequestBodySize = 256 * 1024;
        });
        var app = builder.Build();
        var port = 0;
        var session = SessionValue(token);
        var loopback = IPAddress.IsLoopback(listen.Address);

        app.Use(async (ctx, next) =>
        {
            if (RejectReason(ctx.Request, loopback) is { } reason)
            {
                ctx.Response.StatusCode = StatusCodes.Status403Forbidden;
                await ctx.Response.WriteAsJsonAsync(new ApiError(reason), ChatWebJsonContext.Default.ApiError, cancellationToken: ctx.RequestAborted);
                return;
            }

            ctx.Response.Headers.XContentTypeOptions = "nosniff";
            ctx.Response.Headers["Referrer-Policy"] = "no-referrer";
            ctx.Response.Headers.CacheControl = "no-store";
            if (ctx.Request.Path.StartsWithSegments("/api") && !(ctx.Request.Path == "/api/session" && HttpMethods.IsPost(ctx.Request.Method))
                && !(ctx.Request.Cookies.TryGetValue(CookieName(port), out var cookie) && Matches(cookie, session)))
            {
                ctx.Response.StatusCode = StatusCodes.Status401Unauthorized;
                await ctx.Response.WriteAsJsonAsync(new ApiError("sign in with the link skywire chat web printed"), ChatWebJsonContext.Default.ApiError, cancellationToken: ctx.RequestAborted);
                return;
            }

            await next(ctx);
        });

        foreach (var (path, type) in new[] { ("index.html", "text/html; charset=utf-8"), ("chat.js", "text/javascript; charset=utf-8"), ("chat.css", "text/css; charset=utf-8") })
        {
            var body = ReadResource(path);
            app.MapGet(path == "index.html" ? "/" : "/" + path, (HttpContext ctx) =>
            {
                ctx.Response.Headers["Content-Security-Policy"] = "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'; form-action 'self'";
                return Results.Bytes(body, type);
            });
        }

        app.MapPost("/api/session", (HttpContext ctx) =>
        {
            var header = ctx.Request.Headers.Authorization.ToString();
            if (!header.StartsWith("Bearer ", StringComparison.OrdinalIgnoreCase) || !Matches(header["Bearer ".Length..].Trim(), token))
            {
                return Results.Json(new ApiError("wrong or missing token"), ChatWebJsonContext.Default.ApiError, statusCode: StatusCodes.Status401Unauthorized);
            }

            ctx.Response.Cookies.Append(CookieName(port), session, new CookieOptions { HttpOnly = true, SameSite = SameSiteMode.Strict, Path = "/", Secure = ctx.Request.IsHttps, IsEssential = true });
            return Results.NoContent();
        });
        app.MapDelete("/api/session", (HttpContext ctx) =>
        {
            ctx.Response.Cookies.Delete(CookieName(port), new CookieOptions { Path = "/", HttpOnly = true, SameSite = SameSiteMode.Strict });
            return Results.NoContent();
        });
        app.MapGet("/api/state", () => Results.Json(chat.Snapshot(), ChatApiJsonContext.Default.ChatSnapshot));
        app.MapPut("/api/contacts/{key}", async (string key, HttpContext ctx) =>
        {
            var body = await ReadBodyAsync(ctx, ChatWebJsonContext.Default.ContactRequest);
            return body is null
                ? BadRequest("expected {\"nickname\": \"...\"}")
                : Try(() => Results.Json(chat.SetNickname(key, body.Nickname ?? ""), ChatWebJsonContext.Default.ChatContact));
        });
        app.MapPost("/api/messages", async (HttpContext ctx) =>
        {
            var body = await ReadBodyAsync(ctx, ChatWebJsonContext.Default.SendRequest);
            if (body is null)
            {
                return BadRequest("expected {\"to\": \"PUBKEY\", \"text\": \"...\"}");
            }

            try
            {
                return Results.Json(await chat.SendAsync(body.To ?? "", body.Text ?? "", ctx.RequestAborted), ChatWebJsonContext.Default.ChatEntry);
            }
            catch (ArgumentException ex)
            {
                return BadRequest(ex.Message);
            }
        });
        app.MapGet("/api/events", async (HttpContext ctx) =>
        {
            ctx.Response.ContentType = "text/event-stream";
            ctx.Response.Headers.CacheControl = "no-store";
            await ctx.Response.WriteAsync(": chat events\n\n", ctx.RequestAborted);
            await ctx.Response.Body.FlushAsync(ctx.RequestAborted);
            using var end = CancellationTokenSource.CreateLinkedTokenSource(ctx.RequestAborted, app.Lifetime.ApplicationStopping);
            try
            {
                await foreach (var e in chat.EventsAsync(end.Token))
                {
                    var json = JsonSerializer.Serialize(e, ChatApiJsonContext.Default.ChatEvent);
                    await ctx.Response.WriteAsync($"event: {e.Kind}\ndata: {json}\n\n", end.Token);
                    await ctx.Response.Body.FlushAsync(end.Token);
                }
            }
            catch (OperationCanceledException)
            {
                // The page went away.
            }
        });

        await app.StartAsync(cancellationToken);
        var address = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First();
        port = new Uri(address.Replace("0.0.0.0", "127.0.0.1", StringComparison.Ordinal).Replace("[::]", "[::1]", StringComparison.Ordinal)).Port;
        return new ChatWebServer(app, new IPEndPoint(listen.Address, port));
    }

    /// <summary>The cookie's name carries the port: browsers do not separate cookies by port.</summary>
    public static string CookieName(int port) => $"skywire-chat-{port}";

    /// <summary>The page's base URL.</summary>
    public string BaseUrl => EndPoint.Address.Equals(IPAddress.Any) || EndPoint.Address.Equals(IPAddress.IPv6Any)
        ? $"http://127.0.0.1:{EndPoint.Port}/"
        : $"http://{(EndPoint.AddressFamily == System.Net.Sockets.AddressFamily.InterNetworkV6 ? $"[{EndPoint.Address}]" : EndPoint.Address.ToString())}:{EndPoint.Port}/";

    /// <summary>
    /// Why a request must be refused before anything else, or null: another origin (a browser sends <c>Origin</c> on
    /// cross-site requests), or a non-loopback <c>Host</c> on a loopback listener (DNS rebinding).
    /// </summary>
    internal static string? RejectReason(HttpRequest request, bool loopbackListener)
    {
        var host = request.Host;
        if (loopbackListener && host.HasValue && !IsLoopbackHost(host.Host))
        {
            return $"Host '{host.Host}' is not a loopback name; this chat listens on loopback only.";
        }

        var origin = request.Headers.Origin.ToString();
        return origin.Length > 0 && !string.Equals(origin, $"{request.Scheme}://{host.Value}", StringComparison.OrdinalIgnoreCase)
            ? $"Cross-origin request from '{origin}' refused."
            : null;
    }

    /// <summary>The cookie value: HMAC-SHA256 of a fixed label under the token (proves the token was shown, is not the token).</summary>
    internal static string SessionValue(string token) =>
        Convert.ToHexStringLower(HMACSHA256.HashData(Encoding.UTF8.GetBytes(token), "skywire-chat-session"u8));

    private static bool Matches(string given, string expected) =>
        CryptographicOperations.FixedTimeEquals(Encoding.UTF8.GetBytes(given), Encoding.UTF8.GetBytes(expected));

    private static bool IsLoopbackHost(string host) =>
        host.Equals("localhost", StringComparison.OrdinalIgnoreCase)
        || (IPAddress.TryParse(host.Trim('[', ']'), out var ip) && IPAddress.IsLoopback(ip));

    private static IResult BadRequest(string message) =>
        Results.Json(new ApiError(message), ChatWebJsonContext.Default.ApiError, statusCode: StatusCodes.Status400BadRequest);

    private static IResult Try(Func<IResult> action)
    {
        try
        {
            return action();
        }
        catch (ArgumentException ex)
        {
            return BadRequest(ex.Message);
        }
    }

    private static async Task<T?> ReadBodyAsync<T>(HttpContext ctx, System.Text.Json.Serialization.Metadata.JsonTypeInfo<T> type)
        where T : class
    {
        try
        {
            return await JsonSerializer.DeserializeAsync(ctx.Request.Body, type, ctx.RequestAborted);
        }
        catch (JsonException)
        {
            return null;
        }
    }

    private static byte[] ReadResource(string name)
    {
        using var stream = typeof(ChatWebServer).Assembly.GetManifestResourceStream("Skywire.Chat.wwwroot." + name)
            ?? throw new InvalidOperationException($"the chat page's {name} is not embedded in skywire");
        using var copy = new MemoryStream();
        stream.CopyTo(copy);
        return copy.ToArray();
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
            // An event stream still open after 5 s is cut: the chat is stopping.
        }

        await _app.DisposeAsync();
    }
}
