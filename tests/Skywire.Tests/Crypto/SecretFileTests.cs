using System.Text;
using Skywire.Core.Crypto;

namespace Skywire.Tests.Crypto;

public sealed class SecretFileTests : IDisposable
{
    private const UnixFileMode OwnerOnly = UnixFileMode.UserRead | UnixFileMode.UserWrite;
    private readonly string _dir = Path.Combine(Path.GetTempPath(), "skywire-secret-" + Guid.NewGuid().ToString("N"));

    public void Dispose()
    {
        if (Directory.Exists(_dir))
        {
            Directory.Delete(_dir, recursive: true);
        }
    }

    [Fact]
    public void Write_NewFile_Mode0600_FolderCreated0700_NoTemporaryLeft()
    {
        var path = Path.Combine(_dir, "sub", "secret");
        SecretFile.Write(path, "abc"u8, replace: null);
        Assert.Equal("abc", File.ReadAllText(path));
        if (OperatingSystem.IsWindows())
        {
            Assert.Skip("Unix modes");
            return;
        }

        Assert.Equal(OwnerOnly, File.GetUnixFileMode(path));
        Assert.Equal(OwnerOnly | UnixFileMode.UserExecute, File.GetUnixFileMode(Path.GetDirectoryName(path)!));
        Assert.Single(Directory.GetFileSystemEntries(Path.GetDirectoryName(path)!));
    }

    [Fact]
    public void Write_Existing_WithoutPolicy_RefusedAndUntouched()
    {
        Directory.CreateDirectory(_dir);
        var path = Path.Combine(_dir, "secret");
        File.WriteAllText(path, "old");
        var ex = Assert.Throws<SecretFileException>(() => SecretFile.Write(path, "new"u8, replace: null));
        Assert.Contains("already exists", ex.Message, StringComparison.Ordinal);
        Assert.Equal("old", File.ReadAllText(path));
        Assert.Single(Directory.GetFileSystemEntries(_dir));
    }

    [Fact]
    public void Write_Existing_PolicyAsked_RefusalKeepsFile_AllowReplacesAtomically()
    {
        Directory.CreateDirectory(_dir);
        var path = Path.Combine(_dir, "secret");
        File.WriteAllText(path, "old");
        SecretFile.ExistingFile seen = default;
        var ex = Assert.Throws<SecretFileException>(() => SecretFile.Write(path, "new"u8, e => { seen = e; return "not mine"; }));
        Assert.Contains("not mine", ex.Message, StringComparison.Ordinal);
        Assert.True(seen.Exists);
        Assert.True(seen.IsRegular);
        Assert.Equal(3, seen.Length);
        Assert.Equal("old", File.ReadAllText(path));

        SecretFile.Write(path, "new"u8, _ => null);
        Assert.Equal("new", File.ReadAllText(path));
        Assert.Single(Directory.GetFileSystemEntries(_dir));
    }

    [Fact]
    public void Inspect_SymlinkAndFolder_AreNotRegular()
    {
        if (OperatingSystem.IsWindows())
        {
            Assert.Skip("symlinks need privileges on Windows");
            return;
        }

        Directory.CreateDirectory(_dir);
        var target = Path.Combine(_dir, "target");
        File.WriteAllText(target, "x");
        var link = Path.Combine(_dir, "link");
        File.CreateSymbolicLink(link, target);
        var dangling = Path.Combine(_dir, "dangling");
        File.CreateSymbolicLink(dangling, Path.Combine(_dir, "nowhere"));

        Assert.False(SecretFile.Inspect(link).IsRegular);
        Assert.True(SecretFile.Inspect(link).Exists);
        Assert.True(SecretFile.Inspect(dangling).Exists);
        Assert.False(SecretFile.Inspect(dangling).IsRegular);
        Assert.False(SecretFile.Inspect(_dir).IsRegular);
        Assert.False(SecretFile.Inspect(Path.Combine(_dir, "none")).Exists);
        Assert.True(SecretFile.Inspect(target).OwnedByUs ?? true);
    }

    [Fact]
    public void Write_OverSymlink_ReplacesTheLinkNeverWritesThroughIt()
    {
        if (OperatingSystem.IsWindows())
        {
            Assert.Skip("symlinks need privileges on Windows");
            return;
        }

        Directory.CreateDirectory(_dir);
        var target = Path.Combine(_dir, "precious");
        File.WriteAllText(target, "precious");
        var link = Path.Combine(_dir, "link");
        File.CreateSymbolicLink(link, target);
        SecretFile.Write(link, "secret"u8, _ => null);
        Assert.Equal("precious", File.ReadAllText(target));
        Assert.Null(new FileInfo(link).LinkTarget);
        Assert.Equal("secret", Encoding.UTF8.GetString(File.ReadAllBytes(link)));
    }
}
