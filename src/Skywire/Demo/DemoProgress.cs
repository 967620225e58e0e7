using System.Diagnostics;
using System.Globalization;

namespace Skywire.Demo;

/// <summary>A step of the bring-up failed; the message says why (the runner adds which step and where the logs are).</summary>
internal sealed class DemoStepException : Exception
{
    public DemoStepException(string message) : base(message) { }

    public DemoStepException(string message, Exception inner) : base(message, inner) { }

    public DemoStepException() : this("step failed") { }
}

/// <summary>
/// One line per step on stdout. On a terminal the running step shows a spinner and its elapsed time, redrawn in
/// place; otherwise (a pipe, a log, a test) each step prints one plain line when it ends.
/// </summary>
internal sealed class DemoProgress
{
    private static readonly string[] Spinner = ["|", "/", "-", "\\"];

    private readonly TextWriter _out;
    private readonly bool _interactive;
    private readonly Stopwatch _total = Stopwatch.StartNew();
    private readonly int _steps;
    private int _step;

    public DemoProgress(TextWriter output, bool interactive, int steps)
    {
        _out = output;
        _interactive = interactive;
        _steps = steps;
    }

    /// <summary>True when the output is a terminal (a spinner, and the GUI's sign-in link in the summary).</summary>
    public bool Interactive => _interactive;

    /// <summary>Name of the step running or last run.</summary>
    public string Current { get; private set; } = "";

    /// <summary>Seconds since the demo started.</summary>
    public double Elapsed => _total.Elapsed.TotalSeconds;

    /// <summary>Runs one step; its result text (if any) is shown after the step name.</summary>
    public async Task<T> StepAsync<T>(string name, Func<CancellationToken, Task<(T Value, string Detail)>> run, CancellationToken cancellationToken)
    {
        Current = name;
        var number = ++_step;
        var label = $"[{number.ToString(CultureInfo.InvariantCulture).PadLeft(_steps.ToString(CultureInfo.InvariantCulture).Length)}/{_steps}] {name}";
        var watch = Stopwatch.StartNew();
        using var spin = new CancellationTokenSource();
        var spinner = _interactive ? SpinAsync(label, watch, spin.Token) : Task.CompletedTask;
        try
        {
            var (value, detail) = await run(cancellationToken);
            await StopSpinnerAsync(spin, spinner);
            Line($"{label} ... ok ({watch.Elapsed.TotalSeconds:0.0} s){(detail.Length > 0 ? ": " + detail : "")}");
            return value;
        }
        catch
        {
            await StopSpinnerAsync(spin, spinner);
            Line($"{label} ... FAILED ({watch.Elapsed.TotalSeconds:0.0} s)");
            throw;
        }
    }

    /// <summary>A step without a value.</summary>
    public Task StepAsync(string name, Func<CancellationToken, Task<string>> run, CancellationToken cancellationToken) =>
        StepAsync<bool>(name, async ct => (true, await run(ct)), cancellationToken);

    private void Line(string text)
    {
        lock (_out)
        {
            if (_interactive)
            {
                _out.Write("\r\u001b[2K");
            }

            _out.WriteLine(text);
            _out.Flush();
        }
    }

    private async Task SpinAsync(string label, Stopwatch watch, CancellationToken cancellationToken)
    {
        var frame = 0;
        using var timer = new PeriodicTimer(TimeSpan.FromMilliseconds(120));
        try
        {
            do
            {
                lock (_out)
                {
                    _out.Write($"\r\u001b[2K{Spinner[frame++ % Spinner.Length]} {label} ... {watch.Elapsed.TotalSeconds:0.0} s");
                    _out.Flush();
                }
            }
            while (await timer.WaitForNextTickAsync(cancellationToken));
        }
        catch (OperationCanceledException)
        {
            // Step ended.
        }
    }

    private static async Task StopSpinnerAsync(CancellationTokenSource spin, Task spinner)
    {
        await spin.CancelAsync();
        await spinner;
    }
}
