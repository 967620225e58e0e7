using System.Diagnostics;
using Skywire.Core.Crypto;
using Skywire.Core.Node;

namespace Skywire.Tests.Node;

public sealed class AppTokenFileTests : IDisposable
{
    private static readonly string Token = new('a', AppTokenFile.TokenLength);
    private static readonly string Other = new('b', AppTokenFile.TokenLength);
    private readonly string _dir = Path.Combine(Path.GetTempPath(), "skywire-token-" + Guid.NewGuid().ToString("N"));

    public AppTokenFileTests() => Directory.CreateDirectory(_dir);

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    [Fact]
    public void Write_NewPath_TokenAndNewline_Mode0600()
    {
        var path = Path.Combine(_dir, "token");
        AppTokenFile.Write(path, Token);
        Assert.Equal(Token + "\n", File.ReadAllText(path));
        if (OperatingSystem.IsWindows())
        {
            Assert.Skip("Unix modes");
            return;
        }

        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(path));
    }

    [Fact]
    public void Write_PreviousTokenFile_IsReplaced()
    {
        var path = Path.Combine(_dir, "token");
        AppTokenFile.Write(path, Other);
        AppTokenFile.Write(path, Token);
        Assert.Equal(Token + "\n", File.ReadAllText(path));
        Assert.Single(Directory.GetFileSystemEntries(_dir));
    }

    [Theory]
    [InlineData("root:x:0:0:root:/root:/bin/bash\n", 0b110_100_100, "mode 644")]
    [InlineData("root:x:0:0:root:/root:/bin/bash\n", 0b110_000_000, "does not hold an app token")]
    [InlineData("", 0b110_000_000, "does not hold an app token")]
    [InlineData("zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz\n", 0b110_000_000, "does not hold an app token")]
    [InlineData("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\n", 0b110_100_000, "mode 640")]
    public void Write_SomethingElse_RefusedWithReason_AndUntouched(string content, int mode, string reason)
    {
        if (OperatingSystem.IsWindows())
        {
            Assert.Skip("Unix modes");
            return;
        }

        var path = Path.Combine(_dir, "precious");
        File.WriteAllText(path, content);
        File.SetUnixFileMode(path, (UnixFileMode)mode);
        var ex = Assert.Throws<SecretFileException>(() => AppTokenFile.Write(path, Token));
        Assert.Contains(reason, ex.Message, StringComparison.Ordinal);
        Assert.Equal(content, File.ReadAllText(path));
        Assert.Equal((UnixFileMode)mode, File.GetUnixFileMode(path));
        Assert.Single(Directory.GetFileSystemEntries(_dir));
    }

    [Fact]
    public void Write_SymlinkToTokenFile_Refused_LinkAndTargetUntouched()
    {
        if (OperatingSystem.IsWindows())
        {
            Assert.Skip("symlinks need privileges on Windows");
            return;
        }

        var target = Path.Combine(_dir, "real");
        AppTokenFile.Write(target, Other);
        var link = Path.Combine(_dir, "link");
        File.CreateSymbolicLink(link, target);
        var ex = Assert.Throws<SecretFileException>(() => AppTokenFile.Write(link, Token));
        Assert.Contains("not a regular file", ex.Message, StringComparison.Ordinal);
        Assert.Equal(target, new FileInfo(link).LinkTarget);
        Assert.Equal(Other + "\n", File.ReadAllText(target));
    }

    [Fact]
    public void Write_Folder_Refused()
    {
        var folder = Path.Combine(_dir, "folder");
        Directory.CreateDirectory(folder);
        var ex = Assert.Throws<SecretFileException>(() => AppTokenFile.Write(folder, Token));
        Assert.Contains("not a regular file", ex.Message, StringComparison.Ordinal);
        Assert.True(Directory.Exists(folder));
    }

    [Fact]
    public void Write_TokenFileOfAnotherUser_Refused()
    {
        if (!(OperatingSystem.IsLinux() && Environment.UserName == "root"))
        {
            Assert.Skip("needs root to give a file to another user");
            return;
        }

        var path = Path.Combine(_dir, "theirs");
        File.WriteAllText(path, Other + "\n");
        File.SetUnixFileMode(path, UnixFileMode.UserRead | UnixFileMode.UserWrite);
        using (var chown = Process.Start(new ProcessStartInfo("chown", ["65534", path]) { RedirectStandardError = true })!)
        {
            chown.WaitForExit();
            Assert.Equal(0, chown.ExitCode);
        }

        Assert.False(SecretFile.Inspect(path).OwnedByUs);
        var ex = Assert.Throws<SecretFileException>(() => AppTokenFile.Write(path, Token));
        Assert.Contains("another user", ex.Message, StringComparison.Ordinal);
        Assert.Equal(Other + "\n", File.ReadAllText(path));
    }
}
