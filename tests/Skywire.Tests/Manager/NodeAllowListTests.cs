using System.Net;
using Skywire.Core.Crypto;
using Skywire.Core.Manager;
using Skywire.Protocol;

namespace Skywire.Tests.Manager;

public sealed class NodeAllowListTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("skywire-allow-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private static PubKey NewKey()
    {
        using var key = KeyPair.Generate();
        return key.Public;
    }

    [Fact]
    public void Parse_KeysCommentsBlankLinesAndCrLf()
    {
        var a = NewKey();
        var b = NewKey();
        var text = $"# nodes of the lab\r\n\r\n  {a}  \r\n{b.ToString().ToUpperInvariant()} # node b\n   # indented comment\n";
        Assert.Equal([a, b], NodeAllowList.Parse(text, "f"));
        Assert.Empty(NodeAllowList.Parse("", "f"));
        Assert.Empty(NodeAllowList.Parse("# nothing\n\n", "f"));
    }

    [Theory]
    [InlineData("nothex")]
    [InlineData("04ab")]
    [InlineData("02 02")]
    public void Parse_BadLine_NamesFileAndLine(string bad)
    {
        var ex = Assert.Throws<NodeAllowListException>(() => NodeAllowList.Parse($"# ok\n{NewKey()}\n{bad}\n", "nodes.txt"));
        Assert.StartsWith("nodes.txt:3: ", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Parse_RandomInput_EitherKeysOrAClearError()
    {
        var random = new Random(1928);
        var key = NewKey().ToString();
        const string alphabet = "0123456789abcdefABCDEF #\r\n\t\0é";
        for (var i = 0; i < 2000; i++)
        {
            var chars = new char[random.Next(0, 200)];
            for (var j = 0; j < chars.Length; j++)
            {
                chars[j] = alphabet[random.Next(alphabet.Length)];
            }

            var text = random.Next(3) == 0 ? key + "\n" + new string(chars) : new string(chars);
            try
            {
                _ = NodeAllowList.Parse(text, "fuzz");
            }
            catch (NodeAllowListException ex)
            {
                Assert.StartsWith("fuzz:", ex.Message, StringComparison.Ordinal);
            }
        }
    }

    [Fact]
    public void FixedKeysAndFile_Reload_BadFileKeepsTheOldList()
    {
        var fixedKey = NewKey();
        var a = NewKey();
        var b = NewKey();
        var path = Path.Combine(_dir, "nodes");
        File.WriteAllText(path, a + "\n");
        var list = new NodeAllowList([fixedKey], path);
        Assert.True(list.Contains(fixedKey) && list.Contains(a) && !list.Contains(b));
        Assert.Equal(2, list.Count);

        File.WriteAllText(path, b + "\n");
        Assert.Equal(2, list.Reload());
        Assert.True(list.Contains(fixedKey) && !list.Contains(a) && list.Contains(b));

        File.WriteAllText(path, b + "\ngarbage\n");
        Assert.Throws<NodeAllowListException>(() => list.Reload());
        Assert.True(list.Contains(fixedKey) && list.Contains(b));

        File.Delete(path);
        var missing = Assert.Throws<NodeAllowListException>(() => list.Reload());
        Assert.Contains(path, missing.Message, StringComparison.Ordinal);
        Assert.True(list.Contains(b));
        Assert.Throws<NodeAllowListException>(() => new NodeAllowList([], path));
    }

    [Fact]
    public void OpenToAnyNode_OnlyWithoutListOnNonLoopback()
    {
        var list = new NodeAllowList([NewKey()]);
        Assert.True(ManagerServer.IsOpenToAnyNode(new IPEndPoint(IPAddress.Any, 5999), null));
        Assert.True(ManagerServer.IsOpenToAnyNode(new IPEndPoint(IPAddress.IPv6Any, 5999), null));
        Assert.True(ManagerServer.IsOpenToAnyNode(IPEndPoint.Parse("198.51.100.10:5999"), null));
        Assert.False(ManagerServer.IsOpenToAnyNode(new IPEndPoint(IPAddress.Loopback, 5999), null));
        Assert.False(ManagerServer.IsOpenToAnyNode(new IPEndPoint(IPAddress.IPv6Loopback, 5999), null));
        Assert.False(ManagerServer.IsOpenToAnyNode(new IPEndPoint(IPAddress.Any, 5999), list));
    }
}
