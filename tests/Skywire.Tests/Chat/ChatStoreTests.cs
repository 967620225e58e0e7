using System.Text;
using Skywire.Apps.Chat;
using Skywire.Core.Crypto;

namespace Skywire.Tests.Chat;

/// <summary>The browser chat's plaintext format and its local store (docs/messenger.md "Sky-Messenger in the browser").</summary>
public sealed class ChatStoreTests : IDisposable
{
    private readonly string _dir = Path.Combine(Path.GetTempPath(), "skywire-chatstore-" + Guid.NewGuid().ToString("N")[..12]);

    [Fact]
    public void Wire_RoundTripsTextAndReceipt()
    {
        var text = new ChatWireMessage { Id = "abc", Text = "hi \u00e9", SentAt = 42 };
        Assert.Equal(text, ChatWireMessage.Decode(text.Encode()));
        var receipt = new ChatWireMessage { Kind = ChatWireMessage.KindReceipt, Id = "abc" };
        Assert.Equal(receipt, ChatWireMessage.Decode(receipt.Encode()));
    }

    [Fact]
    public void Wire_BareTextIsAPlainMessage_OtherJsonTypesAndBadChatMessagesAreNot()
    {
        Assert.Equal(new ChatWireMessage { Id = "", Text = "hello from skywire chat send" }, ChatWireMessage.Decode("hello from skywire chat send"u8));
        Assert.Equal("{not json", ChatWireMessage.Decode("{not json"u8)!.Text);
        Assert.Null(ChatWireMessage.Decode("""{"type":"skywire-direct/1","kind":"offer"}"""u8));
        Assert.Null(ChatWireMessage.Decode("""{"type":"skywire-chat/1","kind":"text","id":""}"""u8));
        Assert.Null(ChatWireMessage.Decode("""{"type":"skywire-chat/1","kind":"text","id":"x"}"""u8));
        Assert.Null(ChatWireMessage.Decode(Encoding.UTF8.GetBytes($$"""{"type":"skywire-chat/1","kind":"receipt","id":"{{new string('a', 65)}}"}""")));
        Assert.Null(ChatWireMessage.Decode("""{"type":"skywire-chat/1","kind":"delete","id":"x"}"""u8));
        Assert.Null(ChatWireMessage.Decode([0xff, 0xfe]));
    }

    [Fact]
    public void Fingerprint_IsEightGroupsAndDiffersPerKey()
    {
        var a = KeyPair.Generate().Public;
        var b = KeyPair.Generate().Public;
        Assert.Matches("^([0-9a-f]{4} ){7}[0-9a-f]{4}$", ChatWireMessage.Fingerprint(a));
        Assert.Equal(ChatWireMessage.Fingerprint(a), ChatWireMessage.Fingerprint(a));
        Assert.NotEqual(ChatWireMessage.Fingerprint(a), ChatWireMessage.Fingerprint(b));
    }

    [Fact]
    public void Store_KeepsMessagesStatesAndNicknamesAcrossRestart_AndIgnoresATornLastLine()
    {
        var peer = KeyPair.Generate().Public.ToString();
        using (var store = new ChatStore(_dir))
        {
            Assert.True(store.TryAdd(new ChatEntry("m1", peer, true, "one", 1, 1, ChatDeliveryState.Sending, null, false)));
            Assert.False(store.TryAdd(new ChatEntry("m1", peer, true, "dup", 2, 2, ChatDeliveryState.Sending, null, false)));
            Assert.True(store.TryAdd(new ChatEntry("m1", peer, false, "same id, other direction", 3, 3, ChatDeliveryState.Received, null, true)));
            Assert.NotNull(store.Update(peer, "m1", true, e => e.State == ChatDeliveryState.Sending, ChatDeliveryState.Delivered, null));
            Assert.Null(store.Update(peer, "m1", true, e => e.State == ChatDeliveryState.Sending, ChatDeliveryState.Sent, null));
            store.SetNickname(peer, "  Bob ");
        }

        File.AppendAllText(Path.Combine(_dir, "history.jsonl"), "{\"entry\":{\"id\":\"m2\",\"pe");
        using (var store = new ChatStore(_dir))
        {
            Assert.Equal([new ChatContact(peer, "Bob")], store.Contacts());
            var messages = store.Messages();
            Assert.Equal(2, messages.Count);
            Assert.Equal(ChatDeliveryState.Delivered, store.Find(peer, "m1", true)!.State);
            Assert.True(store.Find(peer, "m1", false)!.WasStored);
            store.SetNickname(peer, "");
            Assert.Empty(store.Contacts());
            Assert.True(store.TryAdd(new ChatEntry("m3", peer, true, "after the torn line", 4, 4, ChatDeliveryState.Sent, null, false)));
        }

        using (var store = new ChatStore(_dir))
        {
            Assert.Equal("after the torn line", store.Find(peer, "m3", true)!.Text);
        }

        if (!OperatingSystem.IsWindows())
        {
            Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(Path.Combine(_dir, "history.jsonl")));
            Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(Path.Combine(_dir, "contacts.json")));
            Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute, File.GetUnixFileMode(_dir));
        }
    }

    public void Dispose()
    {
        if (Directory.Exists(_dir))
        {
            Directory.Delete(_dir, recursive: true);
        }
    }
}
