using System.Diagnostics;
using System.Text;
using Viscript.GuiTests.Support;

namespace Viscript.GuiTests.ChatWeb;

/// <summary>
/// A built <c>skywire</c> executable run by a test (<c>dotnet skywire.dll ARGS</c>): its stdout and stderr lines are
/// collected and can be awaited; it is stopped (killed by its own pid) when disposed or by <see cref="KillAsync"/>.
/// </summary>
public sealed class SkywireProcess : IAsyncDisposable
{
    private readonly Process _process;
    private readonly StringBuilder _output = new();
    private readonly List<(Func<string, bool> Match, TaskCompletionSource<string> Found)> _waiters = [];

    private SkywireProcess(Process process) => _process = process;

    public static string SkywireDll => Path.Combine(Paths.RepoRoot, "src", "Skywire", "bin", Paths.Configuration, "net10.0", "skywire.dll");

    public string Output
    {
        get
        {
            lock (_output)
            {
                return _output.ToString();
            }
        }
    }

    public static SkywireProcess Start(string workingDirectory, params string[] args)
    {
        var psi = new ProcessStartInfo("dotnet")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = true,
            UseShellExecute = false,
            WorkingDirectory = workingDirectory,
        };
        psi.ArgumentList.Add(SkywireDll);
        foreach (var a in args)
        {
            psi.ArgumentList.Add(a);
        }

        psi.Environment.Remove("SIGNAL_CLIENT");
        var process = Process.Start(psi) ?? throw new InvalidOperationException("dotnet did not start");
        var p = new SkywireProcess(process);
        process.OutputDataReceived += (_, e) => p.OnLine(e.Data);
        process.ErrorDataReceived += (_, e) => p.OnLine(e.Data);
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        _ = process.WaitForExitAsync().ContinueWith(_ => p.OnExit(), TaskScheduler.Default);
        return p;
    }

    /// <summary>The first line (past or future) that <paramref name="match"/> accepts.</summary>
    public async Task<string> WaitForLineAsync(Func<string, bool> match, int seconds = 90)
    {
        var found = new TaskCompletionSource<string>(TaskCreationOptions.RunContinuationsAsynchronously);
        lock (_output)
        {
            var hit = _output.ToString().Split('\n').Select(l => l.TrimEnd('\r')).FirstOrDefault(match);
            if (hit is not null)
            {
                return hit;
            }

            if (_process.HasExited)
            {
                throw new InvalidOperationException("skywire exited early:\n" + _output);
            }

            _waiters.Add((match, found));
        }

        try
        {
            return await found.Task.WaitAsync(TimeSpan.FromSeconds(seconds));
        }
        catch (TimeoutException)
        {
            throw new TimeoutException($"No matching line within {seconds} s:\n{Output}");
        }
    }

    /// <summary>Kills the process (SIGKILL, by its pid) and waits for it to end.</summary>
    public async Task KillAsync()
    {
        if (!_process.HasExited)
        {
            _process.Kill(entireProcessTree: true);
        }

        await _process.WaitForExitAsync();
    }

    private void OnLine(string? line)
    {
        if (line is null)
        {
            return;
        }

        lock (_output)
        {
            _output.AppendLine(line);
            foreach (var w in _waiters.Where(w => w.Match(line)).ToList())
            {
                _waiters.Remove(w);
                w.Found.TrySetResult(line);
            }
        }
    }

    private void OnExit()
    {
        lock (_output)
        {
            foreach (var w in _waiters)
            {
                w.Found.TrySetException(new InvalidOperationException("skywire exited:\n" + _output));
            }

            _waiters.Clear();
        }
    }

    public async ValueTask DisposeAsync()
    {
        await KillAsync();
        _process.Dispose();
    }
}
