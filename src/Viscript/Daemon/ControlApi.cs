using System.Net.ServerSentEvents;
using System.Runtime.CompilerServices;
using System.Text.Json;
using System.Threading.Channels;
using Viscript.Core;
using Viscript.Core.Cluster;
using Viscript.Core.Commands;
using Viscript.Core.Control;
using Viscript.Core.Supervision;

namespace Viscript.Daemon;

/// <summary>
/// HTTP + JSON control API (the contract of the CLI and the web GUI). Errors are problem+json with a stable <c>code</c>.
/// Every request needs the token (docs/viscript.md "Security"): <c>Authorization: Bearer &lt;token&gt;</c>, or the GUI's
/// session cookie that <c>POST /api/session</c> sets in exchange for it. A token in the URL query is never accepted.
/// Only <c>--no-auth</c> (loopback only) turns this off.
/// </summary>
public static class ControlApi
{
    private static readonly JsonSerializerOptions s_json = new(JsonSerializerDefaults.Web);

    /// <summary>Maps the endpoints.</summary>
    public static void Map(WebApplication app, DaemonHost daemon)
    {
        app.Use(async (ctx, next) =>
        {
            if (!ControlAuth.IsAuthorized(ctx.Request, daemon))
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

        // Prometheus text format of the supervisor's meter; after the token check above, like every endpoint here.
        app.MapPrometheusScrapingEndpoint("/metrics");

        var api = app.MapGroup("/api");
        var hosts = daemon.Hosts;
        api.MapGet("/info", () => new DaemonInfo(typeof(ControlApi).Assembly.GetName().Version?.ToString() ?? "0", Environment.ProcessId,
            daemon.SignalEndPoint.ToString(), daemon.ControlUrl, daemon.Config.FilePath, daemon.Options.Headless, hosts.Local.Name, daemon.ClusterKey?.PublicKey));
        api.MapGet("/apps", (string? host) => hosts.Resolve(host).Apps);
        api.MapGet("/hosts", () => hosts.Hosts());
        api.MapGet("/processes", () => hosts.ListAll());
        api.MapGet("/processes/{id}", (string id, CancellationToken ct) => Target(hosts, id, out var n).GetAsync(n, ct));
        api.MapPost("/processes", async (StartRequest req, CancellationToken ct) =>
        {
            if (string.IsNullOrWhiteSpace(req.App))
            {
                throw new ViscriptException(ErrorCode.Usage, "Body must name an app: {\"app\": \"name\", \"args\": [...], \"host\": \"agent (optional)\"}");
            }
            var (host, app) = req.Host is { Length: > 0 } name ? (hosts.Resolve(name), req.App) : hosts.ParseApp(req.App);
            var info = await host.StartAsync(app, req.Args, ct);
            var target = ClusterDirectory.Qualify(host, info.Id);
            return Results.Created($"/api/processes/{Uri.EscapeDataString(target)}", hosts.IsPrimary ? info with { Host = host.Name } : info);
        });
        api.MapPost("/processes/{id}/ping", async (string id, CancellationToken ct) =>
        {
            var host = Target(hosts, id, out var n);
            var rtt = await host.PingAsync(n, ct);
            return new PingReport(n, rtt.TotalMilliseconds);
        });
        api.MapPost("/processes/{id}/ru", (string id, CancellationToken ct) => Target(hosts, id, out var n).ResourceUsageAsync(n, ct));
        api.MapGet("/processes/{id}/resources", (string id, CancellationToken ct) => Target(hosts, id, out var n).ResourceUsageAsync(n, ct));
        api.MapPost("/processes/{id}/sd", (string id, CancellationToken ct) => Target(hosts, id, out var n).StopAsync(n, ct));
        api.MapPost("/processes/{id}/kill", (string id, CancellationToken ct) => Target(hosts, id, out var n).KillAsync(n, ct));
        api.MapPost("/processes/{id}/restart", (string id, CancellationToken ct) => Target(hosts, id, out var n).RestartAsync(n, ct));
        api.MapPost("/processes/{id}/stdin", async (string id, InputRequest req, CancellationToken ct) =>
        {
            await Target(hosts, id, out var n).WriteInputAsync(n, req.Line ?? "", ct);
            return Results.NoContent();
        });
        api.MapGet("/processes/{id}/logs", async (HttpContext ctx, string id, int? n, bool? follow) =>
        {
            var host = Target(hosts, id, out var pid);
            if (!host.IsLocal)
            {
                if (follow != true)
                {
                    return (IResult)Results.Json(await host.LogsAsync(pid, n ?? 100, ctx.RequestAborted), s_json);
                }
                // Fails fast (unreachable, no such process) before the stream starts: the first item is awaited here.
                var remote = host.FollowAsync(pid, n ?? 100, ctx.RequestAborted).GetAsyncEnumerator(ctx.RequestAborted);
                var first = await remote.MoveNextAsync();
                return Sse(TypedResults.ServerSentEvents(RemoteFollowAsync(ctx, remote, first, ctx.RequestAborted)));
            }
            var logs = daemon.Supervisor.GetLogs(pid);
            var count = Math.Clamp(n ?? 100, 0, logs.Capacity);
            if (follow != true)
            {
                return Results.Json(logs.Tail(count).Select(ToInfo), s_json);
            }
            var sub = daemon.Events.Subscribe();
            return Sse(TypedResults.ServerSentEvents(FollowAsync(ctx, daemon, pid, logs, count, sub, ctx.RequestAborted)));
        });
        api.MapGet("/events", (HttpContext ctx) =>
        {
            // Subscribed before the answer starts: a client that has the response headers misses nothing after them.
            var sub = daemon.Events.Subscribe();
            return Sse(TypedResults.ServerSentEvents(EventsAsync(ctx, sub, ctx.RequestAborted)));
        });
        api.MapPost("/session", (HttpContext ctx) =>
        {
            ControlAuth.SetSessionCookie(ctx, daemon);
            return Results.NoContent();
        });
        api.MapDelete("/session", (HttpContext ctx) =>
        {
            ControlAuth.ClearSessionCookie(ctx, daemon);
            return Results.NoContent();
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

    /// <summary>The host and id of <c>ID</c> or <c>HOST:ID</c> in a path.</summary>
    private static IProcessHost Target(ClusterDirectory hosts, string text, out ulong id)
    {
        (var host, id) = hosts.ParseTarget(text, "ping");
        return host;
    }

    /// <summary>A followed log of an agent's process as SSE, from its first item (already read).</summary>
    private static async IAsyncEnumerable<SseItem<string>> RemoteFollowAsync(HttpContext ctx, IAsyncEnumerator<LogStreamItem> items, bool hasFirst,
        [EnumeratorCancellation] CancellationToken cancellationToken)
    {
        await using var _ = items;
        await OpenAsync(ctx, "following", cancellationToken);
        var more = hasFirst;
        string? failure = null;
        while (more)
        {
            var item = items.Current;
            yield return item.End is { } end
                ? new SseItem<string>(JsonSerializer.Serialize(end, s_json), "end")
                : new SseItem<string>(JsonSerializer.Serialize(item.Line, s_json), item.Kind);
            try
            {
                more = await MoveNextAsync(items);
            }
            catch (ViscriptException ex)
            {
                // The agent went away (or the process did) while following: say so, as the end of the stream.
                more = false;
                failure = ex.Message;
            }
        }
        if (failure is not null)
        {
            yield return new SseItem<string>(JsonSerializer.Serialize(new LogEndInfo(0, failure), s_json), "end");
        }
    }

    private static LogLineInfo ToInfo(LogLine l) => new(l.Seq, l.Time, l.Stream.ToString().ToLowerInvariant(), l.Text, l.Partial);

    /// <summary>
    /// The opening comment (<c>: subscribed</c>, <c>: following</c>) of an event stream, written by the iterator itself
    /// once the SSE result has set the headers: <see cref="SseItem{T}"/> cannot carry a comment, and clients wait for
    /// this line (or the headers it flushes) to know they are subscribed.
    /// </summary>
    private static async Task OpenAsync(HttpContext ctx, string comment, CancellationToken cancellationToken)
    {
        await ctx.Response.WriteAsync($": {comment}\n\n", cancellationToken);
        await ctx.Response.Body.FlushAsync(cancellationToken);
    }

    private static async IAsyncEnumerable<SseItem<string>> EventsAsync(HttpContext ctx, EventHub.Subscription sub, [EnumeratorCancellation] CancellationToken cancellationToken)
    {
        using (sub)
        {
            await OpenAsync(ctx, "subscribed", cancellationToken);
            while (await WaitAsync(sub.Reader, cancellationToken))
            {
                while (sub.Reader.TryRead(out var e))
                {
                    yield return new SseItem<string>(JsonSerializer.Serialize(e, s_json), e.Kind);
                }
            }
        }
    }

    /// <summary>Streams the tail, then new lines, as SSE <c>line</c> events; ends with an <c>end</c> event when the process stops running.</summary>
    private static async IAsyncEnumerable<SseItem<string>> FollowAsync(HttpContext ctx, DaemonHost daemon, ulong id, LogBuffer logs, int count,
        EventHub.Subscription sub, [EnumeratorCancellation] CancellationToken cancellationToken)
    {
        using var _ = sub;
        using var cts = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        await OpenAsync(ctx, "following", cancellationToken);
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
                // The client left or the stream ended.
            }
        }, CancellationToken.None);
        var lines = logs.FollowAsync(count, partials: true, cts.Token).GetAsyncEnumerator(cts.Token);
        try
        {
            while (await MoveNextAsync(lines))
            {
                var line = lines.Current;
                // "partial": an unfinished line (a prompt) shown early; clients that do not know the event ignore it.
                yield return new SseItem<string>(JsonSerializer.Serialize(ToInfo(line), s_json), line.Partial ? "partial" : "line");
            }
        }
        finally
        {
            await lines.DisposeAsync();
            await cts.CancelAsync();
            await watcher;
        }
        if (!cancellationToken.IsCancellationRequested)
        {
            yield return new SseItem<string>(JsonSerializer.Serialize(new LogEndInfo(id, endState), s_json), "end");
        }
    }

    private static async ValueTask<bool> WaitAsync<T>(ChannelReader<T> reader, CancellationToken cancellationToken)
    {
        try
        {
            return await reader.WaitToReadAsync(cancellationToken);
        }
        catch (OperationCanceledException)
        {
            return false;
        }
    }

    private static async ValueTask<bool> MoveNextAsync<T>(IAsyncEnumerator<T> items)
    {
        try
        {
            return await items.MoveNextAsync();
        }
        catch (OperationCanceledException)
        {
            return false;
        }
    }

    /// <summary>An SSE result whose end by the client leaving (the request aborted) is a normal end, not an application error.</summary>
    private static SseResult Sse(IResult inner) => new(inner);

    private sealed class SseResult(IResult inner) : IResult
    {
        public async Task ExecuteAsync(HttpContext httpContext)
        {
            try
            {
                await inner.ExecuteAsync(httpContext);
            }
            catch (OperationCanceledException) when (httpContext.RequestAborted.IsCancellationRequested)
            {
                // The client went away.
            }
        }
    }

    private static bool IsActive(DaemonHost daemon, ulong id)
    {
        var info = daemon.Supervisor.Get(id);
        return info.State is nameof(ProcessState.Starting) or nameof(ProcessState.Running) or nameof(ProcessState.Stopping) or nameof(ProcessState.Backoff);
    }
}
