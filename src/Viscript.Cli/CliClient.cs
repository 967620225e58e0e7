using Viscript.Core;
using Viscript.Core.Control;
using Viscript.Core.Supervision;

namespace Viscript.Cli;

/// <summary>
/// <c>viscript cli</c>: a thin front-end of <see cref="ViscriptClient"/>. One command: prints its output, exit code =
/// error code. No command: an interactive shell against the daemon.
/// </summary>
public sealed class CliClient : IDisposable
{
    /// <summary>Default control address.</summary>
    public const string DefaultControl = "127.0.0.1:7777";

    private readonly ViscriptClient _client;
    private readonly TextWriter _out;
    private readonly Viscript.Core.Commands.LiveOutput _live = new();
    private readonly TextWriter _err;

    /// <summary>Where the control address came from, for the "cannot reach" message (<c>--control</c>, env or default).</summary>
    internal string AddressSource { get; init; } = "--control";

    /// <summary>Creates a client for <paramref name="baseUrl"/>.</summary>
    public CliClient(Uri baseUrl, string? token, TextWriter output, TextWriter error)
    {
        _client = ViscriptClient.Create(baseUrl, token);
        _out = output;
        _err = error;
    }

    /// <summary>Usage text of <c>viscript cli</c>.</summary>
    public const string Usage = """
        Usage: viscript cli [--control ADDR] [--token-file FILE] [<command> [args...]]
               viscript cli [--control ADDR] [--token-file FILE] --gui-url

        Sends one command to a running viscript daemon and prints its output (exit code 0 on success,
        else the error code: see docs/viscript.md). Without a command, opens an interactive shell.

        Options (before the command):
          --control ADDR     Control API address (default 127.0.0.1:7777, or env VISCRIPT_CONTROL)
          --token-file FILE  File holding the control token (default env VISCRIPT_TOKEN_FILE, else the token
                             file the daemon wrote for ADDR under $XDG_RUNTIME_DIR/viscript or ~/.viscript)
          --token TOKEN      The token itself (default env VISCRIPT_TOKEN); visible to other users in ps
          --gui-url          Print the GUI's sign-in link (the token rides in the #fragment, never sent
                             in a request line) and exit
          -h, --help         Show this help

        Commands: help, apps, start|s [-a] <app> [args], list_apps|la|ps [-a] [-f], forget <id>|-a, ping <id>,
                  res_usage|ru <id>, shutdown|sd <id>, kill <id>, restart <id>, logs <id> [-n N] [-f], attach <id>,
                  hosts, clear, quit.
                  On a cluster's primary, <id> and <app> may be HOST:ID and HOST:APP (an agent's process or app).
        Exit codes: 0 ok, 1 internal, 2 usage, 3 unknown command, 10 unknown app, 11 bad id, 12 no such process,
                    13 not running, 14 not a signal client, 15 already running, 20 signal timeout, 21 signal failed,
                    30 start failed, 40 unauthorized, 50 daemon unreachable, 51 bad response, 70 unknown host,
                    71 host unreachable.
        """;

    /// <summary>Entry point of <c>viscript cli ...</c>.</summary>
    public static async Task<int> RunAsync(string[] args, TextReader input, TextWriter output, TextWriter error, CancellationToken cancellationToken)
    {
        var control = Environment.GetEnvironmentVariable("VISCRIPT_CONTROL");
        var source = string.IsNullOrWhiteSpace(control) ? "the default address" : "VISCRIPT_CONTROL";
        string? token = null;
        string? tokenFile = null;
        var guiUrl = false;
        var i = 0;
        for (; i < args.Length; i++)
        {
            var a = args[i];
            if (a is "-h" or "--help")
            {
                output.WriteLine(Usage);
                return 0;
            }
            if (a == "--gui-url")
            {
                guiUrl = true;
                continue;
            }
            if (a is "--control" or "--token" or "--token-file")
            {
                if (i + 1 >= args.Length)
                {
                    error.WriteLine($"viscript cli: {a} needs a value.");
                    return (int)ErrorCode.Usage;
                }
                var value = args[++i];
                if (a == "--control")
                {
                    (control, source) = (value, "--control");
                }
                else if (a == "--token")
                {
                    token = value;
                }
                else
                {
                    tokenFile = value;
                }
                continue;
            }
            if (a.StartsWith("--control=", StringComparison.Ordinal))
            {
                control = a["--control=".Length..];
                source = "--control";
                continue;
            }
            if (a.StartsWith("--token=", StringComparison.Ordinal))
            {
                token = a["--token=".Length..];
                continue;
            }
            if (a.StartsWith("--token-file=", StringComparison.Ordinal))
            {
                tokenFile = a["--token-file=".Length..];
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
        string? resolved;
        try
        {
            resolved = ControlToken.Discover(ep, token, tokenFile);
        }
        catch (ViscriptException ex)
        {
            error.WriteLine("viscript cli: " + ex.Message);
            return (int)ex.Code;
        }
        var baseUrl = new Uri($"http://{ep}/");
        if (guiUrl)
        {
            output.WriteLine(resolved is null ? baseUrl.ToString() : $"{baseUrl}#token={Uri.EscapeDataString(resolved)}");
            return 0;
        }
        using var client = new CliClient(baseUrl, resolved, output, error) { AddressSource = source };
        var command = args[i..];
        return command.Length == 0
            ? await client.ShellAsync(input, cancellationToken)
            : await client.RunCommandAsync(new CommandRequest(null, command), input, interactive: false, cancellationToken);
    }

    /// <summary>Interactive shell: each line is one command; <c>quit</c> leaves the shell (the daemon keeps running).</summary>
    public async Task<int> ShellAsync(TextReader input, CancellationToken cancellationToken)
    {
        _out.WriteLine($"viscript cli: connected to {_client.BaseAddress} (type \"help\", \"quit\" leaves the shell)");
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
        CommandResponse result;
        try
        {
            result = await _client.CommandAsync(request, cancellationToken);
        }
        catch (ViscriptApiException ex)
        {
            return Report(ex);
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
            case "attach" when TargetOf(result) is { } target:
                return await AttachAsync(target, input, cancellationToken);
            case "follow" when TargetOf(result) is { } target:
                return await FollowAsync(target, tail: 0, cancellationToken);
        }
        _out.Flush();
        return 0;
    }

    private static string? TargetOf(CommandResponse r) => r.Target ?? r.TargetId?.ToString(System.Globalization.CultureInfo.InvariantCulture);

    /// <summary>Prints a failed call as the CLI does: <c>error CODE (Name): line</c> from the daemon, else the client's own reason.</summary>
    private int Report(ViscriptApiException ex)
    {
        if (ex.Problem is { Code: > 0 } problem)
        {
            foreach (var line in ex.Lines)
            {
                _err.WriteLine($"error {problem.Code} ({problem.Title}): {line}");
            }
        }
        else if (ex.Code == ErrorCode.DaemonUnreachable)
        {
            _err.WriteLine($"viscript cli: no viscript daemon answers at {_client.BaseAddress} ({AddressSource}): {ex.InnerException?.Message ?? ex.Message}");
            foreach (var line in Hints(_client.BaseAddress, AddressSource))
            {
                _err.WriteLine("  " + line);
            }
        }
        else
        {
            _err.WriteLine("viscript cli: " + ex.Message);
        }
        return (int)ex.Code;
    }

    /// <summary>
    /// What to try when nothing answers: the daemons of this user that are running now (each leaves its token file
    /// <c>control-HOST-PORT.token</c> while it runs), else how to start one or point at another.
    /// </summary>
    internal static List<string> Hints(Uri tried, string source, string? tokenDirectory = null)
    {
        var lines = new List<string>();
        var found = new List<string>();
        try
        {
            var dir = tokenDirectory ?? ControlToken.DefaultDirectory();
            if (System.IO.Directory.Exists(dir))
            {
                foreach (var file in System.IO.Directory.EnumerateFiles(dir, "control-*.token").Order(StringComparer.Ordinal))
                {
                    var name = Path.GetFileNameWithoutExtension(file)["control-".Length..];
                    var dash = name.LastIndexOf('-');
                    if (dash > 0 && int.TryParse(name[(dash + 1)..], System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out var port))
                    {
                        var host = name[..dash];
                        var address = host.Contains('_', StringComparison.Ordinal) ? $"[{host.Replace('_', ':')}]:{port}" : $"{host}:{port}";
                        if (!string.Equals($"{tried.Host}:{tried.Port}", address, StringComparison.OrdinalIgnoreCase))
                        {
                            found.Add(address);
                        }
                    }
                }
            }
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException or ViscriptException)
        {
            // Hints only: an unreadable folder just gives none.
        }
        if (found.Count > 0)
        {
            lines.Add($"daemons of this user that are running (token files): {string.Join(", ", found)}");
            lines.Add($"e.g. viscript cli --control {found[0]} la");
        }
        else if (source == "the default address")
        {
            lines.Add("start a daemon (viscript --headless) or pass --control ADDR (or set VISCRIPT_CONTROL): a daemon prints its");
            lines.Add("control address in its first line, 'viscript: signal ... control http://ADDR pid ...'");
        }
        return lines;
    }

    /// <summary>Streams new output of <paramref name="id"/> (<c>ID</c>, or <c>HOST:ID</c> in a cluster) until the process stops running; returns 0.</summary>
    public async Task<int> FollowAsync(string id, int tail, CancellationToken cancellationToken)
    {
        try
        {
            using var stream = await _client.OpenLogFollowAsync(id, tail, cancellationToken);
            await foreach (var item in stream.ReadAllAsync(cancellationToken))
            {
                if (item.Line is { } l)
                {
                    var kind = Enum.TryParse<LogStream>(l.Stream, ignoreCase: true, out var parsed) ? parsed : LogStream.Stdout;
                    lock (_live)
                    {
                        // Partial lines (prompts) show at once, without their newline.
                        _out.Write(item.Kind == "partial" ? _live.Partial(kind, l.Text) : _live.Complete(kind, l.Text));
                        _out.Flush();
                    }
                }
                else if (item.Kind == "end")
                {
                    lock (_live)
                    {
                        _out.Write(_live.BreakRow());
                    }
                    _out.WriteLine(item.End is { Id: 0, State: { } why } ? $"[ {id} ] {why}" : $"[ {id} ] is no longer running.");
                    return 0;
                }
            }
            return 0;
        }
        catch (OperationCanceledException)
        {
            return 0;
        }
        catch (ViscriptApiException ex) when (ex.Problem is null && ex.Code == ErrorCode.DaemonUnreachable)
        {
            _err.WriteLine($"viscript cli: lost the daemon: {ex.Message}");
            return (int)ex.Code;
        }
        catch (ViscriptApiException ex)
        {
            return Report(ex);
        }
    }

    /// <summary>Attach over the control API: output streams in, typed lines go to the app's stdin; <c>^Z</c>/<c>detach</c> or EOF detaches.</summary>
    public async Task<int> AttachAsync(string id, TextReader input, CancellationToken cancellationToken)
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
            try
            {
                await _client.WriteInputAsync(id, line, cts.Token);
            }
            catch (ViscriptApiException ex)
            {
                await cts.CancelAsync();
                await follow;
                return Report(ex);
            }
            readTask = input.ReadLineAsync(cts.Token).AsTask();
        }
    }

    /// <inheritdoc/>
    public void Dispose() => _client.Dispose();
}
