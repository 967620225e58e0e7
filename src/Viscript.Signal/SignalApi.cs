// Public surface of Viscript.Signal shared by the server (viscript) and its users.
using System.Net;
using System.Text.Json;

namespace Viscript.Signal;

/// <summary>Options of a <see cref="SignalServer"/>.</summary>
public sealed record SignalServerOptions
{
    /// <summary>Address to listen on; port 0 picks a free port (read it back from <see cref="SignalServer.LocalEndPoint"/>).</summary>
    public IPEndPoint Listen { get; init; } = new(IPAddress.Loopback, 7999);

    /// <summary>How long PingAsync/TopAsync/ShutdownAsync wait for a reply.</summary>
    public TimeSpan RequestTimeout { get; init; } = TimeSpan.FromSeconds(5);

    /// <summary>
    /// Largest frame body accepted from a registered client (the Go peer accepts 10240; a Go TOP reply is about 9 KB).
    /// Before its REG a connection may send at most <see cref="MaxRegistrationFrameSize"/>. Each connection buffers at most
    /// one frame, so this times <see cref="MaxConnections"/> bounds the memory clients can make the server hold.
    /// </summary>
    public int MaxFrameSize { get; init; } = 64 * 1024;

    /// <summary>Largest frame body accepted before a connection has registered (a REG is well under 1 KB).</summary>
    public const int MaxRegistrationFrameSize = 4096;

    /// <summary>
    /// Most connections held at once (registered or not). Also bounded by the descriptor limit: the server takes at most
    /// half of the descriptors free when it starts, less a reserve (see <see cref="SignalServer.MaxConnections"/>). A
    /// connection beyond the cap is accepted and closed at once, with a (rate-limited) diagnostic.
    /// </summary>
    public int MaxConnections { get; init; } = 1024;

    /// <summary>
    /// Most connections held at once from one source address other than loopback; all such sources together hold at most
    /// half of <see cref="MaxConnections"/>, so that strangers on the network never take the slots local apps need.
    /// Loopback clients are bounded only by <see cref="MaxConnections"/>: every local process shares that address (and
    /// may pick any of 127.0.0.0/8), so a per-address cap there would only lock legitimate apps out.
    /// </summary>
    public int MaxConnectionsPerAddress { get; init; } = 256;

    /// <summary>
    /// A connection that has not registered (a REG accepted) within this time after it was accepted is closed, whatever
    /// else it sends. <see cref="Timeout.InfiniteTimeSpan"/> disables it.
    /// </summary>
    public TimeSpan RegistrationTimeout { get; init; } = TimeSpan.FromSeconds(10);

    /// <summary>Token that clients from non-loopback addresses must present (required when Listen is not loopback).</summary>
    public string? Token { get; init; }

    /// <summary>Clock used for timeouts.</summary>
    public TimeProvider TimeProvider { get; init; } = TimeProvider.System;

    /// <summary>
    /// When a REG names an id whose holder is still connected, the holder is pinged with this deadline: if it answers,
    /// the new registration is refused (no hijack); if not, the newcomer replaces it.
    /// </summary>
    public TimeSpan RegistrationProbeTimeout { get; init; } = TimeSpan.FromSeconds(1);

    /// <summary>
    /// A connection that completes no frame for this long is closed (the Go peers use 90 s; clients ping every 60 s).
    /// Bytes that do not complete a frame do not count: a client dripping one byte a second is closed all the same.
    /// <see cref="Timeout.InfiniteTimeSpan"/> disables it.
    /// </summary>
    public TimeSpan IdleTimeout { get; init; } = TimeSpan.FromSeconds(90);

    /// <summary>Default options.</summary>
    public static SignalServerOptions Default { get; } = new();

    /// <summary>Every member except the token's value, which is shown only as set or not (options get logged).</summary>
    private bool PrintMembers(System.Text.StringBuilder builder)
    {
        builder.Append("Listen = ").Append(Listen)
            .Append(", RequestTimeout = ").Append(RequestTimeout)
            .Append(", MaxFrameSize = ").Append(MaxFrameSize)
            .Append(", MaxConnections = ").Append(MaxConnections)
            .Append(", MaxConnectionsPerAddress = ").Append(MaxConnectionsPerAddress)
            .Append(", RegistrationTimeout = ").Append(RegistrationTimeout)
            .Append(", Token = ").Append(Token is null ? "none" : "***")
            .Append(", RegistrationProbeTimeout = ").Append(RegistrationProbeTimeout)
            .Append(", IdleTimeout = ").Append(IdleTimeout);
        return true;
    }
}

/// <summary>A registered signal client as the server sees it.</summary>
/// <param name="Id">Registered id (viscript's sequence id for apps it launched).</param>
/// <param name="RemoteEndPoint">Peer address of the connection.</param>
/// <param name="RegisteredAt">When the registration was accepted.</param>
/// <param name="IsLoopback">Whether the client connected from this host.</param>
public sealed record SignalClientInfo(ulong Id, EndPoint RemoteEndPoint, DateTimeOffset RegisteredAt, bool IsLoopback)
{
    /// <summary>Process id the client announced in its REG (extension); null for original clients.</summary>
    public int? Pid { get; init; }

    /// <summary>Extension level the client negotiated (0 for an original Go client); see docs/signal.md.</summary>
    public int Extension { get; init; }

    /// <summary>Whether the client came from another host (it had to present the token).</summary>
    public bool IsRemote => !IsLoopback;
}

/// <summary>Resource usage reported by a client in reply to TOP.</summary>
public sealed record ResourceUsage
{
    /// <summary>The reply JSON as received (Go MemStats fields, plus our extensions when the client is ours).</summary>
    public required JsonElement Raw { get; init; }
    public ulong HeapAlloc { get; init; }
    public ulong HeapSys { get; init; }
    public ulong HeapIdle { get; init; }
    public ulong HeapInuse { get; init; }
    public ulong StackSys { get; init; }
    public ulong StackInuse { get; init; }
    /// <summary>Resident set size in bytes, when the client reports it (our extension).</summary>
    public ulong? Rss { get; init; }
    /// <summary>Total CPU time, when reported (our extension).</summary>
    public TimeSpan? CpuTime { get; init; }
    /// <summary>Thread count, when reported (our extension).</summary>
    public int? Threads { get; init; }
    /// <summary>Go <c>Alloc</c>: bytes of allocated heap objects.</summary>
    public ulong Alloc { get; init; }
    /// <summary>Go <c>TotalAlloc</c>: cumulative bytes allocated.</summary>
    public ulong TotalAlloc { get; init; }
    /// <summary>Go <c>Sys</c>: bytes obtained from the OS.</summary>
    public ulong Sys { get; init; }
    /// <summary>Go <c>NumGC</c>: completed GC cycles.</summary>
    public ulong NumGC { get; init; }
    /// <summary>Process id, when reported (our extension).</summary>
    public int? Pid { get; init; }
    /// <summary>Open file descriptors, when reported (our extension, Linux).</summary>
    public int? OpenFiles { get; init; }

    /// <summary>
    /// Reads a TOP reply the way Go's decoder would: names case-insensitive, unknown and missing fields tolerated.
    /// </summary>
    /// <exception cref="SignalException">Not a JSON object, or a known field with the wrong type (<see cref="SignalErrorKind.BadReply"/>).</exception>
    public static ResourceUsage FromJson(JsonElement json)
    {
        if (json.ValueKind != JsonValueKind.Object)
        {
            throw new SignalException(SignalErrorKind.BadReply, $"TOP reply is a JSON {json.ValueKind}, not an object");
        }

        ulong U(string name) => Internal.SignalJson.TryGetUInt64(json, name, out var v)
            ? v ?? 0
            : throw new SignalException(SignalErrorKind.BadReply, $"TOP reply field {name} is not an unsigned integer");
        long? L(string name) => Internal.SignalJson.TryGetInt64(json, name, out var v)
            ? v
            : throw new SignalException(SignalErrorKind.BadReply, $"TOP reply field {name} is not an integer");

        var cpu = L("CpuTimeMs");
        var threads = L("Threads");
        var pid = L("Pid");
        var files = L("OpenFiles");
        var rss = L("Rss");
        return new ResourceUsage
        {
            Raw = json,
            HeapAlloc = U("HeapAlloc"),
            HeapSys = U("HeapSys"),
            HeapIdle = U("HeapIdle"),
            HeapInuse = U("HeapInuse"),
            StackSys = U("StackSys"),
            StackInuse = U("StackInuse"),
            Alloc = U("Alloc"),
            TotalAlloc = U("TotalAlloc"),
            Sys = U("Sys"),
            NumGC = U("NumGC"),
            Rss = rss is { } r && r >= 0 ? (ulong)r : null,
            CpuTime = cpu is { } c ? TimeSpan.FromMilliseconds(c) : null,
            Threads = threads is { } t ? (int)Math.Clamp(t, 0, int.MaxValue) : null,
            Pid = pid is { } p ? (int)Math.Clamp(p, 0, int.MaxValue) : null,
            OpenFiles = files is { } f ? (int)Math.Clamp(f, 0, int.MaxValue) : null,
        };
    }
}

/// <summary>Why a signal call failed.</summary>
public enum SignalErrorKind
{
    /// <summary>No client is registered under that id.</summary>
    NotRegistered = 10,
    /// <summary>The client did not answer within the timeout.</summary>
    Timeout = 20,
    /// <summary>The client disconnected while the call waited.</summary>
    Disconnected = 30,
    /// <summary>The client answered with something that is not a valid reply.</summary>
    BadReply = 40,
    /// <summary>The server is not started or already disposed.</summary>
    NotRunning = 50,
}

/// <summary>A signal call that did not get a valid reply.</summary>
public sealed class SignalException : Exception
{
    public SignalException(SignalErrorKind kind, string message, Exception? inner = null) : base(message, inner) => Kind = kind;
    public SignalException() : this(SignalErrorKind.BadReply, "signal call failed") { }
    public SignalException(string message) : this(SignalErrorKind.BadReply, message) { }
    public SignalException(string message, Exception inner) : this(SignalErrorKind.BadReply, message, inner) { }

    /// <summary>The failure category.</summary>
    public SignalErrorKind Kind { get; }
}
