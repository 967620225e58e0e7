using System.Net;
using System.Text;
using Microsoft.Extensions.Time.Testing;
using Skywire.Core.Channels;
using Skywire.Core.Crypto;
using Skywire.Core.Messenger;
using Skywire.Protocol;
using Skywire.Protocol.Messenger;
using Skywire.TestKit.Logging;

namespace Skywire.IntegrationTests.Messenger;

/// <summary>
/// A messenger on 127.0.0.1:0 plus helpers to connect clients; everything is disposed with it. The server and the clients
/// log to one <see cref="TestLog"/> (<see cref="Log"/>): an Error log the test did not declare fails it. At disposal the
/// teardown checks how things ended: every client still open is closed by us (LocalClosed, not a protocol violation or a
/// timeout), and the server lets go of every registration.
/// </summary>
internal sealed class MessengerHarness : IAsyncDisposable
{
    private readonly List<IAsyncDisposable> _owned = [];
    private readonly List<MessengerClient> _clients = [];
    private readonly bool _ownsLog;

    public MessengerHarness(MessengerServerOptions? options = null, TimeProvider? time = null, TestLog? log = null)
    {
        _ownsLog = log is null;
        Log = log ?? new TestLog(TestContext.Current.TestOutputHelper is { } output ? output.WriteLine : null);
        ServerKey = KeyPair.Generate();
        Server = new MessengerServer(ServerKey, options, Log, time);
        Server.Start(new IPEndPoint(IPAddress.Loopback, 0));
    }

    /// <summary>The log of the server and the clients.</summary>
    public TestLog Log { get; }

    public static TimeSpan Timeout { get; } = TimeSpan.FromSeconds(30);

    public KeyPair ServerKey { get; }

    public MessengerServer Server { get; }

    public MessengerClientOptions ClientOptions(PubKey? pinned = null) => new()
    {
        EndPoint = Server.LocalEndPoint,
        MessengerKey = pinned ?? Server.Key,
    };

    public async Task<MessengerClient> ConnectAsync(KeyPair? key = null, MessengerClientOptions? options = null)
    {
        var client = await MessengerClient.ConnectAsync(options ?? ClientOptions(), key ?? KeyPair.Generate(), Log).WaitAsync(Timeout);
        _owned.Add(client);
        _clients.Add(client);
        return client;
    }

    public static async Task<MessengerMessage> ReceiveAsync(MessengerClient client) =>
        await client.Messages.ReadAsync().AsTask().WaitAsync(Timeout);

    public static async Task<DropNotice> DropAsync(MessengerClient client) =>
        await client.Drops.ReadAsync().AsTask().WaitAsync(Timeout);

    public static string Text(MessengerMessage message) => Encoding.UTF8.GetString(message.Data.Span);

    public async ValueTask DisposeAsync()
    {
        var failures = new List<string>();
        try
        {
            var open = _clients.Where(c => !c.Closed.IsCompleted).ToList();
            foreach (var owned in _owned)
            {
                await owned.DisposeAsync();
            }

            foreach (var client in open)
            {
                var reason = await client.Closed.WaitAsync(Timeout);
                if (reason != ConnectionCloseReason.LocalClosed)
                {
                    failures.Add($"client {client.Key.ToShortString(12)} ended {reason}, not closed by the test");
                }
            }

            var deadline = DateTime.UtcNow + Timeout;
            while (Server.RegisteredCount > 0 && DateTime.UtcNow < deadline)
            {
                await Task.Delay(20);
            }

            if (Server.RegisteredCount > 0)
            {
                failures.Add($"the server still holds {Server.RegisteredCount} registrations after every client closed");
            }

            await Server.DisposeAsync();
        }
        finally
        {
            if (_ownsLog)
            {
                Log.Dispose();
            }
        }

        Assert.True(failures.Count == 0, string.Join(Environment.NewLine, failures));
    }
}

/// <summary>A fake clock that starts now (tests advance it explicitly).</summary>
internal static class Clock
{
    public static FakeTimeProvider Create() => new(DateTimeOffset.UtcNow) { AutoAdvanceAmount = TimeSpan.Zero };
}
