using System.Net;
using Microsoft.Extensions.Logging;
using Skywire.Core.Control;
using Skywire.Core.Crypto;
using Skywire.Protocol.Control;

namespace Skywire.Commands;

/// <summary>Helpers shared by the commands: logging to stderr, key loading, exit codes.</summary>
internal static class Common
{
    /// <summary>Exit codes of every command (stable; documented in docs/operations.md).</summary>
    public const int Ok = 0;
    public const int Failure = 1;
    public const int Usage = 2;
    public const int Forbidden = 3;
    public const int NotFound = 4;
    public const int NoRoute = 5;
    public const int Unavailable = 6;
    public const int LimitExceeded = 7;

    /// <summary><c>chat send</c>: the messenger dropped the message.</summary>
    public const int Dropped = 8;

    /// <summary>
    /// Logs go to stderr so stdout stays clean for data (nc) and tables (cli). Under systemd (stderr connected to
    /// the journal: JOURNAL_STREAM), each line starts with its syslog priority (<c>&lt;6&gt;</c>...) and has no
    /// timestamp of its own, so <c>journalctl -p warning</c> filters by level (issue 18.9).
    /// </summary>
    public static ILoggerFactory Logging(string? level = null) => LoggerFactory.Create(b =>
    {
        if (Environment.GetEnvironmentVariable("JOURNAL_STREAM") is { Length: > 0 })
        {
            b.AddSystemdConsole();
        }
        else
        {
            b.AddSimpleConsole(o =>
            {
                o.SingleLine = true;
                o.TimestampFormat = "HH:mm:ss.fff ";
            });
        }

        b.AddConsole(o => o.LogToStandardErrorThreshold = LogLevel.Trace);
        b.SetMinimumLevel(Enum.TryParse<LogLevel>(level ?? Environment.GetEnvironmentVariable("SKYWIRE_LOG") ?? "Information", true, out var l) ? l : LogLevel.Information);
    });

    /// <summary>Loads an existing key file (never creates one); reports errors on stderr.</summary>
    public static KeyPair? LoadKey(string path)
    {
        try
        {
            return KeyFile.Load(path);
        }
        catch (KeyFileException ex)
        {
            Console.Error.WriteLine($"error: {ex.Message}");
            return null;
        }
    }

    /// <summary>
    /// Loads the key file, or makes a new key in memory when there is none: nothing is written until
    /// <see cref="PendingKey.Commit"/>, which a command calls once its listeners are bound, so a command that fails
    /// first (bad options, address in use) leaves no key file behind (issue 18.4). Errors go to <paramref name="error"/>.
    /// </summary>
    public static PendingKey? OpenKey(string path, TextWriter? error = null)
    {
        error ??= Console.Error;
        try
        {
            return File.Exists(path) ? new PendingKey(path, KeyFile.Load(path), IsNew: false) : new PendingKey(path, KeyPair.Generate(), IsNew: true);
        }
        catch (KeyFileException ex)
        {
            error.WriteLine($"error: {ex.Message}");
            return null;
        }
    }

    public static int ExitCode(ControlErrorCode code) => code switch
    {
        ControlErrorCode.Forbidden => Forbidden,
        ControlErrorCode.NotFound => NotFound,
        ControlErrorCode.NoRoute => NoRoute,
        ControlErrorCode.Unavailable => Unavailable,
        ControlErrorCode.BadRequest => Usage,
        ControlErrorCode.LimitExceeded or ControlErrorCode.ReplyTooLarge => LimitExceeded,
        _ => Failure,
    };

    public static bool TryParseEndPoint(string text, out IPEndPoint endPoint, string what)
    {
        if (IPEndPoint.TryParse(text, out var ep))
        {
            endPoint = ep;
            return true;
        }

        Console.Error.WriteLine($"error: {what} '{text}' is not ip:port");
        endPoint = new IPEndPoint(IPAddress.Loopback, 0);
        return false;
    }

    public static ManagerAddress? ParseManager(string address, string? key)
    {
        try
        {
            return ManagerAddress.Parse(address, key);
        }
        catch (FormatException ex)
        {
            Console.Error.WriteLine("error: " + ex.Message);
            return null;
        }
    }

    /// <summary>Prints rows as aligned columns.</summary>
    public static void Table(IReadOnlyList<string> header, IEnumerable<IReadOnlyList<string>> rows)
    {
        var all = new List<IReadOnlyList<string>> { header };
        all.AddRange(rows);
        var widths = header.Select((_, i) => all.Max(r => r[i].Length)).ToArray();
        foreach (var row in all)
        {
            Console.WriteLine(string.Join("  ", row.Select((cell, i) => i == row.Count - 1 ? cell : cell.PadRight(widths[i]))).TrimEnd());
        }
    }
}

/// <summary>A key loaded from its file, or new and not written yet (<see cref="Common.OpenKey"/>).</summary>
internal sealed record PendingKey(string Path, KeyPair Key, bool IsNew) : IDisposable
{
    /// <summary>Writes a new key to its file (mode 0600) and says so; false (with the reason printed) when it cannot.</summary>
    public bool Commit(TextWriter? error = null)
    {
        error ??= Console.Error;
        if (!IsNew)
        {
            return true;
        }

        try
        {
            KeyFile.Save(Path, Key);
            error.WriteLine($"created key file {Path} (public key {Key.Public})");
            return true;
        }
        catch (KeyFileException ex)
        {
            error.WriteLine($"error: {ex.Message}");
            return false;
        }
    }

    /// <inheritdoc />
    public void Dispose() => Key.Dispose();
}
