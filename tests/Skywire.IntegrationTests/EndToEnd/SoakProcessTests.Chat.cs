using System.Globalization;
using System.Net;
using System.Text;
using Microsoft.Extensions.Logging.Abstractions;
using Skywire.Core.Crypto;
using Skywire.Core.Messenger;
using Skywire.Protocol;

namespace Skywire.IntegrationTests.EndToEnd;

/// <summary>The soak's chat: two keys talk through a `skywire messenger` process that the chaos kills too.</summary>
public sealed partial class SoakProcessTests
{
    private readonly ChatCounters _chat = new();

    /// <summary>
    /// Alice and Bob send each other numbered lines until stopped, through clients that reconnect by themselves. A line
    /// may be lost when the messenger dies with it queued (counted); one that arrives twice, out of order or altered is
    /// a failure.
    /// </summary>
    private async Task ChatLoopAsync(IPEndPoint messenger, PubKey messengerKey, CancellationToken stop)
    {
        using var alice = KeyPair.Generate();
        using var bob = KeyPair.Generate();
        var options = new MessengerClientOptions
        {
            EndPoint = messenger,
            MessengerKey = messengerKey,
            Reconnect = true,
            ReconnectDelay = TimeSpan.FromMilliseconds(100),
            MaxReconnectDelay = TimeSpan.FromSeconds(1),
            PingInterval = TimeSpan.FromSeconds(2),
        };
        await using var a = await MessengerClient.ConnectAsync(options, alice, NullLoggerFactory.Instance, stop);
        await using var b = await MessengerClient.ConnectAsync(options, bob, NullLoggerFactory.Instance, stop);
        await Task.WhenAll(
            SpeakAsync(a, bob.Public, "alice", stop), SpeakAsync(b, alice.Public, "bob", stop),
            HearAsync(b, alice.Public, "alice", stop), HearAsync(a, bob.Public, "bob", stop));
    }

    private async Task SpeakAsync(MessengerClient client, PubKey to, string name, CancellationToken stop)
    {
        var backoff = new Core.Channels.Backoff(TimeSpan.FromMilliseconds(100), TimeSpan.FromSeconds(1));
        var refused = false;
        for (long seq = 1; !stop.IsCancellationRequested; seq++)
        {
            try
            {
                await (refused ? backoff.DelayAsync(TimeProvider.System, stop) : Task.Delay(100, stop));
                refused = false;
                await client.SendAsync(to, $"{name} {seq} {new string((char)('a' + (seq % 26)), (int)(seq % 200))}", stop);
                _chat.Sent(name, seq);
                backoff.Reset();
            }
            catch (OperationCanceledException) when (stop.IsCancellationRequested)
            {
                break;
            }
            catch (MessengerException ex)
            {
                // The messenger is away: the app is told at once; it tries again later.
                _chat.Refused();
                Note($"chat {name}: send refused: {ex.Message}");
                refused = true;
            }
        }
    }

    private async Task HearAsync(MessengerClient client, PubKey from, string name, CancellationToken stop)
    {
        long last = 0;
        try
        {
            await foreach (var message in client.Messages.ReadAllAsync(stop))
            {
                var text = Encoding.UTF8.GetString(message.Data.Span);
                var parts = text.Split(' ');
                if (message.From != from || parts.Length != 3 || parts[0] != name
                    || !long.TryParse(parts[1], NumberStyles.None, CultureInfo.InvariantCulture, out var seq)
                    || parts[2] != new string((char)('a' + (seq % 26)), (int)(seq % 200)))
                {
                    _chat.Corrupt();
                    Note($"CHAT CORRUPTED from {name}: '{text[..Math.Min(text.Length, 40)]}'");
                    continue;
                }

                if (seq <= last)
                {
                    _chat.Corrupt();
                    Note($"CHAT DUPLICATE OR REORDERED from {name}: {seq} after {last}");
                    continue;
                }

                last = seq;
                _chat.Heard(name, seq);
            }
        }
        catch (OperationCanceledException) when (stop.IsCancellationRequested)
        {
        }
    }

    private sealed class ChatCounters
    {
        private readonly Dictionary<string, (long Sent, long Heard, long LastSent, long LastHeard)> _by = new(StringComparer.Ordinal);
        private long _corrupted;
        private long _refused;

        public long Corrupted => Interlocked.Read(ref _corrupted);

        public void Corrupt() => Interlocked.Increment(ref _corrupted);

        public void Refused() => Interlocked.Increment(ref _refused);

        public void Sent(string name, long seq) => Update(name, e => e with { Sent = e.Sent + 1, LastSent = seq });

        public void Heard(string name, long seq) => Update(name, e => e with { Heard = e.Heard + 1, LastHeard = seq });

        /// <summary>The last line each speaker sent (0 before the first).</summary>
        public long LastSent(string name)
        {
            lock (_by)
            {
                return _by.TryGetValue(name, out var e) ? e.LastSent : 0;
            }
        }

        /// <summary>The last line of each speaker that arrived.</summary>
        public long LastHeard(string name)
        {
            lock (_by)
            {
                return _by.TryGetValue(name, out var e) ? e.LastHeard : 0;
            }
        }

        public override string ToString()
        {
            lock (_by)
            {
                return string.Join("; ", _by.Select(kv => $"{kv.Key} sent {kv.Value.Sent}, heard {kv.Value.Heard}"))
                    + $"; {Interlocked.Read(ref _refused)} sends refused while the messenger was away, {Corrupted} corrupted/duplicated/reordered";
            }
        }

        private void Update(string name, Func<(long Sent, long Heard, long LastSent, long LastHeard), (long, long, long, long)> change)
        {
            lock (_by)
            {
                _by[name] = change(_by.GetValueOrDefault(name));
            }
        }
    }
}
