using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using Viscript.Core;
using Viscript.Core.Commands;
using Viscript.Core.Control;
using Viscript.Core.Supervision;

namespace Viscript.Daemon;

/// <summary>
/// HTTP + JSON control API (the contract of the CLI and the web GUI). Errors are problem+json with a stable <c>code</c>.
/// Every request needs <c>Authorization: Bearer &lt;token&gt;</c> when the daemon has a token.
/// </summary>
public static class ControlApi
{
    private static readonly JsonSerializerOptions s_json = new(JsonSerializerDefaults.Web);

    /// <summary>Maps the endpoints.</summary>
    public static void Map(WebApplication app, DaemonHost daemon)
    {
        var sup = daemon.Supervisor;
        app.Use(async (ctx, next) =>
        {
            if (daemon.Options.Token is { Length: > 0 } token && !Authorized(ctx.Request, token))
            {
                await Problem(ErrorCode.Unauthorized, "Missing or wrong bearer token.").ExecuteAsync(ctx);
                return;
            }
            try
            {
                await next(ctx);
            }
            catch (ViscriptException ex) when (!ctx.Response.HasStarted)
            {
                await Problem(ex.Code, ex.Message).ExecuteAsync(ctx);
            }
            catch (BadHttpRequestException ex) when (!ctx.Response.HasStarted)
            {
                await Problem(ErrorCode.Usage, ex.Message).ExecuteAsync(ctx);
            }
            catch (JsonException ex) when (!ctx.Response.HasStarted)
            {
                await Problem(ErrorCode.Usage, $"Malformed JSON: {ex.Message}").ExecuteAsync(ctx);
            }
        });

        var api = app.MapGroup("/api");
        api.MapGet("/info", () => new DaemonInfo(typeof(ControlApi).Assembly.GetName().Version?.ToString() ?? "0", Environment.ProcessId,
            daemon.SignalEndPoint.ToString(), daemon.ControlUrl, daemon.Config.FilePath, daemon.Options.Headless));
        api.MapGet("/apps", () => sup.Config.Apps.Values.OrderBy(a => a.Name, StringComparer.OrdinalIgnoreCase)
            .Select(a => new AppInfo(a.Name, a.Path, a.DefaultArgs, a.Description, a.Help, a.Daemon, a.Restart.ToString(), a.Autostart)));
        api.MapGet("/processes", () => sup.List());
        api.MapGet("/processes/{id}", (string id) => sup.Get(Id(id)));
        api.MapPost("/processes", (StartRequest req) =>
        {
            if (string.IsNullOrWhiteSpace(req.App))
            {
                throw new ViscriptException(ErrorCode.Usage, "Body must name an app: {\"app\": \"name\", \"args\": [...]}");
            }
            var info = sup.Start(req.App, req.Args);
            return Results.Created($"/api/processes/{info.Id}", info);
        });
        api.MapPost("/processes/{id}/ping", async (string id, CancellationToken ct) =>
        {
            var n = Id(id);
            var rtt = await sup.PingAsync(n, ct);
            return new PingReport(n, rtt.TotalMilliseconds);
        });
        api.MapPost("/processes/{id}/ru", (string id, CancellationToken ct) => sup.ResourceUsageAsync(Id(id), ct));
        api.MapGet("/processes/{id}/resources", (string id, CancellationToken ct) => sup.ResourceUsageAsync(Id(id), ct));
        api.MapPost("/processes/{id}/sd", (string id, CancellationToken ct) => sup.StopAsync(Id(id), ct));
        api.MapPost("/processes/{id}/kill", (string id, CancellationToken ct) => sup.KillAsync(Id(id), ct));
        api.MapPost("/processes/{id}/restart", (string id, CancellationToken ct) => sup.RestartAsync(Id(id), ct));
        api.MapPost("/processes/{id}/stdin", async (string id, InputRequest req, CancellationToken ct) =>
        {
            await sup.WriteInputAsync(Id(id), req.Line ?? "", ct);
            return Results.NoContent();
        });
        api.MapGet("/processes/{id}/logs", async (HttpContext ctx, string id, int? n, bool? follow) =>
        {
            var pid = Id(id);
            var logs = sup.GetLogs(pid);
            var count = Math.Clamp(n ?? 100, 0, logs.Capacity);
            if (follow != true)
            {
                await Results.Json(logs.Tail(count).Select(ToInfo), s_json).ExecuteAsync(ctx);
                return;
            }
            await FollowAsync(ctx, daemon, pid, logs, count);
        });
        api.MapGet("/events", async (HttpContext ctx) =>
        {
            using var sub = daemon.Events.Subscribe();
            StartSse(ctx);
            await ctx.Response.WriteAsync(": subscribed\n\n", ctx.RequestAborted);
            await ctx.Response.Body.FlushAsync(ctx.RequestAborted);
            try
            {
                await foreach (var e in sub.Reader.ReadAllAsync(ctx.RequestAborted))
                {
                    await ctx.Response.WriteAsync($"event: {e.Kind}\ndata: {JsonSerializer.Serialize(e, s_json)}\n\n", ctx.RequestAborted);
                    await ctx.Response.Body.FlushAsync(ctx.RequestAborted);
                }
            }
            catch (OperationCanceledException)
            {
            }
        });
        api.MapPost("/command", async (CommandRequest req, CancellationToken ct) =>
        {
            CommandResult result;
            if (req.Args is { } args)
            {
                result = await daemon.Interpreter.ExecuteAsync(args, ct);
            }
            else if (req.Line is { } line)
            {
                result = await daemon.Interpreter.ExecuteLineAsync(line, ct);
            }
            else
            {
                result = CommandResult.Fail(ErrorCode.Usage, "Body must have \"line\" or \"args\".");
            }
            return result.Success
                ? Results.Json(result.ToResponse(), s_json)
                : Problem(result.Code, string.Join('\n', result.Lines), result.Lines);
        });
        api.MapPost("/shutdown", () =>
        {
            daemon.RequestStop();
            return Results.Accepted();
        });
        app.MapFallback(() => Problem(ErrorCode.UnknownCommand, "No such endpoint. See docs/viscript.md for the control API."));
    }

    /// <summary>Builds a problem+json result.</summary>
    public static IResult Problem(ErrorCode code, string detail, IReadOnlyList<string>? lines = null)
    {
        var status = code.HttpStatus();
        var body = new ProblemBody($"urn:viscript:error:{code.Slug()}", code.ToString(), status, detail, (int)code, lines);
        return Results.Json(body, s_json, "application/problem+json", status);
    }

    private static ulong Id(string text) => CommandInterpreter.ParseId([text], "ping");

    private static LogLineInfo ToInfo(LogLine l) => new(l.Seq, l.Time, l.Stream.ToString().ToLowerInvariant(), l.Text, l.Partial);

    private static void StartSse(HttpContext ctx)
    {
        ctx.Response.ContentType = "text/event-stream";
        ctx.Response.Headers.CacheControl = "no-cache";
        ctx.Features.Get<Microsoft.AspNetCore.Http.Features.IHttpResponseBodyFeature>()?.DisableBuffering();
    }

    /// <summary>Streams the tail, then new lines, as SSE <c>line</c> events; ends with an <c>end</c> event when the process stops running.</summary>
    private static async Task FollowAsync(HttpContext ctx, DaemonHost daemon, ulong id, LogBuffer logs, int count)
    {
        using var sub = daemon.Events.Subscribe();
        using var cts = CancellationTokenSource.CreateLinkedTokenSource(ctx.RequestAborted);
        StartSse(ctx);
        await ctx.Response.WriteAsync(": following\n\n", ctx.RequestAborted);
        await ctx.Response.Body.FlushAsync(ctx.RequestAborted);
        string? endState = null;
        var watcher = Task.Run(async () =>
        {
            try
            {
                if (!IsActive(daemon, id))
                {
                    endState = daemon.Supervisor.Get(id).Display;
                    await cts.CancelAsync();
                    return;
                }
                await foreach (var e in sub.Reader.ReadAllAsync(cts.Token))
                {
                    if (e.Id == id && e.Kind == "state" && !IsActive(daemon, id))
                    {
                        endState = e.To;
                        // Let the pumps hand over the last lines before closing the stream.
                        await Task.Delay(200, cts.Token);
                        await cts.CancelAsync();
                        return;
                    }
                }
            }
            catch (OperationCanceledException)
            {
            }
        });
        try
        {
            await foreach (var line in logs.FollowAsync(count, partials: true, cts.Token))
            {
                // "partial": an unfinished line (a prompt) shown early; clients that do not know the event ignore it.
                await ctx.Response.WriteAsync($"event: {(line.Partial ? "partial" : "line")}\ndata: {JsonSerializer.Serialize(ToInfo(line), s_json)}\n\n", ctx.RequestAborted);
                await ctx.Response.Body.FlushAsync(ctx.RequestAborted);
            }
        }
        catch (OperationCanceledException)
        {
        }
        await watcher;
        if (!ctx.RequestAborted.IsCancellationRequested)
        {
            try
            {
                await ctx.Response.WriteAsync($"event: end\ndata: {JsonSerializer.Serialize(new { id, state = endState }, s_json)}\n\n", ctx.RequestAborted);
            }
            catch (OperationCanceledException)
            {
            }
        }
    }

    private static bool IsActive(DaemonHost daemon, ulong id)
    {
        var info = daemon.Supervisor.Get(id);
        return info.State is nameof(ProcessState.Starting) or nameof(ProcessState.Running) or nameof(ProcessState.Stopping) or nameof(ProcessState.Backoff);
    }

    private static bool Authorized(HttpRequest request, string token)
    {
        var header = request.Headers.Authorization.ToString();
        const string Prefix = "Bearer ";
        if (!header.StartsWith(Prefix, StringComparison.OrdinalIgnoreCase))
        {
            return false;
        }
        var given = Encoding.UTF8.GetBytes(header[Prefix.Length..].Trim());
        var expected = Encoding.UTF8.GetBytes(token);
        return CryptographicOperations.FixedTimeEquals(given, expected);
    }
}
