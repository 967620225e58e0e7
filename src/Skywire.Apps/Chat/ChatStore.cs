using System.Text;
using System.Text.Json;
using System.Text.Json.Serialization;

namespace Skywire.Apps.Chat;

/// <summary>Where a message is (docs/messenger.md "Delivery state").</summary>
[JsonConverter(typeof(ChatDeliveryStateConverter))]
public enum ChatDeliveryState
{
    /// <summary>Outgoing, not yet accepted by the messenger.</summary>
    Sending,

    /// <summary>Outgoing, accepted by the messenger (relayed, or stored for an offline recipient); no receipt yet.</summary>
    Sent,

    /// <summary>Outgoing, the recipient's end-to-end receipt arrived.</summary>
    Delivered,

    /// <summary>Outgoing, not sent or dropped by the messenger (the detail says why).</summary>
    Failed,

    /// <summary>Incoming.</summary>
    Received,
}

/// <summary>Delivery states in JSON: <c>sending</c>, <c>sent</c>, <c>delivered</c>, <c>failed</c>, <c>received</c>.</summary>
public sealed class ChatDeliveryStateConverter() : JsonStringEnumConverter<ChatDeliveryState>(JsonNamingPolicy.CamelCase, allowIntegerValues: false);

/// <summary>One message of a conversation.</summary>
/// <param name="Id">The chat message id (both ends use the sender's id).</param>
/// <param name="Peer">The other end's public key (66 hex).</param>
/// <param name="Outgoing">True for a message we sent.</param>
/// <param name="Text">The text.</param>
/// <param name="At">When this end sent or received it (Unix ms, local clock).</param>
/// <param name="SentAt">The sender's clock (Unix ms), 0 when unknown.</param>
/// <param name="State">Delivery state.</param>
/// <param name="Detail">Why it failed, or null.</param>
/// <param name="WasStored">Incoming only: the messenger held it while this end was offline.</param>
public sealed record ChatEntry(string Id, string Peer, bool Outgoing, string Text, long At, long SentAt, ChatDeliveryState State, string? Detail, bool WasStored);

/// <summary>A contact: a public key with a local nickname (never sent anywhere).</summary>
public sealed record ChatContact(string Key, string Nickname);

/// <summary>One line of the history file: a new message, or a new state of one.</summary>
internal sealed record ChatStoreRecord(ChatEntry Entry);

[JsonSourceGenerationOptions(PropertyNamingPolicy = JsonKnownNamingPolicy.CamelCase)]
[JsonSerializable(typeof(ChatWireMessage))]
[JsonSerializable(typeof(ChatEntry))]
[JsonSerializable(typeof(ChatContact))]
[JsonSerializable(typeof(List<ChatContact>))]
[JsonSerializable(typeof(ChatStoreRecord))]
internal sealed partial class ChatJsonContext : JsonSerializerContext;

/// <summary>
/// The local state of a browser chat (docs/messenger.md "Sky-Messenger in the browser"), in its data folder (mode 0700):
/// <c>contacts.json</c> (nicknames, rewritten atomically) and <c>history.jsonl</c> (one JSON line per new message or
/// state change, replayed at start and compacted when it holds more than twice the lines it needs). Files are mode 0600.
/// A conversation keeps its newest <see cref="MaxPerConversation"/> messages. Thread-safe (one lock).
/// </summary>
public sealed class ChatStore : IDisposable
{
    /// <summary>Messages kept per conversation.</summary>
    public const int MaxPerConversation = 5000;

    /// <summary>Longest nickname, in characters.</summary>
    public const int MaxNicknameLength = 64;

    private readonly Lock _lock = new();
    private readonly string _contactsPath;
    private readonly string _historyPath;
    private readonly Dictionary<string, string> _contacts = new(StringComparer.Ordinal);
    private readonly Dictionary<(string Peer, string Id, bool Outgoing), ChatEntry> _entries = [];
    private readonly Dictionary<string, List<(string Id, bool Outgoing)>> _order = new(StringComparer.Ordinal);
    private StreamWriter _history;

    /// <summary>Opens (or creates) the store in <paramref name="folder"/>.</summary>
    /// <exception cref="IOException">The folder or a file cannot be read or written.</exception>
    public ChatStore(string folder)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(folder);
        Folder = Path.GetFullPath(folder);
        if (OperatingSystem.IsWindows())
        {
            Directory.CreateDirectory(Folder);
        }
        else
        {
            Directory.CreateDirectory(Folder, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        }

        _contactsPath = Path.Combine(Folder, "contacts.json");
        _historyPath = Path.Combine(Folder, "history.jsonl");
        LoadContacts();
        var lines = LoadHistory();
        if (lines > 2 * _entries.Count + 100)
        {
            Compact();
        }

        _history = OpenHistory(FileMode.Append);
        if (_history.BaseStream.Position > 0 && !EndsWithNewline(_historyPath))
        {
            // A line torn by a crash is ended, so the next record starts on its own line.
            _history.WriteLine();
            _history.Flush();
        }
    }

    private static bool EndsWithNewline(string path)
    {
        using var read = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite);
        read.Seek(-1, SeekOrigin.End);
        return read.ReadByte() == '\n';
    }

    /// <summary>The data folder.</summary>
    public string Folder { get; }

    /// <summary>The contacts, by nickname.</summary>
    public IReadOnlyList<ChatContact> Contacts()
    {
        lock (_lock)
        {
            return [.. _contacts.Select(c => new ChatContact(c.Key, c.Value)).OrderBy(c => c.Nickname, StringComparer.OrdinalIgnoreCase)];
        }
    }

    /// <summary>Every message, oldest first per conversation.</summary>
    public IReadOnlyList<ChatEntry> Messages()
    {
        lock (_lock)
        {
            return [.. _order.SelectMany(o => o.Value.Select(k => _entries[(o.Key, k.Id, k.Outgoing)])).OrderBy(e => e.At)];
        }
    }

    /// <summary>Sets (or, with an empty nickname, removes) a contact's nickname.</summary>
    public ChatContact SetNickname(string key, string nickname)
    {
        nickname = nickname.Trim();
        lock (_lock)
        {
            if (nickname.Length == 0)
            {
                _contacts.Remove(key);
            }
            else
            {
                _contacts[key] = nickname;
            }

            var json = JsonSerializer.SerializeToUtf8Bytes([.. _contacts.Select(c => new ChatContact(c.Key, c.Value))], ChatJsonContext.Default.ListChatContact);
            var temp = _contactsPath + ".tmp";
            WriteOwnerOnly(temp, json);
            File.Move(temp, _contactsPath, overwrite: true);
            return new ChatContact(key, nickname);
        }
    }

    /// <summary>The message, if known.</summary>
    public ChatEntry? Find(string peer, string id, bool outgoing)
    {
        lock (_lock)
        {
            return _entries.GetValueOrDefault((peer, id, outgoing));
        }
    }

    /// <summary>Adds a message; false (nothing stored) when one with the same peer, id and direction exists.</summary>
    public bool TryAdd(ChatEntry entry)
    {
        ArgumentNullException.ThrowIfNull(entry);
        lock (_lock)
        {
            if (!_entries.TryAdd((entry.Peer, entry.Id, entry.Outgoing), entry))
            {
                return false;
            }

            Track(entry);
            Append(entry);
            return true;
        }
    }

    /// <summary>Moves a message to a new state; null when unknown, or when <paramref name="allowed"/> refuses its current state.</summary>
    public ChatEntry? Update(string peer, string id, bool outgoing, Func<ChatEntry, bool> allowed, ChatDeliveryState state, string? detail)
    {
        ArgumentNullException.ThrowIfNull(allowed);
        lock (_lock)
        {
            if (!_entries.TryGetValue((peer, id, outgoing), out var entry) || !allowed(entry))
            {
                return null;
            }

            entry = entry with { State = state, Detail = detail };
            _entries[(peer, id, outgoing)] = entry;
            Append(entry);
            return entry;
        }
    }

    public void Dispose()
    {
        lock (_lock)
        {
            _history.Dispose();
        }
    }

    private void Track(ChatEntry entry)
    {
        if (!_order.TryGetValue(entry.Peer, out var list))
        {
            _order[entry.Peer] = list = [];
        }

        list.Add((entry.Id, entry.Outgoing));
        if (list.Count > MaxPerConversation)
        {
            var (id, outgoing) = list[0];
            list.RemoveAt(0);
            _entries.Remove((entry.Peer, id, outgoing));
        }
    }

    private void Append(ChatEntry entry)
    {
        _history.WriteLine(JsonSerializer.Serialize(new ChatStoreRecord(entry), ChatJsonContext.Default.ChatStoreRecord));
        _history.Flush();
    }

    private void LoadContacts()
    {
        if (!File.Exists(_contactsPath))
        {
            return;
        }

        try
        {
            foreach (var c in JsonSerializer.Deserialize(File.ReadAllBytes(_contactsPath), ChatJsonContext.Default.ListChatContact) ?? [])
            {
                if (c.Key is { Length: > 0 } && c.Nickname is { Length: > 0 })
                {
                    _contacts[c.Key] = c.Nickname;
                }
            }
        }
        catch (JsonException ex)
        {
            throw new IOException($"{_contactsPath}: not a contacts file ({ex.Message})", ex);
        }
    }

    private int LoadHistory()
    {
        if (!File.Exists(_historyPath))
        {
            return 0;
        }

        var lines = 0;
        foreach (var line in File.ReadLines(_historyPath, Encoding.UTF8))
        {
            lines++;
            ChatStoreRecord? record;
            try
            {
                record = JsonSerializer.Deserialize(line, ChatJsonContext.Default.ChatStoreRecord);
            }
            catch (JsonException)
            {
                // A line cut short by a crash: the rest of the file is still read.
                continue;
            }

            if (record?.Entry is not { Peer.Length: > 0, Id.Length: > 0 } entry)
            {
                continue;
            }

            if (_entries.ContainsKey((entry.Peer, entry.Id, entry.Outgoing)))
            {
                _entries[(entry.Peer, entry.Id, entry.Outgoing)] = entry;
            }
            else
            {
                _entries[(entry.Peer, entry.Id, entry.Outgoing)] = entry;
                Track(entry);
            }
        }

        return lines;
    }

    private void Compact()
    {
        var temp = _historyPath + ".tmp";
        using (var writer = new StreamWriter(OpenOwnerOnly(temp, FileMode.Create), new UTF8Encoding(false)))
        {
            foreach (var entry in _entries.Values.OrderBy(e => e.At))
            {
                writer.WriteLine(JsonSerializer.Serialize(new ChatStoreRecord(entry), ChatJsonContext.Default.ChatStoreRecord));
            }
        }

        File.Move(temp, _historyPath, overwrite: true);
    }

    private StreamWriter OpenHistory(FileMode mode) => new(OpenOwnerOnly(_historyPath, mode), new UTF8Encoding(false));

    private static FileStream OpenOwnerOnly(string path, FileMode mode)
    {
        var options = new FileStreamOptions { Mode = mode, Access = FileAccess.Write, Share = FileShare.Read };
        if (!OperatingSystem.IsWindows())
        {
            options.UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite;
        }

        return new FileStream(path, options);
    }

    private static void WriteOwnerOnly(string path, byte[] content)
    {
        using var stream = OpenOwnerOnly(path, FileMode.Create);
        stream.Write(content);
    }
}
