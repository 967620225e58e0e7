using System.CommandLine;
using Skywire.Commands;
using Skywire.IntegrationTests.Messenger;
using Skywire.Core.Crypto;

namespace Skywire.IntegrationTests.Commands;

public sealed class ChatCommandTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("skywire-chat-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private static async Task<(int Code, string Out, string Err)> RunAsync(params string[] args)
    {
        var root = new RootCommand("test") { MessengerCommands.CreateMessengerCommand(), MessengerCommands.CreateChatCommand() };
        var output = new StringWriter();
        var error = new StringWriter();
        var code = await root.Parse(args).InvokeAsync(new InvocationConfiguration { Output = output, Error = error }, TestContext.Current.CancellationToken)
            .WaitAsync(MessengerHarness.Timeout, TestContext.Current.CancellationToken);
        return (code, output.ToString(), error.ToString());
    }

    [Fact]
    public async Task Send_ThenListen_PrintsEachMessageOnItsOwnLineWithTheSender()
    {
        await using var h = new MessengerHarness();
        var addr = h.Server.LocalEndPoint.ToString();
        var alice = Path.Combine(_dir, "alice.json");
        var bob = Path.Combine(_dir, "bob.json");
        var bobKey = KeyFile.LoadOrCreate(bob).Public.ToString();
        var aliceKey = KeyFile.LoadOrCreate(alice).Public.ToString();

        var first = await RunAsync("chat", "--messenger", addr, "--messenger-key", h.Server.Key.ToString(), "--key", alice, "send", bobKey, "hello bob");
        Assert.Equal(0, first.Code);
        var second = await RunAsync("chat", "--messenger", $"{h.Server.Key}@{addr}", "--key", alice, "send", bobKey, "two\nlines");
        Assert.Equal(0, second.Code);

        var listen = await RunAsync("chat", "--messenger", addr, "--messenger-key", h.Server.Key.ToString(), "--key", bob, "listen", "--count", "2");
        Assert.Equal(0, listen.Code);
        var lines = listen.Out.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.Equal($"listening as {bobKey}", lines[0]);
        Assert.Equal($"{aliceKey} hello bob", lines[1]);
        Assert.Equal($"{aliceKey} two\\nlines", lines[2]);
    }

    [Fact]
    public async Task WrongMessengerKey_RefusesAndExitsNonZero()
    {
        await using var h = new MessengerHarness();
        var result = await RunAsync("chat", "--messenger", h.Server.LocalEndPoint.ToString(), "--messenger-key", KeyPair.Generate().Public.ToString(),
            "--key", Path.Combine(_dir, "k.json"), "send", KeyPair.Generate().Public.ToString(), "hi");
        Assert.Equal(MessengerCommands.ExitForbidden, result.Code);
        Assert.Contains("did not prove the key", result.Err, StringComparison.Ordinal);
        Assert.Equal(0, h.Server.RegisteredCount);
    }

    [Fact]
    public async Task Send_WhenTheMessengerDropsIt_ExitsWithDropped()
    {
        await using var h = new MessengerHarness(Core.Messenger.MessengerServerOptions.Default with { QueueMaxMessages = 0 });
        var result = await RunAsync("chat", "--messenger", h.Server.LocalEndPoint.ToString(), "--messenger-key", h.Server.Key.ToString(),
            "--key", Path.Combine(_dir, "k.json"), "send", KeyPair.Generate().Public.ToString(), "nobody home");
        Assert.Equal(MessengerCommands.ExitDropped, result.Code);
        Assert.Contains("QueueFull", result.Err, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("127.0.0.1:1", null, "required")]
    [InlineData("127.0.0.1:1", "abc", "not a public key")]
    [InlineData("nonsense", "02a1633cafcc01ebfb6d78e39f687a1f0995c62fc95f51ead10a02ee0be551b5dc", "host:port")]
    public async Task BadMessengerArguments_AreReportedClearly(string address, string? key, string expected)
    {
        string[] args = key is null
            ? ["chat", "--messenger", address, "--key", Path.Combine(_dir, "k.json"), "listen"]
            : ["chat", "--messenger", address, "--messenger-key", key, "--key", Path.Combine(_dir, "k.json"), "listen"];
        var result = await RunAsync(args);
        Assert.Equal(MessengerCommands.ExitUsage, result.Code);
        Assert.Contains(expected, result.Err, StringComparison.Ordinal);
    }

    [Fact]
    public async Task MessengerCommand_BadListenAddress_IsAUsageError()
    {
        var result = await RunAsync("messenger", "--listen", "not-an-address", "--key", Path.Combine(_dir, "m.json"));
        Assert.Equal(MessengerCommands.ExitUsage, result.Code);
        Assert.Contains("--listen", result.Err, StringComparison.Ordinal);
    }

    [Fact]
    public async Task MessengerCommand_ServesUntilCancelled()
    {
        using var cts = CancellationTokenSource.CreateLinkedTokenSource(TestContext.Current.CancellationToken);
        var root = new RootCommand("test") { MessengerCommands.CreateMessengerCommand() };
        var output = new BlockingWriter();
        var keyFile = Path.Combine(_dir, "m.json");
        var run = root.Parse(["messenger", "--listen", "127.0.0.1:0", "--key", keyFile]).InvokeAsync(new InvocationConfiguration { Output = output, Error = TextWriter.Null }, cts.Token);
        var line = await output.FirstLine.WaitAsync(MessengerHarness.Timeout, TestContext.Current.CancellationToken);
        var parts = line.Split(' ');
        Assert.Equal(KeyFile.Load(keyFile).Public.ToString(), parts[1]);

        await using var client = await Core.Messenger.MessengerClient.ConnectAsync(
            new Core.Messenger.MessengerClientOptions { EndPoint = System.Net.IPEndPoint.Parse(parts[^1]), MessengerKey = Protocol.PubKey.Parse(parts[1]) },
            KeyPair.Generate(), cancellationToken: TestContext.Current.CancellationToken);
        await client.PingAsync(TestContext.Current.CancellationToken);
        await cts.CancelAsync();
        Assert.Equal(0, await run.WaitAsync(MessengerHarness.Timeout, TestContext.Current.CancellationToken));
    }

    private sealed class BlockingWriter : StringWriter
    {
        private readonly TaskCompletionSource<string> _first = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public Task<string> FirstLine => _first.Task;

        public override Task WriteLineAsync(string? value)
        {
            _first.TrySetResult(value ?? "");
            return base.WriteLineAsync(value);
        }
    }
}

public sealed class MessengerOptionParsingTests
{
    [Fact]
    public void ClientOptionsFrom_ParsesBothForms_AndRejectsMismatches()
    {
        var key = KeyPair.Generate().Public.ToString();
        Assert.Null(MessengerCommands.ClientOptionsFrom(null, null));
        Assert.Equal(key, MessengerCommands.ClientOptionsFrom("127.0.0.1:8080", key)!.MessengerKey.ToString());
        Assert.Equal(key, MessengerCommands.ClientOptionsFrom($"{key}@127.0.0.1:8080", null)!.MessengerKey.ToString());
        Assert.Throws<FormatException>(() => MessengerCommands.ClientOptionsFrom(null, key));
        Assert.Throws<FormatException>(() => MessengerCommands.ClientOptionsFrom($"{key}@127.0.0.1:8080", KeyPair.Generate().Public.ToString()));
        Assert.Throws<FormatException>(() => MessengerCommands.ClientOptionsFrom("127.0.0.1:8080", null));
    }

    [Theory]
    [InlineData("plain", "plain")]
    [InlineData("a\nb", "a\\nb")]
    [InlineData("tab\there", "tab\\there")]
    [InlineData("back\\slash", "back\\\\slash")]
    [InlineData("bell\u0007", "bell\\u0007")]
    public void Escape_KeepsEachMessageOnOneLine(string text, string expected) => Assert.Equal(expected, MessengerCommands.Escape(text));
}
