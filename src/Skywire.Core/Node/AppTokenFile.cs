using System.Text;
using Skywire.Core.Crypto;

namespace Skywire.Core.Node;

/// <summary>
/// The node's app token file: the token as 64 lowercase hex characters and a newline, mode 0600, written through
/// <see cref="SecretFile"/>. A node replaces only a previous token file: a path that holds anything else (another
/// program's file, a symlink, a file of another user, a file others can read) is refused, so a token-file argument
/// can never make a node (which may run as root under a supervisor) destroy a file its caller names.
/// </summary>
public static class AppTokenFile
{
    /// <summary>Characters of a token.</summary>
    public const int TokenLength = 64;

    /// <summary>Writes <paramref name="token"/> to <paramref name="path"/>, replacing only a previous token file.</summary>
    /// <exception cref="SecretFileException">The path holds something that is not a token file of ours, or it cannot be written.</exception>
    public static void Write(string path, string token)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(path);
        if (!IsToken(token))
        {
            throw new ArgumentException("a token is 64 lowercase hex characters", nameof(token));
        }

        SecretFile.Write(path, Encoding.ASCII.GetBytes(token + "\n"), CheckReplaceable);
    }

    /// <summary>Null when <paramref name="existing"/> is a token file this user may replace, else why not.</summary>
    internal static string? CheckReplaceable(SecretFile.ExistingFile existing)
    {
        if (!existing.IsRegular)
        {
            return "exists and is not a regular file (a symlink, folder or device); refusing to replace it with the app token";
        }

        if (existing.OwnedByUs == false)
        {
            return "exists and belongs to another user; refusing to replace it with the app token";
        }

        if (existing.Mode is { } mode && mode != (UnixFileMode.UserRead | UnixFileMode.UserWrite))
        {
            return $"exists with mode {Convert.ToString((int)mode, 8)}, not 600 as a token file of ours; refusing to replace it with the app token";
        }

        // A token file is a handful of bytes: never read a large file to find out it is not one.
        if (existing.Length is < TokenLength or > TokenLength + 2)
        {
            return "exists and does not hold an app token; refusing to replace it";
        }

        string content;
        try
        {
            content = File.ReadAllText(existing.Path, Encoding.ASCII);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            return "exists and cannot be read: " + ex.Message;
        }

        return IsToken(content.TrimEnd('\n', '\r')) ? null : "exists and does not hold an app token; refusing to replace it";
    }

    private static bool IsToken(string value) => value.Length == TokenLength && value.All(c => char.IsAsciiDigit(c) || c is >= 'a' and <= 'f');
}
