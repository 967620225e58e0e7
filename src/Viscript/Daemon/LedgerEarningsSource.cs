using System.Diagnostics;
using System.Text.Json;
using Viscript.Core.Hosting;

namespace Viscript.Daemon;

/// <summary>
/// The GUI's earnings chart (docs/gui.md "Earnings", issue 15): <c>GET /api/ledger</c> answers what
/// <c>skywire ledger epochs DIR --json</c> prints for the ledger directory given with <c>--ledger</c> (earned and spent
/// per node and closed epoch, read-only: the command reads the journal while the manager writes it). At most one run
/// at a time and one per <see cref="MaxAge"/>; the last answer is served meanwhile.
/// </summary>
internal sealed class LedgerEarningsSource(string? directory, TimeProvider time)
{
    /// <summary>How long an answer is reused (epochs close every few seconds at the fastest).</summary>
    public static readonly TimeSpan MaxAge = TimeSpan.FromSeconds(5);

    private static readonly TimeSpan s_runLimit = TimeSpan.FromSeconds(30);
    private readonly Lock _sync = new();
    private (DateTimeOffset At, string Json)? _last;
    private Task<string>? _running;

    /// <summary>The JSON document for the GUI: <c>{"configured":false}</c>, <c>{"configured":true,"error":...}</c> or <c>{"configured":true,"ledger":{...}}</c>.</summary>
    public Task<string> GetAsync(CancellationToken cancellationToken)
    {
        if (string.IsNullOrWhiteSpace(directory))
        {
            return Task.FromResult("""{"configured":false}""");
        }

        lock (_sync)
        {
            if (_last is { } last && time.GetUtcNow() - last.At < MaxAge)
            {
                return Task.FromResult(last.Json);
            }

            // One run at a time, shared by every caller; it is bounded by its own time limit, not by a caller leaving.
            if (_running is null || _running.IsCompleted)
            {
                _running = RunAndKeepAsync(directory);
            }

            return _running.WaitAsync(cancellationToken);
        }
    }

    private async Task<string> RunAndKeepAsync(string directory)
    {
        var json = await RunAsync(directory, CancellationToken.None);
        lock (_sync)
        {
            _last = (time.GetUtcNow(), json);
        }

        return json;
    }

    private static async Task<string> RunAsync(string directory, CancellationToken cancellationToken)
    {
        var skywire = SiblingExecutable.Locate("skywire", "Skywire", null, "VISCRIPT_SKYWIRE", out var tried);
        if (skywire is null)
        {
            return Error("skywire not found for the ledger chart (set VISCRIPT_SKYWIRE); tried " + string.Join(", ", tried.Take(4)));
        }

        var command = SiblingExecutable.CommandFor(skywire);
        var start = new ProcessStartInfo(command[0]) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var arg in command.Skip(1).Concat(["ledger", "epochs", directory, "--json"]))
        {
            start.ArgumentList.Add(arg);
        }

        using var process = Process.Start(start) ?? throw new InvalidOperationException("the ledger command did not start");
        using var limit = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        limit.CancelAfter(s_runLimit);
        try
        {
            var stdout = process.StandardOutput.ReadToEndAsync(limit.Token);
            var stderr = process.StandardError.ReadToEndAsync(limit.Token);
            await process.WaitForExitAsync(limit.Token);
            if (process.ExitCode != 0)
            {
                return Error($"skywire ledger epochs {directory}: {(await stderr).Trim()}");
            }

            using var document = JsonDocument.Parse(await stdout);
            return Write(w =>
            {
                w.WriteBoolean("configured", true);
                w.WritePropertyName("ledger");
                document.RootElement.WriteTo(w);
            });
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            process.Kill(entireProcessTree: true);
            return Error($"skywire ledger epochs {directory} did not answer within {s_runLimit.TotalSeconds} s");
        }
        catch (JsonException ex)
        {
            return Error($"skywire ledger epochs {directory} printed no JSON: {ex.Message}");
        }
    }

    private static string Error(string message) => Write(w =>
    {
        w.WriteBoolean("configured", true);
        w.WriteString("error", message);
    });

    private static string Write(Action<Utf8JsonWriter> body)
    {
        using var buffer = new MemoryStream();
        using (var w = new Utf8JsonWriter(buffer))
        {
            w.WriteStartObject();
            body(w);
            w.WriteEndObject();
        }

        return System.Text.Encoding.UTF8.GetString(buffer.ToArray());
    }
}
