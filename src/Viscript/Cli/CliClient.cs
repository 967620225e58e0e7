using System.Net;
using System.Net.Http.Headers;
using System.Net.Sockets;
using System.Text.Json;
using Viscript.Core;
using Viscript.Core.Control;
using Viscript.Core.Supervision;

namespace Viscript.Cli;

/// <summary>
/// <c>viscript cli</c>: a thin client of the control API. One command: prints its output, exit code = error code.
/// No command: an interactive shell against the daemon.
/// </summary>
public sealed class CliClient : IDisposable
{
    /// <summary>Default control address.</summary>
    public const string DefaultControl = "127.0.0.1:7777";

    private static readonly JsonSerializerOptions s_json = new(JsonSerializerDefaults.Web);
    private readonly HttpClient _http;
    private readonly TextWriter _out;
    private readonly Viscript.Core.Commands.LiveOutput _live = new();
    private readonly TextWriter _err;

    /// <summary>Creates a client for <paramref name="baseUrl"/>.</summary>
    public CliClient(Uri baseUrl, string? token, TextWriter output, TextWriter error)
    {
        _http = new HttpClient { BaseAddress = baseUrl, Timeout = Timeout.InfiniteTimeSpan };
        if (!string.IsNullOrEmpty(token))
        {
            _http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", token);
        }
        _out = output;
        _err = error;
    }

    /// <summary>Usage text of <c>viscript cli</c>.</summary>
    public const string Usage = """
        Usage: viscript cli [--control ADDR] [--token TOKEN] [<command> [args...]]

        Sends one command to a running viscript daemon and prints its output (exit code 0 on success,
        else the error code: see docs/viscript.md). Without a command, opens an interactive shell.

        Options (before the command):
          --control ADDR   Control API address (default 127.0.0.1:7777, or env VISCRIPT_CONTROL)
          --token TOKEN    Bearer token (default env VISCRIPT_TOKEN)
          -h, --help       Show this help

        Commands: help, apps, start|s [-a] <app> [args], list_apps|la|ps [-f], ping <id>, res_usage|ru <id>,
                  shutdown|sd <id>, kill <id>, restart <id>, logs <id> [-n N] [-f], attach <id>, clear, quit.
        Exit codes: 0 ok, 1 internal, 2 usage, 3 unknown command, 10 unknown app, 11 bad id, 12 no such process,
                    13 not running, 14 not a signal client, 15 already running, 20 signal timeout, 21 signal failed,
                    30 start failed, 40 unauthorized, 50 daemon unreachable, 51 bad response.
        """;

    /// <summary>Entry point of <c>viscript cli ...</c>.</summary>
    public static async Task<int> RunAsync(string[] args, TextReader input, TextWriter output, TextWriter error, CancellationToken cancellationToken)
    {
        var control = Environment.GetEnvironmentVariable("VISCRIPT_CONTROL");
        var token = Environment.GetEnvironmentVariable("VISCRIPT_TOKEN");
        var i = 0;
        for (; i < args.Length; i++)
        {
            var a = args[i];
            if (a is "-h" or "--help")
            {
                output.WriteLine(Usage);
                return 0;
            }
            if (a is "--control" or "--token")
            {
                if (i + 1 >= args.Length)
                {
                    error.WriteLine($"viscript cli: {a} needs a value.");
                    return (int)ErrorCode.Usage;
                }
                if (a == "--control")
                {
                    control = args[++i];
                }
                else
                {
                    token = args[++i];
                }
                continue;
            }
            if (a.StartsWith("--control=", StringComparison.Ordinal))
            {
                control = a["--control=".Length..];
                continue;
            }
            if (a.StartsWith("--token=", StringComparison.Ordinal))
            {
                token = a["--token=".Length..];
                continue;
            }
            if (a == "--")
            {
                i++;
            }
            else if (a.StartsWith("--", StringComparison.Ordinal))
            {
                error.WriteLine($"viscript cli: unknown option '{a}'. See viscript cli --help.");
                return (int)ErrorCode.Usage;
            }
            break;
        }
        if (!Endpoints.TryParse(string.IsNullOrWhiteSpace(control) ? DefaultControl : control, out var ep))
        {
            error.WriteLine($"viscript cli: bad control address '{control}' (expected host:port).");
            return (int)ErrorCode.Usage;
        }
        using var client = new CliClient(new Uri($"http://{ep}/"), token, output, error);
        var command = args[i..];
        return command.Length == 0
            ? await client.ShellAsync(input, cancellationToken)
            : await client.RunCommandAsync(new CommandRequest(null, command), input, interactive: false, cancellationToken);
    }

    /// <summary>Interactive shell: each line is one command; <c>quit</c> leaves the shell (the daemon keeps running).</summary>
    public async Task<int> ShellAsync(TextReader input, CancellationToken cancellationToken)
    {
        _out.WriteLine($"viscript cli: connected to {_http.BaseAddress} (type \"help\", \"quit\" leaves the shell)");
        var last = 0;
        while (!cancellationToken.IsCancellationRequested)
        {
            _out.Write("viscript> ");
            _out.Flush();
            var line = await input.ReadLineAsync(cancellationToken);
            if (line is null)
            {
                _out.WriteLine();
                return last;
            }
            if (string.IsNullOrWhiteSpace(line))
            {
                continue;
            }
            last = await RunCommandAsync(new CommandRequest(line, null), input, interactive: true, cancellationToken);
            if (last == -1)
            {
                return 0;
            }
            if (last == (int)ErrorCode.DaemonUnreachable)
            {
                return last;
            }
        }
        return last;
    }

    /// <summary>Runs one command; returns the exit code (-1 = quit in the shell).</summary>
    public async Task<int> RunCommandAsync(CommandRequest request, TextReader input, bool interactive, CancellationToken cancellationToken)
    {
        HttpResponseMessage response;
        try
        {
            response = await _http.PostAsJsonAsync("api/command", request, s_json, cancellationToken);
        }
        catch (HttpRequestException ex)
        {
            _err.WriteLine($"viscript cli: cannot reach the daemon at {_http.BaseAddress}: {ex.Message}");
            return (int)ErrorCode.DaemonUnreachable;
        }
        using (response)
        {
            if (!response.IsSuccessStatusCode)
            {
                return await PrintProblemAsync(response, cancellationToken);
            }
            CommandResponse? result;
            try
            {
                result = await response.Content.ReadFromJsonAsync<CommandResponse>(s_json, cancellationToken);
            }
            catch (JsonException ex)
            {
                _err.WriteLine($"viscript cli: unreadable answer from the daemon: {ex.Message}");
                return (int)ErrorCode.BadResponse;
            }
            if (result is null)
            {
                _err.WriteLine("viscript cli: empty answer from the daemon.");
                return (int)ErrorCode.BadResponse;
            }
            foreach (var line in result.Lines)
            {
                _out.WriteLine(line);
            }
            switch (result.Action)
            {
                case "quit":
                    return interactive ? -1 : 0;
                case "clear":
                    _out.Write("\x1b[2J\x1b[H");
                    break;
                case "attach" when result.TargetId is { } id:
                    return await AttachAsync(id, input, cancellationToken);
                case "follow" when result.TargetId is { } id:
                    return await FollowAsync(id, tail: 0, cancellationToken);
            }
            _out.Flush();
            return 0;
        }
    }

    private async Task<int> PrintProblemAsync(HttpResponseMessage response, CancellationToken cancellationToken)
    {
        try
        {
            var problem = await response.Content.ReadFromJsonAsync<ProblemBody>(s_json, cancellationToken);
            if (problem is not null && problem.Code > 0)
            {
                var lines = problem.Lines is { Count: > 0 } l ? l : [problem.Detail];
                foreach (var line in lines)
                {
                    _err.WriteLine($"error {problem.Code} ({problem.Title}): {line}");
                }
                return problem.Code;
            }
        }
        catch (JsonException)
        {
        }
        catch (NotSupportedException)
        {
        }
        _err.WriteLine($"viscript cli: the daemon answered HTTP {(int)response.StatusCode} without a problem body.");
        return response.StatusCode == HttpStatusCode.Unauthorized ? (int)ErrorCode.Unauthorized : (int)ErrorCode.BadResponse;
    }

    /// <summary>Streams new output of <paramref name="id"/> until the process stops running; returns 0.</summary>
    public async Task<int> FollowAsync(ulong id, int tail, CancellationToken cancellationToken)
    {
        try
        {
            using var request = new HttpRequestMessage(HttpMethod.Get, $"api/processes/{id}/logs?follow=true&n={tail}");
            using var response = await _http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, cancellationToken);
            if (!response.IsSuccessStatusCode)
            {
                return await PrintProblemAsync(response, cancellationToken);
            }
            await using var stream = await response.Content.ReadAsStreamAsync(cancellationToken);
            using var reader = new StreamReader(stream);
            string? evt = null;
            while (await reader.ReadLineAsync(cancellationToken) is { } line)
            {
                if (line.StartsWith("event: ", StringComparison.Ordinal))
                {
                    evt = line[7..];
                }
                else if (line.StartsWith("data: ", StringComparison.Ordinal))
                {
                    if (evt is "line" or "partial")
                    {
                        var l = JsonSerializer.Deserialize<LogLineInfo>(line[6..], s_json);
                        if (l is not null)
                        {
                            var kind = Enum.TryParse<LogStream>(l.Stream, ignoreCase: true, out var parsed) ? parsed : LogStream.Stdout;
                            lock (_live)
                            {
                                // Partial lines (prompts) show at once, without their newline.
                                _out.Write(evt == "partial" ? _live.Partial(kind, l.Text) : _live.Complete(kind, l.Text));
                                _out.Flush();
                            }
                        }
                    }
                    else if (evt == "end")
                    {
                        lock (_live)
                        {
                            _out.Write(_live.BreakRow());
                        }
                        _out.WriteLine($"[ {id} ] is no longer running.");
                        return 0;
                    }
                }
            }
            return 0;
        }
        catch (OperationCanceledException)
        {
            return 0;
        }
        catch (HttpRequestException ex) when (ex.InnerException is SocketException or IOException or null)
        {
            _err.WriteLine($"viscript cli: lost the daemon: {ex.Message}");
            return (int)ErrorCode.DaemonUnreachable;
        }
        catch (IOException ex)
        {
            _err.WriteLine($"viscript cli: lost the daemon: {ex.Message}");
            return (int)ErrorCode.DaemonUnreachable;
        }
    }

    /// <summary>Attach over the control API: output streams in, typed lines go to the app's stdin; <c>^Z</c>/<c>detach</c> or EOF detaches.</summary>
    public async Task<int> AttachAsync(ulong id, TextReader input, CancellationToken cancellationToken)
    {
        using var cts = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        var follow = FollowAsync(id, 0, cts.Token);
        _out.WriteLine($"Attached to {id}; ^Z or 'detach' on a line of its own detaches.");
        var readTask = input.ReadLineAsync(cts.Token).AsTask();
        while (true)
        {
            var done = await Task.WhenAny(follow, readTask);
            if (done == follow)
            {
                return await follow;
            }
            var line = await readTask;
            lock (_live)
            {
                // The terminal echoed the typed line: output continues on a new row.
                _live.RowEndedByUser();
            }
            if (line is null || line.Trim() is "^Z" or "^z" or "detach" or "\x1a")
            {
                await cts.CancelAsync();
                await follow;
                _out.WriteLine("Detaching external app");
                return 0;
            }
            using var resp = await _http.PostAsJsonAsync($"api/processes/{id}/stdin", new InputRequest(line), s_json, cts.Token);
            if (!resp.IsSuccessStatusCode)
            {
                await cts.CancelAsync();
                await follow;
                return await PrintProblemAsync(resp, cancellationToken);
            }
            readTask = input.ReadLineAsync(cts.Token).AsTask();
        }
    }

    /// <inheritdoc/>
    public void Dispose() => _http.Dispose();
}
