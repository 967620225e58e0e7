using System.Diagnostics;
using System.Text;

namespace Skywire.IntegrationTests.EndToEnd;

/// <summary>A running `skywire` executable (optionally inside a network namespace); stderr lines are collected.</summary>
internal sealed class SkywireProcess : IAsyncDisposable
{
    private readonly Process _process;
    private readonly List<string> _stderr = [];
    private readonly MemoryStream _stdout = new();
    private readonly Task _stdoutPump;
    private readonly object _sync = new();
    private readonly SemaphoreSlim _lines = new(0);
    private int _disposed;

    private SkywireProcess(Process process, Stream? stdin)
    {
        _process = process;
        process.ErrorDataReceived += (_, e) =>
        {
            if (e.Data is null)
            {
                return;
            }

            lock (_sync)
            {
                _stderr.Add(e.Data);
            }

            _lines.Release();
        };
        process.BeginErrorReadLine();
        _stdoutPump = PumpStdoutAsync(process.StandardOutput.BaseStream);
        if (stdin is not null)
        {
            _ = Task.Run(async () =>
            {
                try
                {
                    await stdin.CopyToAsync(process.StandardInput.BaseStream);
                }
                finally
                {
                    process.StandardInput.Close();
                }
            });
        }
    }

    /// <summary>The built skywire.dll next to the test assembly's repository (the test project references the exe).</summary>
    public static string Executable
    {
        get
        {
            var dir = new DirectoryInfo(AppContext.BaseDirectory);
            while (dir is not null && !File.Exists(Path.Combine(dir.FullName, "Skywire.slnx")))
            {
                dir = dir.Parent;
            }

            if (dir is null)
            {
                throw new InvalidOperationException("repository root not found above " + AppContext.BaseDirectory);
            }

            var configuration = AppContext.BaseDirectory.Contains($"{Path.DirectorySeparatorChar}Release{Path.DirectorySeparatorChar}", StringComparison.Ordinal) ? "Release" : "Debug";
            var dll = Path.Combine(dir.FullName, "src", "Skywire", "bin", configuration, "net10.0", "skywire.dll");
            return File.Exists(dll) ? dll : throw new FileNotFoundException("build the skywire executable first", dll);
        }
    }

    public static SkywireProcess Start(string? netns, IEnumerable<string> args, Stream? stdin = null, IReadOnlyDictionary<string, string>? environment = null)
    {
        var info = new ProcessStartInfo
        {
            RedirectStandardError = true,
            RedirectStandardOutput = true,
            RedirectStandardInput = stdin is not null,
            UseShellExecute = false,
        };
        if (netns is not null)
        {
            info.FileName = "ip";
            foreach (var a in new[] { "netns", "exec", netns, "dotnet" })
            {
                info.ArgumentList.Add(a);
            }
        }
        else
        {
            info.FileName = "dotnet";
        }

        info.ArgumentList.Add(Executable);
        foreach (var a in args)
        {
            info.ArgumentList.Add(a);
        }

        info.Environment["DOTNET_NOLOGO"] = "1";
        info.Environment["SKYWIRE_LOG"] = "Warning";
        foreach (var (name, value) in environment ?? new Dictionary<string, string>())
        {
            info.Environment[name] = value;
        }

        var process = Process.Start(info) ?? throw new InvalidOperationException("could not start dotnet");
        return new SkywireProcess(process, stdin);
    }

    public int Id => _process.Id;

    public bool HasExited => _process.HasExited;

    public string Stderr
    {
        get
        {
            lock (_sync)
            {
                return string.Join('\n', _stderr);
            }
        }
    }

    public byte[] Stdout
    {
        get
        {
            lock (_sync)
            {
                return _stdout.ToArray();
            }
        }
    }

    /// <summary>Bytes received on stdout so far (without copying them).</summary>
    public long StdoutLength
    {
        get
        {
            lock (_sync)
            {
                return _stdout.Length;
            }
        }
    }

    private async Task PumpStdoutAsync(Stream output)
    {
        var buffer = new byte[16 * 1024];
        int n;
        while ((n = await output.ReadAsync(buffer)) > 0)
        {
            lock (_sync)
            {
                _stdout.Write(buffer, 0, n);
            }

            _lines.Release();
        }
    }

    /// <summary>Waits for a complete stdout line containing <paramref name="marker"/> and returns it.</summary>
    public async Task<string> WaitForStdoutLineAsync(string marker, TimeSpan limit)
    {
        var deadline = DateTime.UtcNow + limit;
        while (true)
        {
            var exited = _process.HasExited;
            var text = StdoutText;
            var line = text.Split('\n').SkipLast(1).FirstOrDefault(l => l.Contains(marker, StringComparison.Ordinal));
            if (line is not null)
            {
                return line;
            }

            if (exited)
            {
                await _stdoutPump;
                line = StdoutText.Split('\n').FirstOrDefault(l => l.Contains(marker, StringComparison.Ordinal));
                return line ?? throw new InvalidOperationException($"process exited ({_process.ExitCode}) before printing '{marker}' on stdout:\n{text}\n{Stderr}");
            }

            var left = deadline - DateTime.UtcNow;
            if (left <= TimeSpan.Zero)
            {
                throw new TimeoutException($"no '{marker}' on stdout within {limit}:\n{text}\n{Stderr}");
            }

            // Woken by every stdout chunk and stderr line; the short bound only notices the process exiting.
            await _lines.WaitAsync(left < TimeSpan.FromMilliseconds(200) ? left : TimeSpan.FromMilliseconds(200));
        }
    }

    public string StdoutText => Encoding.UTF8.GetString(Stdout);

    /// <summary>Waits for a stderr line containing <paramref name="marker"/> and returns it.</summary>
    public async Task<string> WaitForLineAsync(string marker, TimeSpan limit)
    {
        var deadline = DateTime.UtcNow + limit;
        var seen = 0;
        while (true)
        {
            lock (_sync)
            {
                for (; seen < _stderr.Count; seen++)
                {
                    if (_stderr[seen].Contains(marker, StringComparison.Ordinal))
                    {
                        return _stderr[seen];
                    }
                }
            }

            if (_process.HasExited)
            {
                await _process.WaitForExitAsync(); // returns once the redirected output reached its end: every last line arrived
                lock (_sync)
                {
                    var line = _stderr.Skip(seen).FirstOrDefault(l => l.Contains(marker, StringComparison.Ordinal));
                    if (line is not null)
                    {
                        return line;
                    }
                }

                throw new InvalidOperationException($"process exited ({_process.ExitCode}) before printing '{marker}':\n{Stderr}\nstdout: {StdoutText}");
            }

            var left = deadline - DateTime.UtcNow;
            if (left <= TimeSpan.Zero)
            {
                throw new TimeoutException($"no '{marker}' within {limit}:\n{Stderr}");
            }

            await _lines.WaitAsync(left < TimeSpan.FromMilliseconds(200) ? left : TimeSpan.FromMilliseconds(200));
        }
    }

    public async Task<int> WaitForExitAsync(TimeSpan limit)
    {
        using var cts = new CancellationTokenSource(limit);
        await _process.WaitForExitAsync(cts.Token);
        await _stdoutPump;
        if (_process.ExitCode != 0)
        {
            // Most callers assert the code alone: leave the reason in the failed test's output.
            TestContext.Current.TestOutputHelper?.WriteLine($"{_process.StartInfo.FileName} {string.Join(' ', _process.StartInfo.ArgumentList)} exited {_process.ExitCode}:\n{Stderr}");
        }

        return _process.ExitCode;
    }

    /// <summary>Sends the process SIGTERM (as systemd, or Ctrl+C in a terminal, would end it) and returns at once.</summary>
    public async Task TerminateAsync()
    {
        using var kill = Process.Start(new ProcessStartInfo("kill") { ArgumentList = { "-TERM", Id.ToString(System.Globalization.CultureInfo.InvariantCulture) }, UseShellExecute = false })
            ?? throw new InvalidOperationException("could not start kill");
        await kill.WaitForExitAsync();
        if (kill.ExitCode != 0)
        {
            throw new InvalidOperationException($"kill -TERM {Id} exited {kill.ExitCode}");
        }
    }

    /// <summary>Kills the process (and its children) if it still runs, and waits for it; idempotent.</summary>
    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            return;
        }

        if (!_process.HasExited)
        {
            _process.Kill(entireProcessTree: true);
            await _process.WaitForExitAsync();
        }

        _process.Dispose();
    }
}
