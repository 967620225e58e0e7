using System.Net;
using System.Text;
using Microsoft.Extensions.Time.Testing;
using Skywire.Core.Crypto;
using Skywire.Core.Messenger;
using Skywire.Protocol;
using Skywire.Protocol.Messenger;

namespace Skywire.IntegrationTests.Messenger;

/// <summary>A messenger on 127.0.0.1:0 plus helpers to connect clients; everything is disposed with it.</summary>
internal sealed class MessengerHarness : IAsyncDisposable
{
    private readonly List<IAsyncDisposable> _owned = [];

    public MessengerHarness(MessengerServerOptions? options = null, TimeProvider? time = null)
    {
        ServerKey = KeyPair.Generate();
        Server = new MessengerServer(ServerKey, options, timeProvider: time);
        Server.Start(new IPEndPoint(IPAddress.Loopback, 0));
    }

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
        var client = await MessengerClient.ConnectAsync(options ?? ClientOptions(), key ?? KeyPair.Generate()).WaitAsync(Timeout);
        _owned.Add(client);
        return client;
    }

    public static async Task<MessengerMessage> ReceiveAsync(MessengerClient client) =>
        await client.Messages.ReadAsync().AsTask().WaitAsync(Timeout);

    public static async Task<DropNotice> DropAsync(MessengerClient client) =>
        await client.Drops.ReadAsync().AsTask().WaitAsync(Timeout);

    public static string Text(MessengerMessage message) => Encoding.UTF8.GetString(message.Data.Span);

    public async ValueTask DisposeAsync()
    {
        foreach (var owned in _owned)
        {
            await owned.DisposeAsync();
        }

        await Server.DisposeAsync();
    }
}

/// <summary>A fake clock that starts now (tests advance it explicitly).</summary>
internal static class Clock
{
    public static FakeTimeProvider Create() => new(DateTimeOffset.UtcNow) { AutoAdvanceAmount = TimeSpan.Zero };
}
