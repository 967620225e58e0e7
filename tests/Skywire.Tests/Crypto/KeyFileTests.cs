using Skywire.Core.Crypto;

namespace Skywire.Tests.Crypto;

public sealed class KeyFileTests : IDisposable
{
    private readonly string _dir = Path.Combine(Path.GetTempPath(), "skywire-keyfile-" + Guid.NewGuid().ToString("N"));

    public void Dispose()
    {
        if (Directory.Exists(_dir))
        {
            Directory.Delete(_dir, recursive: true);
        }
    }

    [Fact]
    public void LoadOrCreate_CreatesFolderAndFile0600_ThenLoadsSameKey()
    {
        var path = Path.Combine(_dir, "sub", "node.key");
        using var created = KeyFile.LoadOrCreate(path, out var wasCreated);
        Assert.True(wasCreated);
        if (!OperatingSystem.IsWindows())
        {
            Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(path));
        }

        using var loaded = KeyFile.LoadOrCreate(path, out wasCreated);
        Assert.False(wasCreated);
        Assert.Equal(created.Public, loaded.Public);
        var json = File.ReadAllText(path);
        Assert.Contains(created.Public.ToString(), json, StringComparison.Ordinal);
        Assert.Empty(Directory.GetFiles(Path.GetDirectoryName(path)!, "*.tmp"));
    }

    [Theory]
    [InlineData("not json", "not valid JSON")]
    [InlineData("[]", "not a JSON object")]
    [InlineData("{\"public_key\": \"02\"}", "missing \"secret_key\"")]
    [InlineData("{\"secret_key\": \"abcd\"}", "64 hex")]
    [InlineData("{\"secret_key\": \"0000000000000000000000000000000000000000000000000000000000000000\"}", "not a valid secp256k1 secret")]
    [InlineData("{\"public_key\": \"0279be667ef9dcbbac55a06295ce870b07029bfcdb2dce28d959f2815b16f81798\", \"secret_key\": \"0000000000000000000000000000000000000000000000000000000000000002\"}", "does not match")]
    public void Load_BadContent_ClearError(string content, string expected)
    {
        var path = WriteOwnerOnly(content);
        var ex = Assert.Throws<KeyFileException>(() => KeyFile.Load(path));
        Assert.Contains(expected, ex.Message, StringComparison.Ordinal);
        Assert.Contains(path, ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Load_Missing_ClearError()
    {
        var ex = Assert.Throws<KeyFileException>(() => KeyFile.Load(Path.Combine(_dir, "none.key")));
        Assert.Contains("not found", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Load_GroupReadable_Refused()
    {
        if (OperatingSystem.IsWindows())
        {
            return;
        }

        var path = Path.Combine(_dir, "open.key");
        using (var pair = KeyFile.LoadOrCreate(path))
        {
        }

        File.SetUnixFileMode(path, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.GroupRead);
        var ex = Assert.Throws<KeyFileException>(() => KeyFile.Load(path));
        Assert.Contains("chmod 600", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Save_Existing_WithoutOverwrite_Refused()
    {
        var path = Path.Combine(_dir, "a.key");
        using var a = KeyFile.LoadOrCreate(path);
        using var b = KeyPair.Generate();
        Assert.Throws<KeyFileException>(() => KeyFile.Save(path, b));
        KeyFile.Save(path, b, overwrite: true);
        using var loaded = KeyFile.Load(path);
        Assert.Equal(b.Public, loaded.Public);
    }

    private string WriteOwnerOnly(string content)
    {
        Directory.CreateDirectory(_dir);
        var path = Path.Combine(_dir, Guid.NewGuid().ToString("N") + ".key");
        File.WriteAllText(path, content);
        if (!OperatingSystem.IsWindows())
        {
            File.SetUnixFileMode(path, UnixFileMode.UserRead | UnixFileMode.UserWrite);
        }

        return path;
    }
}
