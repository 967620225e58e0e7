using System.Diagnostics;
using System.Security.Cryptography;

namespace Skywire.IntegrationTests.Socks;

/// <summary>Runs the system curl (Debian package; .ci/run installs it) and collects its output.</summary>
internal static class Curl
{
    public sealed record Result(int ExitCode, byte[] Body, long Length, byte[] Sha256, string Stderr);

    /// <summary>Runs curl with <paramref name="args"/>; the body is hashed while it streams, and kept when small.</summary>
    public static async Task<Result> RunAsync(IEnumerable<string> args, CancellationToken cancellationToken, int keepBytes = 1 << 20)
    {
        var info = new ProcessStartInfo("curl")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (var arg in args)
        {
            info.ArgumentList.Add(arg);
        }

        using var process = Process.Start(info) ?? throw new InvalidOperationException("cannot start curl");
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(TimeSpan.FromSeconds(120));
        try
        {
            var stderr = process.StandardError.ReadToEndAsync(timeout.Token);
            using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
            var kept = new MemoryStream();
            var buffer = new byte[64 * 1024];
            long length = 0;
            var stdout = process.StandardOutput.BaseStream;
            int read;
            while ((read = await stdout.ReadAsync(buffer, timeout.Token)) > 0)
            {
                hash.AppendData(buffer, 0, read);
                if (kept.Length < keepBytes)
                {
                    kept.Write(buffer, 0, (int)Math.Min(read, keepBytes - kept.Length));
                }

                length += read;
            }

            await process.WaitForExitAsync(timeout.Token);
            return new Result(process.ExitCode, kept.ToArray(), length, hash.GetHashAndReset(), await stderr);
        }
        finally
        {
            if (!process.HasExited)
            {
                process.Kill(entireProcessTree: true);
            }
        }
    }
}
