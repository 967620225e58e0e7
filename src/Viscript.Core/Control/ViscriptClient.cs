using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Net.ServerSentEvents;
using System.Runtime.CompilerServices;
using System.Text;
using System.Text.Json;
using System.Text.Json.Serialization.Metadata;

namespace Viscript.Core.Control;

/// <summary>Settings of a <see cref="ViscriptClient"/>.</summary>
public sealed record ViscriptClientOptions
{
    /// <summary>Control API base address, e.g. <c>http://127.0.0.1:7777/</c>.</summary>
    public required Uri BaseAddress { get; init; }

    /// <summary>Bearer token; null sends none (a daemon started with <c>--no-auth</c>). Never printed by <see cref="ToString"/>.</summary>
    public string? Token { get; init; }

    /// <summary>Upper bound of one request/answer call (streams excepted); null = none (a stop may take minutes).</summary>
    public TimeSpan? RequestTimeout { get; init; }

    /// <inheritdoc/>
    public override string ToString() =>
        $"ViscriptClientOptions {{ BaseAddress = {BaseAddress}, Token = {(Token is null ? "(none)" : "***")}, RequestTimeout = {RequestTimeout?.ToString() ?? "(none)"} }}";
}

/// <summary>A control API call failed: the daemon's problem+json (with its stable <see cref="ErrorCode"/>), or no usable answer.</summary>
public sealed class ViscriptApiException : Exception
{
    /// <summary>Creates the exception.</summary>
    public ViscriptApiException(ErrorCode code, string message, ProblemBody? problem = null, HttpStatusCode? status = null, Exception? inner = null)
        : base(message, inner)
    {
        Code = code;
        Problem = problem;
        Status = status;
    }

    /// <summary>Creates an internal error.</summary>
    public ViscriptApiException() : this(ErrorCode.Internal, "control API call failed") { }

    /// <summary>Creates an internal error with a message.</summary>
    public ViscriptApiException(string message) : this(ErrorCode.Internal, message) { }

    /// <summary>Creates an internal error with a message and cause.</summary>
    public ViscriptApiException(string message, Exception inner) : this(ErrorCode.Internal, message, null, null, inner) { }

    /// <summary>The stable code: the daemon's, or <see cref="ErrorCode.DaemonUnreachable"/> / <see cref="ErrorCode.BadResponse"/>.</summary>
    public ErrorCode Code { get; }

    /// <summary>The daemon's problem body, when it sent one.</summary>
    public ProblemBody? Problem { get; }

    /// <summary>HTTP status, when the daemon answered.</summary>
    public HttpStatusCode? Status { get; }

    /// <summary>The lines to show: the problem's lines, else its detail, else the message.</summary>
    public IReadOnlyList<string> Lines => Problem?.Lines is { Count: > 0 } lines ? lines : [Problem?.Detail ?? Message];
}

/// <summary>An item of a followed log (SSE <c>line</c>, <c>partial</c> or <c>end</c>).</summary>
/// <param name="Kind"><c>line</c>, <c>partial</c> or <c>end</c>.</param>
/// <param name="Line">The line (line and partial).</param>
/// <param name="End">The final state (end).</param>
public sealed record LogStreamItem(string Kind, LogLineInfo? Line, LogEndInfo? End);

/// <summary>
/// The typed client of viscript's control API (docs/viscript.md "Control API"): the one client that <c>viscript cli</c>,
/// <c>skywire demo</c> and the tests use. Every failure surfaces as <see cref="ViscriptApiException"/> with the stable
/// error code (the CLI's exit code); server-sent event streams are read with the BCL's <see cref="SseParser"/>.
/// </summary>
public sealed class ViscriptClient : IDisposable
{
    private static readonly ControlJsonContext s_json = ControlJsonContext.Default;
    private readonly HttpClient _http;
    private readonly ViscriptClientOptions _options;

    /// <summary>Creates a client; <paramref name="handler"/> overrides the transport (tests).</summary>
    public ViscriptClient(ViscriptClientOptions options, HttpMessageHandler? handler = null)
    {
        ArgumentNullException.ThrowIfNull(options);
        _options = options;
        var baseAddress = options.BaseAddress.AbsoluteUri.EndsWith('/') ? options.BaseAddress : new Uri(options.BaseAddress.AbsoluteUri + "/");
        _http = new HttpClient(handler ?? new SocketsHttpHandler { UseCookies = false, UseProxy = false }, disposeHandler: true)
        {
            BaseAddress = baseAddress,
            Timeout = System.Threading.Timeout.InfiniteTimeSpan,
        };
        if (!string.IsNullOrEmpty(options.Token))
        {
            _http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", options.Token);
        }
    }

    /// <summary>Creates a client for <paramref name="baseAddress"/> with <paramref name="token"/>.</summary>
    public static ViscriptClient Create(Uri baseAddress, string? token, TimeSpan? requestTimeout = null) =>
        new(new ViscriptClientOptions { BaseAddress = baseAddress, Token = token, RequestTimeout = requestTimeout });

    /// <summary>The control API base address.</summary>
    public Uri BaseAddress => _http.BaseAddress!;

    /// <summary><c>GET /api/info</c>.</summary>
    public Task<DaemonInfo> InfoAsync(CancellationToken cancellationToken = default) => GetAsync("api/info", s_json.DaemonInfo, cancellationToken);

    /// <summary><c>GET /api/apps</c>.</summary>
    public async Task<IReadOnlyList<AppInfo>> AppsAsync(CancellationToken cancellationToken = default) => await GetAsync("api/apps", s_json.ListAppInfo, cancellationToken);

    /// <summary><c>GET /api/processes</c>.</summary>
    public async Task<IReadOnlyList<ProcessInfo>> ProcessesAsync(CancellationToken cancellationToken = default) => await GetAsync("api/processes", s_json.ListProcessInfo, cancellationToken);

    /// <summary><c>GET /api/processes/{id}</c>.</summary>
    public Task<ProcessInfo> ProcessAsync(ulong id, CancellationToken cancellationToken = default) => GetAsync($"api/processes/{id}", s_json.ProcessInfo, cancellationToken);

    /// <summary><c>POST /api/processes</c>: starts <paramref name="app"/> under a new id.</summary>
    public Task<ProcessInfo> StartAsync(string app, IReadOnlyList<string>? args = null, CancellationToken cancellationToken = default) =>
        SendAsync(HttpMethod.Post, "api/processes", new StartRequest(app, args), s_json.StartRequest, s_json.ProcessInfo, cancellationToken);

    /// <summary><c>POST /api/command</c>: one line of the command language (REPL quoting).</summary>
    public Task<CommandResponse> CommandAsync(string line, CancellationToken cancellationToken = default) =>
        CommandAsync(new CommandRequest(line, null), cancellationToken);

    /// <summary><c>POST /api/command</c>: a command with pre-split arguments.</summary>
    public Task<CommandResponse> CommandAsync(IReadOnlyList<string> args, CancellationToken cancellationToken = default) =>
        CommandAsync(new CommandRequest(null, args), cancellationToken);

    /// <summary><c>POST /api/command</c>.</summary>
    public Task<CommandResponse> CommandAsync(CommandRequest request, CancellationToken cancellationToken = default) =>
        SendAsync(HttpMethod.Post, "api/command", request, s_json.CommandRequest, s_json.CommandResponse, cancellationToken);

    /// <summary><c>POST /api/processes/{id}/ping</c>.</summary>
    public Task<PingReport> PingAsync(ulong id, CancellationToken cancellationToken = default) => PostAsync($"api/processes/{id}/ping", s_json.PingReport, cancellationToken);

    /// <summary><c>POST /api/processes/{id}/ru</c>.</summary>
    public Task<ResourceReport> ResourceUsageAsync(ulong id, CancellationToken cancellationToken = default) => PostAsync($"api/processes/{id}/ru", s_json.ResourceReport, cancellationToken);

    /// <summary><c>POST /api/processes/{id}/sd</c>: graceful stop.</summary>
    public Task<StopReport> StopAsync(ulong id, CancellationToken cancellationToken = default) => PostAsync($"api/processes/{id}/sd", s_json.StopReport, cancellationToken);

    /// <summary><c>POST /api/processes/{id}/kill</c>.</summary>
    public Task<StopReport> KillAsync(ulong id, CancellationToken cancellationToken = default) => PostAsync($"api/processes/{id}/kill", s_json.StopReport, cancellationToken);

    /// <summary><c>POST /api/processes/{id}/restart</c>.</summary>
    public Task<StopReport> RestartAsync(ulong id, CancellationToken cancellationToken = default) => PostAsync($"api/processes/{id}/restart", s_json.StopReport, cancellationToken);

    /// <summary><c>POST /api/processes/{id}/stdin</c>: one line to the app's stdin.</summary>
    public async Task WriteInputAsync(ulong id, string line, CancellationToken cancellationToken = default)
    {
        using var request = new HttpRequestMessage(HttpMethod.Post, $"api/processes/{id}/stdin") { Content = JsonContent.Create(new InputRequest(line), s_json.InputRequest) };
        using var response = await SendCoreAsync(request, HttpCompletionOption.ResponseContentRead, cancellationToken);
        await EnsureSuccessAsync(response, cancellationToken);
    }

    /// <summary><c>GET /api/processes/{id}/logs?n=N</c>: the last <paramref name="count"/> captured lines.</summary>
    public async Task<IReadOnlyList<LogLineInfo>> LogsAsync(ulong id, int count, CancellationToken cancellationToken = default) =>
        await GetAsync($"api/processes/{id}/logs?n={count}", s_json.ListLogLineInfo, cancellationToken);

    /// <summary><c>GET /api/samples</c>.</summary>
    public async Task<IReadOnlyList<SampleSeries>> SamplesAsync(CancellationToken cancellationToken = default) => await GetAsync("api/samples", s_json.ListSampleSeries, cancellationToken);

    /// <summary><c>GET /api/processes/{id}/samples</c>.</summary>
    public Task<SampleSeries> SamplesAsync(ulong id, CancellationToken cancellationToken = default) => GetAsync($"api/processes/{id}/samples", s_json.SampleSeries, cancellationToken);

    /// <summary><c>GET /api/topology</c>.</summary>
    public Task<TopologyView> TopologyAsync(CancellationToken cancellationToken = default) => GetAsync("api/topology", s_json.TopologyView, cancellationToken);

    /// <summary><c>POST /api/shutdown</c>: the daemon stops its apps and exits.</summary>
    public async Task ShutdownDaemonAsync(CancellationToken cancellationToken = default)
    {
        using var request = new HttpRequestMessage(HttpMethod.Post, "api/shutdown");
        using var response = await SendCoreAsync(request, HttpCompletionOption.ResponseContentRead, cancellationToken);
        await EnsureSuccessAsync(response, cancellationToken);
    }

    /// <summary>
    /// <c>GET /api/events</c>: returns once the daemon has subscribed this client (the response headers are in), so
    /// that nothing published after this call returns is missed; then read the events from the result.
    /// </summary>
    public async Task<EventStream<ProcessEvent>> OpenEventsAsync(CancellationToken cancellationToken = default)
    {
        var response = await OpenStreamAsync("api/events", cancellationToken);
        return new EventStream<ProcessEvent>(response, (type, data) => type is "state" or "started" or "registered" or "disconnected" or "diagnostic"
            ? JsonSerializer.Deserialize(data, s_json.ProcessEvent)
            : null);
    }

    /// <summary>
    /// <c>GET /api/processes/{id}/logs?follow=true&amp;n=N</c>: the last <paramref name="tail"/> lines, then new ones, until
    /// the process stops running (an <c>end</c> item) or the caller cancels.
    /// </summary>
    public async Task<EventStream<LogStreamItem>> OpenLogFollowAsync(ulong id, int tail, CancellationToken cancellationToken = default)
    {
        var response = await OpenStreamAsync($"api/processes/{id}/logs?follow=true&n={tail}", cancellationToken);
        return new EventStream<LogStreamItem>(response, (type, data) => type switch
        {
            "line" or "partial" => new LogStreamItem(type, JsonSerializer.Deserialize(data, s_json.LogLineInfo), null),
            "end" => new LogStreamItem(type, null, JsonSerializer.Deserialize(data, s_json.LogEndInfo)),
            _ => null,
        });
    }

    /// <summary>Sends a raw request with this client's address and token (for endpoints without a typed method).</summary>
    public Task<HttpResponseMessage> SendRawAsync(HttpRequestMessage request, CancellationToken cancellationToken = default) =>
        SendCoreAsync(request, HttpCompletionOption.ResponseHeadersRead, cancellationToken);

    private async Task<HttpResponseMessage> OpenStreamAsync(string path, CancellationToken cancellationToken)
    {
        var request = new HttpRequestMessage(HttpMethod.Get, path);
        request.Headers.Accept.Add(new MediaTypeWithQualityHeaderValue("text/event-stream"));
        var response = await SendCoreAsync(request, HttpCompletionOption.ResponseHeadersRead, cancellationToken, timeout: false);
        try
        {
            await EnsureSuccessAsync(response, cancellationToken);
            return response;
        }
        catch
        {
            response.Dispose();
            throw;
        }
    }

    private Task<T> GetAsync<T>(string path, JsonTypeInfo<T> type, CancellationToken cancellationToken) =>
        ReadAsync(new HttpRequestMessage(HttpMethod.Get, path), type, cancellationToken);

    private Task<T> PostAsync<T>(string path, JsonTypeInfo<T> type, CancellationToken cancellationToken) =>
        ReadAsync(new HttpRequestMessage(HttpMethod.Post, path), type, cancellationToken);

    private Task<TResponse> SendAsync<TRequest, TResponse>(HttpMethod method, string path, TRequest body, JsonTypeInfo<TRequest> requestType, JsonTypeInfo<TResponse> responseType, CancellationToken cancellationToken) =>
        ReadAsync(new HttpRequestMessage(method, path) { Content = JsonContent.Create(body, requestType) }, responseType, cancellationToken);

    private async Task<T> ReadAsync<T>(HttpRequestMessage request, JsonTypeInfo<T> type, CancellationToken cancellationToken)
    {
        using (request)
        {
            using var timeout = Deadline(cancellationToken);
            using var response = await SendCoreAsync(request, HttpCompletionOption.ResponseContentRead, timeout.Token, timeout: false);
            await EnsureSuccessAsync(response, timeout.Token);
            try
            {
                return await response.Content.ReadFromJsonAsync(type, timeout.Token)
                    ?? throw new ViscriptApiException(ErrorCode.BadResponse, "empty answer from the daemon", status: response.StatusCode);
            }
            catch (JsonException ex)
            {
                throw new ViscriptApiException(ErrorCode.BadResponse, $"unreadable answer from the daemon: {ex.Message}", null, response.StatusCode, ex);
            }
        }
    }

    private CancellationTokenSource Deadline(CancellationToken cancellationToken)
    {
        var cts = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        if (_options.RequestTimeout is { } t)
        {
            cts.CancelAfter(t);
        }
        return cts;
    }

    private async Task<HttpResponseMessage> SendCoreAsync(HttpRequestMessage request, HttpCompletionOption completion, CancellationToken cancellationToken, bool timeout = true)
    {
        using var deadline = timeout ? Deadline(cancellationToken) : null;
        try
        {
            return await _http.SendAsync(request, completion, deadline?.Token ?? cancellationToken);
        }
        catch (HttpRequestException ex)
        {
            throw new ViscriptApiException(ErrorCode.DaemonUnreachable, $"cannot reach the daemon at {BaseAddress}: {ex.Message}", null, null, ex);
        }
        catch (OperationCanceledException ex) when (!cancellationToken.IsCancellationRequested)
        {
            throw new ViscriptApiException(ErrorCode.DaemonUnreachable, $"the daemon at {BaseAddress} did not answer within {_options.RequestTimeout}", null, null, ex);
        }
    }

    private static async Task EnsureSuccessAsync(HttpResponseMessage response, CancellationToken cancellationToken)
    {
        if (response.IsSuccessStatusCode)
        {
            return;
        }
        ProblemBody? problem = null;
        try
        {
            problem = await response.Content.ReadFromJsonAsync(s_json.ProblemBody, cancellationToken);
        }
        catch (Exception ex) when (ex is JsonException or NotSupportedException or InvalidOperationException)
        {
            // Not problem+json: reported by status below.
        }
        if (problem is { Code: > 0 })
        {
            throw new ViscriptApiException((ErrorCode)problem.Code, problem.Detail, problem, response.StatusCode);
        }
        var code = response.StatusCode == HttpStatusCode.Unauthorized ? ErrorCode.Unauthorized : ErrorCode.BadResponse;
        throw new ViscriptApiException(code, $"the daemon answered HTTP {(int)response.StatusCode} without a problem body", null, response.StatusCode);
    }

    /// <inheritdoc/>
    public void Dispose() => _http.Dispose();
}

/// <summary>An open server-sent event stream of typed items; dispose to close it.</summary>
/// <typeparam name="T">Item type.</typeparam>
public sealed class EventStream<T> : IDisposable where T : class
{
    private readonly HttpResponseMessage _response;
    private readonly Func<string, string, T?> _parse;

    internal EventStream(HttpResponseMessage response, Func<string, string, T?> parse)
    {
        _response = response;
        _parse = parse;
    }

    /// <summary>
    /// The items in order, until the daemon ends the stream or <paramref name="cancellationToken"/> fires (then the
    /// enumeration ends with <see cref="OperationCanceledException"/>). Events of unknown kinds are skipped.
    /// </summary>
    /// <exception cref="ViscriptApiException">The connection broke (<see cref="ErrorCode.DaemonUnreachable"/>) or an item is not valid JSON.</exception>
    public async IAsyncEnumerable<T> ReadAllAsync([EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        Stream stream;
        try
        {
            stream = await _response.Content.ReadAsStreamAsync(cancellationToken);
        }
        catch (Exception ex) when (ex is IOException or HttpRequestException)
        {
            throw new ViscriptApiException(ErrorCode.DaemonUnreachable, "lost the daemon: " + ex.Message, null, null, ex);
        }
        var parser = SseParser.Create(stream, static (type, data) => Encoding.UTF8.GetString(data));
        await using var items = parser.EnumerateAsync(cancellationToken).GetAsyncEnumerator(cancellationToken);
        while (true)
        {
            SseItem<string> item;
            try
            {
                if (!await items.MoveNextAsync())
                {
                    yield break;
                }
                item = items.Current;
            }
            catch (Exception ex) when (ex is IOException or HttpRequestException)
            {
                throw new ViscriptApiException(ErrorCode.DaemonUnreachable, "lost the daemon: " + ex.Message, null, null, ex);
            }
            T? parsed;
            try
            {
                parsed = _parse(item.EventType, item.Data);
            }
            catch (JsonException ex)
            {
                throw new ViscriptApiException(ErrorCode.BadResponse, $"unreadable {item.EventType} event from the daemon: {ex.Message}", null, null, ex);
            }
            if (parsed is not null)
            {
                yield return parsed;
            }
        }
    }

    /// <inheritdoc/>
    public void Dispose() => _response.Dispose();
}
