using System.Collections.Concurrent;
using System.Security.Cryptography;
using System.Text.Json;
using Skywire.Core.Channels;
using Skywire.Protocol;
using Skywire.Protocol.Control;

namespace Skywire.Core.Manager.Store;

/// <summary>
/// Commands for nodes connected to another manager go through the store, not a home-made gossip: the sender writes
/// <c>cmd/&lt;node&gt;/&lt;id&gt;</c> (leased: it goes if the sender dies), the manager the node is connected to sees it
/// in its watch, runs it on the node's control channel, writes <c>ack/&lt;id&gt;</c> and deletes the command; the sender
/// sees the ack in its watch and deletes it. A command that no manager answers within the command timeout fails as
/// Unavailable, as an unanswered command to a local node does.
/// </summary>
public sealed partial class MeshStoreSync
{
    private readonly ConcurrentDictionary<string, TaskCompletionSource<AckValue>> _acks = new(StringComparer.Ordinal);

    /// <summary>The channel to a node connected to another manager.</summary>
    public INodeChannel RemoteChannel(PubKey node) => new StoreNodeChannel(this, node);

    /// <summary>Sends one command to <paramref name="node"/> through the store and waits for its answer.</summary>
    /// <exception cref="ControlException">The node's answer (an error), or Unavailable (no store, no answer in time).</exception>
    internal async Task SendAsync(PubKey node, string op, JsonElement message, CancellationToken cancellationToken)
    {
        var id = ManagerId + "-" + Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(8));
        var answer = new TaskCompletionSource<AckValue>(TaskCreationOptions.RunContinuationsAsynchronously);
        _acks[id] = answer;
        var commandKey = MeshStoreCodec.CommandKey(node, id);
        try
        {
            var value = MeshStoreCodec.Encode(new CommandValue { From = ManagerId, Op = op, Message = message });
            try
            {
                await _store.TransactAsync(StoreTransaction.Write(StoreOp.Put(commandKey, value, leased: true)), cancellationToken);
            }
            catch (StoreUnavailableException ex)
            {
                throw new ControlException(ControlErrorCode.Unavailable, $"node {node.ToShortString(12)} is connected to another manager and the mesh store cannot be reached: {ex.Message}");
            }

            using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
            timeout.CancelAfter(_options.CommandTimeout);
            AckValue ack;
            try
            {
                ack = await answer.Task.WaitAsync(timeout.Token);
            }
            catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
            {
                throw new ControlException(ControlErrorCode.Unavailable, $"node {node.ToShortString(12)} (connected to another manager) did not answer in time");
            }

            if (!ack.Ok)
            {
                var code = Enum.IsDefined((ControlErrorCode)ack.Code) ? (ControlErrorCode)ack.Code : ControlErrorCode.Internal;
                throw new ControlException(code, Quote.Of(ack.Message, 200));
            }
        }
        finally
        {
            _acks.TryRemove(id, out _);
            Enqueue("cleanup/" + id, StoreTransaction.Write(StoreOp.Delete(commandKey), StoreOp.Delete(MeshStoreCodec.AckKey(id))));
        }
    }

    private void ApplyAck(string key, StoreEntry entry)
    {
        var id = key[MeshStoreCodec.Acks.Length..];
        if (_acks.TryGetValue(id, out var pending))
        {
            if (MeshStoreCodec.TryDecode<AckValue>(entry.Value) is { } ack)
            {
                pending.TrySetResult(ack);
            }
            else
            {
                Ignore(key);
            }
        }
    }

    private void ApplyCommand(string key, StoreEntry entry)
    {
        if (MeshStoreCodec.CommandOf(key) is not { } target)
        {
            Ignore(key);
            return;
        }

        if (_controller.LocalChannel(target.Node) is not { } channel)
        {
            return; // not ours: the manager the node is connected to answers
        }

        var command = MeshStoreCodec.TryDecode<CommandValue>(entry.Value);
        if (command is null || target.Id.Length > 64)
        {
            Ignore(key);
            return;
        }

        _ = Task.Run(() => RunCommandAsync(target.Node, target.Id, key, command, channel));
    }

    private async Task RunCommandAsync(PubKey node, string id, string key, CommandValue command, INodeChannel channel)
    {
        AckValue ack;
        try
        {
            using var timeout = CancellationTokenSource.CreateLinkedTokenSource(_cts.Token);
            timeout.CancelAfter(_options.CommandTimeout);
            await RunAsync(channel, command, timeout.Token);
            ack = new AckValue { Ok = true };
        }
        catch (ControlException ex)
        {
            ack = new AckValue { Code = (int)ex.Code, Message = ex.Message };
        }
        catch (Exception ex) when (ex is JsonException or NotSupportedException or ArgumentException or InvalidOperationException)
        {
            ack = new AckValue { Code = (int)ControlErrorCode.BadRequest, Message = "malformed command in the mesh store: " + ex.Message };
        }
        catch (OperationCanceledException)
        {
            ack = new AckValue { Code = (int)ControlErrorCode.Unavailable, Message = $"node {node.ToShortString(12)} did not answer in time" };
        }

        try
        {
            await _store.TransactAsync(StoreTransaction.Write(StoreOp.Put(MeshStoreCodec.AckKey(id), MeshStoreCodec.Encode(ack), leased: true), StoreOp.Delete(key)), _cts.Token);
        }
        catch (Exception ex) when (ex is StoreUnavailableException or OperationCanceledException or ObjectDisposedException)
        {
            // The sender times out and says so.
            if (!_cts.IsCancellationRequested)
            {
                Log.AckNotWritten(_logger, Quote.Of(id, 80), ex.Message);
            }
        }
    }

    private static Task RunAsync(INodeChannel channel, CommandValue command, CancellationToken cancellationToken)
    {
        var json = command.Message;
        return command.Op switch
        {
            "open-link" => channel.OpenLinkAsync(Decode(json, ControlJsonContext.Default.OpenLinkMessage), cancellationToken),
            "close-link" => channel.CloseLinkAsync(Decode(json, ControlJsonContext.Default.CloseLinkMessage), cancellationToken),
            "install-rules" => channel.InstallRulesAsync(Decode(json, ControlJsonContext.Default.InstallRulesMessage), cancellationToken),
            "remove-rules" => channel.RemoveRulesAsync(Decode(json, ControlJsonContext.Default.RemoveRulesMessage), cancellationToken),
            "session-route" => channel.SessionRouteAsync(Decode(json, ControlJsonContext.Default.SessionRouteMessage), cancellationToken),
            "route-closed" => channel.RouteClosedAsync(Decode(json, ControlJsonContext.Default.RouteCloseMessage), cancellationToken),
            _ => throw new ControlException(ControlErrorCode.BadRequest, $"unknown command '{Quote.Of(command.Op, 32)}' in the mesh store"),
        };
    }

    private static T Decode<T>(JsonElement json, System.Text.Json.Serialization.Metadata.JsonTypeInfo<T> type) =>
        json.Deserialize(type) ?? throw new JsonException("null command");

    /// <summary>A node connected to another manager, reached through the store.</summary>
    private sealed class StoreNodeChannel(MeshStoreSync sync, PubKey node) : INodeChannel
    {
        public Task OpenLinkAsync(OpenLinkMessage message, CancellationToken cancellationToken) =>
            sync.SendAsync(node, "open-link", JsonSerializer.SerializeToElement(message, ControlJsonContext.Default.OpenLinkMessage), cancellationToken);

        public Task CloseLinkAsync(CloseLinkMessage message, CancellationToken cancellationToken) =>
            sync.SendAsync(node, "close-link", JsonSerializer.SerializeToElement(message, ControlJsonContext.Default.CloseLinkMessage), cancellationToken);

        public Task InstallRulesAsync(InstallRulesMessage message, CancellationToken cancellationToken) =>
            sync.SendAsync(node, "install-rules", JsonSerializer.SerializeToElement(message, ControlJsonContext.Default.InstallRulesMessage), cancellationToken);

        public Task RemoveRulesAsync(RemoveRulesMessage message, CancellationToken cancellationToken) =>
            sync.SendAsync(node, "remove-rules", JsonSerializer.SerializeToElement(message, ControlJsonContext.Default.RemoveRulesMessage), cancellationToken);

        public Task SessionRouteAsync(SessionRouteMessage message, CancellationToken cancellationToken) =>
            sync.SendAsync(node, "session-route", JsonSerializer.SerializeToElement(message, ControlJsonContext.Default.SessionRouteMessage), cancellationToken);

        public Task RouteClosedAsync(RouteCloseMessage message, CancellationToken cancellationToken) =>
            sync.SendAsync(node, "route-closed", JsonSerializer.SerializeToElement(message, ControlJsonContext.Default.RouteCloseMessage), cancellationToken);
    }
}
