using System.Globalization;
using System.Net;
using System.Text;
using Microsoft.Extensions.FileProviders;
using Viscript.Core;
using Viscript.Core.Commands;
using Viscript.Core.Control;
using Viscript.Core.Sampling;

namespace Viscript.Daemon;

/// <summary>
/// What the web GUI adds to the control API (docs/gui.md): the resource sampler and its endpoints (both modes), a request
/// guard against cross-site requests and DNS rebinding (both modes), and in GUI mode the page itself: <c>/</c> rendered
/// on the server with the apps and processes in it, plus the static files of <c>wwwroot</c>. Mapped before
/// <see cref="ControlApi"/>, so the page and its scripts load without the token (they hold no data); every
/// <c>/api</c> call still goes through the token check (<see cref="ControlAuth"/>).
/// </summary>
public static class GuiEndpoints
{
    /// <summary>What <c>GET /</c> answers on a headless daemon (text/plain).</summary>
    public const string HeadlessPage = """
        viscript: the web GUI is off: this daemon runs headless (--headless, or settings.runHeadless: true in its config.yaml).
        To use the GUI, start viscript with --gui (it overrides runHeadless), then open the link that
        'viscript cli --control ADDR --gui-url' prints. The control API (/api, used by viscript cli) works either way.

        """;

    /// <summary>Maps the GUI parts; call before <see cref="ControlApi.Map"/>.</summary>
    public static void Map(WebApplication app, DaemonHost daemon)
    {
        var sampler = daemon.Sampler;

        app.Use(async (ctx, next) =>
        {
            if (RejectReason(ctx.Request, daemon) is { } reason)
            {
                await ControlApi.Problem(ErrorCode.Unauthorized, reason).ExecuteAsync(ctx);
                return;
            }
            await next(ctx);
        });

        var root = Path.Combine(AppContext.BaseDirectory, "wwwroot");
        if (daemon.Options.Headless)
        {
            // No GUI, but a browser pointed here learns why and how to get one (no token needed: it says nothing else).
            app.Use(async (ctx, next) =>
            {
                if (HttpMethods.IsGet(ctx.Request.Method) && ctx.Request.Path.Value is "/" or "/index.html")
                {
                    ctx.Response.StatusCode = StatusCodes.Status404NotFound;
                    ctx.Response.ContentType = "text/plain; charset=utf-8";
                    ctx.Response.Headers.CacheControl = "no-store";
                    await ctx.Response.WriteAsync(HeadlessPage, ctx.RequestAborted);
                    return;
                }
                await next(ctx);
            });
        }
        else if (Directory.Exists(root))
        {
            var files = new PhysicalFileProvider(root);
            app.Use(async (ctx, next) =>
            {
                var path = ctx.Request.Path.Value ?? "/";
                if (HttpMethods.IsGet(ctx.Request.Method) && path is "/" or "/index.html")
                {
                    await WriteIndexAsync(ctx, daemon, sampler, files);
                    return;
                }
                await next(ctx);
            });
            app.UseStaticFiles(new StaticFileOptions
            {
                FileProvider = files,
                OnPrepareResponse = c => c.Context.Response.Headers.CacheControl = "no-cache",
            });
        }

        var api = app.MapGroup("/api");
        // ?host=NAME: an agent's samples (its own sampler, asked over the agent channel); without it, this host's.
        api.MapGet("/samples", async (string? host, CancellationToken ct) => await daemon.Hosts.Resolve(host).SamplesAsync(ct));
        api.MapGet("/processes/{id}/samples", (string id) =>
        {
            var n = CommandInterpreter.ParseId([id], "samples");
            daemon.Supervisor.Get(n); // 404 problem for an unknown id
            return sampler.Get(n) ?? new SampleSeries(n, null, sampler.Interval.TotalSeconds, []);
        });
        api.MapGet("/topology", () => daemon.Topology.Current);
        var ledger = new LedgerEarningsSource(daemon.Options.Ledger, daemon.Options.TimeProvider);
        api.MapGet("/ledger", async (CancellationToken ct) => Results.Text(await ledger.GetAsync(ct), "application/json"));
    }

    /// <summary>
    /// Why a request must be refused before anything else, or null. A browser sends <c>Origin</c> on cross-site requests:
    /// only the page's own origin may call. On a loopback listener the <c>Host</c> must be a loopback name, so a
    /// DNS-rebinding page (evil.example resolving to 127.0.0.1) cannot reach the API either.
    /// </summary>
    internal static string? RejectReason(HttpRequest request, DaemonHost daemon)
    {
        var host = request.Host;
        var loopbackListener = IPAddress.IsLoopback(daemon.Options.Control.Address);
        if (loopbackListener && host.HasValue && !IsLoopbackHost(host.Host))
        {
            return $"Host '{host.Host}' is not a loopback name; this daemon listens on loopback only.";
        }
        var origin = request.Headers.Origin.ToString();
        if (origin.Length > 0 && !string.Equals(origin, $"{request.Scheme}://{host.Value}", StringComparison.OrdinalIgnoreCase))
        {
            return $"Cross-origin request from '{origin}' refused.";
        }
        return null;
    }

    private static bool IsLoopbackHost(string host) =>
        host.Equals("localhost", StringComparison.OrdinalIgnoreCase)
        || (IPAddress.TryParse(host.Trim('[', ']'), out var ip) && IPAddress.IsLoopback(ip));

    /// <summary>
    /// index.html with the start menu and the process table filled in, so app names and states are in the first paint.
    /// The data is filled in only for a request the control API would answer (session cookie or bearer header; never a
    /// token in the query); otherwise the page renders empty and asks for the token.
    /// </summary>
    private static async Task WriteIndexAsync(HttpContext ctx, DaemonHost daemon, ResourceSampler sampler, PhysicalFileProvider files)
    {
        var file = files.GetFileInfo("index.html");
        if (!file.Exists)
        {
            await ControlApi.Problem(ErrorCode.Internal, "index.html is missing from wwwroot; rebuild viscript.").ExecuteAsync(ctx);
            return;
        }
        string html;
        using (var reader = new StreamReader(file.CreateReadStream()))
        {
            html = await reader.ReadToEndAsync(ctx.RequestAborted);
        }
        var authorized = ControlAuth.IsAuthorized(ctx.Request, daemon);
        html = html
            .Replace("<!--APPS-->", authorized ? RenderApps(daemon) : "", StringComparison.Ordinal)
            .Replace("<!--PROCESSES-->", authorized ? RenderProcesses(daemon, sampler) : "", StringComparison.Ordinal)
            .Replace("{{NEEDS_TOKEN}}", authorized ? "false" : "true", StringComparison.Ordinal);
        ctx.Response.ContentType = "text/html; charset=utf-8";
        ctx.Response.Headers.CacheControl = "no-store";
        ctx.Response.Headers["Content-Security-Policy"] = "default-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; frame-ancestors 'none'";
        ctx.Response.Headers.XContentTypeOptions = "nosniff";
        ctx.Response.Headers["Referrer-Policy"] = "no-referrer";
        await ctx.Response.WriteAsync(html, ctx.RequestAborted);
    }

    private static string RenderApps(DaemonHost daemon)
    {
        var sb = new StringBuilder();
        foreach (var a in daemon.Supervisor.Config.Apps.Values.OrderBy(a => a.Name, StringComparer.OrdinalIgnoreCase))
        {
            var name = E(a.Name);
            sb.Append(CultureInfo.InvariantCulture, $"""
                <li class="app" data-app="{name}"><div class="app-head"><button type="button" class="start-app" data-app="{name}">Start {name}</button><span class="desc">{E(a.Description)}</span></div>
                <pre class="help">{E(a.Help)}</pre><label>arguments <input class="args" data-app="{name}" placeholder="{E(string.Join(' ', a.DefaultArgs.Select(CommandLineQuote)))}" autocomplete="off" spellcheck="false"></label></li>

                """);
        }
        return sb.Length == 0 ? "<li class=\"empty\">No apps in config.yaml.</li>" : sb.ToString();
    }

    private static string RenderProcesses(DaemonHost daemon, ResourceSampler sampler)
    {
        var sb = new StringBuilder();
        foreach (var p in daemon.Supervisor.List())
        {
            var series = sampler.Get(p.Id)?.Samples;
            var last = series is { Count: > 0 } ? series[^1] : null;
            sb.Append(CultureInfo.InvariantCulture, $"""
                <tr data-id="{p.Id}" data-host="{E(daemon.Hosts.Local.Name)}" data-state="{E(p.State)}" data-stop-requested="{(p.StopRequested ? "true" : "false")}"><td class="host">{E(daemon.Hosts.Local.Name)}</td><td class="id">{p.Id}</td><td class="app">{E(p.App ?? "-")}</td><td class="state state-{E(p.State.ToLowerInvariant())}">{E(p.Display)}</td><td class="pid">{p.Pid?.ToString(CultureInfo.InvariantCulture) ?? "-"}</td><td class="uptime">{(p.UptimeSeconds is { } up ? CommandInterpreter.FormatUptime(up) : "-")}</td><td class="cpu">{(last?.CpuPercent is { } cpu ? cpu.ToString("0.0", CultureInfo.InvariantCulture) + " %" : "-")}</td><td class="mem">{(last?.RssBytes is { } rss ? CommandInterpreter.FormatBytes(rss) : "-")}</td><td class="actions"></td></tr>

                """);
        }
        return sb.ToString();
    }

    private static string CommandLineQuote(string arg) => arg.Length == 0 || arg.Any(c => char.IsWhiteSpace(c) || c is '"' or '\'') ? "\"" + arg.Replace("\"", "\\\"", StringComparison.Ordinal) + "\"" : arg;

    private static string E(string text) => WebUtility.HtmlEncode(text);
}
