using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Reflection;
using System.Threading.Channels;

namespace Viscript.Signal.Tests;

/// <summary>
/// tests/apps/Viscript.SignalHost as a child process (a signal server alone, optionally under <c>prlimit --nofile</c>),
/// with its stdout lines awaitable. Disposing closes its stdin and asserts that it then exits with code 0: a host that
/// died on the way (an abort, a crash) fails the test that started it.
/// </summary>
internal sealed class SignalHostProcess : IAsyncDisposable
{
    private readonly Process _process;
    private readonly Channel<string> _lines = Channel.CreateUnbounded<string>();
    private readonly List<string> _seen = [];

    private SignalHostProcess(Process process)
    {
        _process = process;
        process.OutputDataReceived += (_, e) =>
        {
            if (e.Data is null)
            {
                _lines.Writer.TryComplete();
                return;
            }

            lock (_seen)
            {
                _seen.Add(e.Data);
            }

            _lines.Writer.TryWrite(e.Data);
        };
        process.BeginOutputReadLine();
    }

    public int Pid => _process.Id;

    public IPEndPoint EndPoint { get; private set; } = null!;

    public string Stderr { get; private set; } = "";

    /// <summary>Every line printed so far.</summary>
    public IReadOnlyList<string> Lines
    {
        get
        {
            lock (_seen)
            {
                return [.. _seen];
            }
        }
    }

    /// <summary>prlimit(1) from util-linux, or null (the descriptor tests are then skipped, visibly).</summary>
    public static string? PrlimitPath { get; } = new[] { "/usr/bin/prlimit", "/bin/prlimit" }.FirstOrDefault(File.Exists);

    /// <summary>Starts the host, under <c>prlimit --nofile=<paramref name="nofile"/></c> when given, and waits for its port.</summary>
    public static async Task<SignalHostProcess> StartAsync(int? nofile, params string[] options)
    {
        var info = new ProcessStartInfo(nofile is null ? "dotnet" : PrlimitPath!)
        {
            RedirectStandardInput = true,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        if (nofile is { } n)
        {
            info.ArgumentList.Add($"--nofile={n}:{n}");
            info.ArgumentList.Add("dotnet");
        }

        info.ArgumentList.Add(HostPath());
        foreach (var option in options)
        {
            info.ArgumentList.Add(option);
        }

        var host = new SignalHostProcess(Process.Start(info)!);
        var listening = await host.WaitForLineAsync(l => l.StartsWith("listening ", StringComparison.Ordinal));
        host.EndPoint = new IPEndPoint(IPAddress.Loopback, int.Parse(listening["listening ".Length..], CultureInfo.InvariantCulture));
        return host;
    }

    /// <summary>Waits for a line matching <paramref name="match"/> (seen before or after the call).</summary>
    public async Task<string> WaitForLineAsync(Func<string, bool> match)
    {
        lock (_seen)
        {
            if (_seen.FirstOrDefault(match) is { } earlier)
            {
                return earlier;
            }
        }

        using var timeout = new CancellationTokenSource(TestServer.Deadline);
        try
        {
            while (true)
            {
                var line = await _lines.Reader.ReadAsync(timeout.Token);
                if (match(line))
                {
                    return line;
                }
            }
        }
        catch (ChannelClosedException)
        {
            await _process.WaitForExitAsync(CancellationToken.None);
            throw new InvalidOperationException(
                $"the signal host exited with code {_process.ExitCode} before the expected line; stderr: {await _process.StandardError.ReadToEndAsync()}");
        }
    }

    /// <summary>Writes a command line to the host's stdin.</summary>
    public async Task SendAsync(string command)
    {
        await _process.StandardInput.WriteLineAsync(command);
        await _process.StandardInput.FlushAsync();
    }

    /// <summary>Open descriptors of the host, as it counts them itself.</summary>
    public async Task<int> OpenDescriptorsAsync()
    {
        var marker = Guid.NewGuid().ToString("N");
        await SendAsync("stats " + marker);
        var line = await WaitForLineAsync(l => l.StartsWith("stats ", StringComparison.Ordinal) && l.EndsWith(marker, StringComparison.Ordinal));
        var fds = line.Split(' ').Single(f => f.StartsWith("fds=", StringComparison.Ordinal));
        return int.Parse(fds[4..], CultureInfo.InvariantCulture);
    }

    public async ValueTask DisposeAsync()
    {
        int? exitCode = null;
        try
        {
            if (!_process.HasExited)
            {
                _process.StandardInput.Close();
                using var timeout = new CancellationTokenSource(TestServer.Deadline);
                try
                {
                    await _process.WaitForExitAsync(timeout.Token);
                }
                catch (OperationCanceledException)
                {
                    _process.Kill();
                    await _process.WaitForExitAsync(CancellationToken.None);
                    throw new TimeoutException($"the signal host (pid {_process.Id}) did not exit after its stdin closed");
                }
            }

            exitCode = _process.ExitCode;
            Stderr = await _process.StandardError.ReadToEndAsync();
        }
        finally
        {
            _process.Dispose();
        }

        Assert.True(exitCode == 0, $"the signal host ended with code {exitCode}; stderr: {Stderr}");
    }

    private static string HostPath()
    {
        var configuration = typeof(SignalHostProcess).Assembly.GetCustomAttribute<AssemblyConfigurationAttribute>()?.Configuration ?? "Release";
        var dir = new DirectoryInfo(AppContext.BaseDirectory);
        while (dir is not null && !File.Exists(Path.Combine(dir.FullName, "Skywire.slnx")))
        {
            dir = dir.Parent;
        }

        Assert.NotNull(dir);
        var path = Path.Combine(dir.FullName, "tests", "apps", "Viscript.SignalHost", "bin", configuration, "net10.0", "viscript-signalhost.dll");
        Assert.True(File.Exists(path), $"build the signal host first: {path}");
        return path;
    }
}
